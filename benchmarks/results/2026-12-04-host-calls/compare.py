"""Before (run.sh: the code of 2026-12-04's H200 run, commit 1b9e48d) and after (after/: this session's
clip_grad_norm, fill_unused_grads and node-level chosen form) host calls per step, side by side.

    python benchmarks/results/2026-12-04-host-calls/compare.py
"""

import json
from pathlib import Path

from summary import split  # noqa: E402 (run from anywhere: summary.py puts benchmarks/ on the path)

HERE = Path(__file__).resolve().parent
PAIRS = [("darts-darts-eager", "darts-eager"), ("darts-darts-fast", "darts-fast"), ("gdas-eager", "gdas-eager"),
         ("gdas-fast-chosen", "gdas-chosen"), ("rome-v2-eager", "rome-v2-eager"), ("rome-v2-fast-chosen", "rome-v2-chosen")]

print("| step | top-level calls before | after | launching before | after | Python-level torch calls before | after |")
print("|---|---|---|---|---|---|---|")
for before, after in PAIRS:
    b, a = (json.loads(p.read_text()) for p in (HERE / f"{before}.json", HERE / "after" / f"{after}.json"))
    (lb, ob), (la, oa) = split(b), split(a)
    label = f"{a['method']} [{a['mode']}{', ' + ', '.join(a['sets']) if a['sets'] else ''}]"
    print(f"| {label} | {lb + ob:,.0f} | {la + oa:,.0f} | {lb:,.0f} | {la:,.0f} | "
          f"{b['python_torch_calls_per_step']:,.0f} | {a['python_torch_calls_per_step']:,.0f} |")
