"""Wall time of one grid of runs, sequential vs N worker processes vs a local Ray (issue 13).

Each row runs ``harness run --plugin P --space S --preset smoke --workers N`` (digits, embedded, no
download) in a fresh subprocess with its own store and times it from start to exit. Prints the command,
machine and versions with the table (runs per hour, speedup over one worker); ``--json`` also writes the
figures. The records of every row must be completed and equal to the first row's (same genotypes and
accuracies): a faster grid that changed a result would be a bug, not a speedup.

    python benchmarks/grid_throughput.py --json out.json
    python benchmarks/grid_throughput.py --plugins darts --spaces s1-s4 --workers 1,2,4,ray
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def time_grid(plugins: str, spaces: str, workers: str) -> dict:
    from harness.store import ResultStore

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.sqlite"
        cmd = [sys.executable, "-m", "harness.cli", "run", "--plugin", plugins, "--space", spaces, "--preset",
               "smoke", "--store", str(store), "--quiet",
               *(["--executor", "ray"] if workers == "ray" else ["--workers", workers])]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        with ResultStore(store) as results:
            recs = sorted(results.records(None), key=lambda r: (r.method, r.space, r.seed))
    runs = len(recs)
    return {"workers": workers, "wall_s": round(wall, 1), "exit": done.returncode, "runs": runs,
            "completed": sum(r.status == "completed" for r in recs),
            "runs_per_hour": round(3600 * runs / wall, 1) if wall else None,
            "results": [[r.method, r.space, r.genotype, (r.metrics or {}).get("test_accuracy")] for r in recs],
            "command": "harness " + shlex.join(cmd[3:]), "stderr_tail": done.stderr[-300:] if done.returncode else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugins", default="darts,gdas")
    ap.add_argument("--spaces", default="s1-s4")
    ap.add_argument("--workers", default="1,2,ray",
                    help="comma-separated worker counts, one row each; 'ray': --executor ray (a local Ray)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import torch

    rows = [time_grid(args.plugins, args.spaces, w) for w in args.workers.split(",")]
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup"] = round(base / r["wall_s"], 2) if r["wall_s"] else None
        r["same_results_as_first_row"] = r["results"] == rows[0]["results"]
    out = {"command": "python " + shlex.join(["benchmarks/grid_throughput.py",
                                              *(argv if argv is not None else sys.argv[1:])]),
           "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "rows": rows}
    print(f"# {out['command']}  ({out['cpus']} CPUs, torch {out['torch']}, python {out['python']})")
    print("| workers | runs completed | wall s | runs per hour | speedup | same results |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['completed']}/{r['runs']} | {r['wall_s']:.1f} | {r['runs_per_hour']} | "
              f"{r['speedup']} | {r['same_results_as_first_row']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if all(r["exit"] == 0 and r["same_results_as_first_row"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
