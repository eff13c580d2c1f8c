"""Tabular benchmarks that answer "how good is this architecture" without training (NAS-Bench-201)."""

from harness.benchmarks.nb201 import (
    BenchmarkResult,
    BenchmarkSource,
    NB201Benchmark,
    convert,
    default_benchmark_path,
    open_benchmark,
)

__all__ = [
    "BenchmarkResult",
    "BenchmarkSource",
    "NB201Benchmark",
    "convert",
    "default_benchmark_path",
    "open_benchmark",
]
