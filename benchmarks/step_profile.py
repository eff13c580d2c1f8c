"""Where one search step's device time goes: the step under ``torch.profiler``, its kernels (or, on a CPU,
its operators) grouped by name, the largest first, per step. What a launch and traffic count cannot say:
which kernels hold a step that is neither launch- nor bandwidth-bound (DARTS's captured step on an H200
took 115.8 ms against a 23 ms traffic floor; BENCHMARKS.md).

    python benchmarks/step_profile.py --method darts --space darts            # CUDA: kernels, fast path
    python benchmarks/step_profile.py --method darts --space darts --top 25 --json prof.json
    python benchmarks/step_profile.py --method gdas --space darts --as-captured --set cell.slots=true

The fast (fused) step, uncaptured, after warm-up steps: a CUDA graph replays the same kernels, so their
times are the graph's less its launch gaps (the table also gives the step's wall time and the summed kernel
time, whose difference is what launches and host work add uncaptured).
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


def parser() -> argparse.ArgumentParser:
    """The command line (gpu_all.py's items are checked against it without a GPU: tests/test_gpu_session.py)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--mode", choices=["eager", "fast"], default="fast")
    ap.add_argument("--as-captured", action="store_true",
                    help="the steps in the form a CUDA graph captures (harness.nn.groups.as_captured), uncaptured: "
                         "the kernels a replay runs (forms taken only while captured, e.g. cell.slots)")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps (after --warmup more)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=20, help="rows: the kernels (operators) taking the most time")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    return ap


def main(argv=None) -> dict:
    args = parser().parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.api import Batch
    from harness.nn import groups
    from harness.runner import device_name, resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, device,
                                                  captured=args.as_captured)
    search_step.ready(sampler, net, opt, args.mode == "fast", spec.budget.runtime.fast_recompute)
    gen = torch.Generator(device=device).manual_seed(1234)

    def batch():
        return Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, device=device, generator=gen),
                     torch.randint(0, args.classes, (args.batch,), device=device, generator=gen))

    train, val = batch(), batch()
    form = groups.as_captured if args.as_captured else contextlib.nullcontext
    with form():
        for _ in range(args.warmup):
            opt.step(net, train, val)
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof, form():
        for _ in range(args.steps):
            opt.step(net, train, val)
        if cuda:
            torch.cuda.synchronize()
    wall_ms = 1000 * (time.perf_counter() - t0) / args.steps

    rows = []
    for e in prof.key_averages():
        # on CUDA the kernels (device time of their own); on a CPU the operators' own time
        t = (getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0)) if cuda else \
            e.self_cpu_time_total
        if t <= 0 or (cuda and e.device_type != torch.autograd.DeviceType.CUDA):
            continue
        rows.append({"name": e.key, "calls_per_step": e.count / args.steps, "ms_per_step": t / 1000 / args.steps})
    rows.sort(key=lambda r: -r["ms_per_step"])
    total = sum(r["ms_per_step"] for r in rows)
    what = "kernels" if cuda else "operators (self CPU time)"
    form_name = args.mode + (", as captured" if args.as_captured else "")
    print(f"{args.method} on {args.space} [{form_name}], batch {args.batch}, C={args.channels}, {layers} cells, "
          f"{device_name(device)}: {wall_ms:.1f} ms per step wall, {total:.1f} ms of {what} summed, "
          f"{sum(r['calls_per_step'] for r in rows):.0f} {'launches' if cuda else 'operator calls'}")
    print(f"| {what} | calls a step | ms a step | share |\n|---|---|---|---|")
    for r in rows[:args.top]:
        print(f"| {r['name'][:90]} | {r['calls_per_step']:.0f} | {r['ms_per_step']:.2f} | "
              f"{100 * r['ms_per_step'] / total:.1f}% |")
    out = {"command": "python benchmarks/step_profile.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "mode": args.mode, "as_captured": args.as_captured,
           "sets": args.sets, "batch": args.batch,
           "channels": args.channels, "layers": layers, "device": device_name(device), "torch": torch.__version__,
           "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
           "wall_ms_per_step": round(wall_ms, 2), "summed_ms_per_step": round(total, 2), "what": what,
           "top": [{**r, "ms_per_step": round(r["ms_per_step"], 3)} for r in rows[:args.top]]}
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
