"""The ``core`` plugin: built-in spaces, datasets and benchmark, and the cross-cutting cost accounting
(wall time and peak device memory) as lifecycle hook wrappers. Registered through the ``harness``
entry-point group like every other plugin."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from harness.plugins import hookimpl

# what `harness run` searches when no --space / --dataset is given: the DARTS space on scikit-learn's bundled
# digits (no download), the README's first command
DEFAULT_SPACE = "darts"
DEFAULT_DATASET = "digits"


@hookimpl
def harness_register_spaces(register):
    from harness.spaces.darts import builtin_darts_spaces
    from harness.spaces.nb201 import NB201Space

    for space in builtin_darts_spaces():
        register(space)
    register(NB201Space())


@hookimpl
def harness_register_datasets(register):
    from harness.data import BUILTIN_LOADERS, DATASETS

    for name, info in DATASETS.items():
        register(info, BUILTIN_LOADERS[name])


@hookimpl
def harness_register_benchmarks(register):
    from harness.benchmarks.nb201 import DATASETS, convert, default_benchmark_path

    def open_nb201(path, trust=False):
        from harness.benchmarks.nb201 import open_benchmark

        return open_benchmark(path, trust=trust)

    register("nb201", open_nb201, spaces=("nb201",), datasets=DATASETS, default_path=default_benchmark_path,
             converter=convert,
             doc="NAS-Bench-201: compact CSV table or an official .pth file (hp=200, mean over seeds); "
                 "$HARNESS_NB201_BENCHMARK or the shared CSV when no --benchmark is given")


@hookimpl
def harness_register_executors(register):
    from harness.executors import local_executor, ray_executor

    register("local", local_executor,
             doc="this machine: one run after another, or --workers N processes (one GPU each, round-robin; "
                 "--runs-per-gpu K runs per GPU)")
    register("ray", ray_executor,
             doc="a Ray cluster (--ray-address, default a local one): each run a Ray task with 1 CPU or "
                 "1/K of a GPU; needs the extra: pip install 'nas-harness[ray]'")


@hookimpl(hookwrapper=True)
def harness_run_start(spec, record):
    import torch

    record.costs["_t0"] = time.perf_counter()
    if torch.cuda.is_available() and record.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        record.costs["_rss_reset"] = reset_peak_rss()
    yield


@hookimpl(hookwrapper=True)
def harness_run_end(spec, record):
    import torch

    t0 = record.costs.pop("_t0", None)
    if t0 is not None:
        record.costs["wall_s"] = time.perf_counter() - t0
    if torch.cuda.is_available() and record.device.startswith("cuda"):
        # (no "device_s": the busy time of the device is not measured here; wall_s and search_s are)
        record.costs["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
    else:
        # a CPU run's best analogue of peak device memory: peak resident memory during this run when
        # the kernel lets us reset the high-water mark, else the process's peak so far (later runs of a
        # grid then inherit earlier peaks; the record says which)
        reset = record.costs.pop("_rss_reset", False)
        peak = peak_rss_bytes() if reset else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
            reset = False
        record.costs["peak_rss_bytes"] = peak
        record.costs["peak_rss_scope"] = "run" if reset else "process"
    yield


_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset this process's resident-memory high-water mark (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """VmHWM from /proc/self/status (peak resident memory since start or the last reset), or None."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
