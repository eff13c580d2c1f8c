"""Reading files the harness did not write without running what they say.

Unpickling executes whatever a pickle asks for: any importable callable with any arguments. The files
users point the harness at (dataset pickles, benchmark files, checkpoints) come from the internet or a
shared drive, so none is unpickled with the plain ``pickle``/``torch.load(weights_only=False)``:

* dataset pickles (CIFAR-10/100 batches, NAS-Bench-201's ImageNet16 batches) go through
  :class:`DatasetUnpickler`, which resolves only the globals such files hold: NumPy's array and dtype
  reconstruction and ``_codecs.encode`` (how Python 3 pickles ``bytes`` at protocol 2) plus a few
  builtin containers. Any other global is refused before it is imported or called, with one line
  naming the file and the global (:func:`load_dataset_pickle`).
* checkpoints are plain tensors and containers, written and read with ``torch.load(weights_only=True)``
  (``harness.checkpoint``).
* official NAS-Bench-201 ``.pth`` files are unpickled in full only when their SHA-256 is a known
  release's or the user says ``--trust-benchmark-file`` (``harness.benchmarks.nb201``).
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# (module, name) pairs a dataset pickle may resolve. NumPy moved numpy.core to numpy._core in 2.0; files
# name whichever the writer had. Nothing here runs code chosen by the file beyond building arrays.
DATASET_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    *((core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    *((core, "_frombuffer") for core in ("numpy.core.numeric", "numpy._core.numeric")),  # protocol 5 arrays
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # Python 3 writing bytes at protocol <= 2
    *((b, name) for b in ("builtins", "__builtin__") for name in ("set", "frozenset", "bytearray")),
})


class ForbiddenGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class DatasetUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :data:`DATASET_GLOBALS` (and no persistent ids)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in DATASET_GLOBALS:
            raise ForbiddenGlobal(module, name)
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenGlobal("persistent_id", repr(pid)[:60])


def load_dataset_pickle(path: str | Path, *, encoding: str = "latin1") -> Any:
    """Unpickle a dataset file with :class:`DatasetUnpickler`.

    ``encoding='latin1'`` reads Python 2 pickles (the CIFAR files) as the reference loaders do. A file that
    asks for anything else raises :class:`harness.errors.HarnessError` naming the file and the global;
    other unpickling failures propagate (the caller reports the file as corrupt)."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return DatasetUnpickler(io.BytesIO(data), encoding=encoding).load()
    except ForbiddenGlobal as exc:
        raise HarnessError(
            f"refusing to unpickle {path}: it asks for {exc.module}.{exc.name}, which a dataset file never "
            f"needs (only builtin containers, NumPy arrays and dtypes are read); nothing from the file was run"
        ) from None


def weights_only_refusal(exc: BaseException) -> str | None:
    """The global ``torch.load(weights_only=True)`` refused, from its error; None if it failed otherwise
    (a truncated or damaged file)."""
    text = str(exc)
    if "Weights only load failed" not in text and "Unsupported global" not in text:
        return None
    found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported global:?\s+([\w.]+)", text)
    return found.group(1) if found else "an object outside tensors and plain containers"
