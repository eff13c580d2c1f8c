"""Host cost of the 1x1 matrix product's two forms on a small host-bound fused DARTS step (batch 2, C=4,
8x8, 8 cells, CPU, one thread): torch.matmul (harness.nn.fused._pointwise uncaptured) against the
_Pointwise autograd Function (its form while a CUDA graph is captured, forced here by making
harness.nn.groups.capturing say so; on the DARTS space nothing else reads it). Alternating, 3 rounds.

    OMP_NUM_THREADS=1 python benchmarks/results/2026-12-04b-shared-units/host_cost.py > .../host_cost.log
"""
import subprocess
import sys

CHILD = r"""
import sys, runpy
from harness.nn import groups
if sys.argv[1] == "function":
    groups.capturing = lambda x: True
sys.argv = ["search_step.py", "--method", "darts", "--space", "darts", "--batch", "2", "--channels", "4",
            "--resolution", "8", "--steps", "15", "--warmup", "3", "--mode", "fast", "--device", "cpu"]
runpy.run_path("benchmarks/search_step.py", run_name="__main__")
"""

for r in range(3):
    for form in ("matmul", "function"):
        out = subprocess.run([sys.executable, "-c", CHILD, form], capture_output=True, text=True, check=True).stdout
        line = next(l for l in out.splitlines() if "ms/step" in l)
        print(f"round {r + 1}, {form}: {line}", flush=True)
