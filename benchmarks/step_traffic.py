"""What one search step asks of a GPU, counted without one: kernels, bytes read and written, FLOPs.

A step on a GPU is bound by whichever is largest of its kernel launches, its memory traffic and its
arithmetic. `search_step.py --count-ops` counts the launches; this script also sums, over every
operator that launches a kernel (neither a view nor an allocation), the bytes of its tensor inputs
(read) and outputs (written), and the FLOPs of its convolutions and matrix products. These are counts, not
timings: dividing them by a device's launch rate, bandwidth and FLOP rate gives floors for its step
time, never a measurement (BENCHMARKS.md says which rates it uses, and compares with measured steps).
The optimizers run their per-parameter loops here (foreach has no meta kernels), so the kernel count is
above a CUDA step's by the optimizer's launches (`search_step.py --count-ops` gives the foreach count);
their bytes are the same either way.

The step runs on the meta device (shapes only, no arithmetic: paper sizes count in seconds), except
where a method reads device values on the host (the eager single-path cells pick their op that way):
then on the CPU, which takes longer but counts the same operators.

    python benchmarks/step_traffic.py --method rome-v2 --space darts
    python benchmarks/step_traffic.py --method darts --space darts --modes fast
    python benchmarks/step_traffic.py --method rome-v2 --space darts --modes fast --as-captured
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
import search_step  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--modes", nargs="+", default=["eager", "fast"], choices=["eager", "fast"])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--as-captured", action="store_true",
                    help="count the step as a CUDA graph capture runs it: the layers that take another form "
                         "while capturing (sample-group BatchNorm: one call per sample's block at any group size) "
                         "take that form (harness.nn.groups.as_captured)")
    args = ap.parse_args(argv)

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from harness.api import Batch

    no_kernel = search_step.NO_KERNEL
    registry, spec, space, layers, shape = search_step.resolve_step(args)

    class Traffic(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.kernels = self.read = self.written = self.flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if not func.is_view and name not in no_kernel:
                self.kernels += 1
                self.read += _bytes(args) + _bytes((kwargs or {}).values())
                self.written += _bytes(out if isinstance(out, (list, tuple)) else (out,))
                self.flops += _flops(name, args, out)
            return out

    def count(mode: str, device: str) -> dict:
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, device)
        search_step.ready(sampler, net, opt, mode == "fast", spec.budget.runtime.fast_recompute)
        gen = None if device == "meta" else torch.Generator().manual_seed(1234)

        def batch():
            x = (torch.empty(args.batch, 3, args.resolution, args.resolution, device="meta") if device == "meta"
                 else torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen))
            y = (torch.empty(args.batch, dtype=torch.long, device="meta") if device == "meta"
                 else torch.randint(0, args.classes, (args.batch,), generator=gen))
            return Batch(x, y)

        train, val = batch(), batch()
        opt.step(net, train, val)  # a first step outside the count: lazy state (optimizer moments, caches)
        traffic = Traffic()
        with traffic:
            opt.step(net, train, val)
        return {"device_counted_on": device, "kernels": traffic.kernels, "gb_read": round(traffic.read / 1e9, 3),
                "gb_written": round(traffic.written / 1e9, 3), "gflops": round(traffic.flops / 1e9, 2)}

    from harness.nn import groups

    results = {}
    with groups.as_captured() if args.as_captured else contextlib.nullcontext():
        for mode in args.modes:
            try:
                results[mode] = count(mode, "meta")
            except (NotImplementedError, RuntimeError) as exc:  # a host read of a device value (eager single-path)
                if "meta" not in str(exc).lower():
                    raise
                print(f"  ({mode}: {str(exc).splitlines()[0]}; counting on the CPU)", file=sys.stderr)
                results[mode] = count(mode, "cpu")
            r = results[mode]
            print(f"{args.method} on {args.space} [{mode}]: {r['kernels']} kernels, {r['gb_read']} GB read, "
                  f"{r['gb_written']} GB written, {r['gflops']} GFLOP per step (batch {args.batch}, "
                  f"C={args.channels}, {layers} cells; counted on {r['device_counted_on']})")
    out = {"command": "python benchmarks/step_traffic.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "batch": args.batch, "channels": args.channels,
           "layers": layers, "sets": args.sets, "as_captured": args.as_captured, "torch": torch.__version__,
           "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "modes": results}
    return search_step.write_json(out, args.json)


def _bytes(values) -> int:
    import torch

    total = 0
    for v in values:
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif isinstance(v, (list, tuple)):
            total += _bytes(v)
    return total


def _flops(name: str, args, out) -> int:
    """Multiply-adds x 2 of the convolutions and matrix products (the arithmetic that can bind a step;
    elementwise work is counted by its bytes). A convolution's backward costs its forward once per gradient
    it computes (input, weight); counted here from the shapes, because torch's FlopCounterMode counts a
    grouped (depthwise) convolution's backward as if it were dense (2026-12-04: 6.5 TFLOP for a DARTS
    supernet step whose forward is 44 GFLOP)."""
    if name == "convolution":
        w = args[1]
        return 2 * out.numel() * w.shape[1] * w[0, 0].numel()
    if name == "convolution_backward":
        grad_out, w, mask = args[0], args[2], args[10]
        return 2 * grad_out.numel() * w.shape[1] * w[0, 0].numel() * (int(mask[0]) + int(mask[1]))
    if name in ("mm", "bmm"):
        a, b = args[0], args[1]
        return 2 * a.numel() * b.shape[-1]
    if name in ("addmm", "baddbmm"):
        a, b = args[1], args[2]
        return 2 * a.numel() * b.shape[-1]
    return 0


if __name__ == "__main__":
    main()
