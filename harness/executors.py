"""Executors: where the runs of a grid execute (issue 13). A component boundary of its own: the runner
hands an executor the runs still to do and two callbacks, and the executor decides where each runs.

* ``begin(task)``: call when a run really starts (the store row becomes "running"; ``task.record``
  then has its id). It returns False when the run must not start after all (another grid sharing the
  store completed or started the same configuration since this grid was planned): skip the task, and call
  neither ``settle`` nor anything else for it.
* ``settle(task, record)``: call with the finished record ("completed" or "failed" with the error).
  The runner writes the store there, in the driver process: workers never touch SQLite, so workers on
  other machines (or a store on NFS) are safe.
* ``report(task, item)``: hand over what a run says while it runs, in the order it said it: the
  ``harness.progress`` items (``("progress", snapshot)``, ``("line", text)``) and its log lines
  (``("log", text)``). The driver shows them (live table or plain lines) and puts the latest snapshot in
  the run's lease, which ``harness status`` reads. An executor whose workers cannot send them back may
  drop them: the runs are unaffected.

Built in (registered by the core plugin, ``harness_register_executors``):

``local`` with ``workers=1``: one run after another in this process (what ``harness run`` always did).
``local`` with ``workers=N``: at most N runs at once, in N long-lived worker processes (``spawn``) that load
  the registry and the data once and send each record back through a pipe. On CUDA, slot s gets GPU
  ``gpus[s // runs_per_gpu % len(gpus)]`` (``gpus`` from ``CUDA_VISIBLE_DEVICES``, else every device),
  so ``runs_per_gpu`` K packs K concurrent runs on each GPU; the child sees only its GPU. On a CPU, a run
  with ``runtime.threads=0`` (torch's default: every core) gets ``cores // workers`` threads instead, so
  the workers split the cores (the default ``runtime.threads=1`` already does). A worker that dies
  (OOM kill, segfault, ``kill -9``) costs only its run, which is started again up to ``retries`` times
  and then recorded as failed with the exit status; the rest of the grid goes on.

``ray``: each run a Ray task (see :class:`RayExecutor`); the optional extra ``nas-harness[ray]``.

Another executor (Slurm, say) is a plugin registering a factory ``factory(options: ExecutorOptions)``
that returns an object with ``run(tasks, begin, settle, *, registry, plan, device, log, report)`` (an
executor without a ``report`` parameter is still called, without it: its runs show no progress) and,
optionally, ``concurrent = False`` when it runs one run at a time (the driver then leaves out the run's
label from each of its lines).

This module imports no torch at import time: a worker must set ``CUDA_VISIBLE_DEVICES`` before torch
(or any plugin module, which imports it) is loaded.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError


@dataclass
class RunTask:
    """One run for an executor: everything a fresh process needs to do it (picklable)."""

    index: int
    label: str
    spec: Any  # harness.api.RunSpec
    record: Any  # harness.api.RunRecord, with its store id once begun
    device: str = "cpu"
    data_dir: str | None = None
    benchmark_path: str | None = None
    trust_benchmark: bool = False
    checkpoints: Any = None  # harness.runner.Checkpoints, or None
    attempts: int = 0


@dataclass(frozen=True)
class ExecutorOptions:
    workers: int = 1
    runs_per_gpu: int = 1
    retries: int = 1  # a run whose worker died is started again this many times, then recorded failed
    address: str | None = None  # ray: the cluster to join (``ray start --head`` prints it); None: a local one

    def __post_init__(self):
        if self.workers < 1:
            raise HarnessError(f"--workers must be at least 1, not {self.workers}")
        if self.runs_per_gpu < 1:
            raise HarnessError(f"--runs-per-gpu must be at least 1, not {self.runs_per_gpu}")
        if self.retries < 0:
            raise HarnessError(f"--retries must be 0 or more, not {self.retries}")


class SerialExecutor:
    """Every run in this process, one after another, on the data the plan already loaded."""

    concurrent = False

    def run(self, tasks: Sequence[RunTask], begin, settle, *, registry, plan, device, log,
            report=lambda task, item: None) -> None:
        from harness import interrupts, progress
        from harness.runner import perform_run

        for task in tasks:
            if interrupts.requested():  # a stop was asked for: no new run starts
                break
            if begin(task) is False:
                continue
            try:
                with progress.reporting(lambda item, task=task: report(task, item)):
                    record = perform_run(registry, task.spec, plan.datasets[task.spec.dataset],
                                         plan.benchmarks.get(task.spec.space), device, task.record,
                                         lambda m, task=task: report(task, ("log", m)), task.checkpoints)
            except KeyboardInterrupt:
                settle(task, task.record)  # recorded as interrupted, then the grid stops
                raise
            settle(task, record)


def local_executor(options: ExecutorOptions):
    return SerialExecutor() if options.workers == 1 else ProcessExecutor(options)


def _gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() != "":
        return [g.strip() for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _worker(env: dict[str, str], threads: int | None, conn) -> None:
    """A spawned worker process: its environment first (before torch or any plugin is imported), then runs
    one task after another as the driver sends them (pickled; None: stop), each record sent back through
    ``conn``. The registry is loaded once and each dataset once per worker. Logs go to this process's
    stderr, prefixed with the run's label."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what a Ctrl-C does to the grid
    from dataclasses import replace

    from harness import interrupts

    signal.signal(signal.SIGTERM, lambda signum, frame: interrupts.request("SIGTERM"))  # sent by the driver

    cache: dict[Any, Any] = {}
    while True:
        payload = conn.recv()
        if payload is None:
            break
        task: RunTask = pickle.loads(payload)
        spec = task.spec
        if threads is not None and spec.budget.runtime.threads == 0:
            runtime = replace(spec.budget.runtime, threads=threads)
            spec = replace(spec, budget=replace(spec.budget, runtime=runtime))
        record = _run_here(task, spec, cache, emit=conn.send)  # ("progress"|"line"|"log", ...) on the way
        conn.send(("record", pickle.dumps(record)))
    conn.close()


def _run_here(task: RunTask, spec, cache: dict, emit=None) -> Any:
    """One run in this (worker) process; the registry, each dataset and each benchmark are loaded once
    into ``cache``. ``emit(item)`` gets what the run says (its progress items and ``("log", text)``);
    without it, log lines go to stderr with the run's label."""
    from harness import progress
    from harness.data import load_dataset
    from harness.plugins import load_registry
    from harness.runner import perform_run, resolve_device

    if emit is None:
        log = lambda m, label=task.label: print(f"{label} {m.strip()}", file=sys.stderr, flush=True)  # noqa: E731
    else:
        log = lambda m: emit(("log", m))  # noqa: E731
    if "registry" not in cache:
        cache["registry"] = load_registry()
    registry, record = cache["registry"], task.record
    try:
        device = resolve_device(task.device.split(":")[0])
        key = ("data", spec.dataset, task.data_dir)
        if key not in cache:
            cache[key] = load_dataset(spec.dataset, task.data_dir, registry=registry)
        benchmark = _open_benchmark(registry, spec, task, cache)
        with progress.reporting(emit):
            record = perform_run(registry, spec, cache[key], benchmark, device, record, log, task.checkpoints)
    except Exception as exc:  # a failure to set the run up is the run's failure, recorded like any other
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
    return record


def _open_benchmark(registry, spec, task: RunTask, cache: dict):
    """The space's benchmark as the driver's plan opened it, opened once per worker process (an official
    .pth takes seconds to read) and kept in ``cache``."""
    from harness.runner import find_benchmark, open_benchmark

    found = find_benchmark(registry, spec.space, task.benchmark_path)
    if found is None or found[1] is None:
        return None
    info, path = found
    key = ("benchmark", info.name, str(path), task.trust_benchmark)
    if key not in cache:
        cache[key] = open_benchmark(info, path, task.trust_benchmark)
    return cache[key]


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


@dataclass
class _Slot:
    env: dict[str, str] = field(default_factory=dict)
    process: Any = None
    conn: Any = None
    task: RunTask | None = None


class ProcessExecutor:
    """``workers`` (CPU) or ``workers * runs_per_gpu`` (CUDA) long-lived spawned worker processes, each
    doing one run at a time; see the module docstring. A worker pays its start-up (torch, the plugins,
    the data) once, not once per run: on smoke-sized runs that start-up is longer than the run. A worker
    sends tagged items through its pipe: the run's progress and log lines as they come, then
    ``("record", pickled record)``."""

    concurrent = True

    def __init__(self, options: ExecutorOptions):
        self.options = options

    def _slots(self, device) -> list[_Slot]:
        o = self.options
        if str(device).startswith("cuda"):
            gpus = _gpus()
            if not gpus:
                raise HarnessError("--device cuda with --workers: no GPU is visible (CUDA_VISIBLE_DEVICES)")
            n = o.workers * o.runs_per_gpu
            return [_Slot(env={"CUDA_VISIBLE_DEVICES": gpus[(s // o.runs_per_gpu) % len(gpus)]}) for s in range(n)]
        return [_Slot() for _ in range(o.workers)]

    def run(self, tasks: Sequence[RunTask], begin, settle, *, registry, plan, device, log,
            report=lambda task, item: None) -> None:
        import multiprocessing as mp
        from multiprocessing.connection import wait

        ctx = mp.get_context("spawn")
        slots = self._slots(device)
        threads = max(1, (os.cpu_count() or 1) // len(slots)) if not str(device).startswith("cuda") else None
        queue = list(tasks)

        def launch(slot: _Slot, task: RunTask) -> None:
            if task.attempts == 0 and begin(task) is False:  # taken by another grid meanwhile: skipped
                return
            if slot.process is None:
                slot.conn, child = ctx.Pipe()
                slot.process = ctx.Process(target=_worker, args=(slot.env, threads, child), daemon=True)
                slot.process.start()
                child.close()
            task.attempts += 1
            slot.task = task
            slot.conn.send(pickle.dumps(task))
            gpu = f" on GPU {slot.env['CUDA_VISIBLE_DEVICES']}" if slot.env else ""
            log(f"{task.label}: worker pid {slot.process.pid}{gpu} (attempt {task.attempts})")

        def died(slot: _Slot) -> None:
            task, code = slot.task, slot.process.exitcode
            slot.process.join()
            slot.conn.close()
            slot.process, slot.conn, slot.task = None, None, None
            if task.attempts <= self.options.retries:
                log(f"{task.label}: worker {_exit_text(code)}; starting the run again "
                    f"({task.attempts} of {self.options.retries + 1} attempts used)")
                queue.insert(0, task)
            else:
                task.record.status = "failed"
                task.record.error = (f"worker {_exit_text(code)} (attempt {task.attempts} of "
                                     f"{self.options.retries + 1}); no result")
                settle(task, task.record)

        from harness import interrupts

        forwarded = False
        try:
            while queue or any(s.task is not None for s in slots):
                if interrupts.requested():  # no new run starts; the running ones stop at a step boundary
                    queue.clear()
                    if not forwarded:
                        forwarded = True
                        for s in slots:
                            if s.task is not None:
                                s.process.terminate()  # SIGTERM: the worker's handler asks its run to stop
                    if not any(s.task is not None for s in slots):
                        break
                for slot in slots:
                    if slot.task is None and queue:
                        launch(slot, queue.pop(0))
                busy = [s for s in slots if s.task is not None]
                wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=0.2)
                for slot in busy:
                    result = None
                    try:
                        while result is None and slot.conn.poll():
                            kind, payload = slot.conn.recv()
                            if kind == "record":
                                result = payload
                            else:
                                report(slot.task, (kind, payload))
                    except (EOFError, OSError):  # the worker died before (or while) sending
                        result = None
                    if result is not None:
                        task, slot.task = slot.task, None
                        settle(task, pickle.loads(result))
                    elif not slot.process.is_alive():
                        died(slot)
        except KeyboardInterrupt:
            for slot in slots:
                if slot.process is not None:
                    slot.process.terminate()
                    slot.process.join()
                if slot.task is not None:
                    slot.task.record.status = "failed"
                    slot.task.record.error = "interrupted (KeyboardInterrupt)"
                    settle(slot.task, slot.task.record)
            raise
        for slot in slots:  # every run settled: the workers stop
            if slot.process is not None:
                slot.conn.send(None)
                slot.process.join(timeout=30)
                if slot.process.is_alive():
                    slot.process.terminate()


# ---------------------------------------------------------------------------------------------
# Ray: each run a Ray task with its CPU/GPU share, so a grid spreads over every node of a cluster


_WORKER_CACHE: dict[str, Any] = {}  # in a Ray worker process: the registry and datasets, loaded once


def run_task(payload: bytes) -> bytes:
    """A run in whatever process Ray gives it (the same work as a local worker's); returns the pickled
    record. Ray keeps its worker processes, so the registry and each dataset are loaded once per process.
    What the run says goes to the driver through a file beside its checkpoint (:class:`_EventFile`).
    ``ray.cancel`` (what the driver does on SIGTERM/SIGINT) sends the task SIGINT: the run stops at its
    next step boundary and returns its record, 'interrupted'."""
    from harness import interrupts

    task: RunTask = pickle.loads(payload)
    path = _events_path(task)
    emit = _EventFile(path) if path is not None else None
    try:
        with interrupts.install():
            return pickle.dumps(_run_here(task, task.spec, _WORKER_CACHE, emit=emit))
    finally:
        if emit is not None:
            emit.close()


def _events_path(task: RunTask):
    from pathlib import Path

    if task.checkpoints is None or task.checkpoints.directory is None or task.record.id is None:
        return None
    return Path(task.checkpoints.directory) / f"{task.record.config_key}.{task.record.id}.events"


class _EventFile:
    """A run's items as JSON lines in a file in the checkpoint directory (which every node reaches), read
    by the driver as they come. A file, not a Ray queue: an actor call per item, or even per second,
    cost a smoke grid on 2 cores a quarter of its time (benchmarks, issue 13's note)."""

    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def __call__(self, item) -> None:
        try:
            self.fh.write(json.dumps(item) + "\n")
            self.fh.flush()
        except (OSError, TypeError, ValueError):  # a full disk or an odd payload only costs the view
            pass

    def close(self) -> None:
        self.fh.close()


class _EventReader:
    """The driver's side of :class:`_EventFile`: the complete lines added since the last read."""

    def __init__(self, path):
        self.path, self.offset, self.rest = path, 0, b""

    def read(self) -> list:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        items = []
        for line in lines:
            try:
                kind, payload = json.loads(line)
                items.append((kind, payload))
            except ValueError:
                continue
        return items

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


class RayExecutor:
    """Every run a Ray task (1 CPU; on CUDA 1/runs_per_gpu of a GPU), submitted at once; Ray places them
    on the cluster's nodes. Results come back to this process, which alone writes the store. A task whose
    worker dies is retried by Ray (``max_retries`` = ``retries``; it resumes from its checkpoint when the
    checkpoint directory is shared), then recorded failed with Ray's error. The runs' progress and log
    lines come back through files in the checkpoint directory (on other nodes: when it is shared). On
    SIGTERM/SIGINT the driver cancels the tasks (Ray sends them SIGINT): each stops at a step boundary
    and comes back 'interrupted'."""

    concurrent = True

    def __init__(self, options: ExecutorOptions):
        self.options = options
        try:
            import ray  # noqa: F401
        except ImportError:
            raise HarnessError("--executor ray needs Ray, an optional extra: pip install 'nas-harness[ray]'") from None

    def run(self, tasks: Sequence[RunTask], begin, settle, *, registry, plan, device, log,
            report=lambda task, item: None) -> None:
        import ray

        from harness import interrupts

        if not tasks:
            return
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.options.address, include_dashboard=False, log_to_driver=True,
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
                     if self.options.address is None else None)
            interrupts.reclaim()  # ray.init's SIGTERM handler would end the driver at once
        cuda = str(device).startswith("cuda")
        remote = ray.remote(num_cpus=1, num_gpus=(1.0 / self.options.runs_per_gpu) if cuda else 0,
                            max_retries=self.options.retries)(run_task)
        pending, readers = {}, {}

        def drain(task) -> None:
            if task.record.id in readers:
                for item in readers[task.record.id].read():
                    report(task, item)

        try:
            for task in tasks:
                if begin(task) is False:
                    continue
                path = _events_path(task)
                if path is not None:
                    path.unlink(missing_ok=True)  # a file an earlier attempt of this row left
                    readers[task.record.id] = _EventReader(path)
                pending[remote.remote(pickle.dumps(task))] = task
                log(f"{task.label}: submitted to Ray")
            cancelled = False
            while pending:
                if interrupts.requested() and not cancelled:  # each task stops at its next step boundary
                    cancelled = True
                    for ref in pending:
                        ray.cancel(ref, force=False)
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for task in pending.values():
                    drain(task)
                for ref in done:
                    task = pending.pop(ref)
                    if task.record.id in readers:
                        readers.pop(task.record.id).remove()
                    try:
                        record = pickle.loads(ray.get(ref))
                    except ray.exceptions.TaskCancelledError:  # cancelled before it started
                        record = task.record
                        record.status = "interrupted"
                        record.error = f"interrupted by {interrupts.requested() or 'a cancel'} before it started"
                    except ray.exceptions.RayError as exc:  # the worker died more often than retries allow
                        record = task.record
                        record.status = "failed"
                        record.error = (f"Ray task failed after {self.options.retries + 1} attempt(s): "
                                        f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
                    settle(task, record)
        except KeyboardInterrupt:
            for ref, task in pending.items():
                ray.cancel(ref, force=True)
                task.record.status, task.record.error = "failed", "interrupted (KeyboardInterrupt)"
                settle(task, task.record)
            raise
        finally:
            for reader in readers.values():
                reader.remove()
            if started_here:
                ray.shutdown()


def ray_executor(options: ExecutorOptions):
    return RayExecutor(options)
