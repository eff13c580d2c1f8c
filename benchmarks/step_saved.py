"""What one forward of a search network keeps for its backward, counted on the CPU: the bytes of the distinct
tensors autograd saves (``torch.autograd.graph.saved_tensors_hooks``), by mode. That is the activation
memory a GPU holds at the start of the step's backward, the bulk of its peak (the rest: weights, gradients,
optimizer state, the backward's temporaries and the allocator's rounding), so it says without a GPU
which forms keep what, e.g. the fused cell's U (every op output side by side, kept for the weighted sum's
gradient) and ``runtime.fast_recompute``, which recomputes it in backward instead.

    python benchmarks/step_saved.py --method darts --space darts
    python benchmarks/step_saved.py --method darts --space darts --modes fast fast-recompute

Paper size by default (batch 64, C=16, 8 cells, 32x32): a DARTS forward on the CPU takes tens of seconds
and 8-10 GB; take one mode per process there (three in one process ran out of a 23 GB machine).
"""

from __future__ import annotations

import argparse
import collections
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
    ap.add_argument("--modes", nargs="+", default=["eager", "fast", "fast-recompute"],
                    choices=["eager", "fast", "fast-recompute"])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--as-captured", action="store_true",
                    help="the forward in the form a CUDA graph capture takes (harness.nn.groups.as_captured; "
                         "the default step on CUDA)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import contextlib

    import torch
    import torch.nn.functional as F

    from harness.nn import groups

    registry, spec, space, layers, shape = search_step.resolve_step(args)
    results = {}
    for mode in args.modes:
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, "cpu")
        search_step.ready(sampler, net, opt, mode != "eager", recompute=mode == "fast-recompute")
        gen = torch.Generator().manual_seed(1234)
        x = torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen)
        y = torch.randint(0, args.classes, (args.batch,), generator=gen)
        seen: dict[int, int] = {}
        by_shape: collections.Counter = collections.Counter()

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in seen:
                seen[storage.data_ptr()] = storage.nbytes()
                by_shape[tuple(t.shape)] += storage.nbytes()
            return t

        torch.manual_seed(0)
        t0 = time.perf_counter()
        captured = groups.as_captured() if args.as_captured else contextlib.nullcontext()
        with captured, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(net(x), y)
        seconds = time.perf_counter() - t0
        del loss
        saved = sum(seen.values())
        weights = sum(p.numel() * p.element_size() for p in net.parameters())
        results[mode] = {"saved_gib": round(saved / 2**30, 3), "saved_bytes": saved, "saved_tensors": len(seen),
                         "params_mib": round(weights / 2**20, 2), "forward_s": round(seconds, 1),
                         "largest": [[list(s), round(b / 2**20, 1)] for s, b in by_shape.most_common(8)]}
        print(f"{args.method} on {args.space} [{mode}{', as captured' if args.as_captured else ''}]: one forward keeps {saved / 2**30:.3f} GiB for backward in "
              f"{len(seen)} tensors (batch {args.batch}, C={args.channels}, {layers} cells; parameters "
              f"{weights / 2**20:.1f} MiB)", flush=True)
    out = {"command": "python benchmarks/step_saved.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "batch": args.batch, "channels": args.channels,
           "layers": layers, "sets": args.sets, "as_captured": args.as_captured, "torch": torch.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "modes": results}
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
