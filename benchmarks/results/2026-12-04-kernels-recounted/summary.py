"""Old counter (2026-12-04's earlier JSON) beside the corrected one (this folder), per table of BENCHMARKS.md.
Run from the repository root: python benchmarks/results/2026-12-04-kernels-recounted/summary.py"""
import json
from pathlib import Path

R = Path("benchmarks/results")
NEW = R / "2026-12-04-kernels-recounted"
PAIRS = {"one-step": "2026-12-04-opcounts-issue17/after", "six-steps": "2026-12-04-opcounts-issue17/six-steps",
         "rome-chosen": "2026-12-04-routed-opcounts", "transit-on-device": "2026-12-04-transit-on-device"}


def kernels(path, mode):
    m = json.loads(path.read_text())["modes"].get(mode)
    return None if m is None else m["aten_ops_per_step"]["non_view_foreach"]


def fmt(v):
    return "" if v is None else f"{v:,.0f}"


for sub, old_dir in PAIRS.items():
    print(f"\n{sub} (kernels per step, foreach optimizers; old counter -> corrected)\n")
    print("| method | eager: old | eager: corrected | fast: old | fast: corrected | eager / fast, corrected |")
    print("|---|---|---|---|---|---|")
    for new in sorted((NEW / sub).glob("*.json")):
        if new.stem.startswith("traffic-"):
            continue  # bytes, in the traffic table below
        old = R / old_dir / new.name
        e0, e1 = kernels(old, "eager"), kernels(new, "eager")
        f0, f1 = kernels(old, "fast"), kernels(new, "fast")
        ratio = f"{e1 / f1:.2f}" if e1 and f1 else ""
        print(f"| {new.stem} | {fmt(e0)} | {fmt(e1)} | {fmt(f0)} | {fmt(f1)} | {ratio} |")

print("\ntraffic at the paper's size (per-parameter optimizer loops; old counter -> corrected)\n")
print("| file | mode | kernels: old | kernels: corrected | GB moved: old | GB moved: corrected | GFLOP |")
print("|---|---|---|---|---|---|---|")
OLD_TRAFFIC = {"darts": "2026-12-04-step-traffic", "entrannas": "2026-12-04-step-traffic",
               "gdas": "2026-12-04-step-traffic", "rome-v2": "2026-12-04-step-traffic",
               "rome-v2-chosen": "2026-12-04-routed-traffic",
               "traffic-entrannas": "2026-12-04-transit-on-device",
               "traffic-entrannas-dst": "2026-12-04-transit-on-device"}
for new in sorted([*(NEW / "traffic").glob("*.json"), *(NEW / "transit-on-device").glob("traffic-*.json")]):
    old = R / OLD_TRAFFIC[new.stem] / new.name
    o, n = json.loads(old.read_text())["modes"], json.loads(new.read_text())["modes"]
    for mode in n:
        gb = lambda m: m["gb_read"] + m["gb_written"]  # noqa: E731
        print(f"| {new.stem} | {mode} | {o[mode]['kernels']:,} | {n[mode]['kernels']:,} | {gb(o[mode]):,.1f} | "
              f"{gb(n[mode]):,.1f} | {n[mode]['gflops']:,.0f} |")
