"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from collections.abc import Iterable


class HarnessError(Exception):
    """Bad input or an unusable environment; the message says what was wrong and how to fix it."""


def unknown(kind: str, value: object, choices: Iterable[str]) -> HarnessError:
    """The standard error for a name that is not one of ``choices``."""
    listed = ", ".join(sorted(choices)) or "(none installed)"
    return HarnessError(f"unknown {kind} {value!r}; valid choices: {listed}")
