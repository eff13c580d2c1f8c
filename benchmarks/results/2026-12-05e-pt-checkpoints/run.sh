#!/usr/bin/env bash
# DARTS-PT's selection checkpoints (2026-12-05, fifth session), on the 2-core CPU machine. Run from the repository root.
# 1. every checkpoint the selector offers written (commit edc1d53, before the one-a-second limit):
#      alone.log / busy.log (the README's smoke command per method, alone / beside a busy process), save_cost.log
# 2. at most one a second (SELECT_CHECKPOINT_MIN_S = 1.0): alone-throttled.log, save_cost-throttled.log
set -euo pipefail
d=benchmarks/results/2026-12-05e-pt-checkpoints
python benchmarks/smoke_timing.py --plugins darts-pt,darts-pt-fixed-alpha --json $d/alone-throttled.json > $d/alone-throttled.log 2>&1
for i in 1 2; do OMP_NUM_THREADS=1 python $d/save_cost.py; done > $d/save_cost-throttled.log 2>&1
