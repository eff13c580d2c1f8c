#!/usr/bin/env bash
# The depthwise weight gradient's forms compiled for sm_90 (no GPU) with each accumulator layout of its stride-2
# forms, (taps, pixels) and (pixels, taps), under the GPU image's Triton 3.6 (PY36: torch 2.11.0, Python 3.12, see
# ../2026-12-05-triton36/run.sh) and this machine's 3.8 (PY38): benchmarks/dwconv_compile.py's SASS columns, for
# DARTS's step (darts space, C=16, 8 cells, batch 64) and GDAS's conv slots. auto.log: the layout each version
# takes by default (harness.nn.dwconv.pixels_major). Run from this folder; summary.md by summarize.py.
set -euo pipefail
root=$(cd ../../.. && pwd)
PY36=${PY36:-/tmp/v212/bin/python}
PY38=${PY38:-$root/.venv/bin/python}
unset TRITON_INTERPRET
for py in PY36 PY38; do
  v=$([[ $py == PY36 ]] && echo triton36 || echo triton38)
  for tile in taps pixels; do
    ${!py} ../../dwconv_compile.py --method darts --batch 64 --dw-tile $tile --json "darts-$tile-$v.json" \
        > "darts-$tile-$v.log"
    ${!py} ../../dwconv_compile.py --method gdas --slots --batch 64 --dw-tile $tile --json "slots-$tile-$v.json" \
        > "slots-$tile-$v.log"
  done
done
for py in PY36 PY38; do
  (cd "$root" && ${!py} -c 'import triton; from harness.nn import dwconv
print(f"triton {triton.__version__}: stride-2 forms pixels-major by default: {dwconv.pixels_major(False)}")')
done > auto.log
python3 summarize.py > summary.md
# the kernels' tests in each version's interpreter (under 3.6 the fused-cell and slot tests take the
# pixels-major stride-2 forms by default, under 3.8 the other; the geometry test takes both under each)
(cd "$root" && $PY36 -m pytest -q -p no:cacheprovider -p no:warnings tests/test_dwconv.py tests/test_slots.py) \
    > tests-triton36.log 2>&1
(cd "$root" && $PY38 -m pytest -q -p no:cacheprovider -p no:warnings tests/test_dwconv.py tests/test_slots.py) \
    > tests-triton38.log 2>&1
python work.py > work.log
