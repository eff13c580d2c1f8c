"""How much host work one search step asks for, counted on a CPU: the step's top-level aten calls (each
operator the Python code or the autograd engine calls, not the operators nested inside another one) and
its Python-level torch calls. A step that is bound by its host (a launch-bound GPU step, uncaptured) takes
time in proportion to the first: on the H200 of 2026-12-04, 21-27 us per top-level call for every
sync-free step measured (BENCHMARKS.md, "What a launch-bound step costs the host"), so this count, taken
without a GPU, predicts what a change to the host side buys there.

    python benchmarks/host_calls.py --method gdas --space darts
    python benchmarks/host_calls.py --method rome-v2 --space darts --set optimizer.group_ops=chosen --top 20

The step is built as `benchmarks/search_step.py` builds it (paper's cells; small images and channels,
which change no count), with the optimizers on their multi-tensor (foreach) path as on CUDA (on a CPU
torch runs a foreach operator as one call per tensor inside it: nested, so not counted here either). The
counts are means over ``--steps`` steps after two warm-up steps (which ops a single-path step runs varies).
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


def top_level_calls(events) -> collections.Counter:
    """Per operator name, the profiler's aten events that no other aten event encloses (a call made by the
    autograd engine counts: the engine, not an operator, made it)."""
    out: collections.Counter = collections.Counter()
    for e in events:
        if not e.name.startswith("aten::"):
            continue
        p = e.cpu_parent
        while p is not None and not p.name.startswith("aten::"):
            p = p.cpu_parent
        if p is None:
            out[e.name] += 1
    return out


# calls that launch no kernel: views and aliases (a view operator's ``is_view``), allocations, and these,
# which return their input or a view of it in a step (``reshape`` of a contiguous tensor, ``to`` the same
# device and dtype); what they cost the host is the call, not a launch
NO_LAUNCH = {"reshape", "to", "view_as", "contiguous", "split", "split_with_sizes", "unbind", "chunk", "flatten",
             "expand_as", "type_as"}


def launches(name: str) -> bool:
    """Whether the aten operator ``name`` ('aten::mul') launches a kernel on a GPU (a view does not)."""
    import torch

    base = name.split("::", 1)[-1]
    if base in NO_LAUNCH or base in search_step.NO_KERNEL:
        return False
    packet = getattr(torch.ops.aten, base, None)
    if packet is None:
        return True
    # a view under any overload ('slice' has only slice.Tensor, 'select' select.int, ...)
    return not any(getattr(packet, name).is_view for name in packet.overloads())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts", batch=2, channels=4, resolution=8)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--mode", choices=["eager", "fast"], default="fast")
    ap.add_argument("--steps", type=int, default=4, help="counted steps (after two warm-up steps)")
    ap.add_argument("--top", type=int, default=0, help="also list the most frequent operators")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch
    from torch.overrides import TorchFunctionMode
    from torch.profiler import ProfilerActivity, profile

    from harness.api import Batch

    torch.set_num_threads(1)
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, "cpu")
    search_step.ready(sampler, net, opt, args.mode == "fast", spec.budget.runtime.fast_recompute)
    gen = torch.Generator().manual_seed(1234)
    pool = [tuple(Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen),
                        torch.randint(0, args.classes, (args.batch,), generator=gen)) for _ in range(2))
            for _ in range(3)]
    python_calls = collections.Counter()

    class PythonCalls(TorchFunctionMode):
        def __torch_function__(self, func, types, a=(), kw=None):
            python_calls[getattr(func, "__name__", str(func))] += 1
            return func(*a, **(kw or {}))

    torch.manual_seed(0)
    with search_step._foreach_optimizers(opt):
        for i in range(2):
            opt.step(net, *pool[i % 3])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(args.steps):
                opt.step(net, *pool[i % 3])
        with PythonCalls():  # further steps: the same kind of step, counted apart from the profiler's
            for i in range(args.steps):
                opt.step(net, *pool[i % 3])
    calls = top_level_calls(prof.events())
    n = args.steps
    per_step = sum(calls.values()) / n
    launching = sum(v for k, v in calls.items() if launches(k)) / n
    py = sum(v for k, v in python_calls.items() if not k.startswith("__")) / n  # not attribute access
    out = {"command": "python benchmarks/host_calls.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "mode": args.mode, "sets": args.sets, "layers": layers,
           "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "steps": n, "top_level_aten_calls_per_step": round(per_step, 1),
           "launching_calls_per_step": round(launching, 1), "other_calls_per_step": round(per_step - launching, 1),
           "python_torch_calls_per_step": round(py, 1),
           "calls": {k: round(v / n, 1) for k, v in calls.most_common()}}
    print(f"{args.method} on {args.space} [{args.mode}{', ' + ', '.join(args.sets) if args.sets else ''}]: "
          f"{per_step:.0f} top-level aten calls a step ({launching:.0f} launching a kernel on a GPU, "
          f"{per_step - launching:.0f} views and other), {py:.0f} Python-level torch calls "
          f"(mean of {n} steps; torch {torch.__version__})")
    for k, v in calls.most_common(args.top):
        print(f"  {v / n:8.1f}  {k}")
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
