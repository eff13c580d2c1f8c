"""Bytes and kernels of the captured DARTS step (batch 64, C=16, 8 cells; the meta device) by operator, and
with ``--where OPS`` (comma-separated operator names) by the harness code line that called them: where the
step's traffic is, counted as benchmarks/step_traffic.py counts (a kernel per launching operator, bytes =
its tensor inputs + outputs). Run from the repository root:

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


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--where", default="", help="operators to attribute to their calling lines")
    where = set(filter(None, cli.parse_args().where.split(",")))
    ap = argparse.ArgumentParser()
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args(["--method", "darts"])
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    kernels, nbytes = collections.Counter(), collections.Counter()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):
            out = func(*a, **(kw or {}))
            name = func.overloadpacket.__name__
            if func.is_view or name in search_step.NO_KERNEL:
                return out
            if name.startswith("convolution"):
                name += "(depthwise)" if (a[1] if name == "convolution" else a[2]).shape[1] == 1 else "(other)"
            if where:
                if name not in where:
                    return out
                frames = [f for f in traceback.extract_stack() if "/harness/" in f.filename]
                name = (name, " <- ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in frames[-2:]))
            kernels[name] += 1
            nbytes[name] += (step_traffic._bytes(a) + step_traffic._bytes((kw or {}).values())
                             + step_traffic._bytes(out if isinstance(out, (list, tuple)) else (out,)))
            return out

    with groups.as_captured():
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, 16, layers, shape, "meta")
        search_step.ready(sampler, net, opt, True)
        batch = lambda: Batch(torch.empty(64, 3, 32, 32, device="meta"),  # noqa: E731
                              torch.empty(64, dtype=torch.long, device="meta"))
        train, val = batch(), batch()
        opt.step(net, train, val)  # lazy state outside the count
        with Count():
            opt.step(net, train, val)
    total = sum(nbytes.values())
    print(f"darts on darts, captured form, batch 64, C=16, 8 cells: {total / 1e9:.2f} GB in "
          f"{sum(kernels.values())} kernels" + (f" (operators {sorted(where)} only)" if where else ""))
    for name, b in nbytes.most_common(25):
        print(f"{b / 1e9:7.2f} GB {100 * b / total:5.1f}% {kernels[name]:6d} kernels  {name}")


if __name__ == "__main__":
    main()
