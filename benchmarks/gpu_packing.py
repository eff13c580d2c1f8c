"""Runs packed on one GPU (issue 13): one DARTS search on NAS-Bench-201 alone, then K of them at once on the
same GPU (``--workers 1 --runs-per-gpu K``: K worker processes sharing the card), for K in ``--packs``.

Each row is one ``harness run`` grid of K seeds in its own store, timed from start to exit. From the
records: each run's search time and search images per second (steps x batch / search seconds); the row's
total (the sum over its runs, which overlap: they start together), the mean per-run slowdown against the
run alone, and the grid's wall time. One JSON line per row is appended to ``--out`` the moment it is
taken. ``--device cpu --tiny`` checks the script on a CPU (K workers instead of K runs on a GPU).

    python benchmarks/gpu_packing.py --out packing.jsonl [--packs 1,4,8] [--device cuda] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_pack(k: int, device: str, tiny: bool) -> dict:
    from harness.store import ResultStore

    if tiny:
        sets = ["--dataset", "digits", "--preset", "smoke", "--set", "search.max_train_images=256"]
    else:  # quick's network and batch; one search epoch on 10k images (78 steps), a token retrain
        sets = ["--dataset", "fashion-mnist", "--data-dir", ".carry", "--preset", "quick",
                "--set", "search.max_train_images=10000"]
    sets += ["--set", "search.epochs=1", "--set", "eval.epochs=1", "--set", "eval.max_train_images=256"]
    pack = ["--workers", "1", "--runs-per-gpu", str(k)] if device.startswith("cuda") else ["--workers", str(k)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.sqlite"
        cmd = [sys.executable, "-m", "harness.cli", "run", "--plugin", "darts", "--space", "nb201",
               "--seeds", f"0-{k - 1}" if k > 1 else "0", "--device", device, "--store", str(store),
               "--quiet", *pack, *sets]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if not store.exists():
            return {"k": k, "exit": done.returncode, "error": done.stderr[-500:]}
        with ResultStore(store) as results:
            recs = results.records(None)
    runs = []
    for r in recs:
        batch = r.config["search"]["batch_size"]
        steps, search_s = r.search.get("steps"), r.costs.get("search_s")
        ips = steps * batch / search_s if (steps and batch and search_s) else None
        runs.append({"seed": r.seed, "status": r.status, "search_s": search_s, "steps": steps,
                     "images_per_s": round(ips, 1) if ips else None, "device": r.device,
                     "runtime": r.search.get("runtime")})
    ok = [x for x in runs if x["images_per_s"]]
    return {"k": k, "exit": done.returncode, "wall_s": round(wall, 1), "runs": runs,
            "completed": sum(x["status"] == "completed" for x in runs),
            "total_images_per_s": round(sum(x["images_per_s"] for x in ok), 1) if ok else None,
            "mean_search_s": round(sum(x["search_s"] for x in ok) / len(ok), 2) if ok else None,
            "command": "harness " + shlex.join(cmd[3:]),
            "stderr_tail": done.stderr[-300:] if done.returncode else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON lines, one per row, appended as each is taken")
    ap.add_argument("--packs", default="1,4,8", help="runs at once on the one GPU, one row each (first: alone)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="digits, smoke sizes: checks the script on a CPU")
    args = ap.parse_args(argv)
    import torch

    env = {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
           "script": "python " + shlex.join(["benchmarks/gpu_packing.py",
                                              *(argv if argv is not None else sys.argv[1:])]),
           "date": time.strftime("%Y-%m-%d")}
    print(f"# {env['script']}  (gpu {env['gpu']}, torch {env['torch']}, python {env['python']})", flush=True)
    print("| runs at once | completed | wall s | mean search s | per-run slowdown | total search img/s |",
          flush=True)
    print("|---|---|---|---|---|---|", flush=True)

    def write(row: dict) -> None:
        with open(args.out, "a") as fh:  # appended and closed at once: survives a kill right after
            fh.write(json.dumps({**env, **row}) + "\n")
        print(f"| {row['k']} | {row.get('completed', 0)}/{row['k']} | {row.get('wall_s')} | "
              f"{row.get('mean_search_s')} | {row['slowdown']} | {row.get('total_images_per_s')} |", flush=True)

    measure([int(x) for x in args.packs.split(",")], args.device, args.tiny, write)
    return 0


def measure(packs: list[int], device: str, tiny: bool, write) -> None:
    """One row per K in ``packs`` (the first is the reference for the slowdown), each handed to ``write``
    the moment it is taken."""
    alone = None
    for k in packs:
        row = run_pack(k, device, tiny)
        if alone is None and row.get("mean_search_s"):
            alone = row["mean_search_s"]
        row["slowdown"] = round(row["mean_search_s"] / alone, 2) if alone and row.get("mean_search_s") else None
        write(row)


if __name__ == "__main__":
    sys.exit(main())
