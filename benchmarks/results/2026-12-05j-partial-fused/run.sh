#!/usr/bin/env bash
# PC-DARTS and DrNAS smoke runs on S1-S4 (README's smoke preset: runtime.fast_cpu, so the fused partial-channel
# cell runs on the CPU after 20bce26), before (bf542c8) and after (20bce26), each commit in a worktree with its
# harness and plugins first on PYTHONPATH, one run at a time on this 2-core host, each in its own store.
# Then the kernel counts at the paper's size (count-*.json, taken first with the commands in README.md here).
# Usage: bash benchmarks/results/2026-12-05j-partial-fused/run.sh  (from the repository root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(pwd)
for rev in bf542c8 20bce26; do
    wt=/tmp/wt-$rev
    rm -rf "$wt"; git worktree prune
    git worktree add -q --detach "$wt" "$rev"
    for m in pc-darts drnas; do
        store=$(mktemp -d)/runs.sqlite
        { time (cd "$wt" && PYTHONPATH="$wt:$wt/plugins" "$root/.venv/bin/harness" run --plugin $m --space s1-s4 \
            --preset smoke --store "$store"); } > "$here/smoke-$m-$rev.log" 2>&1
        (cd "$wt" && PYTHONPATH="$wt:$wt/plugins" "$root/.venv/bin/harness" leaderboard --store "$store" \
            --export markdown) >> "$here/smoke-$m-$rev.log" 2>&1
    done
    git worktree remove --force "$wt"
done
