#!/usr/bin/env bash
# Every kernel count of 2026-12-04's issue-17 sections again, with the corrected counter (benchmarks/search_step.py
# NO_KERNEL: `_unsafe_view`, `new_empty` and profiler markers are no kernels). Counts only (no timing), so two at
# once: run from the repository root with `bash benchmarks/results/2026-12-04-kernels-recounted/run.sh`.
set -euo pipefail
d=benchmarks/results/2026-12-04-kernels-recounted
mkdir -p $d/one-step $d/six-steps $d/rome-chosen $d/transit-on-device $d/traffic
xargs -P 2 -I{} bash -c '{}' <$d/commands.txt
