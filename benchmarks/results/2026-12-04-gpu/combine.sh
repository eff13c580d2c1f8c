#!/usr/bin/env bash
# The three device calls of 2026-12-04 (H200) as one file for benchmarks/gpu_tables.py:
#   1. bash benchmarks/gpu_session.sh all                                    -> all.jsonl, all.log
#      (its 510 s budget skipped 'e2e graph', 'e2e eager' and 'packing'; their 'skipped' lines are dropped here)
#   2. ALL_BUDGET_S=290 ALL_ONLY='e2e graph,e2e eager' bash benchmarks/gpu_session.sh all -> all-e2e.jsonl/.log
#   3. python3 benchmarks/gpu_packing.py --out $OUT/packing.jsonl --packs 1,4,8 --device cuda -> packing.jsonl/.log
#      (rows tagged "item": "packing" here, as gpu_all.py tags them)
# Run from the repository root: bash benchmarks/results/2026-12-04-gpu/combine.sh > .../combined.jsonl
set -euo pipefail
d=$(dirname "$0")
python3 - "$d" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
later = {"e2e graph", "e2e eager", "packing"}
for line in (d / "all.jsonl").read_text().splitlines():
    r = json.loads(line)
    if r.get("skipped") not in later:
        print(json.dumps(r))
for line in (d / "all-e2e.jsonl").read_text().splitlines():
    print(line)
for line in (d / "packing.jsonl").read_text().splitlines():
    print(json.dumps({"item": "packing", **json.loads(line)}))
PY
