#!/usr/bin/env bash
# The #15 pilot (docs/training.md, "A second pair in which SE does its job"): two lanes of one
# thread each, every run resumable (re-running this script continues each run from its
# last.safetensors and skips finished ones). Runs write to data/pilot/<name>/.
set -uo pipefail
cd "$(dirname "$0")/.."
common=(--epochs 30 --threads 1 --data cifar10-jpeg@val=5000 --no-progress)
run() {  # name arch [se] [extra trainer args...]
  local name=$1 arch=$2 se=${3:-}
  [[ -f data/pilot/$name/final.json ]] && return 0
  python -m se_core.train --arch "$arch" ${se:+--se "$se"} --seed "${name##*-s}" "${common[@]}" "${@:4}" \
    --out "data/pilot/$name" >> "data/pilot/$name.log" 2>&1
}
# Candidate C (added 2026-12-02, docs/training.md) shares A's vanilla runs. The order after A seed 0
# puts the seed-0 runs of B and C first, since A is already inadmissible by the rule.
h8=min_hidden=8
# Session 8 (docs/training.md, written before C seed 1 finished): B can no longer win and A's SE seed 1
# matters only if C seed 1 freezes 5 or more blocks, so the pilot ends with C seed 1, then A's SE seed 1
# only while the rule still names no winner.
lane1() { run A-se_resnet20_h8-s0 se_resnet20_cifar $h8; run B-se_resnet32_h8-s0 se_resnet32_cifar $h8
          run C-se_resnet20_h8_sewd0-s1 se_resnet20_cifar $h8 --se-weight-decay 0
          python -m se_core.pilot --stats | grep -q '^winner: —' && run A-se_resnet20_h8-s1 se_resnet20_cifar $h8; }
lane2() { run A-resnet20-s0 resnet20_cifar; run C-se_resnet20_h8_sewd0-s0 se_resnet20_cifar $h8 --se-weight-decay 0
          run A-resnet20-s1 resnet20_cifar; }
lane1 & lane2 & wait
python -m se_core.pilot --stats --provenance --docs
