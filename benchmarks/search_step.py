"""Time one search step (arch step + weight step) of a method on a space, at the paper's search
setting by default (batch 64, C=16, 8 layers for the DARTS spaces; C=16, N=5 for nb201), on random
32x32 RGB data resident on the device. Prints ms per step, images per second and peak memory, with
the command, device and versions.

    python benchmarks/search_step.py --method darts --space darts
    python benchmarks/search_step.py --method darts --space nb201 --steps 30
    python benchmarks/search_step.py --method darts --space darts --compare --steps 50
    python benchmarks/search_step.py --method darts --space darts --mode graph   # CUDA only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shlex
import statistics
import sys
import time


def parser() -> argparse.ArgumentParser:
    """The command line (gpu_all.py's items are checked against it without a GPU: tests/test_gpu_session.py)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    step_arguments(ap)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data", default="random",
                    help="'random' (normal noise, random labels; 4 batches in rotation) or a dataset name: "
                         "then every step gets new real batches (the search split, augmented on the device, "
                         "the same sequence for every mode) and --resolution/--classes come from the dataset. "
                         "Random labels make the step chaotic (the net memorises 4 batches), so drift figures "
                         "mean most on real data")
    ap.add_argument("--data-dir", help="where --data's files are (as harness run --data-dir)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE",
                    help="override a component setting, as `harness run --set`")
    ap.add_argument("--mode", choices=("auto", "eager", "fast", "graph"), default="auto",
                    help="eager: every op of every edge one by one; fast: the fused cell forward "
                         "(harness.nn.fused); graph: fast, with the whole step replayed from a CUDA graph "
                         "(harness.graphs, CUDA only; runtime.cuda_graph=true); auto: fast on CUDA, eager "
                         "elsewhere (what `harness run` does by default)")
    ap.add_argument("--compare", action="store_true",
                    help="run eager, fast and (on CUDA, where the method's components allow it) graph in one "
                         "process, alternating step by step, on the same data and random streams; print "
                         "each, the ratios to eager, and how far losses and alpha drift from eager's")
    ap.add_argument("--drift-baseline", action="store_true",
                    help="with --compare: also run eager with every weight scaled by (1 + 2^-23), to show how "
                         "far float32 rounding alone moves the trajectory")
    ap.add_argument("--baseline-draws", type=int, default=1,
                    help="with --drift-baseline: this many rounding baselines, the first as above, each other "
                         "with every weight element scaled by (1 + s * 2^-23), s a random sign (seeded by the "
                         "draw); the baseline recorded is their spread: the earliest departure, the largest "
                         "differences (one draw underestimates how far rounding alone moves a trajectory)")
    ap.add_argument("--tf32-baseline", action="store_true",
                    help="with --drift-baseline: one more baseline, eager with every weight scaled by (1 + 2^-11), "
                         "the rounding unit of TF32 (10 mantissa bits): what cuDNN's convolutions round float32 "
                         "operands to where TF32 is allowed (torch's default for them), so that a 1-ulp float32 "
                         "baseline sits below the kernels' own rounding. Recorded apart (baseline_tf32_*), "
                         "with whether the kernels could use TF32")
    ap.add_argument("--count-ops", action="store_true",
                    help="also count the aten operators one step dispatches (forward, backward, optimizer): "
                         "on a GPU each is at least one kernel launch, so this is the launch count any device "
                         "can measure")
    ap.add_argument("--count-steps", type=int, default=1,
                    help="with --count-ops: the mean over this many steps (which ops a single-path or EnTranNAS "
                         "step runs changes from step to step)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--sync-check", action="store_true",
                    help="run one extra step under torch.cuda.set_sync_debug_mode('error'): fails on any "
                         "host-device synchronisation inside the step. Off CUDA, the same step (the last mode "
                         "measured) is built on the meta device, where tensors hold no values: any host read "
                         "(.item(), .tolist(), .cpu()) fails, which is what a sync would be on a GPU")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)

    import torch

    from harness.api import Batch
    from harness.config import parse_sets, resolve
    from harness.graphs import GraphedStep, why_not_graphed
    from harness.nn import groups
    from harness.plugins import load_registry
    from harness.runner import device_name, resolve_device
    from harness.spaces import NetShape

    tf32 = set_tf32(args)
    registry = load_registry()
    device = resolve_device(args.device)
    method = registry.method(args.method)
    spec = resolve(registry, method, args.space, "cifar10", 0, "paper", {}, parse_sets(args.sets))
    # the method's op set on the space's own supernet depth (8 cells / N=5: every method measured on the
    # same network, as ROME's Table 3 compares them), unless --layers
    space = registry.space(args.space, spec.budget.search.op_set)
    layers = args.layers or space.search_defaults()["layers"]
    torch.backends.cudnn.benchmark = True
    in_channels = 3
    if args.data != "random":
        from harness.data import load_dataset

        real = load_dataset(args.data, args.data_dir, download=False)
        in_channels, args.classes, args.resolution = (real.info.channels, real.info.num_classes,
                                                      real.info.resolution)
    shape = NetShape(in_channels, args.classes, args.resolution)

    def parts(n_layers: int, on, captured: bool | None = None):
        return step_parts(registry, spec, space, args.channels, n_layers, shape, on, captured=captured)

    def build(fast: bool, perturb: float = 0.0, graph: bool = False, draw: int = 0):
        """One supernet + optimizer, identical for every mode (same seed), switched to ``fast``;
        ``perturb`` scales every weight by (1 + perturb), for the rounding-drift baseline (``draw`` > 0: each
        element by (1 + s * perturb), s a random sign drawn with seed ``draw``)."""
        sampler, _, net, opt = parts(layers, device, captured=graph)
        if perturb:
            signs = torch.Generator().manual_seed(draw)
            with torch.no_grad():
                for p in net.weight_parameters():
                    if draw == 0:
                        p.mul_(1.0 + perturb)
                    else:
                        s = torch.randint(0, 2, p.shape, generator=signs).to(p.device, p.dtype) * 2 - 1
                        p.mul_(1.0 + perturb * s)
        fast_cells = ready(sampler, net, opt, fast, spec.budget.runtime.fast_recompute)
        if graph:  # under --compare a capture that fails costs the graph row only: eager and fast stay (a
            # method never captured on a GPU before, or a form new there, must not lose the whole item)
            opt = GraphedStep(opt, fallback=(lambda why: print(f"graph mode: {why}")) if args.compare else None)
        return {"net": net, "opt": opt, "fast_cells": len(fast_cells) if fast else 0, "times": [], "peaks": [],
                "losses": [], "rng": _rng_state(device, seed=0)}

    gen = torch.Generator(device=device).manual_seed(1234)

    def data():
        return Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, device=device, generator=gen),
                     torch.randint(0, args.classes, (args.batch,), device=device, generator=gen))

    if args.data == "random":
        pool = [(data(), data()) for _ in range(4)]  # rotate inputs, never zeros
    else:  # one real (train, val) pair per step, drawn once so every mode sees the same sequence
        from harness.data import DeviceLoader, search_split

        (tx, ty), (vx, vy) = search_split(real)
        loaders = [DeviceLoader(x, y, real.info, args.batch, device, train=True, generator=gen)
                   for x, y in ((tx, ty), (vx, vy))]
        n_pool = max(4, args.warmup + args.steps + (1 if args.mode == "graph" or args.compare else 0) + 4)
        pool = [tuple(Batch(*loader.sample()) for loader in loaders) for _ in range(n_pool)]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # on the run's device: a component may resolve its settings by device (ROME's group_ops=auto is the
    # chosen-op pass on CUDA, which reads the host and so blocks a capture; on a CPU it is the all-op pass)
    sampler, cell, _, opt = parts(min(layers, 3), device)  # partial channels need the real width
    blocker = why_not_graphed(device=device, sampler=sampler, cell_type=cell, optimizer=opt)
    if args.mode == "graph" and blocker is not None:
        raise SystemExit(f"--mode graph: {blocker}")
    modes = (["eager", "fast"] + (["graph"] if blocker is None else [])) if args.compare else [
        {"eager": "eager", "fast": "fast", "graph": "graph",
         "auto": "fast" if device.type == "cuda" else "eager"}[args.mode]]
    if args.compare and blocker is not None:
        print(f"graph mode not compared: {blocker}")
    runs = {mode: build(mode != "eager", graph=mode == "graph") for mode in modes}
    if "graph" in modes:  # GraphedStep's eager warm-up steps and its capture happen before timing
        args.warmup = max(args.warmup, runs["graph"]["opt"].warmup_steps + 1)
    if args.compare and args.drift_baseline:  # eager again, weights moved by one float32 ulp
        if args.baseline_draws < 1:
            raise SystemExit(f"--baseline-draws must be at least 1, not {args.baseline_draws}")
        for d in range(args.baseline_draws):
            name = "eager-perturbed" if d == 0 else f"eager-perturbed-{d}"
            modes.append(name)
            runs[name] = build(False, perturb=2.0 ** -23, draw=d)
        if args.tf32_baseline:
            modes.append(TF32_BASELINE)
            runs[TF32_BASELINE] = build(False, perturb=2.0 ** -11)

    def step(run, i, timed: bool, graph: bool = False):
        _set_rng_state(device, run["rng"])  # each mode has its own random stream (noise, Gumbel draws)
        # a graph's memory is its private pool, taken while it is captured (in a warm-up step): a replay
        # allocates nothing, so its peak counts the warm-up and capture steps too
        if (timed or graph) and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        stats = run["opt"].step(run["net"], *pool[i % len(pool)])
        sync()
        if timed:
            run["times"].append(1000 * (time.perf_counter() - t0))
        if (timed or graph) and device.type == "cuda":
            run["peaks"].append(torch.cuda.max_memory_allocated() / 2**30)
        run["losses"].append(float(stats.train_loss))
        run["rng"] = _rng_state(device)

    for i in range(args.warmup):  # modes alternate step by step, so drifts in clocks hit both alike
        for mode in modes:
            step(runs[mode], i, timed=False, graph=mode == "graph")
    for i in range(args.warmup, args.warmup + args.steps):
        for mode in modes:
            step(runs[mode], i, timed=True)
    if "graph" in modes and runs["graph"]["opt"].failed:  # it ran uncaptured after the failure: not a graph figure
        base_failed = {"graph_failed": runs["graph"]["opt"].failed}
        modes.remove("graph")
        del runs["graph"]
    else:
        base_failed = {}
    # the trajectories end here: the sync check and the operator count below take further steps (on one
    # mode, or with draws from no mode's stream), so drift is judged on these copies
    for run in runs.values():
        run["arch_end"] = [p.detach().clone() for p in run["net"].sampler.arch_parameters()]

    syncs, checked = "not checked", None
    if args.sync_check:
        # the fastest mode's step (graph: what it captured, since a replay cannot sync; else fast), not
        # modes[-1], which is the eager rounding baseline under --drift-baseline
        checked = next((m for m in ("graph", "fast") if m in modes), modes[0])
    if args.sync_check and device.type != "cuda":
        if checked == "fast" and why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell,
                                                 optimizer=opt) is None:
            checked = "graph"  # on CUDA this step would be captured: check it in the form the capture takes
        with groups.as_captured() if checked == "graph" else contextlib.nullcontext():
            syncs = _meta_sync_check(*parts(layers, "meta"), shape, args.batch, checked != "eager")
    if args.sync_check and device.type == "cuda":
        run = runs[checked]
        opt = getattr(run["opt"], "inner", run["opt"])
        torch.cuda.set_sync_debug_mode("error")
        try:
            with groups.as_captured() if checked == "graph" else contextlib.nullcontext():
                opt.step(run["net"], *pool[0])
            syncs = "none"
        except RuntimeError as exc:
            syncs = f"sync found: {str(exc).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")

    op_counts = {}
    if args.count_ops:
        for mode in modes:
            if mode == "graph":
                continue  # a replay dispatches no operators: it is one graph launch
            run = runs[mode]
            totals = {"all": 0, "non_view": 0, "non_view_foreach": 0}
            for i in range(args.count_steps):  # each mode from its own stream: the same sampled paths
                _set_rng_state(device, run["rng"])
                plain = _count_ops(lambda: run["opt"].step(run["net"], *pool[i % len(pool)]))
                # once more with the optimizers' multi-tensor (foreach) code, which CUDA uses by default: on
                # a CPU torch loops over the parameters instead, one kernel per tensor per operation
                _set_rng_state(device, run["rng"])
                with _foreach_optimizers(run["opt"]):
                    foreach = _count_ops(lambda: run["opt"].step(run["net"], *pool[i % len(pool)]))
                run["rng"] = _rng_state(device)
                totals["all"] += plain["all"]
                totals["non_view"] += plain["non_view"]
                totals["non_view_foreach"] += foreach["non_view"]
            n = args.count_steps
            op_counts[mode] = {k: v // n if n == 1 else round(v / n, 1) for k, v in totals.items()}

    base = {
        "command": "python benchmarks/search_step.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "method": args.method, "space": args.space, "sets": args.sets, "batch": args.batch, "channels": args.channels,
        "layers": layers, "data": args.data, "device": device_name(device), "torch": torch.__version__,
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
        "host_syncs_in_step": syncs, "sync_checked_mode": checked, "tf32": tf32, **base_failed,
    }
    results = {}
    for mode in modes:
        run = runs[mode]
        ms = statistics.median(run["times"])
        peak = max(run["peaks"]) if run["peaks"] else float("nan")
        results[mode] = {
            "ms_per_step_median": round(ms, 2), "ms_per_step_min": round(min(run["times"]), 2),
            "images_per_s": round(args.batch / ms * 1000, 1), "peak_mem_gib": round(peak, 3),
            "fast_cells": run["fast_cells"],
        }
        if mode == "graph":
            opt = run["opt"]
            results[mode].update(graph_captures=opt.captures, graph_replays=opt.replays,
                                 eager_steps=opt.eager_steps, peak_includes_capture=True)
        inner = getattr(run["opt"], "inner", run["opt"])
        if mode != "eager" and callable(getattr(inner, "grouped", None)):  # ROME: K samples per grouped pass
            results[mode]["grouped"] = inner.grouped(run["net"])
            results[mode]["sample_chunk"] = inner.config.sample_chunk or inner._auto_chunk
        if mode in op_counts:
            results[mode]["aten_ops_per_step"] = op_counts[mode]
        print(f"{args.method} on {args.space} [{mode}]: {ms:.1f} ms/step (median of {args.steps}), "
              f"{results[mode]['images_per_s']} img/s, peak {peak:.2f} GiB, "
              f"{run['fast_cells']} cells on the fast path"
              + (f", {op_counts[mode]['all']} aten ops per step ({op_counts[mode]['non_view']} not views "
                 f"or allocations; {op_counts[mode]['non_view_foreach']} with foreach optimizers)"
                 if mode in op_counts else "")
              + f"  [{base['device']}, torch {torch.__version__}]")
    def drift(a, b):
        """(max relative loss difference, max relative alpha difference at the end, the first step whose
        loss differs by more than 1e-4 relative or None): the last one compares modes with the rounding
        baseline where chaos makes the maxima alone uninformative."""
        rels = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a["losses"], b["losses"])]
        arch = max(float((x - y).abs().max() / x.abs().max().clamp_min(1e-12))
                   for x, y in zip(a["arch_end"], b["arch_end"]))
        return max(rels), arch, next((i for i, v in enumerate(rels) if v > 1e-4), None), rels

    if args.compare:
        e = runs["eager"]
        base["steps_compared"] = len(e["losses"])
        for mode in (m for m in modes if m in ("fast", "graph")):
            rel, alpha, first, curve = drift(e, runs[mode])
            ratio = results["eager"]["ms_per_step_median"] / results[mode]["ms_per_step_median"]
            suffix = "" if mode == "fast" else f"_{mode}"  # the fast keys keep their original names
            base.update({f"speedup{suffix}": round(ratio, 2), f"loss_max_rel_diff{suffix}": rel,
                         f"arch_max_rel_diff{suffix}": alpha, f"first_step_loss_over_1e-4{suffix}": first,
                         # per step: for methods whose choices are discrete (GDAS, ROME, EnTranNAS) one flipped
                         # choice makes both curves jump, so they are compared step by step, not by maxima
                         f"loss_rel_diff_per_step{suffix}": [float(f"{v:.3g}") for v in curve]})
            print(f"speedup eager/{mode}: {ratio:.2f}x; over {len(e['losses'])} steps: max relative loss "
                  f"difference {rel:.2e}, arch parameters {alpha:.2e}; loss first off by >1e-4 at step {first}")
        if TF32_BASELINE in runs:  # (apart from the float32 draws: a wider, different reference)
            rel0, alpha0, first0, curve0 = drift(e, runs[TF32_BASELINE])
            base.update({"baseline_tf32_loss_max_rel_diff": rel0, "baseline_tf32_arch_max_rel_diff": alpha0,
                         "baseline_tf32_first_step_loss_over_1e-4": first0,
                         "baseline_tf32_loss_rel_diff_per_step": [float(f"{v:.3g}") for v in curve0],
                         "baseline_tf32_kernels_use_tf32": bool(device.type == "cuda" and tf32["cudnn"])})
            print(f"TF32-unit baseline, eager vs eager with weights x (1 + 2^-11): loss {rel0:.2e}, arch parameters "
                  f"{alpha0:.2e}; loss first off by >1e-4 at step {first0} (cuDNN's TF32 on here: "
                  f"{base['baseline_tf32_kernels_use_tf32']})")
        draws = [drift(e, runs[m]) for m in modes if m.startswith("eager-perturbed")]
        if draws:  # the rounding spread: the earliest departure and the largest differences of the draws
            firsts = [d[2] for d in draws if d[2] is not None]
            rel0, alpha0 = max(d[0] for d in draws), max(d[1] for d in draws)
            first0 = min(firsts) if firsts else None
            curve0 = [max(vs) for vs in zip(*(d[3] for d in draws))]
            base.update({"baseline_loss_max_rel_diff": rel0, "baseline_arch_max_rel_diff": alpha0,
                         "baseline_first_step_loss_over_1e-4": first0,
                         "baseline_loss_rel_diff_per_step": [float(f"{v:.3g}") for v in curve0],
                         "baseline_draws": len(draws),
                         "baseline_draws_first_step_loss_over_1e-4": [d[2] for d in draws],
                         "baseline_draws_loss_max_rel_diff": [d[0] for d in draws]})
            what = ("eager with weights x (1 + 2^-23)" if len(draws) == 1 else
                    f"eager with weights moved by one ulp, {len(draws)} draws (their spread)")
            print(f"baseline, eager vs {what}: loss {rel0:.2e}, arch parameters {alpha0:.2e}; loss first off by "
                  f">1e-4 at step {first0} (rounding alone moves the trajectory this far; per draw: "
                  f"{[d[2] for d in draws]})")
    out = {**base, **({"modes": results} if args.compare else {"mode": modes[0], **results[modes[0]]})}
    print(json.dumps(out))
    return write_json(out, args.json)


TF32_BASELINE = "eager-tf32-perturbed"  # --tf32-baseline's mode (not one of the "eager-perturbed" draws)


def write_json(out: dict, path: str | None) -> dict:
    """``out`` written to ``path`` (the scripts' ``--json``), if given; returns ``out``."""
    if path:
        with open(path, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


def step_arguments(ap, space: str | None = None, batch: int = 64, channels: int = 16, layers: int | None = None,
                   resolution: int = 32) -> None:
    """The method and the step's sizes, as the scripts building one step take them (``space`` None:
    required; ``layers`` None: the space's search default, 8 on the DARTS spaces, 5 on nb201)."""
    ap.add_argument("--method", required=True)
    ap.add_argument("--space", required=space is None, default=space)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--channels", type=int, default=channels)
    ap.add_argument("--layers", type=int, default=layers,
                    help=None if layers is not None else "default: 8 (DARTS spaces) / 5 (nb201)")
    ap.add_argument("--resolution", type=int, default=resolution)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--tf32", choices=("torch", "off"), default="torch",
                    help="torch: torch's defaults (cuDNN convolutions may use TF32 on Ampere and later GPUs, "
                         "matrix products not), as a run has them; off: plain fp32 everywhere, where a 1-ulp "
                         "rounding baseline (--drift-baseline) is not below the kernels' own rounding")


_TF32_DEFAULTS: list = []  # torch's own settings, read at the first call (gpu_all.py runs items in one process)


def set_tf32(args) -> dict:
    """Apply ``--tf32`` (off: no TF32 in cuDNN or cuBLAS; torch: torch's settings as this process found
    them, so an earlier item's "off" does not leak); what the step's kernels may use, for its record."""
    import torch

    if not _TF32_DEFAULTS:
        _TF32_DEFAULTS.extend([torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32])
    cudnn, matmul = (False, False) if args.tf32 == "off" else _TF32_DEFAULTS
    torch.backends.cudnn.allow_tf32 = cudnn
    torch.backends.cuda.matmul.allow_tf32 = matmul
    return {"cudnn": cudnn, "matmul": matmul}


def resolve_step(args):
    """(registry, resolved spec, space, cells, input shape) of the step that ``args`` name (``step_arguments``
    and ``--set``), at the paper's budget on CIFAR-10's shape: the setup the counting scripts share."""
    from harness.config import parse_sets, resolve
    from harness.plugins import load_registry
    from harness.spaces import NetShape

    set_tf32(args)
    registry = load_registry()
    spec = resolve(registry, registry.method(args.method), args.space, "cifar10", 0, "paper", {},
                   parse_sets(args.sets))
    space = registry.space(args.space, spec.budget.search.op_set)
    layers = args.layers or space.search_defaults()["layers"]
    return registry, spec, space, layers, NetShape(3, args.classes, args.resolution)


def step_parts(registry, spec, space, channels: int, layers: int, shape, device, dtype=None,
               captured: bool | None = None):
    """The resolved ``spec``'s sampler, cell type, supernet (``layers`` cells of ``channels``, built in
    float32 under seed 0, then moved to ``device`` and ``dtype``) and bilevel optimizer (100 steps an epoch,
    50 epochs): what every script here measures a step of. ``captured``: whether the step will be captured in a
    CUDA graph, told to an optimizer that chooses its form by it (ROME's group_ops=auto), as the runner tells it."""
    import torch

    comp = {k: registry.component(k, n) for k, n in spec.components.items()}
    torch.manual_seed(0)
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    cell = comp["cell"].factory(spec.hparams["cell"])
    net = space.build_search_network(sampler, cell, channels, layers, shape).to(device=device, dtype=dtype)
    opt = comp["optimizer"].factory(spec.hparams["optimizer"], net=net, steps_per_epoch=100, epochs=50)
    if captured is not None and hasattr(opt, "expect_capture"):
        opt.expect_capture = captured
    return sampler, cell, net, opt


def ready(sampler, net, opt, fast: bool, recompute: bool = False) -> list[str]:
    """At the first epoch of 50, in training mode, on the fast path or not (``recompute``:
    runtime.fast_recompute): the switched cells' names."""
    from harness.nn.cells import set_fast

    opt.set_progress(0, 50)
    sampler.set_progress(0, 50)
    net.train()
    return set_fast(net, fast, recompute=recompute)


def _meta_sync_check(sampler, cell, net, opt, shape, batch, fast) -> str:
    """One step of the method built on the meta device (no values): "none", or the host read that failed."""
    import torch

    from harness.api import Batch
    from harness.nn.cells import set_fast

    try:  # once per epoch, on the host by design: reading values here is allowed, so only the step is checked
        opt.set_progress(0, 50)
        sampler.set_progress(0, 50)
    except (NotImplementedError, RuntimeError) as exc:
        if "meta" not in str(exc):
            raise
        return f"not checked (meta device): set_progress reads tensor values ({str(exc).splitlines()[0]})"
    net.train()
    set_fast(net, fast)

    def meta_batch():
        return Batch(torch.empty(batch, shape.in_channels, shape.resolution, shape.resolution, device="meta"),
                     torch.empty(batch, dtype=torch.long, device="meta"))

    try:
        opt.step(net, meta_batch(), meta_batch())
    except (NotImplementedError, RuntimeError) as exc:  # "Cannot copy out of meta tensor", ".item() ... meta"
        if "meta" not in str(exc):
            raise
        return f"host read found (meta device): {str(exc).splitlines()[0]}"
    return "none (meta device)"


class _foreach_optimizers:
    """Within: every torch optimizer of ``opt`` (its attributes, a GraphedStep's ``inner``) and
    ``clip_grad_norm_`` take their multi-tensor (foreach) path, as they do by default on CUDA."""

    def __init__(self, opt):
        import torch

        self.groups, seen, todo = [], set(), [opt]
        while todo:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, torch.optim.Optimizer):
                self.groups += obj.param_groups
            elif hasattr(obj, "__dict__") and not isinstance(obj, torch.nn.Module):
                todo += list(vars(obj).values())

    def __enter__(self):
        import functools

        import torch

        self.saved = [g.get("foreach") for g in self.groups]
        for g in self.groups:
            g["foreach"] = True
        self.clip = torch.nn.utils.clip_grad_norm_
        torch.nn.utils.clip_grad_norm_ = functools.partial(self.clip, foreach=True)
        return self

    def __exit__(self, *exc):
        import torch

        for g, v in zip(self.groups, self.saved):
            g["foreach"] = v
        torch.nn.utils.clip_grad_norm_ = self.clip


# operators that are neither views nor kernels: allocations, metadata, profiler markers. ``_unsafe_view`` is
# the reshape that ends ``reshape``/``matmul`` on a fresh tensor (an alias with new sizes that autograd does
# not track as a view; counted as a kernel before 2026-12-04's fourth session, see BENCHMARKS.md)
NO_KERNEL = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach", "lift_fresh",
             "is_same_size", "_unsafe_view", "alias", "set_", "resize_", "_record_function_enter_new",
             "_record_function_exit"}


def _count_ops(fn) -> dict:
    """How many aten operators ``fn`` dispatches: all of them, and those that are neither views nor
    allocations (on a GPU each of those launches at least one kernel)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = {"all": 0, "non_view": 0}

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts["all"] += 1
            if not func.is_view and func.overloadpacket.__name__ not in NO_KERNEL:
                counts["non_view"] += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        fn()
    return counts


def _rng_state(device, seed=None):
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(device, state) -> None:
    import torch

    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


if __name__ == "__main__":
    main()
