#!/usr/bin/env bash
# The #15 pilot (docs/training.md, "A second pair in which SE does its job"): two lanes of one
# thread each, every run resumable (re-running this script continues each run from its
# last.safetensors and skips finished ones). Runs write to data/pilot/<name>/.
set -uo pipefail
cd "$(dirname "$0")/.."
common=(--epochs 30 --threads 1 --data cifar10-jpeg@val=5000 --no-progress)
run() {  # name arch [se]
  local name=$1 arch=$2 se=${3:-}
  [[ -f data/pilot/$name/final.json ]] && return 0
  python -m se_core.train --arch "$arch" ${se:+--se "$se"} --seed "${name##*-s}" "${common[@]}" \
    --out "data/pilot/$name" >> "data/pilot/$name.log" 2>&1
}
lane1() { run A-se_resnet20_h8-s0 se_resnet20_cifar min_hidden=8; run A-resnet20-s1 resnet20_cifar
          run B-se_resnet32_h8-s0 se_resnet32_cifar min_hidden=8; run B-resnet32-s1 resnet32_cifar; }
lane2() { run A-resnet20-s0 resnet20_cifar; run A-se_resnet20_h8-s1 se_resnet20_cifar min_hidden=8
          run B-resnet32-s0 resnet32_cifar; run B-se_resnet32_h8-s1 se_resnet32_cifar min_hidden=8; }
lane1 & lane2 & wait
