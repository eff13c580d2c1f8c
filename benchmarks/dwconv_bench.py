"""The fused DARTS cell's depthwise convolutions, torch's kernels against harness.nn.dwconv's Triton kernels,
one geometry at a time, at the sizes a search step runs them (issue 12: torch's float32 depthwise kernels
were 42 of the 132.5 ms of kernels in a profiled DARTS step on an H200, BENCHMARKS.md).

    python benchmarks/dwconv_bench.py --method darts       # darts space, batch 64, C=16, 8 cells
    python benchmarks/dwconv_bench.py --method darts --batch 2 --channels 2 --layers 2 --resolution 8 --reps 1  # a CPU

The geometries come from one forward of the search network in the form a CUDA graph captures
(``groups.as_captured``) with ``harness.nn.fused.DEPTHWISE_TRITON`` on: every call the fused cells make to
the Triton form (input and weight shapes, stride, padding, dilation, filters per channel, a fused ReLU),
counted. Each geometry is then timed both ways, forward alone and forward plus both gradients
(``torch.autograd.grad`` for input and weight): torch as the fused cell runs it uncaptured-in-Triton (a
ReLU, the shared input repeated for its units, ``F.conv2d`` with groups), Triton through
``harness.nn.dwconv.depthwise_conv``. On CUDA each is replayed from its own CUDA graph (as the captured
step runs them), the median of ``--reps`` replays timed with CUDA events; on a CPU the kernels run in
Triton's interpreter (``TRITON_INTERPRET=1`` before the import: tests/conftest.py sets it), and the
times there say nothing about a GPU. Each geometry also gets the float32 results' largest relative error
against float64 torch (output, input gradient, weight gradient) for both: the Triton kernels must land
where torch's do. The totals weight each geometry by its calls in one forward.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
import search_step  # noqa: E402


def collect(net, x) -> collections.Counter:
    """The Triton form's calls in one forward of ``net`` on ``x``, as captured: {geometry: calls}."""
    from harness.nn import dwconv, fused

    calls: collections.Counter = collections.Counter()

    def record(h, w, stride, padding, dilation, k=1, relu=False, dest=None, geo=None):
        key = (tuple(h.shape), tuple(w.shape), tuple(stride), tuple(padding), tuple(dilation), int(k),
               bool(relu), None if dest is None else tuple(dest.tolist()))
        if geo is not None:  # harness.nn.slots's per-unit geometry: (units, channels per unit); every unit
            # "same"-padded, so the 5x5 grid at padding 2 gives the output's shape
            key += ((geo[0].shape[0], int(geo[1])),)
            padding, dilation = (w.shape[-2] // 2, w.shape[-1] // 2), (1, 1)
        calls[key] += 1
        return torch_form(h, w, stride, padding, dilation, k, relu, dest)

    forward_recorded(net, x, [(fused, "DEPTHWISE_TRITON", True), (dwconv, "depthwise_conv", record),
                              (dwconv, "why_not", lambda t: None)])
    return calls


def forward_recorded(net, x, patches) -> None:
    """One forward of ``net`` on ``x`` in the form a CUDA graph captures (``groups.as_captured``, no grad),
    with ``patches`` ((object, attribute, value): a Triton form switched on, its entry point replaced by a
    recorder, its device check passed) in place, and restored after; this script's and ``bn_bench.py``'s."""
    from unittest import mock

    import torch

    from harness.nn import groups

    with contextlib.ExitStack() as stack:
        for obj, name, value in patches:
            stack.enter_context(mock.patch.object(obj, name, value))
        stack.enter_context(groups.as_captured())
        stack.enter_context(torch.no_grad())
        net(x)


def torch_form(h, w, stride, padding, dilation, k, relu, dest=None):
    """What the fused cell runs without the Triton form: ReLU, the shared input repeated for its units
    (O = m*C*k outputs from C channels), one grouped ``F.conv2d`` (k filters per channel), and for the
    spread form the gather into the units' order (output channel o to channel dest[o])."""
    import torch
    import torch.nn.functional as F

    c, o = h.shape[1], w.shape[0]
    if relu:
        h = F.relu(h)
    m = o // (c * k)
    if m > 1:
        h = h.repeat(1, m, 1, 1)
    y = F.conv2d(h, w, None, stride, padding, dilation, c * m)
    if dest is not None:  # the gather index: slot i reads conv channel inverse[i]
        y = y.index_select(1, torch.argsort(dest))
    return y


def timed(fn, reps: int, cuda: bool) -> float:
    """Median ms of ``fn``: on CUDA replayed from a CUDA graph (after warm-up on a side stream)."""
    import torch

    if not cuda:
        times = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t0))
        return statistics.median(times[1:])
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # Triton compiles here, cuDNN/cuBLAS pick their algorithms
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    for _ in range(3):
        graph.replay()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def bench_start(argv, doc: str, unit: str, why_not, collect_fn, script: str, none: str, more_args=None):
    """What this script and ``bn_bench.py`` start with: their arguments (``--max-{unit}``: time only the N
    most-called), the device, TF32, whether the kernels run there (``why_not``), the search network, and
    ``collect_fn``'s calls in one training forward of it (``none``: the message when there are none).
    ``more_args(ap)`` adds a script's own arguments. Returns (args, device, tf32, generator, calls, layers)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--reps", type=int, default=20, help=f"timed replays of each of the {unit}, per form")
    ap.add_argument("--device", default="auto")
    ap.add_argument(f"--max-{unit}", type=int, default=0,
                    help=f"time only the N most-called {unit} (0: all; a CPU check in the interpreter)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    if more_args is not None:
        more_args(ap)
    args = ap.parse_args(argv if argv is not None else None)

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    tf32 = search_step.set_tf32(args)
    why = why_not(torch.zeros(1, device=device))
    if why is not None:
        raise SystemExit(f"{script}: the Triton kernels cannot run here: {why}")
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, device)
    search_step.ready(sampler, net, opt, True)
    net.train()
    gen = torch.Generator(device=device).manual_seed(1234)
    calls = collect_fn(net, torch.randn(args.batch, 3, args.resolution, args.resolution, device=device,
                                        generator=gen))
    if not calls:
        raise SystemExit(f"{script}: {args.method} on {args.space} makes no {none}")
    return args, device, tf32, gen, calls, layers


def form_errors(fn, call: tuple, inputs, g, ref) -> list[float]:
    """``fn(*call)``'s output and gradients (for ``inputs``, upstream ``g``): each one's relative error against
    ``ref`` (float64). Only the floats leave: no tensor of this forward's autograd graph outlives the call."""
    import torch

    y = fn(*call)
    got = (y, *torch.autograd.grad(y, inputs, g))
    return [float((a.detach().double() - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(got, ref)]


def time_forms(forms: dict, call: tuple, inputs, g, ref, reps: int, cuda: bool, row: dict, totals, count: int):
    """Each form's float32 errors against ``ref`` (the float64 output and gradients), its forward time and its
    forward + gradients time (for ``inputs``, upstream gradient ``g``), for ``fn(*call)``: into ``row`` and,
    times ``count`` (calls a forward), into ``totals``.

    The timed forwards differentiate fresh leaves (``inputs`` detached, sharing their storage), and no graph of
    the error check is alive while they run. On the H200 on 2026-12-05 the first capture of a form's forward and
    gradients failed ("operation would make the legacy stream depend on a capturing blocking stream", after
    autograd's warning that an AccumulateGrad node made before the iteration was kept alive: the error check's
    output, kept in this function, held the inputs' AccumulateGrad nodes, made on the default stream, which the
    captured backward then fed; benchmarks/results/2026-12-05-gpu/all.log). Every later item of that process ran
    out of memory."""
    import torch

    fresh = {id(t): t.detach().requires_grad_() for t in inputs}
    call_t = tuple(fresh.get(id(t), t) if t is not None else None for t in call)
    inputs_t = [fresh[id(t)] for t in inputs]
    for name, fn in forms.items():
        row[f"{name}_rel_err"] = form_errors(fn, call, inputs, g, ref)
        with torch.no_grad():
            row[f"{name}_fwd_ms"] = round(timed(lambda fn=fn: fn(*call_t), reps, cuda), 4)
        row[f"{name}_fwd_bwd_ms"] = round(timed(lambda fn=fn: torch.autograd.grad(fn(*call_t), inputs_t, g), reps,
                                                cuda), 4)
        totals[f"{name}_fwd_ms"] += count * row[f"{name}_fwd_ms"]
        totals[f"{name}_fwd_bwd_ms"] += count * row[f"{name}_fwd_bwd_ms"]


def bench_record(script: str, argv, args, layers: int, device, tf32: dict, triton_mod, totals, **rest) -> dict:
    """The JSON record of this script or ``bn_bench.py``: the command, the sizes, device and versions, ``rest``
    (the rows) and the totals per forward."""
    import torch

    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    return {"command": f"python benchmarks/{script}.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "method": args.method, "space": args.space, "batch": args.batch, "channels": args.channels,
            "layers": layers, "resolution": args.resolution, "device": f"{device.type}:{name}",
            "interpreter": not cuda, "torch": torch.__version__, "python": platform.python_version(),
            "triton": getattr(triton_mod, "__version__", None), "date": time.strftime("%Y-%m-%d"),
            "reps": args.reps, "tf32": tf32, **rest, "totals_per_forward": {k: round(v, 3) for k, v in totals.items()}}


def main(argv=None) -> dict:
    import torch

    from harness.nn import dwconv

    args, device, tf32, gen, calls, layers = bench_start(argv, __doc__, "geometries", dwconv.why_not, collect,
                                                         "dwconv_bench", "depthwise convolution")
    cuda = device.type == "cuda"

    rows = []
    totals = collections.Counter()
    ranked = sorted(calls.items(), key=lambda kv: -kv[1])
    for (xs, ws, stride, padding, dilation, k, relu, dest), count in ranked[:args.max_geometries or None]:
        h = torch.randn(xs, device=device, generator=gen, requires_grad=True)
        w = torch.randn(ws, device=device, generator=gen, requires_grad=True)
        dest = None if dest is None else torch.tensor(dest, device=device)
        conv = (stride, padding, dilation, k, relu, dest)
        g = torch.randn(torch_form(h, w, *conv).shape, device=device, generator=gen)
        forms = {"torch": lambda a, b: torch_form(a, b, *conv),
                 "triton": lambda a, b: dwconv.depthwise_conv(a, b, *conv)}
        row = {"input": list(xs), "weight": list(ws), "stride": list(stride), "padding": list(padding),
               "dilation": list(dilation), "k": k, "relu": relu, "remapped": dest is not None,
               "calls_per_forward": count}
        # float32 against float64 torch (independent of both float32 forms)
        h64, w64 = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
        y64 = torch_form(h64, w64, *conv)
        ref = (y64, *torch.autograd.grad(y64, (h64, w64), g.double()))
        time_forms(forms, (h, w), (h, w), g, ref, args.reps, cuda, row, totals, count)
        rows.append(row)

    out = bench_record("dwconv_bench", argv, args, layers, device, tf32, dwconv.triton, totals,
                       geometries=rows, geometries_in_forward=len(calls))
    print(f"depthwise convs of one {args.method} forward on {args.space} (batch {args.batch}, C={args.channels}, "
          f"{layers} cells), {out['device']}, torch {torch.__version__}, triton {out['triton']}"
          f"{' (interpreter: times say nothing about a GPU)' if not cuda else ''}; median of {args.reps}")
    print("| input | weight | stride | dil | k | relu | gather | calls | torch fwd ms | triton fwd ms | torch fwd+bwd ms "
          "| triton fwd+bwd ms | triton rel. err. (y, dx, dw) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        err = ", ".join(f"{e:.1e}" for e in r["triton_rel_err"])
        print(f"| {'x'.join(map(str, r['input']))} | {'x'.join(map(str, r['weight']))} | {r['stride'][0]} | "
              f"{r['dilation'][0]} | {r['k']} | {'yes' if r['relu'] else 'no'} | {'yes' if r['remapped'] else 'no'} | "
              f"{r['calls_per_forward']} | "
              f"{r['torch_fwd_ms']:.3f} | {r['triton_fwd_ms']:.3f} | {r['torch_fwd_bwd_ms']:.3f} | "
              f"{r['triton_fwd_bwd_ms']:.3f} | {err} |")
    t = out["totals_per_forward"]
    print(f"Per forward (calls x time): forward torch {t['torch_fwd_ms']:.2f} ms, Triton {t['triton_fwd_ms']:.2f} ms; "
          f"forward + both gradients torch {t['torch_fwd_bwd_ms']:.2f} ms, Triton {t['triton_fwd_bwd_ms']:.2f} ms")
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
