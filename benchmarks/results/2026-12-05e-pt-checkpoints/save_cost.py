"""One DARTS-PT smoke run on S2 (digits, one retrain epoch) in this process, with the checkpoint writes timed:
how much of the run the selection's checkpoints (after each projection point and tuning epoch) take.

    python benchmarks/results/2026-12-05e-pt-checkpoints/save_cost.py
"""
import platform
import tempfile
import time
from pathlib import Path

import torch

import harness.checkpoint as hc
from harness.config import parse_sets
from harness.plugins import load_registry
from harness.runner import Checkpoints, execute, plan, resolve_device
from harness.store import ResultStore

torch.set_num_threads(1)
real, spent = hc.save_checkpoint, {"s": 0.0, "n": 0, "phases": {}}


def timed(path, state):
    t = time.perf_counter()
    out = real(path, state)
    spent["s"] += time.perf_counter() - t
    spent["n"] += 1
    spent["phases"][state["phase"]] = spent["phases"].get(state["phase"], 0) + 1
    return out


hc.save_checkpoint = timed
tmp = Path(tempfile.mkdtemp())
registry = load_registry()
p = plan(registry, methods=["darts-pt"], spaces=["s2"], datasets=["digits"], seeds=[0], preset="smoke", swaps={},
         sets=parse_sets(["eval.epochs=1"]))
t = time.perf_counter()
with ResultStore(tmp / "r.sqlite") as store:
    (rec,) = execute(registry, p, store, resolve_device("cpu"), log=lambda s: None,
                     checkpoints=Checkpoints(str(tmp / "ck")))
wall = time.perf_counter() - t
print(f"# {platform.node()} cpu, torch {torch.__version__}, python {platform.python_version()}")
print(f"run {rec.status}: {wall:.2f} s wall (search + selection {rec.costs['search_s']:.2f} s); "
      f"{spent['n']} checkpoints written in {spent['s']:.2f} s ({1000 * spent['s'] / spent['n']:.1f} ms each), "
      f"by phase {spent['phases']}")
