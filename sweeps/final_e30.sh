#!/usr/bin/env bash
# The #15 final runs (docs/training.md, "A second pair in which SE does its job"): the pilot's
# 30-epoch recipe on all 50,000 training images, tested once on the 10,000 test images, seeds
# 0, 1, 2 of both models of the winning candidate (C). Resumable like sweeps/pilot.sh: re-running
# continues each run from its last.safetensors and skips finished ones. Runs write to
# data/runs-e30/<name>/. Precision is pinned to bf16, the recipe's (a CPU without native bf16
# trains it several times slower, so resume these on one that has it: lscpu shows avx512_bf16).
# Usage: bash sweeps/final_e30.sh [MODEL:SEED ...]   MODEL vanilla or se; one lane runs its list in
# order (default: all six). Two lanes on two cores: vanilla:0 vanilla:1 se:2 and se:0 se:1 vanilla:2.
set -uo pipefail
cd "$(dirname "$0")/.."
common=(--epochs 30 --threads 1 --precision bf16 --data cifar10-jpeg --no-progress)
run() {  # name arch seed [extra trainer args...]
  local name=$1 arch=$2 seed=$3
  [[ -f data/runs-e30/$name/final.json ]] && return 0
  mkdir -p data/runs-e30
  python -m se_core.train --arch "$arch" --seed "$seed" "${common[@]}" "${@:4}" \
    --out "data/runs-e30/$name" >> "data/runs-e30/$name.log" 2>&1
}
for job in "${@:-vanilla:0 vanilla:1 vanilla:2 se:0 se:1 se:2}"; do
  for j in $job; do
    seed=${j#*:}
    case ${j%%:*} in
      vanilla) run "resnet20_e30-s$seed" resnet20_cifar "$seed" ;;
      # candidate C of the pilot (the SE units' parameters without weight decay, 8 hidden units at least)
      se) run "se_resnet20_h8_sewd0_e30-s$seed" se_resnet20_cifar "$seed" --se min_hidden=8 --se-weight-decay 0 ;;
      *) echo "unknown run: $j (MODEL:SEED, MODEL vanilla or se)" >&2; exit 2 ;;
    esac
  done
done
