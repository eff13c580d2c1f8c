"""Where each run of a grid stands, live (issue 13).

Two sides:

* In the process that does a run, the training loops say where they are: :class:`Phase` counts steps and
  images and hands :func:`update` a snapshot at most every ``INTERVAL_S`` (plus at each epoch's start and
  end), and :func:`line` hands over the epoch's one-line summary. A snapshot is a small dict: ``phase``
  ("search", "select", "retrain", "query"), ``epoch`` (1-based), ``epochs``, ``step``, ``steps``, ``loss``
  (the last finished epoch's mean training loss: reading a step's loss would cost a device sync per step),
  ``images_per_s`` (this epoch so far). Both go to the sink the executor set with :func:`reporting`; with
  none set they cost one function call. Nothing here imports torch.
* In the driver, :class:`GridView` receives them (in-process, through a local worker's pipe, or through a
  file a Ray task appends to) and shows them: ``live`` a table of the active runs under the grid's line (``rich``, redrawn
  in place on a terminal), ``plain`` one line per epoch and per event, ``off`` nothing. The heartbeat thread
  writes each active run's latest snapshot into the store's lease, which ``harness status`` reads.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

INTERVAL_S = 1.0  # a running loop reports at most this often between epoch boundaries
MODES = ("auto", "live", "plain", "off")

_sink: Callable[[tuple[str, Any]], None] | None = None
_state: dict[str, Any] = {}


@contextlib.contextmanager
def reporting(sink: Callable[[tuple[str, Any]], None] | None):
    """Send this process's progress to ``sink`` while the block runs: ``("progress", snapshot)`` and
    ``("line", text)`` items. The snapshot starts empty for each block (one block per run)."""
    global _sink
    before, before_state = _sink, dict(_state)
    _sink = sink
    _state.clear()
    try:
        yield
    finally:
        _sink = before
        _state.clear()
        _state.update(before_state)


def update(**fields: Any) -> None:
    """Merge ``fields`` into the run's snapshot and send it."""
    _state.update(fields)
    if _sink is not None:
        _sink(("progress", dict(_state)))


def enter(phase: str, **fields: Any) -> None:
    """The run enters ``phase``: the per-epoch fields of the one before are cleared (a phase without
    epochs, "select" or "test", keeps the last loss)."""
    update(**{"epoch": None, "epochs": None, "step": None, "steps": None, "images_per_s": None, **fields,
              "phase": phase})


def line(text: str) -> None:
    """The run's one-line summary of an event (an epoch's end): printed by the plain view."""
    if _sink is not None:
        _sink(("line", text))


class Phase:
    """One training loop's progress: ``start(epoch)`` at each epoch, ``step(images)`` after each step,
    ``end(loss)`` when the epoch is done. Cheap per step (two additions and a clock read)."""

    def __init__(self, name: str, epochs: int, steps: int | None, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.epochs, self.steps, self.interval, self.clock = name, epochs, steps, interval, clock
        self.epoch, self.step_no, self.images, self.t0, self.last = None, 0, 0, 0.0, 0.0
        enter(name, epochs=epochs, steps=steps, loss=None)

    def start(self, epoch: int) -> None:
        self.epoch, self.step_no, self.images = epoch, 0, 0
        self.t0 = self.last = self.clock()
        update(phase=self.name, epoch=epoch + 1, epochs=self.epochs, step=0, steps=self.steps)

    def step(self, images: int) -> None:
        self.step_no += 1
        self.images += images
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            update(step=self.step_no, images_per_s=self._rate(now))

    def end(self, loss: float | None) -> None:
        update(step=self.step_no, loss=loss, images_per_s=self._rate(self.clock()))

    def _rate(self, now: float) -> float | None:
        return round(self.images / (now - self.t0), 1) if now > self.t0 and self.images else None


def describe(snapshot: dict[str, Any] | None) -> str:
    """A snapshot in words: "search epoch 3/50, step 120/391, loss 1.234, 812 img/s"."""
    if not snapshot:
        return "starting"
    parts = [str(snapshot.get("phase", "?"))]
    if snapshot.get("epoch") is not None:
        parts[0] += f" epoch {snapshot['epoch']}/{snapshot.get('epochs', '?')}"
    if snapshot.get("step") is not None and snapshot.get("phase") in ("search", "retrain"):
        parts.append(f"step {snapshot['step']}/{snapshot.get('steps') or '?'}")
    if snapshot.get("loss") is not None:
        parts.append(f"loss {snapshot['loss']:.3f}")
    if snapshot.get("images_per_s"):
        parts.append(f"{snapshot['images_per_s']:.0f} img/s")
    return ", ".join(parts)


def choose_mode(requested: str, stream=None) -> str:
    """``auto``: ``live`` when ``stream`` (stderr) is a terminal and rich is installed, else ``plain``."""
    if requested not in MODES:
        from harness.errors import HarnessError

        raise HarnessError(f"unknown --progress {requested!r}; choose one of: {', '.join(MODES)}")
    if requested != "auto":
        return requested
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        return "plain"
    try:
        import rich  # noqa: F401
    except ImportError:
        return "plain"
    return "live"


class GridView:
    """The driver's view of a grid: the executor's log lines, each run's progress, the grid's line.

    ``log(text)`` is a driver message (printed in ``plain`` and above the table in ``live``);
    ``report(key, label, item)`` an item from a run (see :func:`reporting`); ``begin``/``settle`` a run's
    start and end. ``snapshot()`` is every active run's latest progress (for the store's leases). With
    ``prefix`` (runs at once) a run's plain lines carry its label. Thread-safe: the heartbeat reads the
    snapshots from its own thread, and the live display redraws from rich's."""

    def __init__(self, mode: str = "plain", log: Callable[[str], None] | None = None, prefix: bool = False,
                 stream=None):
        if mode not in ("live", "plain", "off"):
            raise ValueError(f"GridView mode {mode!r}")
        self.mode, self.prefix = mode, prefix
        self.stream = sys.stderr if stream is None else stream
        self._print = log if log is not None else (lambda m: print(m, file=self.stream, flush=True))
        self.active: dict[Any, dict[str, Any]] = {}  # key -> {"label", "since", "progress"}
        self.grid_line = ""
        self._lock = threading.Lock()
        self._live = None

    # -- what the runner and the executors call ------------------------------------------------------

    def log(self, text: str) -> None:
        if self.mode == "off":
            return
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self._print(text)

    def begin(self, key, label: str, short: str | None = None) -> None:
        """Run ``key`` started; ``short`` names it in the live table (default ``label``)."""
        with self._lock:
            self.active[key] = {"label": short or label, "since": time.monotonic(), "progress": {}}
        self._refresh()

    def report(self, key, label: str, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "progress":
            with self._lock:
                run = self.active.get(key)
                if run is None:
                    return
                before, run["progress"] = run["progress"], payload
            # the live table redraws itself 4 times a second; at once only when a phase or epoch begins
            if (before.get("phase"), before.get("epoch")) != (payload.get("phase"), payload.get("epoch")):
                self._refresh()
        elif kind == "line":
            if self.mode == "plain":  # live shows it in the table instead
                self._print(f"{label} {payload.strip()}" if self.prefix else payload)
        elif kind == "log":
            self.log(f"{label} {payload.strip()}" if self.prefix else payload)

    def settle(self, key, grid_line: str) -> None:
        with self._lock:
            self.active.pop(key, None)
            self.grid_line = grid_line
        self.log(grid_line)
        self._refresh()

    def snapshot(self) -> dict[Any, dict[str, Any]]:
        with self._lock:
            return {k: dict(v["progress"]) for k, v in self.active.items()}

    # -- live display -------------------------------------------------------------------------------

    def __enter__(self):
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, force_terminal=True, stderr=self.stream is sys.stderr)
            self._live = Live(self._table(), console=console, refresh_per_second=4, transient=False,
                              redirect_stdout=False, redirect_stderr=False, get_renderable=self._table)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            live, self._live = self._live, None
            live.__exit__(*exc)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def _table(self):
        from rich.table import Table

        with self._lock:
            rows = [(v["label"], v["progress"], time.monotonic() - v["since"]) for v in self.active.values()]
            title = self.grid_line or "grid: starting"
        if not rows:  # between runs and at the end: the grid's line is already printed above
            from rich.text import Text

            return Text("" if self.grid_line else title)
        table = Table(title=title, title_justify="left", expand=False, show_edge=False, pad_edge=False)
        table.add_column("run", no_wrap=True, overflow="ellipsis", ratio=1)
        for column, width in (("phase", 8), ("epoch", 7), ("step", 9), ("loss", 6), ("img/s", 6), ("elapsed", 7)):
            table.add_column(column, justify="left" if column == "phase" else "right", no_wrap=True,
                             min_width=width)
        for label, p, age in rows:
            table.add_row(label, str(p.get("phase", "starting")),
                          f"{p['epoch']}/{p.get('epochs', '?')}" if p.get("epoch") is not None else "",
                          f"{p['step']}/{p.get('steps') or '?'}" if p.get("step") is not None else "",
                          f"{p['loss']:.3f}" if p.get("loss") is not None else "",
                          f"{p['images_per_s']:.0f}" if p.get("images_per_s") else "",
                          _clock(age))
        return table


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
