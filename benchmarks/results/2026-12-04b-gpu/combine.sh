#!/usr/bin/env bash
# The two device calls of the second 2026-12-04 session (H200) as one file for benchmarks/gpu_tables.py:
#   1. bash benchmarks/gpu_session.sh all                                    -> all.jsonl, all.log
#      (its 510 s budget skipped 'variants darts nb201', 'f64 rome-v2' and 'packing'; those 'skipped' lines
#      are dropped here)
#   2. ALL_BUDGET_S=250 ALL_ONLY='variants darts nb201,f64 rome-v2,packing' bash benchmarks/gpu_session.sh all
#      -> all-rest.jsonl, all-rest.log
# Run from the repository root: bash benchmarks/results/2026-12-04b-gpu/combine.sh > .../combined.jsonl
set -euo pipefail
d=$(dirname "$0")
python3 - "$d" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
later = {"variants darts nb201", "f64 rome-v2", "packing"}
for line in (d / "all.jsonl").read_text().splitlines():
    r = json.loads(line)
    if r.get("skipped") not in later:
        print(json.dumps(r))
for line in (d / "all-rest.jsonl").read_text().splitlines():
    print(line)
PY
