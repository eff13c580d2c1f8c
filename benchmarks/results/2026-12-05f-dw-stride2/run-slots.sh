#!/usr/bin/env bash
# The slots' per-unit-geometry kernels (harness.nn.dwconv, GEO): the input gradient at stride 1 reads the pixel's own
# place in the gradient plus the tap's shift (a scalar for the program) with unsigned bounds, as the forward; the
# input gradient takes 4 elements a thread (_DX_GEO, was 1) and the forward 4 (_FWD_GEO, was 2). GDAS's slot forms
# compiled for sm_90 (no GPU) under Triton 3.6 (PY36) and 3.8 (PY38), before (BEFORE, the commit before the
# change) and after; slots_summary.md by slots_summarize.py. Run from this folder.
set -euo pipefail
root=$(cd ../../.. && pwd)
PY36=${PY36:-/tmp/v212/bin/python}
PY38=${PY38:-$root/.venv/bin/python}
BEFORE=${BEFORE:-c0a578f}
unset TRITON_INTERPRET
wt=$(mktemp -d)
git -C "$root" worktree add -q --detach "$wt" "$BEFORE"
trap 'git -C "$root" worktree remove --force "$wt"' EXIT
for py in PY36 PY38; do
  v=$([[ $py == PY36 ]] && echo triton36 || echo triton38)
  (cd "$wt" && PYTHONPATH="$wt" ${!py} benchmarks/dwconv_compile.py --method gdas --slots --batch 64 \
      --json "$OLDPWD/slots-before-$v.json") > "slots-before-$v.log"
  ${!py} ../../dwconv_compile.py --method gdas --slots --batch 64 --json "slots-after-$v.json" \
      > "slots-after-$v.log"
done
python3 slots_summarize.py > slots_summary.md
# and each tile setting of _DX_GEO and _FWD_GEO, tried before they were set: geo_tiles.py (its docstring)
# (fwd-fixed-tiles-*.log were printed by a first form of geo_tiles.py's fwd-fixed mode, without the forms column)
