"""Experiment trackers (``harness run --track tensorboard,mlflow``) as plugins built on the lifecycle hooks.

A tracker plugin is an instance of a :class:`LifecycleTracker` subclass, registered like any plugin (entry
point group ``harness``, the object as ``module:ATTRIBUTE``). Its hook implementations
(``harness_run_start``, ``harness_epoch_end``, ``harness_genotype_derived``, ``harness_retrain_epoch_end``,
``harness_run_end``) act only for runs whose ``runtime.track`` names it, and forward each event to the run's
:class:`TrackerRun`, which the subclass opens (``open``). What every tracker logs, under the same keys:

- at the start: the resolved configuration, flattened to ``section.key`` parameters;
- per search epoch (step = epoch, from 1): ``search/train_loss``, ``search/train_acc``, ``search/val_loss``
  (two-level optimizers only), ``search/lr``, ``search/seconds``, the parameter-free counts
  (``search/param_free_normal``, ...), every op probability as ``alpha/<kind>/<dst>-from-<src>/<op>``, and the
  genotype the selector's cheap rule derives (text ``search/genotype``);
- the derived genotype (text ``genotype``);
- per retrain epoch: ``retrain/train_loss``, ``retrain/train_acc``, ``retrain/lr`` and ``retrain/test_acc`` on
  the epochs the test set was evaluated;
- at the end: every numeric metric (``metrics/test_accuracy``, ``metrics/params``, ...), the costs
  (``costs/search_s``, ...) and the status.

``runtime.track_dir`` says where (``harness run`` puts it beside the store: ``tracking/``); each tracker writes
below ``<track_dir>/<tracker name>``. ``harness run`` checks the names (and that the tracker's package is
installed) before the grid's first run.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plugins import hookimpl

DEFAULT_DIR = Path("harness-runs") / "tracking"


def tracked(spec) -> list[str]:
    """The tracker names a run's ``runtime.track`` lists (comma-separated)."""
    return [n.strip() for n in str(getattr(spec.budget.runtime, "track", "") or "").split(",") if n.strip()]


def track_dir(spec) -> Path:
    return Path(getattr(spec.budget.runtime, "track_dir", "") or DEFAULT_DIR)


def run_name(spec, record) -> str:
    """``darts-s2-digits-seed0-run12``: one folder / run name per store row."""
    return f"{spec.method}-{spec.space}-{spec.dataset}-seed{spec.seed}-run{record.id}"


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """A nested configuration as ``a.b.c`` -> text (what trackers keep as parameters)."""
    if isinstance(config, dict):
        out: dict[str, str] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: str(config)}


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def search_scalars(space, stats: dict[str, Any]) -> dict[str, float]:
    """The scalars of one search epoch's stats: losses, accuracy, lr, counts, and each op probability."""
    out = {f"search/{k}": v for k, v in _finite({k: v for k, v in stats.items() if k != "epoch"}).items()}
    for kind, rows in (stats.get("probabilities") or {}).items():
        edge_ops = space.edge_ops(kind) if space is not None else None
        for e, row in enumerate(rows):
            src, dst = space.edges[e] if space is not None else (e, e)
            for o, p in enumerate(row):
                op = edge_ops[e][o] if edge_ops is not None else str(o)
                out[f"alpha/{kind}/{dst}-from-{src}/{op}"] = float(p)
    return out


class TrackerRun(ABC):
    """One run's log in one tracker."""

    @abstractmethod
    def params(self, values: dict[str, str]) -> None:
        """The resolved configuration, flattened."""

    @abstractmethod
    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Numbers at ``step`` (search or retrain epoch, from 1; the last step at the end)."""

    @abstractmethod
    def text(self, key: str, value: str, step: int) -> None:
        """A string (a genotype) at ``step``."""

    @abstractmethod
    def close(self, status: str, error: str | None) -> None:
        """The run ended (``status``: completed, failed, interrupted): flush and close."""


class LifecycleTracker:
    """Base of a tracker plugin: subclasses set ``name`` and ``doc``, and implement ``open`` (and
    ``available``). The lifecycle hooks below do the rest."""

    name = ""
    doc = ""
    requires = ""  # the Python package the tracker needs (checked by ``available``), and its extra, if any
    extra = ""

    def __init__(self) -> None:
        self._runs: dict[int, tuple[TrackerRun, Any, int]] = {}  # id(spec) -> (run, space, last step)

    # -- what a subclass provides -------------------------------------------------------------------

    def available(self) -> str | None:
        """None where the tracker can run here, else why not: by default, whether ``requires`` imports."""
        import importlib.util

        if self.requires and importlib.util.find_spec(self.requires) is None:
            how = f"pip install 'nas-harness[{self.extra}]'" if self.extra else f"pip install {self.requires}"
            return f"the {self.requires} package is not installed: {how}"
        return None

    def open(self, spec, record, directory: Path) -> TrackerRun:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the hooks ----------------------------------------------------------------------------------

    @hookimpl
    def harness_register_trackers(self, register):
        register(self.name, doc=self.doc, available=self.available)

    @hookimpl
    def harness_run_start(self, spec, record):
        if self.name not in tracked(spec):
            return
        why = self.available()
        if why is not None:
            raise HarnessError(f"tracker {self.name!r} cannot run: {why}")
        from harness.plugins import load_registry

        try:
            space = load_registry().space(spec.space, spec.budget.search.op_set)
        except HarnessError:
            space = None
        run = self.open(spec, record, track_dir(spec) / self.name)
        run.params(flatten(spec.resolved()))
        self._runs[id(spec)] = (run, space, 0)

    def _safely(self, spec, what: str, fn) -> None:
        """Run ``fn(run, space, step)`` for a tracked run. A tracker failing mid-run (a full disk, a locked
        database) never fails the search it observes: it is said once on stderr and the run goes on untracked
        by it. (Failing to open, at the run's start, does fail the run before any compute: see above.)"""
        entry = self._runs.get(id(spec))
        if entry is None:
            return
        try:
            fn(*entry)
        except Exception as exc:  # noqa: BLE001 - an observer's bug must not lose the observed run
            self._runs.pop(id(spec), None)
            print(f"tracker {self.name!r} failed at {what} ({type(exc).__name__}: {exc}); "
                  f"{spec.method} on {spec.space} seed {spec.seed} is no longer logged to it", file=sys.stderr)

    @hookimpl
    def harness_epoch_end(self, spec, epoch, stats):
        def log(run, space, _step):
            run.scalars(epoch + 1, search_scalars(space, stats))
            if stats.get("genotype"):
                run.text("search/genotype", str(stats["genotype"]), epoch + 1)
            self._runs[id(spec)] = (run, space, epoch + 1)

        self._safely(spec, f"search epoch {epoch + 1}", log)

    @hookimpl
    def harness_genotype_derived(self, spec, genotype, record):
        text = genotype.to_string() if hasattr(genotype, "to_string") else str(genotype)
        self._safely(spec, "the derived genotype", lambda run, _space, step: run.text("genotype", text, step))

    @hookimpl
    def harness_retrain_epoch_end(self, spec, epoch, stats):
        values = {f"retrain/{k}": v for k, v in _finite(stats).items() if k != "epoch"}
        self._safely(spec, f"retrain epoch {epoch + 1}", lambda run, _space, _step: run.scalars(epoch + 1, values))

    @hookimpl
    def harness_run_end(self, spec, record):
        values = {f"metrics/{k}": v for k, v in _finite(record.metrics).items()}
        values.update({f"costs/{k}": v for k, v in _finite(record.costs).items()})

        def end(run, _space, step):
            run.scalars(max(step, 1), values)
            run.close(record.status, record.error)

        self._safely(spec, "the run's end", end)
        self._runs.pop(id(spec), None)
