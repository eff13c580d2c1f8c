"""Wall time of the README's smoke command per method, alone and beside a busy process (issue 12).

Each row runs ``harness run --plugin P --space s1-s4 --preset smoke`` (digits, embedded, no download) in a
fresh subprocess with its own store, as a new user would, and times it from start to exit (imports,
data, search, derivation, retraining and the record included). With ``--busy`` a neighbour process keeps
the cores busy meanwhile: a float32 matmul loop with torch's default threads (one per core), the way
another training job or the test suite competes for the CPU. Prints the command, machine and versions
with the table; ``--json`` also writes the figures.

    python benchmarks/smoke_timing.py --plugins darts,rome --json out.json
    python benchmarks/smoke_timing.py --plugins darts --busy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The default: every registered method, with the rome plugin's two versions as one row (issue 12's target for ROME
# is the plugin's, both versions: 8 runs). Until 2026-12-05 (tenth session) a fixed list of the nine methods
# issue 12 was filed with: the eight baselines added since (issues 15, 16) had never been timed.
WHOLE_PLUGINS = ("rome",)


def every_method() -> str:
    """Every method the installed plugins register, as ``harness methods`` lists them, in that order; a plugin
    in WHOLE_PLUGINS as one row under its plugin's name, at its first method's place."""
    from harness.plugins import load_registry

    out: list[str] = []
    for m in load_registry().methods.values():
        name = m.plugin if m.plugin in WHOLE_PLUGINS else m.name
        if name not in out:
            out.append(name)
    return ",".join(out)
# the neighbour stops by itself when this script is gone (an interrupted run once left one behind, which
# then slowed every later measurement on the machine: BENCHMARKS.md, 2026-12-04)
BUSY = ("import os, torch\n"
        "parent = os.getppid()\n"
        "a = torch.randn(512, 512)\n"
        "while os.getppid() == parent:\n"
        "    a = torch.tanh(a @ a)\n")


def time_run(plugin: str, spaces: str, extra: list[str]) -> dict:
    from harness.store import ResultStore

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.sqlite"
        cmd = [sys.executable, "-m", "harness.cli", "run", "--plugin", plugin, "--space", spaces, "--preset", "smoke",
               "--store", str(store), "--quiet", *extra]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        # the runs as recorded (the store, not the printed table, whose layout is for people)
        recs = []
        if store.exists():
            with ResultStore(store) as results:
                recs = results.records(None)
    return {"plugin": plugin, "wall_s": round(wall, 1), "exit": done.returncode, "runs": len(recs),
            "completed": sum(r.status == "completed" for r in recs),
            "accuracies": [a for r in recs if (a := (r.metrics or {}).get("test_accuracy")) is not None],
            "command": "harness " + shlex.join(cmd[3:]), "stderr_tail": done.stderr[-300:] if done.returncode else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugins", help="comma-separated methods or plugin names (default: every registered method, "
                                       "rome's two versions as one row)")
    ap.add_argument("--spaces", default="s1-s4")
    ap.add_argument("--busy", action="store_true", help="a busy neighbour process runs meanwhile")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    args.plugins = args.plugins or every_method()
    import torch

    extra = [x for s in args.sets for x in ("--set", s)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill runs the cleanup below too
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if args.busy else None
    try:
        if neighbour is not None:
            time.sleep(2.0)  # let it start
        rows = [time_run(p, args.spaces, extra) for p in args.plugins.split(",")]
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    out = {"command": "python " + shlex.join(["benchmarks/smoke_timing.py", *(argv if argv is not None else sys.argv[1:])]),
           "busy_neighbour": args.busy, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "rows": rows}
    print(f"# {out['command']}  ({out['cpus']} CPUs, torch {out['torch']}, python {out['python']}, "
          f"busy neighbour: {args.busy})")
    print("| plugin | runs completed | wall s | test acc (%) |")
    print("|---|---|---|---|")
    for r in rows:
        accs = ", ".join(f"{a:.1f}" for a in r["accuracies"])
        print(f"| {r['plugin']} | {r['completed']}/{r['runs']} | {r['wall_s']:.1f} | {accs} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    lost = [r["plugin"] for r in rows if not r["runs"] or r["completed"] < r["runs"]]
    if lost:  # a wall time of runs that did not all complete is not the figure asked for
        raise SystemExit(f"smoke_timing: runs missing or not completed for {lost}: see the JSON's stderr_tail")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
