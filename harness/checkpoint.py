"""Checkpoints that never run code when read.

A checkpoint holds only what ``torch.load(weights_only=True)`` reads without running anything: tensors,
dicts, lists and tuples of them, and numbers, strings, booleans and None. :func:`save_checkpoint`
checks that before writing (naming the key that holds anything else) and writes atomically (a temporary
name in the same folder, then a rename), so a run killed mid-write leaves the previous checkpoint;
:func:`load_checkpoint` reads with ``weights_only=True`` only and turns a refusal into one line naming
the file. :func:`rng_state` / :func:`set_rng_state` carry the Python, NumPy and torch random states in
that form (NumPy's state array travels as a tensor).
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.safeload import weights_only_refusal

_SCALARS = (bool, int, float, str, type(None))


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise HarnessError unless ``obj`` is tensors, plain containers and scalars only."""
    import torch

    if isinstance(obj, _SCALARS) or isinstance(obj, torch.Tensor) and type(obj) is torch.Tensor:
        return
    if type(obj) in (list, tuple):
        for i, item in enumerate(obj):
            check_plain(item, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):  # OrderedDict: what state_dict() returns; weights_only reads it
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise HarnessError(f"checkpoint {where} has a key of type {type(key).__name__} ({key!r}); "
                                   f"keys must be strings or integers")
            check_plain(value, f"{where}[{key!r}]")
        return
    raise HarnessError(f"checkpoint {where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint "
                       f"holds only tensors, dicts, lists, tuples, numbers, strings, booleans and None")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (checked by :func:`check_plain`) to ``path`` atomically; returns the path."""
    import torch

    check_plain(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: anything but tensors and plain containers
    is refused (HarnessError naming the file), never run."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a refused global, or a truncated archive, not a torch file, ...
        refused = weights_only_refusal(exc)
        if refused is not None:
            raise HarnessError(f"refusing checkpoint {path}: it asks for {refused}, which a checkpoint never holds "
                               f"(only tensors and plain containers); nothing was run") from None
        raise HarnessError(f"corrupt checkpoint {path}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                           ) from None
    if not isinstance(state, dict):
        raise HarnessError(f"corrupt checkpoint {path}: expected a dict, got {type(state).__name__}")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU, and CUDA when present) random states, in checkpoint-safe form."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                       float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
