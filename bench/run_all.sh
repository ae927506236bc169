#!/usr/bin/env bash
# Runs every bench script once, one after the other, printing each headline (last line).
# Usage: bash bench/run_all.sh [threads]   (full output in bench/out/*.log, not tracked)
set -uo pipefail
cd "$(dirname "$0")/.."
threads=${1:-1}
mkdir -p bench/out
# "name args": page_latency twice (the CIFAR pair, then --imagenet); load_sessions twice (the server alone through
# the protocol client, then real browsers beside it: Debian's chromium)
for b in probe_overhead train_throughput page_latency "page_latency --imagenet" stats_throughput se_speed \
         se_train_overhead memory_layout concurrent_probe attribution_speed "load_sessions --client protocol" \
         load_sessions; do
  read -r name args <<< "$b"
  log=bench/out/${b// /}.log
  python "bench/$name.py" $args --threads "$threads" > "$log" 2>&1 || echo "$b failed (see $log)"
  echo "$b: $(tail -n 1 "$log")"
done
