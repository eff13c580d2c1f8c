#!/usr/bin/env bash
# The depthwise kernels' machine code for sm_90 (no GPU), before and after the forward's and the stride-1 input
# gradient's tap shifts became constants: padding and dilation constexpr in those two kernels, and each tap's
# load addressed as (the pixel's pointer) + (the tap's constant shift), which the compiler folds into the load's
# immediate offset instead of a 64-bit address computation per tap and pixel. benchmarks/dwconv_compile.py
# (SASS "hot code" columns) under the GPU image's Triton 3.6 (PY36: torch 2.11.0, Python 3.12.1, see
# ../2026-12-05-triton36/run.sh) and this machine's 3.8 (PY38); the summary by ../2026-12-05c-sass/summarize.py.
# Run from this folder.
set -euo pipefail
root=$(cd ../../.. && pwd)
PY36=${PY36:-/tmp/v212/bin/python}
PY38=${PY38:-$root/.venv/bin/python}
BEFORE=${BEFORE:-0dc3b93}
unset TRITON_INTERPRET
wt=$(mktemp -d)
git -C "$root" worktree add -q --detach "$wt" "$BEFORE"
trap 'git -C "$root" worktree remove --force "$wt"' EXIT
for py in PY36 PY38; do
  v=$([[ $py == PY36 ]] && echo triton36 || echo triton38)
  (cd "$wt" && PYTHONPATH="$wt" ${!py} benchmarks/dwconv_compile.py --method darts --batch 64 \
      --json "$OLDPWD/before-darts-sm90-$v.json") > "before-darts-sm90-$v.log"
  ${!py} ../../dwconv_compile.py --method darts --batch 64 --json "after-darts-sm90-$v.json" > "after-darts-sm90-$v.log"
done
# the slots' per-unit-geometry forms (GEO): run-time padding and dilation as before; each program's channels
# one unit's, its geometry scalars and its k x k taps behind a branch each
for py in PY36 PY38; do
  v=$([[ $py == PY36 ]] && echo triton36 || echo triton38)
  (cd "$wt" && PYTHONPATH="$wt" ${!py} benchmarks/dwconv_compile.py --method gdas --slots --batch 64 \
      --json "$OLDPWD/before-gdas-slots-sm90-$v.json") > "before-gdas-slots-sm90-$v.log"
  ${!py} ../../dwconv_compile.py --method gdas --slots --batch 64 --json "after-gdas-slots-sm90-$v.json" \
      > "after-gdas-slots-sm90-$v.log"
done
python3 ../2026-12-05c-sass/summarize.py > summary.md
python3 - <<'PY' >> summary.md

import json
print("| Triton | kernel forms before | after |")
print("|---|---|---|")
for v in ("triton36", "triton38"):
    b, a = (json.load(open(f"{w}-darts-sm90-{v}.json")) for w in ("before", "after"))
    print(f"| {a['triton']} | {b['forms']} | {a['forms']} |")
print()
# the slot forms: instructions a float op with every tap of the 5x5 grid run (a 5x5 unit); a 3x3 unit's program
# runs 9 of them since these changes (25 before, masked), so its issued work is about 9/25 of the column
print("| Triton | slot kernel | launches a forward | instructions a float op over the 25 taps, before | after |")
print("|---|---|---|---|---|")
for v in ("triton36", "triton38"):
    b, a = (json.load(open(f"{w}-gdas-slots-sm90-{v}.json")) for w in ("before", "after"))
    for kernel in ("fwd", "dx", "dw"):
        def weighted(rec):
            rows = [r for r in rec["compiled"] if r["kernel"] == kernel]
            n = sum(r["launches_per_forward"] for r in rows)
            return n, sum(r["sass"]["per_float_op"] * r["launches_per_forward"] for r in rows) / n
        n, before = weighted(b)
        print(f"| {a['triton']} | {kernel} | {n} | {before:.1f} | {weighted(a)[1]:.1f} |")
PY
