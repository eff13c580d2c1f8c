#!/usr/bin/env bash
# The Triton kernels' machine code for sm_90 (no GPU): benchmarks/dwconv_compile.py's new "hot code" columns
# (nvdisasm's SASS of each kernel form: a thread's instructions, float ops and loads in its innermost arithmetic
# loop, or in the whole kernel where the taps are unrolled), with the GPU image's Triton 3.6 (PY36: torch 2.11.0,
# Python 3.12.1, see ../2026-12-05-triton36/run.sh) and this machine's 3.8 (PY38).
# before-*: the kernels before this folder's two changes to the depthwise weight gradient (taken from git:
# BEFORE=<commit>); after-*: with them: 16 accumulator elements a thread (fewer warps for 8x8 planes), and at
# stride 1 the input read at the output pixel's own offset plus the tap's shift (FLAT), an address Triton can
# see is contiguous along the pixels (Triton 3.6 otherwise laid the taps across a warp's threads).
# Run from this folder.
set -euo pipefail
root=$(cd ../../.. && pwd)
PY36=${PY36:-/tmp/v212/bin/python}
PY38=${PY38:-$root/.venv/bin/python}
BEFORE=${BEFORE:-5224a24}
unset TRITON_INTERPRET
wt=$(mktemp -d)
git -C "$root" worktree add -q --detach "$wt" "$BEFORE"
trap 'git -C "$root" worktree remove --force "$wt"' EXIT
cp "$root/benchmarks/dwconv_compile.py" "$wt/benchmarks/"  # the SASS columns, on the old kernels' launches
for py in PY36 PY38; do
  v=$([[ $py == PY36 ]] && echo triton36 || echo triton38)
  (cd "$wt" && PYTHONPATH="$wt" ${!py} benchmarks/dwconv_compile.py --method darts --batch 64 \
      --json "$OLDPWD/before-darts-sm90-$v.json") > "before-darts-sm90-$v.log"
  ${!py} ../../dwconv_compile.py --method darts --batch 64 --json "after-darts-sm90-$v.json" > "after-darts-sm90-$v.log"
done
$PY36 ../../dwconv_compile.py --method gdas --slots --batch 64 --json after-gdas-slots-sm90-triton36.json \
    > after-gdas-slots-sm90-triton36.log
$PY36 ../../dwconv_compile.py --method darts --bn --batch 64 --json after-bn-darts-sm90-triton36.json \
    > after-bn-darts-sm90-triton36.log
