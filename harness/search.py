"""The one search loop, for every method.

Per step it hands a train batch (and, if the optimizer wants one, a validation batch) to
``BilevelOptimizer.step``. Step statistics stay on the device and are summed there; the loop
synchronises with the device once per epoch, when it reports the epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.api import Batch, SelectionContext
from harness.interrupts import check as check_stop


# A selector may offer a checkpoint after every unit of its work (DARTS-PT: each projection point and tuning
# epoch, minutes each at the paper's sizes); one offered sooner than this after the last one written is let go.
# At the smoke preset's sizes those units take a few ms and the writes (20 ms each) were 16% of a DARTS-PT run
# (benchmarks/results/2026-12-05e-pt-checkpoints/); a stop then loses at most this long plus one unit.
SELECT_CHECKPOINT_MIN_S = 1.0


@dataclass
class SearchResult:
    genotype: Any
    curve: list[dict[str, float]] = field(default_factory=list)
    probabilities: dict[str, list[list[float]]] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0


class _Stream:
    """The validation batches as an endless stream across epochs (a new pass when one ends), which can
    say where it is and be put back there: the generator's state when the current pass began and how
    many batches of it were taken. Restoring replays the pass's start (the same permutation) and skips
    the batches taken, then the caller restores the generator to its checkpointed state."""

    def __init__(self, loader, generator):
        self.loader, self.generator = loader, generator
        self._it = None
        self._start = None
        self._taken = 0

    def __next__(self) -> Batch:
        if self._it is None:
            self._start = self.generator.get_state() if self.generator is not None else None
            self._it, self._taken = iter(self.loader), 0
        try:
            x, y = next(self._it)
        except StopIteration:
            self._it = None
            return next(self)
        self._taken += 1
        return Batch(x, y)

    def state(self) -> dict[str, Any]:
        return {"active": self._it is not None, "start": self._start, "taken": self._taken}

    def restore(self, state: dict[str, Any]) -> None:
        self._it, self._taken = None, 0
        if state["active"]:
            if self.generator is not None:
                self.generator.set_state(state["start"])
            self._start, self._it = state["start"], iter(self.loader)
            for _ in range(state["taken"]):
                next(self._it)
            self._taken = state["taken"]


def component_state(obj) -> dict[str, Any]:
    """What a search component carries from epoch to epoch, for a checkpoint: its own ``state_dict()`` if
    it has one (and is not a module: a module's tensors are in the network's state), else every torch
    optimizer or scheduler it holds (their state_dicts) and its plain scalar and tensor attributes."""
    import torch
    from torch import nn

    obj = uncaptured(obj)  # a CUDA graph of the step holds nothing of its own: the optimizer under it does
    if hasattr(obj, "state_dict") and not isinstance(obj, (nn.Module, torch.optim.Optimizer)):
        return {"own": obj.state_dict()}
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name.startswith("_") and not isinstance(value, (torch.optim.Optimizer,)):
            continue
        if isinstance(value, torch.optim.Optimizer) or isinstance(value, torch.optim.lr_scheduler.LRScheduler):
            out[name] = {"state_dict": value.state_dict()}
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = {"value": value}
        elif type(value) is torch.Tensor:
            out[name] = {"tensor": value.detach().clone()}
    return out


def load_component_state(obj, state: dict[str, Any]) -> None:
    """Put back what :func:`component_state` took."""
    obj = uncaptured(obj)
    if "own" in state:
        obj.load_state_dict(state["own"])
        return
    for name, entry in state.items():
        if "state_dict" in entry:
            getattr(obj, name).load_state_dict(entry["state_dict"])
        elif "value" in entry:
            setattr(obj, name, entry["value"])
        else:
            current = getattr(obj, name, None)
            if isinstance(current, torch.Tensor):
                with torch.no_grad():
                    current.copy_(entry["tensor"])
            else:
                setattr(obj, name, entry["tensor"])


def run_search(*, net, sampler, optimizer, selector, space, train_loader, val_loader, epochs: int,
               seed: int, on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
               generator=None, resume: dict[str, Any] | None = None,
               checkpoint: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """The search epochs, then the selector. With ``checkpoint``, after every epoch the state to go on
    from (network, optimizer and sampler state, every random generator, the validation stream's place,
    the curve) is handed to it, and so it is at the step boundary where a stop request (SIGTERM/SIGINT)
    is heard, with the epoch's place (``step``: steps done in it) before :class:`RunInterrupted` is
    raised. ``resume`` is such a state: the search goes on from the epoch after it, or from the step
    where it stopped, exactly as if it had not stopped. During the selection, a selector that hands its
    state to ``SelectionContext.checkpoint`` gets a checkpoint of phase "select" (the search's state at that
    point, its own under "selector"); resumed from one, the search epochs are skipped and the selector is
    given its state back as ``SelectionContext.resume``."""
    from harness import interrupts, progress
    from harness.checkpoint import rng_state, set_rng_state

    start = time.perf_counter()
    val_stream = _Stream(val_loader, generator) if optimizer.needs_val_batch else None
    result = SearchResult(genotype=None)
    device = next(net.parameters()).device
    first, before, mid, selecting = 0, 0.0, None, None
    if resume is not None:
        net.load_state_dict(resume["net"])
        load_component_state(optimizer, resume["optimizer"])
        load_component_state(sampler, resume["sampler"])
        result.curve, result.steps = list(resume["curve"]), resume["steps"]
        before = resume["seconds"]
        if resume.get("step") is not None:  # stopped inside an epoch: replayed below
            first, mid = resume["epoch"], resume
        else:
            if val_stream is not None:
                val_stream.restore(resume["val_stream"])
            if generator is not None:
                generator.set_state(resume["generator"])
            set_rng_state(resume["rng"])
            first = resume["epoch"] + 1  # a "select" checkpoint is the last epoch's: the selector goes on
        selecting = resume.get("selector")

    def state(epoch: int, **place) -> dict[str, Any]:  # what a checkpoint holds besides the place in the data
        return {"phase": "search", "epoch": epoch, "net": net.state_dict(), "optimizer": component_state(optimizer),
                "sampler": component_state(sampler), "rng": rng_state(), "curve": result.curve,
                "steps": result.steps, "seconds": before + time.perf_counter() - start, **place}

    def epoch_end() -> dict[str, Any]:  # the place in the data between epochs
        return {"val_stream": val_stream.state() if val_stream is not None else None,
                "generator": generator.get_state() if generator is not None else None}

    # every module of the supernet (but the sampler, set above) that has a per-epoch schedule
    scheduled = [m for m in net.modules() if m is not sampler and callable(getattr(m, "set_progress", None))]
    tracker = progress.Phase("search", epochs, len(train_loader))
    for epoch in range(first, epochs):
        t0 = time.perf_counter()
        tracker.start(epoch)
        sampler.set_progress(epoch, epochs)
        optimizer.set_progress(epoch, epochs)
        for module in scheduled:  # cell bodies with a schedule of their own (DARTS-'s decaying skip)
            module.set_progress(epoch, epochs)
        net.train()
        zero = torch.zeros((), device=device)
        sums = {"train_loss": zero.clone(), "val_loss": zero.clone(), "correct": zero.clone(), "n": 0, "n_val": 0}
        # where this epoch's batches come from: enough to draw them again after a stop inside it
        at_start = {"generator": generator.get_state() if generator is not None else None,
                    "val_stream": val_stream.state() if val_stream is not None else None}
        batches, taken, epoch_before = iter(train_loader), 0, 0.0  # a generator: draws nothing yet
        if mid is not None:  # the batches of the steps done before the stop, drawn again, not trained on
            at_start, taken, epoch_before = mid["epoch_start"], mid["step"], mid["epoch_seconds"]
            if val_stream is not None:
                val_stream.restore(at_start["val_stream"])
            if generator is not None:
                generator.set_state(at_start["generator"])
            for _ in range(taken):
                next(batches)
                if val_stream is not None:
                    next(val_stream)
            set_rng_state(mid["rng"])
            sums = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in mid["sums"].items()}
            tracker.step_no, mid = taken, None
        for x, y in batches:
            if interrupts.requested():  # SIGTERM/SIGINT: a checkpoint at this step boundary, then stop
                if checkpoint is not None:
                    checkpoint(state(epoch, step=taken, epoch_start=at_start, sums=sums,
                                     epoch_seconds=epoch_before + time.perf_counter() - t0))
                check_stop(f"search epoch {epoch + 1}")
            val = next(val_stream) if val_stream is not None else None
            stats = optimizer.step(net, Batch(x, y), val)
            sums["train_loss"] += stats.train_loss * stats.n
            if stats.train_correct is not None:
                sums["correct"] += stats.train_correct
            if stats.val_loss is not None:
                sums["val_loss"] += stats.val_loss
                sums["n_val"] += 1
            sums["n"] += stats.n
            result.steps += 1
            taken += 1
            tracker.step(stats.n)
        # the one sync per epoch
        n, n_val = sums["n"], sums["n_val"]
        summary = {
            "epoch": epoch,
            "train_loss": float(sums["train_loss"]) / max(1, n),
            "train_acc": 100.0 * float(sums["correct"]) / max(1, n),
            "val_loss": float(sums["val_loss"]) / n_val if n_val else float("nan"),
            "lr": float(getattr(optimizer, "lr", float("nan"))),
            "seconds": epoch_before + time.perf_counter() - t0,
        }
        summary.update(_epoch_architecture(net, sampler, selector, space, optimizer, seed))
        result.curve.append(summary)
        tracker.end(summary["train_loss"])
        if checkpoint is not None:
            checkpoint(state(epoch, **epoch_end()))
        if on_epoch is not None:
            on_epoch(epoch, summary)

    last_select_save = float("-inf")

    def select_checkpoint(own: dict[str, Any]) -> None:  # the selector's state at a point it can go on from
        nonlocal last_select_save
        if time.perf_counter() - last_select_save < SELECT_CHECKPOINT_MIN_S:
            return  # the last one is that recent: a stop now would lose less than the write costs
        checkpoint({**state(epochs - 1, **epoch_end()), "phase": "select", "selector": own})
        last_select_save = time.perf_counter()

    net.eval()
    progress.enter("select")
    ctx = SelectionContext(
        space=space,
        val_batches=lambda: (Batch(x, y) for x, y in val_loader),
        train_batches=lambda: (Batch(x, y) for x, y in train_loader),
        optimizer=uncaptured(optimizer),
        seed=seed,
        checkpoint=select_checkpoint if checkpoint is not None else None,
        resume=selecting,
    )
    result.genotype = selector.select(net, ctx)
    result.probabilities = _probs(sampler)
    result.seconds = before + time.perf_counter() - start
    return result


def uncaptured(optimizer):
    """The optimizer a selector trains with: the search's, but never a CUDA graph of the search step
    (``harness.graphs.GraphedStep``): a replay runs the kernels captured in the search, blind to what a selector
    changes between its steps (DARTS-PT's projected weights and tuning lr), so its steps run uncaptured, on
    the same optimizer state."""
    from harness.graphs import GraphedStep

    return optimizer.inner if isinstance(optimizer, GraphedStep) else optimizer


def _probs(sampler, digits: int = 6) -> dict[str, list[list[float]]]:
    return {k: [[round(float(v), digits) for v in row] for row in p.detach().cpu().tolist()]
            for k, p in sampler.probabilities().items()}


def _epoch_architecture(net, sampler, selector, space, optimizer, seed: int) -> dict[str, Any]:
    """What a search epoch's record keeps of the architecture (issue 15): each cell kind's op probabilities
    (4 decimals), the genotype the run's selector would derive now where its rule is cheap (it declares
    ``cheap = True``: no data, no training, e.g. argmax / top-2), else the space's own rule, and the space's
    counts of it (``summarize``: parameter-free ops per cell kind, the collapse measure)."""
    if getattr(selector, "cheap", False) is True:
        ctx = SelectionContext(space=space, val_batches=lambda: iter(()), train_batches=lambda: iter(()),
                               optimizer=optimizer, seed=seed)
        was_training = net.training
        net.eval()
        genotype, rule = selector.select(net, ctx), "selector"
        net.train(was_training)
    else:
        genotype, rule = space.derive(sampler.probabilities()), "space"
    return {"probabilities": _probs(sampler, 4), "genotype": genotype.to_string(), "genotype_rule": rule,
            **space.summarize(genotype)}
