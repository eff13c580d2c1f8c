"""Bytes and kernels of the captured DARTS step (batch 64, C=16, 8 cells; the meta device) by operator, and
with ``--where OPS`` (comma-separated operator names) by the harness code line that called them: where the
step's traffic is, counted as benchmarks/step_traffic.py counts (a kernel per launching operator, bytes =
its tensor inputs + outputs). ``traffic_model.py`` beside it counts with the same pieces. Run from the
repository root:

    python benchmarks/results/2026-12-04c-dwconv/bytes_by_operator.py
    python benchmarks/results/2026-12-04c-dwconv/bytes_by_operator.py --where clone,cat
"""

import argparse
import collections
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

import search_step  # noqa: E402
import step_traffic  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from harness.api import Batch  # noqa: E402
from harness.nn import groups  # noqa: E402


class Count(TorchDispatchMode):
    """Kernels and bytes per operator (convolutions split into depthwise and other) while entered; with
    ``where``, only those operators, each keyed by the two innermost harness lines that called it. ``add``
    lets a caller count launches the dispatcher does not see (a modelled kernel), also only while entered."""

    def __init__(self, where=()):
        super().__init__()
        self.where = set(where)
        self.kernels = collections.Counter()
        self.bytes = collections.Counter()
        self.counting = False

    def __enter__(self):
        self.counting = True
        return super().__enter__()

    def __exit__(self, *exc):
        self.counting = False
        return super().__exit__(*exc)

    def add(self, name, nbytes: int) -> None:
        if self.counting:
            self.kernels[name] += 1
            self.bytes[name] += nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if func.is_view or name in search_step.NO_KERNEL:
            return out
        if name.startswith("convolution"):
            name += "(depthwise)" if (args[1] if name == "convolution" else args[2]).shape[1] == 1 else "(other)"
        if self.where:
            if name not in self.where:
                return out
            frames = [f for f in traceback.extract_stack() if "/harness/" in f.filename]
            name = (name, " <- ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in frames[-2:]))
        self.add(name, step_traffic._bytes(args) + step_traffic._bytes((kwargs or {}).values())
                 + step_traffic._bytes(out if isinstance(out, (list, tuple)) else (out,)))
        return out


def count_captured_step(counter: Count, method: str = "darts", sets=()) -> Count:
    """One search step of ``method`` (DARTS by default; ``sets``: ``--set`` settings) on the darts space at
    paper size, in the form a CUDA graph captures, on the meta device, counted by ``counter`` (after one
    uncounted step: the optimizers' lazy state)."""
    ap = argparse.ArgumentParser()
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args(["--method", method, *[a for s in sets for a in ("--set", s)]])
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    with groups.as_captured():
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, "meta")
        search_step.ready(sampler, net, opt, True)
        batch = lambda: Batch(torch.empty(args.batch, 3, args.resolution, args.resolution, device="meta"),  # noqa: E731
                              torch.empty(args.batch, dtype=torch.long, device="meta"))
        train, val = batch(), batch()
        opt.step(net, train, val)
        with counter:
            opt.step(net, train, val)
    return counter


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--where", default="", help="operators to attribute to their calling lines")
    where = set(filter(None, cli.parse_args().where.split(",")))
    count = count_captured_step(Count(where))
    total = sum(count.bytes.values())
    print(f"darts on darts, captured form, batch 64, C=16, 8 cells: {total / 1e9:.2f} GB in "
          f"{sum(count.kernels.values())} kernels" + (f" (operators {sorted(where)} only)" if where else ""))
    for name, b in count.bytes.most_common(25):
        print(f"{b / 1e9:7.2f} GB {100 * b / total:5.1f}% {count.kernels[name]:6d} kernels  {name}")


if __name__ == "__main__":
    main()
