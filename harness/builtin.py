"""The ``core`` plugin: built-in spaces and benchmark, and the cross-cutting cost accounting
(wall time and peak device memory) as lifecycle hook wrappers. Registered through the ``harness``
entry-point group like every other plugin."""

from __future__ import annotations

import resource
import time

from harness.plugins import hookimpl


@hookimpl
def harness_register_spaces(register):
    from harness.spaces.darts import builtin_darts_spaces
    from harness.spaces.nb201 import NB201Space

    for space in builtin_darts_spaces():
        register(space)
    register(NB201Space())


@hookimpl
def harness_register_benchmarks(register):
    def open_nb201(path):
        from harness.benchmarks.nb201 import open_benchmark

        return open_benchmark(path)

    register("nb201", open_nb201, spaces=("nb201",),
             doc="NAS-Bench-201: compact CSV table or an official .pth file (hp=200, mean over seeds)")


@hookimpl(hookwrapper=True)
def harness_run_start(spec, record):
    import torch

    record.costs["_t0"] = time.perf_counter()
    if torch.cuda.is_available() and record.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    yield


@hookimpl(hookwrapper=True)
def harness_run_end(spec, record):
    import torch

    t0 = record.costs.pop("_t0", None)
    if t0 is not None:
        record.costs["wall_s"] = time.perf_counter() - t0
    if torch.cuda.is_available() and record.device.startswith("cuda"):
        record.costs["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
        record.costs["device_s"] = record.costs.get("wall_s")
    else:
        # ru_maxrss is KiB on Linux: the process's peak resident memory, a CPU run's best analogue
        record.costs["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
