"""Stopping on request (issue 13): SIGTERM and SIGINT, what Slurm and Ray send before a preemption and what
Ctrl-C sends, make the running runs stop at their next step boundary instead of dying mid-step.

``install()`` (a context manager, used by ``harness.runner.execute`` in the driver and by each local
worker process) sets the handlers; the first signal only records itself, a second SIGINT stops at once
(KeyboardInterrupt). The search and retrain loops call :func:`check` at every step boundary; it raises
:class:`RunInterrupted` once a stop was requested, and the runner records the run as ``interrupted``.
Its last epoch checkpoint stays, so the next ``harness run`` of the grid goes on from it (at most the
epoch in progress is run again). No torch import here: workers install it before anything else.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_requested: list[str] = []  # the name of the first signal received, once one was


class RunInterrupted(Exception):
    """A stop was requested (SIGTERM/SIGINT); raised at a step boundary."""


def requested() -> str | None:
    """The signal that asked the runs to stop (e.g. "SIGTERM"), or None."""
    return _requested[0] if _requested else None


def request(name: str) -> None:
    if not _requested:
        _requested.append(name)


def check(where: str) -> None:
    """At a step boundary: raise RunInterrupted if a stop was requested."""
    if _requested:
        raise RunInterrupted(f"interrupted by {_requested[0]} during {where}")


def _handler(signum, frame):
    name = signal.Signals(signum).name
    if _requested and signum == signal.SIGINT:
        raise KeyboardInterrupt  # a second Ctrl-C: stop now
    request(name)


_installed: list[tuple[int, ...]] = []  # the signals of the install() blocks now open


def reclaim() -> None:
    """Point the signals of the open :func:`install` block at the stop handler again, after a library
    replaced them (``ray.init`` sets a SIGTERM handler that exits the driver at once)."""
    if _installed and threading.current_thread() is threading.main_thread():
        for s in _installed[-1]:
            signal.signal(s, _handler)


@contextlib.contextmanager
def install(signals=(signal.SIGTERM, signal.SIGINT)):
    """Handle ``signals`` as stop requests while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in signals}
    _installed.append(tuple(signals))
    try:
        yield
    finally:
        _installed.pop()
        for s, h in previous.items():
            signal.signal(s, h)
        _requested.clear()
