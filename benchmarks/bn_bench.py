"""A search step's training BatchNorm calls, torch's kernels against harness.nn.bntriton's Triton kernels, one
shape at a time, at the sizes the step runs them (issue 12: torch's BatchNorm kernels were 18 of the 132.5 ms
of kernels in a profiled DARTS step on an H200, at a fraction of the memory's bandwidth; BENCHMARKS.md).

    python benchmarks/bn_bench.py --method darts       # darts space, batch 64, C=16, 8 cells
    python benchmarks/bn_bench.py --method darts --batch 2 --channels 2 --layers 2 --resolution 8 --reps 1  # a CPU

The shapes come from one forward of the search network in the form a CUDA graph captures with
``harness.nn.groups.BATCHNORM_TRITON`` on (:func:`collect`: every call that would take the kernels, with its
input shape, affine parameters, running statistics and sample blocks, counted). Each is timed both ways,
forward alone and forward plus its gradients (input, and weight and bias where affine): torch as the
captured step runs it without the Triton form (``F.batch_norm``, one call per sample block), Triton through
``harness.nn.bntriton.batch_norm``; on CUDA each replayed from its own CUDA graph, the median of ``--reps``
replays (``dwconv_bench.timed``); on a CPU in Triton's interpreter, where the times say nothing about a GPU.
Each shape also gets both float32 forms' largest relative error against float64 torch (output and
gradients). The totals weight each shape by its calls in one forward.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
import search_step  # noqa: E402


def torch_form(h, rm, rv, w, b, momentum, eps, samples=1):
    """What the captured step runs without the Triton form: one ``F.batch_norm`` per sample block, in order."""
    import torch
    import torch.nn.functional as F

    if samples == 1:
        return F.batch_norm(h, rm, rv, w, b, True, momentum, eps)
    return torch.cat([F.batch_norm(block, rm, rv, w, b, True, momentum, eps)
                      for block in h.split(h.shape[0] // samples)])


def collect(net, x) -> collections.Counter:
    """The training BatchNorm calls of one forward of ``net`` on ``x``, as captured with
    ``harness.nn.groups.BATCHNORM_TRITON`` on: {(shape, affine, running statistics, samples): calls}
    (computed by torch meanwhile)."""
    import dwconv_bench
    from harness.nn import bntriton, groups

    calls: collections.Counter = collections.Counter()

    def record(h, rm, rv, w, b, momentum, eps, samples=1):
        calls[(tuple(h.shape), w is not None, rm is not None, int(samples))] += 1
        return torch_form(h, rm, rv, w, b, momentum, eps, samples)

    dwconv_bench.forward_recorded(net, x, [(groups, "BATCHNORM_TRITON", True), (bntriton, "batch_norm", record),
                                           (bntriton, "why_not", lambda t: None)])
    return calls


def main(argv=None) -> dict:
    import torch

    import dwconv_bench
    import gpu_tables
    from harness.nn import bntriton

    def more_args(ap):
        ap.add_argument("--images-per-program", default="1",
                        help="comma-separated values of harness.nn.bntriton.IMAGES_PER_PROGRAM to time the Triton "
                             f"form at besides its default ({bntriton.IMAGES_PER_PROGRAM}): forms 'triton-img<v>' "
                             "('' for none)")

    args, device, tf32, gen, calls, layers = dwconv_bench.bench_start(argv, __doc__, "shapes", bntriton.why_not,
                                                                      collect, "bn_bench", "training BatchNorm call",
                                                                      more_args)
    cuda = device.type == "cuda"
    values = [v.strip() for v in args.images_per_program.split(",") if v.strip()]
    bad = [v for v in values if not v.isdigit() or int(v) < 1]
    if bad:
        raise SystemExit(f"bn_bench: --images-per-program {bad}: give positive integers, comma-separated (e.g. 1,4)")
    extra = [int(v) for v in values if int(v) != bntriton.IMAGES_PER_PROGRAM]

    rows = []
    totals = collections.Counter()
    for (xs, affine, track, samples), count in sorted(calls.items(), key=lambda kv: -kv[1])[:args.max_shapes or None]:
        c = xs[1]
        h = (torch.randn(xs, device=device, generator=gen) * 2 + 1).requires_grad_()
        wb = ([(torch.rand(c, device=device, generator=gen) + 0.5).requires_grad_(),
               torch.randn(c, device=device, generator=gen).requires_grad_()] if affine else [None, None])
        stats = ([torch.zeros(c, device=device), torch.ones(c, device=device)] if track else [None, None])
        g = torch.randn(xs, device=device, generator=gen)
        inputs = [t for t in (h, *wb) if t is not None]
        forms = {"torch": lambda a, *p: torch_form(a, stats[0], stats[1], *p, 0.1, 1e-5, samples),
                 "triton": lambda a, *p: bntriton.batch_norm(a, stats[0], stats[1], *p, 0.1, 1e-5, samples)}
        forms.update({f"triton-img{v}": lambda a, *p, v=v: bntriton.batch_norm(a, stats[0], stats[1], *p, 0.1, 1e-5,
                                                                                 samples, images=v) for v in extra})
        row = {"input": list(xs), "affine": affine, "running_stats": track, "samples": samples,
               "calls_per_forward": count}
        # float32 against float64 torch (running statistics of their own: the forms' are left to the timing)
        ins64 = [t.detach().double().requires_grad_() for t in inputs]
        y64 = torch_form(ins64[0], None, None, *(ins64[1:] or [None, None]), 0.1, 1e-5, samples)
        ref = (y64, *torch.autograd.grad(y64, ins64, g.double()))
        dwconv_bench.time_forms(forms, (h, *wb), inputs, g, ref, args.reps, cuda, row, totals, count)
        rows.append(row)

    out = dwconv_bench.bench_record("bn_bench", argv, args, layers, device, tf32, bntriton.triton, totals,
                                    shapes=rows, shapes_in_forward=len(calls),
                                    images_per_program=bntriton.IMAGES_PER_PROGRAM)
    print(f"training BatchNorm of one {args.method} forward on {args.space} (batch {args.batch}, C={args.channels}, "
          f"{layers} cells), {out['device']}, torch {torch.__version__}, triton {out['triton']}"
          f"{' (interpreter: times say nothing about a GPU)' if not cuda else ''}; median of {args.reps}")
    print(gpu_tables.bn_table(out))
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
