#!/usr/bin/env bash
# Before (aff02be, the session's start) and after (HEAD) this session's capturability changes, each in a worktree
# of its commit (its harness and plugins first on PYTHONPATH, ahead of the editable install), with this
# folder's capture_status.py; then the TINY GPU script's time at HEAD.
# Usage: bash benchmarks/results/2026-12-05i-capturable/run.sh  (from the repository root; .venv as README)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(pwd)
for rev in aff02be HEAD; do
    wt=/tmp/wt-$rev
    rm -rf "$wt"; git worktree prune
    git worktree add -q --detach "$wt" "$rev"
    (cd "$wt" && PYTHONPATH="$wt:$wt/plugins" OMP_NUM_THREADS=1 "$root/.venv/bin/python" "$here/capture_status.py") > "$here/status-$rev.md" 2>&1
    git worktree remove --force "$wt"
done
out=$(mktemp -d)
{ time (TINY=1 OUT=$out OMP_NUM_THREADS=1 PATH=$root/.venv/bin:$PATH bash benchmarks/gpu_session.sh all >/dev/null 2>&1); } \
    2> "$here/tiny-time.txt"
cp "$out/all.jsonl" "$here/tiny-all.jsonl"
