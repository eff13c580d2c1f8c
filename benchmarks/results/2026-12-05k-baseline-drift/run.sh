#!/usr/bin/env bash
# fp32 drift of the fused partial-channel (PC-DARTS, DrNAS) and auxiliary-skip (DARTS-) cells against three
# 1-ulp rounding baselines, on Fashion-MNIST, this 2-core CPU, one thread (2026-12-05, tenth session).
# Run from this folder with ../shared beside the checkout.
set -euo pipefail
PY=${PY:-../../../.venv/bin/python}
common="--space darts --batch 16 --channels 8 --layers 5 --steps 20 --warmup 0 --compare --drift-baseline
        --baseline-draws 3 --data fashion-mnist --data-dir ../../../../shared/data"
k="--set cell.k=4 --set optimizer.k_schedule=4,2"
w0="--set optimizer.warmup_epochs=0"
run() { name=$1; shift; OMP_NUM_THREADS=1 $PY ../../search_step.py "$@" --json $name.json > $name.log 2>&1; }
# as configured (their warm-up epochs: PC-DARTS and DrNAS leave alpha alone in epoch 0)
run pc-darts --method pc-darts $common
run drnas --method drnas $common $k
run darts-minus --method darts-minus $common
# with the arch step (no warm-up)
run pc-darts-arch --method pc-darts $common $w0
run drnas-arch --method drnas $common $k $w0
