"""One search step timed in several forms of the same math, to rank on a GPU what a CPU cannot: which
kernels the fused cell should use. The captured DARTS step took 115.8 ms on an H200 against a 23 ms traffic
floor (BENCHMARKS.md); these forms change the kernels, not the arithmetic (float64 trajectories equal the
eager cell's: ``tests/test_fused.py::test_layout_variants_follow_the_eager_trajectory_in_float64``).

    python benchmarks/step_variants.py --method darts --space darts             # CUDA: the graph step
    python benchmarks/step_variants.py --method darts --space darts --variants default,merge+conv

Variants (``harness.nn.fused``'s module settings, or the memory format), each written in full so that a
name means the same kernels whatever the shipped defaults are:

* ``default``: as shipped (``spread`` since 2026-12-04).
* ``spread``: ``no-merge+pw-matmul`` with ``SPREAD_DEPTHWISE = True`` (a group's first depthwise conv on
  each source once, k filters per channel, instead of on the source repeated for its k units) and
  ``SPREAD_POOLS = True`` (the cell inputs' pools once per input; 2026-12-05).
* ``triton-dw``: ``spread`` with ``DEPTHWISE_TRITON = True``: while captured, the depthwise convs in
  harness.nn.dwconv's Triton kernels, the ReLU before a chain's second depthwise conv fused into it (the
  other variants: torch's kernels, ``DEPTHWISE_TRITON = False``). Uncaptured (a CPU) it is ``spread``.
* ``triton-bn``: ``spread`` with ``harness.nn.groups.BATCHNORM_TRITON = True``: while captured, every training
  BatchNorm in harness.nn.bntriton's Triton kernels (the other variants: torch's, ``BATCHNORM_TRITON = False``).
* ``triton-dw+bn``: both Triton forms.
* ``no-merge+pw-matmul``: ``MERGE_KERNEL = 0`` (3x3 depthwise units keep their own groups: 9 taps each)
  and ``POINTWISE_MATMUL = True`` (grouped 1x1 convolutions as one batched matrix product, cuBLAS); the
  fastest form of the H200 ranking of 2026-12-04. This and the forms below: ``SPREAD_DEPTHWISE = False``,
  ``SPREAD_POOLS = False``.
* ``no-merge``: ``MERGE_KERNEL = 0`` with the 1x1 convolutions grouped in cuDNN.
* ``pw-matmul``: ``POINTWISE_MATMUL = True`` with the 3x3 depthwise units widened into the 5x5 groups
  (``MERGE_KERNEL = 5``: 25 taps, one conv less per chain shape).
* ``merge+conv``: ``MERGE_KERNEL = 5`` and grouped cuDNN 1x1 convolutions (the shipped form before).
* ``channels-last``: the network's parameters and the inputs in ``torch.channels_last`` (cuDNN's depthwise
  kernels instead of torch's own, which fp32 NCHW tensors take).
* ``slots``: a single-path method's (GDAS's) cells with ``cell.slots=true``: while captured, the sampled op of
  each edge in one conv slot (harness.nn.slots: chosen on the device, a conv chain per edge) instead
  of the all-op pass (the default since 2026-12-05, ``cell.slots=auto``). Uncaptured (a CPU) it is ``default``.
* ``all-op``: the same cells with ``cell.slots=false``: while captured, the all-op pass weighted by the hard
  one-hot (the default before).

Each variant's record says the module switches it ran with (``switches``), the default's included, so that a
file says what "default" was on its day.

Every variant is a fresh network from the same seed, on the fast path, stepped in turn with the others
(alternating step by step, so drifts in clocks hit all alike), on CUDA in graph mode (``GraphedStep``: its
warm-up and capture before the timed steps; the peak memory counts them), elsewhere uncaptured.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
import search_step  # noqa: E402

_TORCH_DW = {"DEPTHWISE_TRITON": False, "BATCHNORM_TRITON": False}
_SPREAD = {"MERGE_KERNEL": 0, "POINTWISE_MATMUL": True, "SPREAD_DEPTHWISE": True, "SPREAD_POOLS": True}
_OLD = {"SPREAD_DEPTHWISE": False, "SPREAD_POOLS": False}  # the forms before either spread
VARIANTS = {
    "default": {},
    "spread": {**_SPREAD, **_TORCH_DW},
    "triton-dw": {**_SPREAD, "DEPTHWISE_TRITON": True, "BATCHNORM_TRITON": False},
    "triton-bn": {**_SPREAD, "DEPTHWISE_TRITON": False, "BATCHNORM_TRITON": True},
    "triton-dw+bn": {**_SPREAD, "DEPTHWISE_TRITON": True, "BATCHNORM_TRITON": True},
    "no-merge+pw-matmul": {"MERGE_KERNEL": 0, "POINTWISE_MATMUL": True, **_OLD, **_TORCH_DW},
    "no-merge": {"MERGE_KERNEL": 0, "POINTWISE_MATMUL": False, **_OLD, **_TORCH_DW},
    "pw-matmul": {"MERGE_KERNEL": 5, "POINTWISE_MATMUL": True, **_OLD, **_TORCH_DW},
    "merge+conv": {"MERGE_KERNEL": 5, "POINTWISE_MATMUL": False, **_OLD, **_TORCH_DW},
    "channels-last": {"channels_last": True},
    "slots": {"slots": True},
    "all-op": {"slots": False},
}
SWITCHES = ("MERGE_KERNEL", "POINTWISE_MATMUL", "SPREAD_DEPTHWISE", "SPREAD_POOLS", "DEPTHWISE_TRITON",
            "BATCHNORM_TRITON")


def _home(name: str):
    """The module that holds switch ``name``: ``harness.nn.groups`` for BATCHNORM_TRITON, else ``harness.nn.fused``."""
    from harness.nn import fused, groups

    return groups if name == "BATCHNORM_TRITON" else fused


def switches(settings: dict) -> dict:
    """The module switches (``SWITCHES``) a variant runs with: its own settings over the shipped defaults."""
    return {k: settings.get(k, getattr(_home(k), k)) for k in SWITCHES}


@contextlib.contextmanager
def variant_settings(settings: dict):
    """``harness.nn.fused``'s (``BATCHNORM_TRITON``: ``harness.nn.groups``'s) module settings of a variant, for
    the steps inside (restored after)."""
    names = [k for k in settings if k not in ("channels_last", "slots")]
    home = {k: _home(k) for k in names}
    old = {k: getattr(home[k], k) for k in names}
    try:
        for k in names:
            setattr(home[k], k, settings[k])
        yield
    finally:
        for k, v in old.items():
            setattr(home[k], k, v)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (graph mode: at least its "
                    "warm-up and capture)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise SystemExit(f"--variants: unknown {unknown or names}; variants are {list(VARIANTS)}")

    import torch

    from harness.api import Batch
    from harness.graphs import GraphedStep, why_not_graphed
    from harness.runner import device_name, resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    # on the run's device: a component may resolve its settings by device (ROME's group_ops=auto)
    sampler, cell, _, opt = search_step.step_parts(registry, spec, space, args.channels, min(layers, 3), shape,
                                                   device)
    graph = cuda and why_not_graphed(device=device, sampler=sampler, cell_type=cell, optimizer=opt) is None
    mode = "graph" if graph else "fast"
    gen = torch.Generator(device=device).manual_seed(1234)
    pool = [tuple(Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, device=device, generator=gen),
                        torch.randint(0, args.classes, (args.batch,), device=device, generator=gen))
                  for _ in range(2)) for _ in range(4)]

    runs = {}
    for name in names:
        settings = VARIANTS[name]
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, device)
        search_step.ready(sampler, net, opt, True, spec.budget.runtime.fast_recompute)
        data = pool
        if "slots" in settings:  # cell.slots on every single-path body
            from harness.nn.cells import SinglePathBody

            bodies = [b for b in net.modules() if isinstance(b, SinglePathBody)]
            if not bodies:
                raise SystemExit(f"--variants {name}: {args.method} has no single-path cells")
            for b in bodies:
                b.slots = settings["slots"]
        if settings.get("channels_last"):
            net = net.to(memory_format=torch.channels_last)  # the same Parameter objects: opt keeps them
            data = [tuple(Batch(b.x.contiguous(memory_format=torch.channels_last), b.y) for b in pair)
                    for pair in pool]
        if graph:
            opt = GraphedStep(opt)
            args.warmup = max(args.warmup, opt.warmup_steps + 1)
        runs[name] = {"net": net, "opt": opt, "data": data, "settings": settings, "times": [], "peaks": [],
                      "losses": []}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step(run, i, timed):
        if cuda and (timed or graph):  # a graph's memory is taken at capture: its peak counts the warm-up
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(i)  # the same random stream for every variant
        with variant_settings(run["settings"]):
            sync()
            t0 = time.perf_counter()
            stats = run["opt"].step(run["net"], *run["data"][i % len(run["data"])])
            sync()
        if timed:
            run["times"].append(1000 * (time.perf_counter() - t0))
        if cuda and (timed or graph):
            run["peaks"].append(torch.cuda.max_memory_allocated() / 2**30)
        run["losses"].append(float(stats.train_loss))

    def attempt(name, run, i, timed):
        """A variant that fails (a kernel that does not compile, a capture that breaks) is recorded as such
        and left out of the later steps; the others go on."""
        if "failed" in run:
            return
        try:
            step(run, i, timed)
        except Exception as exc:  # noqa: BLE001 - one variant's failure must not lose the others
            run["failed"] = f"{type(exc).__name__}: {exc}"[:500]
            print(f"variant {name} failed at step {i}: {run['failed']}", flush=True)

    for i in range(args.warmup):
        for name, run in runs.items():
            attempt(name, run, i, False)
    for i in range(args.warmup, args.warmup + args.steps):
        for name, run in runs.items():
            attempt(name, run, i, True)

    base_ms = None
    results = {}
    for name, run in runs.items():
        if "failed" in run:
            results[name] = {"failed": run["failed"], "settings": run["settings"],
                             "switches": switches(run["settings"])}
            continue
        ms = statistics.median(run["times"])
        base_ms = base_ms or ms
        results[name] = {"ms_per_step_median": round(ms, 2), "ms_per_step_min": round(min(run["times"]), 2),
                         "peak_mem_gib": round(max(run["peaks"]), 3) if run["peaks"] else None,
                         "vs_first": round(base_ms / ms, 3), "settings": run["settings"],
                         "switches": switches(run["settings"]),
                         "losses": [round(v, 6) for v in run["losses"]]}
    out = {"command": "python benchmarks/step_variants.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "sets": args.sets, "batch": args.batch,
           "channels": args.channels, "layers": layers, "mode": mode, "device": device_name(device),
           "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "steps": args.steps, "tf32": search_step.set_tf32(args), "variants": results}
    print(f"{args.method} on {args.space} [{mode}], batch {args.batch}, C={args.channels}, {layers} cells, "
          f"{out['device']}, torch {torch.__version__}; median of {args.steps} steps")
    print("| variant | ms a step | min ms | peak GiB | speedup vs " + names[0] + " |\n|---|---|---|---|---|")
    for name, r in results.items():
        if "failed" in r:
            print(f"| {name} | failed: {r['failed']} | | | |")
            continue
        peak = "-" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
        print(f"| {name} | {r['ms_per_step_median']:.1f} | {r['ms_per_step_min']:.1f} | {peak} | {r['vs_first']:.2f}x |")
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
