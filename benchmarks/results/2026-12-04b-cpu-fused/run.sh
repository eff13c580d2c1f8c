#!/usr/bin/env bash
# The fused cell's new kernel defaults (MERGE_KERNEL = 0, POINTWISE_MATMUL = True) against the old form
# (variant merge+conv) on this 2-core CPU at the smoke preset's supernet size (batch 32, C=4, 3 cells;
# digits are 8x8, Fashion-MNIST 28x28: both resolutions), one thread, alone; then the README's smoke run
# with the new defaults. Run from the repository root with the venv's python on PATH.
set -euo pipefail
d=benchmarks/results/2026-12-04b-cpu-fused
for space in darts nb201; do
  for res in 8 28; do
    OMP_NUM_THREADS=1 python benchmarks/step_variants.py --method darts --space "$space" --batch 32 --channels 4 \
      --layers 3 --resolution "$res" --steps 20 --warmup 3 --device cpu --variants default,merge+conv \
      --json "$d/variants-$space-$res.json" | tail -5
  done
done
/usr/bin/time -f "%e s wall" harness run --plugin darts --space s1-s4 --preset smoke --store "$d/smoke.sqlite" 2>&1 | tail -8
rm -f "$d/smoke.sqlite"
