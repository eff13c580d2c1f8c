#!/usr/bin/env bash
# The GPU image's versions on this CPU (2026-12-05): torch 2.11.0 (PyPI's CUDA wheel, Triton 3.6.0) on Python
# 3.12.1 (pyenv), this package installed with --no-deps as on the device. NumPy < 2.3: Triton 3.6's interpreter
# cannot take a run-time integer loop bound under NumPy 2.4/2.5 ("only 0-dimensional arrays can be converted to
# Python scalars"); the compiled kernels, which a GPU runs, do not use NumPy.
#   ~/.pyenv/versions/3.12.1/bin/python -m venv /tmp/v212
#   /tmp/v212/bin/pip install torch==2.11.0 torchvision==0.26.0 'numpy<2.3' pytest pytest-xdist pluggy click \
#       pandas tabulate scikit-learn scipy rich && /tmp/v212/bin/pip install --no-deps -e .
# Run from this folder; PY36 is that venv's python, PY38 this machine's (torch 2.14.1, Triton 3.8.0).
set -euo pipefail
PY36=${PY36:-/tmp/v212/bin/python}
PY38=${PY38:-../../../.venv/bin/python}
# every kernel form of the DARTS step, GDAS's slots and the BatchNorm kernels, compiled for sm_90 (no GPU)
$PY36 ../../dwconv_compile.py --method darts --batch 2 --json compile-darts-sm90.json > compile-darts-sm90.log
$PY36 ../../dwconv_compile.py --method gdas --slots --batch 2 --json compile-gdas-slots-sm90.json > compile-gdas-slots-sm90.log
$PY36 ../../dwconv_compile.py --method darts --bn --batch 64 --json compile-bn-darts-sm90-triton36.json > compile-bn-darts-sm90-triton36.log
$PY36 ../../dwconv_compile.py --method darts --space nb201 --bn --batch 64 --json compile-bn-nb201-sm90-triton36.json > compile-bn-nb201-sm90-triton36.log
$PY38 ../../dwconv_compile.py --method darts --batch 2 --json compile-darts-sm90-triton38.json > compile-darts-sm90-triton38.log
$PY38 ../../dwconv_compile.py --method gdas --slots --batch 2 --json compile-gdas-slots-sm90-triton38.json > compile-gdas-slots-sm90-triton38.log
$PY38 ../../dwconv_compile.py --method darts --bn --batch 64 --json compile-bn-darts-sm90-triton38.json > compile-bn-darts-sm90-triton38.log
# (compile-*-dw4warps.log: the first two before the weight-gradient kernel went from 4 to 8 warps)
# the Triton kernels' tests in Triton 3.6's interpreter, and the whole GPU script at TINY sizes
(cd ../../.. && $PY36 -m pytest -q -p no:cacheprovider -p no:warnings tests/test_slots.py tests/test_bntriton.py \
    tests/test_dwconv.py) > tests-torch211-py312.log 2>&1
(cd ../../.. && TINY=1 OUT=/tmp/t211 OMP_NUM_THREADS=1 PATH=$(dirname $PY36):$PATH bash benchmarks/gpu_session.sh all) \
    > tiny-all-torch211-py312.log 2>&1 && cp /tmp/t211/all.jsonl tiny-all-torch211-py312.jsonl
