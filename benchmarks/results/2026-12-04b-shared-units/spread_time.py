"""The fused DARTS step with SPREAD_DEPTHWISE on and off, alternating, on this CPU (one thread): small and
smoke-sized (3 cells, C=4). OMP_NUM_THREADS=1 python benchmarks/results/2026-12-04b-shared-units/spread_time.py"""
import subprocess, sys
CHILD = r"""
import sys, runpy
import harness.nn.fused as fused
fused.SPREAD_DEPTHWISE = sys.argv[1] == "spread"
res = sys.argv[2]
sys.argv = ["search_step.py", "--method", "darts", "--space", "darts", "--batch", sys.argv[3], "--channels", "4",
            "--layers", "3", "--resolution", res, "--steps", "10", "--warmup", "2", "--mode", "fast", "--device", "cpu"]
runpy.run_path("benchmarks/search_step.py", run_name="__main__")
"""
for batch, res in (("2", "8"), ("32", "28")):
    for r in range(2):
        for form in ("repeat", "spread"):
            out = subprocess.run([sys.executable, "-c", CHILD, form, res, batch], capture_output=True, text=True, check=True).stdout
            line = next(l for l in out.splitlines() if "ms/step" in l)
            print(f"batch {batch}, {res}x{res}, round {r + 1}, {form}: {line[:70]}", flush=True)
