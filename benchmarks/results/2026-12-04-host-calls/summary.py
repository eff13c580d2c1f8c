"""Host calls per step (run.sh, counted on a CPU) beside the H200's times for the same steps uncaptured
(../2026-12-04-gpu/combined.jsonl), and a least-squares fit ms = a * launching calls + b * other calls over
the steps that are bound by their host: sync-free, and (where a CUDA graph of the step was timed) at least
1.6x slower uncaptured than captured, so the device's own time is not what sets it.

    python benchmarks/results/2026-12-04-host-calls/summary.py [more host_calls.py JSON files to predict]
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # benchmarks/
from host_calls import launches  # noqa: E402  (the classification, applied to each file's per-operator calls)
GPU = {r["item"]: r for r in map(json.loads, (HERE.parent / "2026-12-04-gpu" / "combined.jsonl").open()) if "modes" in r}
# run.sh's names -> (item, mode) of the H200 file; "sync": the step reads the host every forward (EnTranNAS's
# transit cells derived on the host), so it waits for the device: not a host-bound step
PAIRS = {
    "darts-darts-eager": ("darts darts", "eager"), "darts-darts-fast": ("darts darts", "fast"),
    "darts-nb201-eager": ("darts nb201", "eager"), "darts-nb201-fast": ("darts nb201", "fast"),
    "gdas-eager": ("gdas darts", "eager"), "gdas-fast-allop": ("gdas darts", "fast"),
    "rome-v2-eager": ("rome-v2 darts", "eager"), "rome-v2-fast-allop": ("rome-v2 darts", "fast"),
    "rome-v2-fast-chosen": ("rome-v2 darts chosen", "fast"),
    "rome-v1-eager": ("rome-v1 darts", "eager"), "rome-v1-fast-allop": ("rome-v1 darts", "fast"),
    "entrannas-eager": ("entrannas darts", "eager"), "entrannas-fast": ("entrannas darts", "fast"),
    "entrannas-device-eager": ("entrannas darts device", "eager"),
    "entrannas-device-fast": ("entrannas darts device", "fast"),
    "entrannas-dst-eager": ("entrannas-dst darts", "eager"), "entrannas-dst-fast": ("entrannas-dst darts", "fast"),
    "darts-2nd-eager": ("darts-2nd darts", "eager"), "darts-2nd-fast": ("darts-2nd darts", "fast"),
    "single-darts-eager": ("single-darts darts", "eager"), "single-darts-fast": ("single-darts darts", "fast"),
    "darts-pt-fixed-alpha-eager": ("darts-pt-fixed-alpha darts", "eager"),
    "darts-pt-fixed-alpha-fast": ("darts-pt-fixed-alpha darts", "fast"),
}
SYNCS = {"entrannas-eager", "entrannas-fast", "entrannas-device-eager", "entrannas-dst-eager", "entrannas-dst-fast",
         "gdas-eager", "rome-v2-eager", "rome-v1-eager"}  # eager single-path / transit cells read the host


def split(record: dict) -> tuple[float, float]:
    """(launching, other) top-level calls a step, from the record's per-operator counts."""
    la = sum(v for k, v in record["calls"].items() if launches(k))
    return la, sum(record["calls"].values()) - la


def main() -> None:
    rows = []
    for name, (item, mode) in PAIRS.items():
        path = HERE / f"{name}.json"
        if not path.exists() or item not in GPU:
            continue
        la, ot = split(json.loads(path.read_text()))
        modes = GPU[item]["modes"]
        ms = modes[mode]["ms_per_step_median"]
        graph = modes.get("graph", {}).get("ms_per_step_median") if mode == "fast" else None
        device_bound = graph is not None and ms < 1.6 * graph
        why = "syncs" if name in SYNCS else "device" if device_bound else ""
        rows.append((name, ms, la, ot, why))
    fit = [(ms, la, ot) for _, ms, la, ot, why in rows if not why]
    # least squares through the origin, two unknowns: [[sum la^2, sum la ot], [sum la ot, sum ot^2]] [a b] = ...
    s11 = sum(la * la for _, la, _ in fit)
    s12 = sum(la * ot for _, la, ot in fit)
    s22 = sum(ot * ot for _, _, ot in fit)
    t1 = sum(ms * la for ms, la, _ in fit)
    t2 = sum(ms * ot for ms, _, ot in fit)
    det = s11 * s22 - s12 * s12
    a, b = (t1 * s22 - t2 * s12) / det, (s11 * t2 - s12 * t1) / det
    single = sum(ms for ms, _, _ in fit) / sum(la + ot for _, la, ot in fit)
    print(f"fit over {len(fit)} host-bound, sync-free steps: ms = {a * 1000:.1f} us x launching + "
          f"{b * 1000:.1f} us x other calls (one rate for all calls: {single * 1000:.1f} us)\n")
    print("| step | H200 ms (uncaptured) | launching calls | other calls | us per call | fit ms | fit / H200 | not fitted |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ms, la, ot, why in rows:
        pred = a * la + b * ot
        print(f"| {name} | {ms:.1f} | {la:,.0f} | {ot:,.0f} | {1000 * ms / (la + ot):.1f} | {pred:.1f} | "
              f"{pred / ms:.2f} | {why} |")
    extra = [r for r in (json.loads(Path(p).read_text()) for p in sys.argv[1:]) if "calls" in r]  # host_calls.py's
    if extra:
        print("\nPredicted (no H200 figure):\n\n| step | launching | other | fit ms |\n|---|---|---|---|")
        for c in extra:
            la, ot = split(c)
            label = f"{c['method']} [{c['mode']}{', ' + ', '.join(c['sets']) if c['sets'] else ''}]"
            print(f"| {label} | {la:,.0f} | {ot:,.0f} | {a * la + b * ot:.1f} |")


if __name__ == "__main__":
    main()
