"""The captured DARTS step (and GDAS's all-op pass) at paper size with SPREAD_POOLS on and off: kernels, bytes
(benchmarks/step_traffic.py) and what the step keeps for backward (benchmarks/step_saved.py), counted on the
meta device. Counts, not times. One (method, setting) per process (GDAS's counts at paper size take several
GiB of host memory); run from the repository root:

    for m in darts gdas; do for s in 0 1; do
        python benchmarks/results/2026-12-05-spread-pools/count.py $m $s; done; done \
        > benchmarks/results/2026-12-05-spread-pools/count.log
"""

import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

import step_saved  # noqa: E402
import step_traffic  # noqa: E402

from harness.nn import fused  # noqa: E402


def quiet(fn, *a):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a)


method, spread = sys.argv[1], bool(int(sys.argv[2]))
fused.SPREAD_POOLS = spread
t = quiet(step_traffic.main, ["--method", method, "--space", "darts", "--modes", "fast", "--as-captured"])
s = quiet(step_saved.main, ["--method", method, "--space", "darts", "--modes", "fast", "--as-captured"])
tf, sf = t["modes"]["fast"], s["modes"]["fast"]
print(f"{method} on darts, captured form, SPREAD_POOLS={spread}: {tf['kernels']} kernels, "
      f"{tf['gb_read'] + tf['gb_written']:.2f} GB read + written, {sf['saved_gib']:.3f} GiB kept for backward")
