"""Whole-step CUDA-graph capture: a search step (arch step + weight step, forwards, backwards and both
optimizer updates) recorded once and replayed as one launch.

Why: a supernet step is thousands of tiny kernels, and on an H100 most of its time is launching them
(``shared/PERF-NOTES.md``: the reference DARTS step 955 ms eager, 260 ms as one graph). Replaying a graph
runs the very kernels the eager step ran, on the same buffers, so the math is the eager step's; the one
numerical difference is Adam's bias correction, which a capturable Adam computes on the device in float32
instead of in Python doubles (a relative difference around 1e-7 per step).

What a graph cannot see, and how :class:`GraphedStep` deals with it:

* Host-side state is frozen into the capture (the weight lr, a temperature, whether the arch step runs).
  The harness contract is that such state changes only in ``set_progress`` (once per epoch), so the graph
  is dropped there and captured again after the next ``warmup_steps`` eager steps.
* Inputs must live at fixed addresses: each batch is copied into static buffers before the replay. A batch
  of another shape (a short last batch) runs eagerly and leaves the graph alone.
* Lazily created state (momentum buffers, Adam moments, cuDNN's algorithm choice) must exist before
  capture: the eager warm-up steps create it, on a side stream as CUDA graphs require.
* Anything that decides on the host from device values (``.item()``, a path chosen in Python) cannot be
  replayed. Components say they contain none with ``graph_capturable = True`` on their own class; the
  flag is not inherited (:func:`capturable`), so a subclass that changes what a step or forward computes
  has to declare it again after checking. A capturable class whose setting reads the host anyway names
  it in a ``graph_blocker`` attribute (a reason string, None when capturable).

On by default where it can be (``runtime.cuda_graph=auto``: a CUDA device, the fast cell path, capturable
components); ``--set runtime.cuda_graph=true`` captures whichever cell forward the run uses, fused or
eager, and ``false`` never. ``benchmarks/search_step.py --mode graph`` measures it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from harness.api import Batch, StepStats
from harness.errors import HarnessError
from harness.interrupts import RunInterrupted
from harness.nn import groups

__all__ = ["GraphedStep", "capturable", "why_not_graphed"]


def capturable(component, fast: bool = True) -> bool:
    """Whether ``component``'s own class (not a base class) declares ``graph_capturable = True``, or
    ``graph_capturable = "fast"`` (capturable on the fast cell path only) and ``fast`` is on."""
    flag = vars(type(component)).get("graph_capturable", False)
    return flag is True or (flag == "fast" and fast)


def why_not_graphed(*, device, sampler, cell_type, optimizer, fast: bool = True) -> str | None:
    """None when a run's search step can be captured, else the reason, naming the component. ``fast``:
    whether the run's cells take the fast path (``runtime.fast``)."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, this run is on {device.type}"
    for kind, component in (("sampler", sampler), ("cell type", cell_type), ("optimizer", optimizer)):
        if not fast and vars(type(component)).get("graph_capturable") == "fast":
            return (f"{kind} {type(component).__name__} is capturable only on the fast cell path "
                    "(runtime.fast=false chooses its ops on the host)")
        if not capturable(component, fast):
            return (f"{kind} {type(component).__name__} does not declare graph_capturable = True (it may decide "
                    "on the host per step, which a replayed graph would freeze)")
        blocker = getattr(component, "graph_blocker", None)  # this instance's settings read the host anyway
        if blocker:
            return f"{kind} {type(component).__name__}: {blocker}"
    return None


def _key(train: Batch, val: Batch | None) -> tuple:
    batches = (train,) if val is None else (train, val)
    return tuple((t.shape, t.dtype, t.device) for b in batches for t in (b.x, b.y))


def _static_copy(batch: Batch | None) -> Batch | None:
    return None if batch is None else Batch(batch.x.clone(), batch.y.clone())


def _make_capturable(inner) -> None:
    """Switch the step's torch optimizers to their capturable form: Adam keeps its step count on the
    device (created on the host by a non-capturable first step) and computes its bias correction there."""
    for opt in vars(inner).values():
        if not isinstance(opt, torch.optim.Optimizer):
            continue
        for group in opt.param_groups:
            if "capturable" not in group or group["capturable"]:
                continue
            if not all(p.device.type == "cuda" for p in group["params"]):
                continue  # only CUDA tensors can be captured
            group["capturable"] = True
            opt._warned_capturable_if_run_uncaptured = True  # the eager warm-up steps are intended
            for p in group["params"]:
                state = opt.state.get(p)
                if state and "step" in state and state["step"].device != p.device:
                    state["step"] = state["step"].to(p.device)


class GraphedStep:
    """A bilevel optimizer whose ``step`` is replayed from a CUDA graph; everything else (``lr``,
    ``config``, ``weight_step`` for a selector's fine-tuning, ...) is the wrapped optimizer's.

    ``fallback``: None (a step whose capture, or whose warm-up in the captured form, fails raises a
    HarnessError naming ``runtime.cuda_graph=false``), or a function taking a message: the failure is
    reported through it, recorded in ``failed``, every module with a ``leave_captured_form()`` is told to
    (a single-path cell leaves the slots it stays on once taken), and the run goes on uncaptured (the step
    that failed is run again uncaptured on the same batch; a warm-up that failed part-way may have updated
    BatchNorm running statistics and drawn random numbers once more). The runner passes its log under
    ``runtime.cuda_graph=auto``, so that a default never stops a search that runs uncaptured."""

    def __init__(self, inner, warmup_steps: int = 3, fallback: Callable[[str], None] | None = None):
        if warmup_steps < 1:
            raise ValueError("warmup_steps must be at least 1 (lazily created optimizer state)")
        self.inner = inner
        self.needs_val_batch = inner.needs_val_batch
        self.warmup_steps = warmup_steps
        self.fallback = fallback
        self.failed: str | None = None  # why the run went on uncaptured (fallback)
        self.captures = 0
        self.replays = 0
        self.eager_steps = 0
        self._drop()

    def __getattr__(self, name):
        if name == "inner":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _drop(self) -> None:
        self._replay: Callable[[], StepStats] | None = None
        self._key = None
        self._static: tuple[Batch, Batch | None] | None = None
        self._warm = 0

    def set_progress(self, epoch: int, total_epochs: int) -> None:
        self.inner.set_progress(epoch, total_epochs)
        self._drop()  # the lr (and whatever else changed) is frozen into the old graph

    # -- the two device-specific pieces (a CPU test substitutes them to check the bookkeeping)
    def _side_stream(self, device):
        if device.type != "cuda":
            return contextlib.nullcontext()
        return _SideStream()

    def _capture(self, fn: Callable[[], StepStats], device) -> Callable[[], StepStats]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            stats = fn()

        def replay() -> StepStats:
            graph.replay()
            return stats  # the same tensors, rewritten by every replay

        return replay

    # --
    def step(self, net, train: Batch, val: Batch | None) -> StepStats:
        key = _key(train, val)
        if self.failed is not None or (self._replay is not None and key != self._key):
            self.eager_steps += 1  # fallen back, or an odd-shaped batch: eager, the graph stays
            return self.inner.step(net, train, val)
        if self._replay is None:
            if self._warm < self.warmup_steps:
                self._warm += 1
                self.eager_steps += 1
                # in the form the capture will take (harness.nn.groups.capturing): a layer that runs
                # differently while captured (a single-path or transit cell's device-side choice,
                # block-by-block sample BatchNorm) meets its shapes, kernels and lazy state here, not
                # first inside the capture
                try:
                    with self._side_stream(train.x.device), groups.as_captured():
                        return self.inner.step(net, train, val)
                except Exception as exc:  # noqa: BLE001 - what the captured form raised, reported with its type
                    if self.fallback is None or isinstance(exc, RunInterrupted):
                        raise
                    self._fall_back(net, f"the search step's warm-up in the form a CUDA graph captures failed "
                                         f"({type(exc).__name__}: {_first_line(exc)})")
                    return self.inner.step(net, train, val)
            if not self._capture_now(net, train, val, key):
                self.eager_steps += 1
                return self.inner.step(net, train, val)
        static_train, static_val = self._static
        static_train.x.copy_(train.x)
        static_train.y.copy_(train.y)
        if val is not None:
            static_val.x.copy_(val.x)
            static_val.y.copy_(val.y)
        self.replays += 1
        return self._replay()

    def _capture_now(self, net, train: Batch, val: Batch | None, key) -> bool:
        """Capture the step on this batch's shapes; False if it failed and the run falls back."""
        _make_capturable(self.inner)
        self._static = (_static_copy(train), _static_copy(val))
        static_train, static_val = self._static
        try:
            self._replay = self._capture(lambda: self.inner.step(net, static_train, static_val), train.x.device)
        except RuntimeError as exc:
            why = (f"capturing the search step of {type(self.inner).__name__} in a CUDA graph failed "
                   f"({_first_line(exc)})")
            if self.fallback is None:
                raise HarnessError(f"{why}; run with --set runtime.cuda_graph=false") from exc
            self._fall_back(net, why)
            return False
        self._key = key
        self.captures += 1
        return True

    def _fall_back(self, net, why: str) -> None:
        self.failed = why
        self._drop()
        # layers that would otherwise stay on a form taken while captured, and an optimizer that chose its form
        # for a captured step (ROME's group_ops=auto)
        for m in [*net.modules(), self.inner]:
            leave = getattr(m, "leave_captured_form", None)
            if leave is not None:
                leave()
        self.fallback(f"  {why}; the search goes on uncaptured (--set runtime.cuda_graph=false skips the attempt)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _SideStream:
    """``with``: run on a fresh side stream that waits for, and is waited on by, the current stream
    (the warm-up CUDA graph capture asks for)."""

    def __enter__(self):
        self._prev = torch.cuda.current_stream()
        self._stream = torch.cuda.Stream()
        self._stream.wait_stream(self._prev)
        self._ctx = torch.cuda.stream(self._stream)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        self._prev.wait_stream(self._stream)
        return False
