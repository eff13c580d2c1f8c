"""Per seed and float32 mode: the first step whose largest parameter relative error against the float64
step exceeds 1e-4 (a discrete choice flipped; rounding alone stays near 1e-6). Run from the repository
root: python benchmarks/results/2026-12-04-routed-drift-vs-float64/summary.py"""
import json
from pathlib import Path

here = Path(__file__).parent
rows, departed = [], {}
for path in sorted(here.glob("rome-v2-seed*.json"), key=lambda p: int(p.stem.split("seed")[1])):
    rec = json.loads(path.read_text())
    firsts = {}
    for mode, m in rec["modes"].items():
        first = next((i + 1 for i, v in enumerate(m["param_max_rel_err_per_step"]) if v > 1e-4), None)
        firsts[mode] = first
        departed[mode] = departed.get(mode, 0) + (first is not None)
    rows.append((rec["seed"], firsts))
modes = list(rows[0][1])
print("| seed | " + " | ".join(modes) + " |")
print("|---|" + "---|" * len(modes))
for seed, firsts in rows:
    print(f"| {seed} | " + " | ".join("-" if firsts[m] is None else str(firsts[m]) for m in modes) + " |")
print("| departed | " + " | ".join(f"{departed[m]}/{len(rows)}" for m in modes) + " |")
