#!/usr/bin/env bash
# Runs every bench script once, one after the other, printing each headline (last line).
# Usage: bash bench/run_all.sh [threads]   (full output in bench/out/*.log, not tracked)
set -uo pipefail
cd "$(dirname "$0")/.."
threads=${1:-1}
mkdir -p bench/out
for b in probe_overhead train_throughput page_latency stats_throughput se_speed se_train_overhead concurrent_probe; do
  python bench/$b.py --threads "$threads" > bench/out/$b.log 2>&1 || echo "$b failed (see bench/out/$b.log)"
  echo "$b: $(tail -n 1 bench/out/$b.log)"
done
