#!/usr/bin/env bash
# Counts (not timings) of the fused DARTS step before and after (1) parameter-free ops shared per source
# (harness.nn.fused._share_stateless), (2) the 1x1 matrix-product form keeping only its operands for
# backward while captured (_Pointwise), (3) the first depthwise conv per source (SPREAD_DEPTHWISE) and
# (4) the captured pools (_MaxPool, _AvgPool): kernels and bytes a step (step_traffic.py, as captured,
# paper size, meta device), what one forward keeps for backward (step_saved.py, paper size, CPU; as
# captured after), launching operators with foreach optimizers (search_step.py --count-ops, uncaptured).
# BEFORE is the commit before all four; the run.log committed is the run after (4).
# Run from the repository root with the venv's python on PATH: bash .../run.sh [BEFORE] > .../run.log
set -euo pipefail
before=${1:-d180e7e}
here=$(pwd)
wt=$(mktemp -d)/before
git worktree add -q --detach "$wt" "$before"
trap 'git worktree remove --force "$wt"' EXIT
for side in before after; do
  dir=$([ "$side" = before ] && echo "$wt" || echo "$here")
  export PYTHONPATH="$dir:$dir/plugins"  # that tree's harness, not the installed (editable) one
  echo "== $side ($( [ "$side" = before ] && echo "$before" || echo "working tree" ))"
  for space in nb201 darts; do
    (cd "$dir" && python benchmarks/step_traffic.py --method darts --space "$space" --modes fast --as-captured | grep -v '^{')
    # as captured (the default step on CUDA) where the script can say so (added with the change)
    cap=$([ "$side" = after ] && echo --as-captured || true)
    (cd "$dir" && python benchmarks/step_saved.py --method darts --space "$space" --modes fast $cap | grep -v '^{')
    (cd "$dir" && python benchmarks/search_step.py --method darts --space "$space" --batch 8 --channels 16 \
      --resolution 16 --steps 1 --warmup 1 --mode fast --count-ops --device cpu | grep 'aten ops')
  done
done
