"""Plans a grid of runs, then runs each: search, derive, evaluate, record.

Everything a user can get wrong (names, ``--set`` keys, datasets on disk, benchmark file, device,
store) is checked while planning, before any record is written. A run that then fails is recorded
as failed with its error; an identical configuration already completed is skipped unless forced.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__, interrupts, progress
from harness.api import RunRecord, RunSpec
from harness.config import resolve
from harness.errors import HarnessError, unknown
from harness.interrupts import RunInterrupted


def resolve_methods(registry, names: Sequence[str]) -> list:
    """Each name is a method, or a plugin's entry-point name standing for all its methods."""
    methods = []
    for name in names:
        if name in registry.methods:
            methods.append(registry.methods[name])
            continue
        owned = [m for m in registry.methods.values() if m.plugin == name]
        if not owned:
            raise unknown("plugin/method", name, set(registry.methods) | {m.plugin for m in registry.methods.values()})
        methods.extend(owned)
    return methods


def resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise unknown("device", device, ("auto", "cpu", "cuda"))
    return torch.device(device)


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


@dataclass
class Plan:
    specs: list[RunSpec]
    datasets: dict[str, Any]  # name -> ImageData
    benchmarks: dict[str, Any]  # space -> opened benchmark (only where it covers the dataset)
    skipped: list[str] = field(default_factory=list)  # "method on space (its spaces: ...)", left out


def resolve_specs(registry, *, methods: Sequence[str], spaces: Sequence[str], datasets: Sequence[str],
                  seeds: Sequence[int], preset: str, swaps: dict[str, str | None], sets,
                  skipped: list[str] | None = None) -> list[RunSpec]:
    """Every run of the grid, fully resolved (no data is touched). (method, space) pairs the method does not
    apply to (``MethodInfo.spaces``) are left out and described once each in ``skipped`` (when a list is
    given); a grid with nothing left is the error, naming the pairs and each method's spaces."""
    method_infos = resolve_methods(registry, methods)
    for space in spaces:
        registry.space(space)
    for ds in datasets:
        registry.dataset(ds)
    pairs, left_out = [], []
    for m in method_infos:
        for space in spaces:
            if m.spaces is not None and space not in m.spaces:
                left_out.append((m.name, space, ", ".join(m.spaces)))
            else:
                pairs.append((m, space))
    if not pairs:
        raise HarnessError("nothing to run: " + "; ".join(
            f"method {name!r} does not apply to space {space!r} (its spaces: {valid})"
            for name, space, valid in left_out))
    if skipped is not None:
        skipped.extend(f"{name} on {space} (its spaces: {valid})" for name, space, valid in left_out)
    specs = [resolve(registry, m, space, ds, seed, preset, swaps, sets)
             for m, space in pairs for ds in datasets for seed in seeds]
    # every component the grid uses, checked before any run starts, alone and together (a plugin that
    # misses a member of its kind's contract, or a pairing one component declares it cannot run with,
    # fails here in one line, not in the middle of a run): a few ms each
    for spec in specs:
        registry.check_run(spec.components, spec.hparams, registry.space(spec.space, spec.budget.search.op_set))
    return specs


def plan(registry, *, methods: Sequence[str], spaces: Sequence[str], datasets: Sequence[str],
         seeds: Sequence[int], preset: str, swaps: dict[str, str | None], sets, data_dir=None,
         benchmark_path=None, trust_benchmark: bool = False) -> Plan:
    from harness.data import load_dataset

    skipped: list[str] = []
    specs = resolve_specs(registry, methods=methods, spaces=spaces, datasets=datasets, seeds=seeds,
                          preset=preset, swaps=swaps, sets=sets, skipped=skipped)
    spaces = list(dict.fromkeys(spec.space for spec in specs))  # benchmarks only for spaces that still run
    loaded = {ds: load_dataset(ds, data_dir, registry=registry) for ds in datasets}
    benchmarks: dict[str, Any] = {}
    for space in spaces:
        found = find_benchmark(registry, space, benchmark_path)
        if found is None:
            continue
        info, path = found
        if path is None:
            if any(ds in info.datasets for ds in datasets):
                raise HarnessError(f"space {space!r} is evaluated on {', '.join(d for d in datasets if d in info.datasets)}"
                                   f" by querying the {info.name} benchmark, but no benchmark file was found: pass "
                                   f"--benchmark PATH ({info.doc or 'the benchmark file'})")
            continue
        benchmarks[space] = open_benchmark(info, path, trust_benchmark)
    return Plan(specs, loaded, benchmarks, skipped)


def find_benchmark(registry, space: str, path=None):
    """(the benchmark registered for ``space``, the file to open: ``path``, else the default file or None),
    or None when no benchmark covers the space."""
    info = registry.benchmark_for(space)
    if info is None:
        return None
    if path is None and info.default_path is not None:
        path = info.default_path()
    return info, path


def open_benchmark(info, path, trust: bool = False):
    # only a user's explicit --trust-benchmark-file reaches the opener (openers take (path) by contract)
    return info.opener(path, trust=True) if trust else info.opener(path)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Checkpoints:
    """Where a grid's runs keep their epoch checkpoints (one file per configuration, so that the next
    attempt of a run finds the last one), and what to do with them."""

    directory: str | None = None  # None: no checkpoints
    restart: bool = False  # ignore (delete) an existing checkpoint: start afresh
    keep: bool = False  # keep a completed run's checkpoint

    def path(self, record: RunRecord) -> Path | None:
        return None if self.directory is None else Path(self.directory) / f"{record.config_key}.pt"


def execute_one(registry, spec: RunSpec, data, benchmark, device, record: RunRecord,
                log: Callable[[str], None], checkpoints: Checkpoints | None = None) -> None:
    """Search, derive, evaluate; fills ``record`` in place. With ``checkpoints``, a checkpoint is written
    after every search and retrain epoch (and where a selector with a phase of its own hands its state), and
    a run whose checkpoint exists goes on from it."""
    from harness.checkpoint import load_checkpoint, save_checkpoint

    ckpt_path = checkpoints.path(record) if checkpoints is not None else None
    state = None
    if ckpt_path is not None and ckpt_path.exists():
        if checkpoints.restart:
            ckpt_path.unlink()
            log(f"  --restart: checkpoint {ckpt_path} removed, starting afresh")
        else:
            state = load_checkpoint(ckpt_path)
            if state["phase"] == "select":  # the selector's own phase (DARTS-PT's fine-tuning): where it says
                where = f"selection, {state['selector'].get('where') or 'after the search'}"
            elif state.get("step") is not None:
                where = f"{state['phase']} epoch {state['epoch'] + 1}, after its step {state['step']}"
            else:
                where = f"{state['phase']} epoch {state['epoch'] + 1} done"
            log(f"  resuming from checkpoint {ckpt_path} ({where})")
    save = (lambda st: save_checkpoint(ckpt_path, st)) if ckpt_path is not None else None
    if state is not None and state["phase"] == "retrain":
        record.genotype = state["genotype"]
        record.search.update(state["search"])
        record.costs["search_s"] = state["search_s"]
        genotype = registry.space(spec.space, spec.budget.search.op_set).parse(record.genotype)
    else:
        genotype = _search(registry, spec, data, device, record, log, state, save)
    registry.pm.hook.harness_genotype_derived(spec=spec, genotype=genotype, record=record)
    _evaluate(registry, spec, registry.space(spec.space, spec.budget.search.op_set), genotype, data, benchmark,
              device, record, log, state if state is not None and state["phase"] == "retrain" and state["epoch"] >= 0
              else None, save)
    if ckpt_path is not None and not checkpoints.keep:
        ckpt_path.unlink(missing_ok=True)


def _search(registry, spec: RunSpec, data, device, record: RunRecord, log, resume, save):
    """The search phase of :func:`execute_one`; returns the validated genotype."""
    import torch

    from harness.data import DeviceLoader, search_split
    from harness.graphs import GraphedStep, why_not_graphed
    from harness.nn.cells import set_fast
    from harness.search import run_search
    from harness.spaces import NetShape

    sb = spec.budget.search
    space = registry.space(spec.space, sb.op_set)
    info = data.info
    shape = NetShape(info.channels, info.num_classes, info.resolution)
    _seed_everything(spec.seed)
    (tx, ty), (vx, vy) = search_split(data, sb.train_portion, sb.max_train_images)
    gen = torch.Generator(device=device).manual_seed(spec.seed)
    train_loader = DeviceLoader(tx, ty, info, sb.batch_size, device, train=True, generator=gen,
                                max_steps=sb.max_steps_per_epoch)
    val_loader = DeviceLoader(vx, vy, info, sb.batch_size, device, train=True, generator=gen)

    comp = {kind: registry.component(kind, name) for kind, name in spec.components.items()}
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    cell_type = comp["cell"].factory(spec.hparams["cell"])
    net = space.build_search_network(sampler, cell_type, sb.channels, sb.layers, shape).to(device)
    # the fast path (same math, fused kernels) is for CUDA, where launch overhead dominates; on a CPU only
    # with runtime.fast_cpu (tiny supernets: the smoke preset). runtime.fast=false switches it off.
    rt = spec.budget.runtime
    fast = rt.fast and (device.type == "cuda" or rt.fast_cpu)
    fast_cells = set_fast(net, fast, recompute=rt.fast_recompute) if fast else []
    threads = torch.get_num_threads()  # set for this run by execute() (runtime.threads)
    optimizer = comp["optimizer"].factory(spec.hparams["optimizer"], net=net,
                                          steps_per_epoch=len(train_loader), epochs=sb.epochs)
    selector = comp["selector"].factory(spec.hparams["selector"])
    runtime = {"fast": fast, "fast_cells": len(fast_cells), "cuda_graph": False, "threads": threads,
               **({"fast_recompute": True} if fast and rt.fast_recompute else {}),
               "deterministic": torch.are_deterministic_algorithms_enabled(),
               # on CUDA, whether cuDNN convolutions / cuBLAS matrix products may round to TF32 (torch's
               # defaults: convolutions yes, matrix products no; a 10-bit mantissa where fp32 has 23)
               **({"tf32": {"cudnn": torch.backends.cudnn.allow_tf32,
                            "matmul": torch.backends.cuda.matmul.allow_tf32}} if device.type == "cuda" else {})}
    graph = rt.cuda_graph  # True, False or "auto" (on CUDA, on the fast path, where the components allow)
    if graph is True or (graph == "auto" and fast):
        why_not = why_not_graphed(device=device, sampler=sampler, cell_type=cell_type, optimizer=optimizer,
                                  fast=fast)
        if why_not is None:
            # auto: a capture that fails (a form of the step that cannot be captured here) is reported and the
            # search goes on uncaptured; true: it stops the run
            optimizer = GraphedStep(optimizer, fallback=log if graph == "auto" else None)
            runtime["cuda_graph"] = True
        elif graph is True:
            runtime["cuda_graph_off"] = why_not
            log(f"  runtime.cuda_graph=true ignored: {why_not}")
        elif device.type == "cuda":  # "auto": a CPU run is never captured, nothing to say there
            runtime["cuda_graph_off"] = why_not
            log(f"  step not captured in a CUDA graph: {why_not}")
    # what a component chose for this device and step (ROME's group_ops=auto: on CUDA the all-op pass when the
    # step is captured, through the conv slots, else the chosen-op pass), told first whether it is captured
    inner = optimizer.inner if isinstance(optimizer, GraphedStep) else optimizer
    if hasattr(inner, "expect_capture"):
        inner.expect_capture = runtime["cuda_graph"]
    runtime.update(getattr(inner, "runtime_choices", None) or {})
    # cell.slots (single-path cells: the chosen op per edge on the device, harness.nn.slots): whether it runs.
    # true: asked, so why not is logged and recorded; auto (the default): recorded where it runs, and why not on
    # CUDA, where it would have (a CPU step is never captured: nothing to say there)
    from harness.nn import slots

    slot_bodies = slots.asking(net.modules()) if fast else []
    if slot_bodies:
        why_no_slots = slots.why_not_run(slot_bodies, device, runtime["cuda_graph"])
        asked = any(m.slots is True for m in slot_bodies)
        if why_no_slots is None:
            runtime["slots"] = True
        elif asked or device.type == "cuda":
            runtime["slots_off"] = why_no_slots
            if asked:
                log(f"  cell.slots=true not used: {why_no_slots}")

    def on_epoch(epoch, stats):
        registry.pm.hook.harness_epoch_end(spec=spec, epoch=epoch, stats=stats)
        # a single-level optimizer takes no validation batch: its val loss is nan, said as such
        val = ("val loss not used (single-level)" if stats["val_loss"] != stats["val_loss"]
               else f"val loss {stats['val_loss']:.3f}")
        progress.line(f"  search epoch {epoch + 1}/{sb.epochs}: train loss {stats['train_loss']:.3f} "
                      f"acc {stats['train_acc']:.1f}% {val} ({stats['seconds']:.1f}s)")

    try:
        result = run_search(net=net, sampler=sampler, optimizer=optimizer, selector=selector, space=space,
                            train_loader=train_loader, val_loader=val_loader, epochs=sb.epochs, seed=spec.seed,
                            on_epoch=on_epoch, generator=gen, resume=resume, checkpoint=save)
    except torch.OutOfMemoryError as exc:
        hint = single_path_memory_hint(net, spec)
        if hint is None:
            raise
        raise torch.OutOfMemoryError(f"{exc}\n{hint}") from exc
    if isinstance(optimizer, GraphedStep):
        runtime.update(graph_captures=optimizer.captures, graph_replays=optimizer.replays,
                       eager_steps=optimizer.eager_steps)
        if optimizer.failed is not None:  # runtime.cuda_graph=auto fell back: the steps ran uncaptured
            runtime.update(cuda_graph=False, cuda_graph_off=optimizer.failed,
                           **(getattr(optimizer.inner, "runtime_choices", None) or {}))
            if runtime.pop("slots", None):  # ... and the cells left the slots with the capture
                runtime["slots_off"] = f"left when the capture failed: {optimizer.failed}"
    genotype = space.validate(result.genotype)
    record.genotype = genotype.to_string()
    # update, not replace: harness_run_start hooks may have written entries of their own
    record.search.update({"curve": result.curve, "probabilities": result.probabilities, "steps": result.steps,
                          "runtime": runtime,
                          **space.summarize(genotype)})
    record.costs["search_s"] = result.seconds
    log(f"  genotype: {record.genotype}")
    if save is not None:  # the search is done: a kill from here on resumes at the retraining
        save({"phase": "retrain", "epoch": -1, "genotype": record.genotype, "search": record.search,
              "search_s": record.costs["search_s"]})
    return genotype


def single_path_memory_hint(net, spec: RunSpec) -> str | None:
    """What to say when a search step ran out of memory with single-path cells (GDAS, ROME, ...) on the fast
    path, which computes every op of every edge (a mixed-op supernet's activations) instead of the sampled
    one's; None when ``net`` has none (the other fast cells use about their eager memory)."""
    from harness.nn.cells import SinglePathBody

    bodies = [m for m in net.modules() if isinstance(m, SinglePathBody) and m.computes_every_op]
    if not bodies:
        return None
    return (f"{spec.method}'s {len(bodies)} single-path cells were on the fast path (runtime.fast, the default on "
            f"CUDA), which computes every op of every edge under the sampled one-hot: about a mixed-op "
            f"supernet's activation memory instead of one op's per edge. --set runtime.fast=false runs the "
            f"method's own one-op cell (its paper's memory).")


def _evaluate(registry, spec: RunSpec, space, genotype, data, benchmark, device, record: RunRecord, log, resume,
              save):
    """The evaluation phase of :func:`execute_one`: the benchmark's answer, or retraining."""
    from harness.evaluate import arch_info, retrain
    from harness.spaces import NetShape

    eb = spec.budget.eval
    info = data.info
    shape = NetShape(info.channels, info.num_classes, info.resolution)
    if benchmark is not None and spec.dataset in benchmark.datasets:
        progress.enter("query")
        res = benchmark.query(genotype, spec.dataset)
        metrics = {"test_accuracy": res.test_accuracy, "source": "benchmark", "benchmark": res.to_dict()}
        if res.valid_accuracy is not None:
            metrics["valid_accuracy"] = res.valid_accuracy
        metrics.update({k: v for k, v in arch_info(space, genotype, eb.channels, eb.layers, shape).items()
                        if k in ("params", "flops")})
        record.costs["eval_s"] = 0.0
    else:
        search_part = None
        if save is not None:  # each retrain checkpoint carries the finished search too
            search_part = {"genotype": record.genotype, "search": record.search,
                           "search_s": record.costs["search_s"]}
        def on_retrain_epoch(epoch, stats):
            registry.pm.hook.harness_retrain_epoch_end(spec=spec, epoch=epoch, stats=stats)
            test = f" test acc {stats['test_acc']:.2f}%" if "test_acc" in stats else ""
            progress.line(f"  retrain epoch {epoch + 1}/{eb.epochs}: loss {stats['train_loss']:.3f} "
                          f"acc {stats['train_acc']:.1f}%{test}")

        metrics = retrain(space, genotype, data, eb, device, spec.seed,
                          on_epoch=on_retrain_epoch, resume=resume, test_every=spec.budget.runtime.test_every,
                          checkpoint=(lambda st: save({**st, **search_part})) if save else None)
        record.costs["eval_s"] = metrics.pop("eval_s")
    record.metrics = metrics
    log(f"  test accuracy {metrics['test_accuracy']:.2f}% ({metrics['source']})")


def set_threads(threads: int) -> None:
    """``runtime.threads`` (checked by RuntimeOptions): torch's CPU intra-op threads for a run (0: torch's
    default, one per core)."""
    import torch

    torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))


def perform_run(registry, spec: RunSpec, data, benchmark, device, record: RunRecord,
                log: Callable[[str], None], checkpoints: Checkpoints | None = None) -> RunRecord:
    """One run in this process, start to end: the run-start hooks, the run's thread count, search, derive
    and evaluate, the run-end hooks. Fills and returns ``record`` (status "completed", "interrupted" after
    SIGTERM/SIGINT, or "failed" with the error); only KeyboardInterrupt escapes (after the record says so
    and the run-end hooks ran)."""
    import torch

    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        # inside the try: a run-start hook that raises fails this run (recorded), never leaves it running
        registry.pm.hook.harness_run_start(spec=spec, record=record)
        set_threads(spec.budget.runtime.threads)
        if spec.budget.runtime.deterministic:
            # cuBLAS needs this for deterministic GEMMs; it takes effect if CUDA is not yet initialised
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        execute_one(registry, spec, data, benchmark, device, record, log, checkpoints)
        record.status = "completed"
    except KeyboardInterrupt:
        record.status, record.error = "failed", "interrupted (KeyboardInterrupt)"
        registry.pm.hook.harness_run_end(spec=spec, record=record)
        raise
    except RunInterrupted as exc:  # stopped on request at a step boundary; its checkpoint stays
        record.status, record.error = "interrupted", str(exc)
        log(f"  {exc}; the next run of this grid goes on from its last checkpoint")
    except Exception as exc:  # a crash mid-run is recorded, never lost
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        log(f"  FAILED: {type(exc).__name__}: {exc}")
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(deterministic_before)
    registry.pm.hook.harness_run_end(spec=spec, record=record)
    return record


def execute(registry, the_plan: Plan, store, device, *, force: bool = False, command: str = "",
            log: Callable[[str], None] = lambda m: print(m, file=sys.stderr), executor=None,
            sources: dict[str, Any] | None = None, checkpoints: Checkpoints | None = None,
            view: progress.GridView | None = None) -> list[RunRecord]:
    """Run every spec of the plan not already completed in ``store`` (unless ``force``) on ``executor``
    (default: one after another in this process) and record each result as it arrives. The store is
    written only here, in this process, whatever the executor (its workers may be other processes or
    machines; SQLite is never written from them). ``sources`` tells executors whose workers load the
    data themselves where it is (``data_dir``, ``benchmark_path``, ``trust_benchmark``); ``checkpoints``
    where the runs keep their epoch checkpoints (None: none). ``view`` shows the grid's progress (default:
    plain lines through ``log``); each active run's latest progress also goes into its lease in the store."""
    import torch

    from harness.executors import RunTask, SerialExecutor
    from harness.store import config_key

    executor = executor if executor is not None else SerialExecutor()
    records: list[RunRecord | None] = []
    tasks = []
    for i, spec in enumerate(the_plan.specs, start=1):
        config = spec.resolved()
        key = config_key(config)
        label = f"[{i}/{len(the_plan.specs)}] {spec.method} on {spec.space}/{spec.dataset} seed {spec.seed} ({spec.preset})"
        done = store.completed(key)
        if done is not None and not force:
            log(f"{label}: already completed as run {done.id}, skipped (use --force to run it again)")
            records.append(done)
            continue
        live = None
        for rec, lease in store.running(key):
            why = stale_reason(rec, lease)
            if why is None:
                live = live or (rec, lease)
            else:  # its process is gone: the row says so, and the run starts again as a new attempt
                log(f"{label}: run {rec.id} was left running, {why}; marked failed, starting it again")
                store.fail(rec, f"stale: {why} (found by a later harness run, which started the run again)")
        if live is not None and not force:
            rec, lease = live
            who = f"process {lease.pid} on {lease.host}, heartbeat {lease.age():.0f} s ago" if lease else "no lease"
            log(f"{label}: being run as run {rec.id} ({who}), skipped")
            records.append(rec)
            continue
        method = registry.method(spec.method)
        record = RunRecord(
            method=spec.method, space=spec.space, dataset=spec.dataset, seed=spec.seed, preset=spec.preset,
            config=config, config_key=key,
            plugins={"nas-harness": __version__,
                     **registry.plugin_versions(registry.plugins_of(method, dict(spec.components)))},
            torch_version=torch.__version__, device=device_name(device), command=command,
        )
        tasks.append(RunTask(index=len(records), label=label, spec=spec, record=record, device=str(device),
                             checkpoints=checkpoints, **(sources or {})))
        records.append(None)

    view = view if view is not None else progress.GridView("plain", log=log)
    view.prefix = getattr(executor, "concurrent", True)  # runs at once: each line names its run

    def begin(task) -> bool:  # the row is written when the run really starts, not when it is queued
        started = store.start(task.record, unless_taken=not force)
        if started is None:  # another grid on this store completed or started it since the plan was made
            other = store.taken(task.record.config_key)
            records[task.index] = other
            settled.append("skipped")
            view.log(f"{task.label}: taken meanwhile by run {other.id if other else '?'} "
                     f"({other.status if other else 'gone'}), skipped")
            return False
        task.record = started
        spec = task.spec
        view.begin(task.record.id, task.label, f"{spec.method} {spec.space}/{spec.dataset} seed {spec.seed}")
        view.log(f"{task.label}: run {task.record.id}")

    def report(task, item) -> None:  # a run's progress snapshot, epoch line or log line
        view.report(task.record.id, task.label, item)

    def settle(task, record: RunRecord) -> None:
        if record.status == "completed":
            store.finish(record)
        elif record.status == "interrupted":
            store.interrupt(record, record.error)
        else:
            view.log(f"{task.label}: FAILED: {(record.error or '').splitlines()[0] if record.error else ''}")
            store.fail(record, record.error)
        records[task.index] = record
        settled.append(record.status)
        view.settle(record.id, grid_progress(settled, len(tasks), time.monotonic() - t_start))

    settled: list[str] = []
    t_start = time.monotonic()
    with interrupts.install(), _Heartbeat(store.path, view.snapshot), view:
        extra = {"report": report} if _accepts(executor.run, "report") else {}  # executors before progress
        executor.run(tasks, begin, settle, registry=registry, plan=the_plan, device=device, log=view.log, **extra)
        if interrupts.requested():
            view.log(f"{interrupts.requested()}: the grid stopped; run the same command again to go on")
    return [r for r in records if r is not None]


def _accepts(fn, name: str) -> bool:
    import inspect

    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def grid_progress(settled: Sequence[str], total: int, elapsed_s: float) -> str:
    """One line on where the grid stands: runs settled of those this command runs, failures, and the time
    left at the rate so far (runs settled per second of the grid, so concurrency is counted in)."""
    done = len(settled)
    failed = sum(s == "failed" for s in settled)
    eta = (total - done) * elapsed_s / done if done else float("nan")
    left = f"about {_duration(eta)} left" if done < total else f"done in {_duration(elapsed_s)}"
    return f"grid: {done}/{total} runs settled" + (f", {failed} failed" if failed else "") + f", {left}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def stale_reason(record: RunRecord, lease) -> str | None:
    """Why a 'running' row's process is gone (``harness.store.Lease.stale``), or None while it may run.
    A row without a lease (a store from before leases) is judged by the age of its last update."""
    from harness.store import STALE_AFTER_S

    if lease is not None:
        return lease.stale()
    from datetime import datetime, timezone

    age = (datetime.now(timezone.utc) - datetime.fromisoformat(record.updated)).total_seconds()
    return f"no lease and no update for {age:.0f} s" if age > STALE_AFTER_S else None


class _Heartbeat:
    """A daemon thread renewing the leases of the rows this process runs (``snapshot()``: each active run's
    id -> its latest progress), with that progress, every HEARTBEAT_S, on a connection of its own (a
    SQLite connection belongs to one thread)."""

    def __init__(self, path, snapshot: Callable[[], dict[int, dict]]):
        import threading

        self.path, self.snapshot = path, snapshot
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="harness-heartbeat", daemon=True)

    def _loop(self) -> None:
        from harness.store import HEARTBEAT_S, ResultStore

        with ResultStore(self.path) as store:
            while not self.stop.wait(HEARTBEAT_S):
                try:
                    active = self.snapshot()
                    store.heartbeat(list(active), active)
                except Exception:  # noqa: BLE001 - a missed heartbeat only makes the row look older
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
