"""The collapse study of the seed-methods issue: run several methods on RobustDARTS spaces with real
data, then report per run how many operations of the derived *normal* cell are parameter-free (skip,
noise, pooling, none) and the retrained test accuracy.

Every run goes through ``harness run`` (one subprocess per method, so one failure does not stop the
grid) into one results store; ``--report-only`` re-reads the store. The budget is given on the command
line and printed with the table, so a figure always comes with the command that produced it.

    # the GPU budget the issue suggests (10 search epochs on a 10k/10k split, short retrain)
    python benchmarks/collapse_study.py --store runs/collapse-gpu.sqlite --device cuda \\
        --search-images 20000 --search-epochs 10 --eval-images 20000 --eval-epochs 10
    # a small CPU budget (see BENCHMARKS.md for what it can and cannot show)
    OMP_NUM_THREADS=1 python benchmarks/collapse_study.py --store runs/collapse-cpu.sqlite --device cpu \\
        --search-images 1000 --search-channels 8 --search-layers 5 --eval-images 3000 --eval-epochs 5 \\
        --eval-channels 8 --eval-layers 5 --method-set darts-pt:selector.tune_epochs_per_decision=1 \\
        --method-set darts-pt:selector.max_val_batches=4
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("darts,gdas,rome-v2,single-darts,darts-pt,entrannas,beta-darts,darts-minus,sdarts-rs,sdarts-adv,"
           "pc-darts,fairdarts,snas,drnas")


def budget_sets(args) -> list[str]:
    sets = {
        "search.epochs": args.search_epochs, "search.batch_size": args.search_batch,
        "search.channels": args.search_channels, "search.layers": args.search_layers,
        "search.max_train_images": args.search_images,
        "eval.epochs": args.eval_epochs, "eval.batch_size": args.eval_batch,
        "eval.channels": args.eval_channels, "eval.layers": args.eval_layers,
        "eval.max_train_images": args.eval_images, "eval.cutout": args.eval_cutout,
    }
    return [f"{k}={v}" for k, v in sets.items()] + list(args.method_sets)


def run_grid(args) -> None:
    harness = [sys.executable, "-m", "harness.cli"]
    for method in args.methods.split(","):
        sets = []
        for item in budget_sets(args):
            scope, colon, rest = item.partition(":")
            if colon and scope != method:
                continue
            sets += ["--set", rest if colon else item]
        cmd = harness + ["run", "--plugin", method, "--space", args.spaces, "--dataset", args.dataset,
                         "--seeds", args.seeds, "--preset", "quick", "--device", args.device,
                         "--store", args.store, *sets]
        print("$ " + shlex.join(cmd[2:]), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"  {method}: exit {rc} after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def normal_cell(genotype: str) -> list[str]:
    from harness.genotypes import parse_genotype

    return [op for op, _ in parse_genotype(genotype).normal]


def report(args) -> str:
    import json

    from harness.nn.ops import PARAMETER_FREE
    from harness.store import ResultStore

    with ResultStore(args.store) as store:
        records = [r for r in store.records("completed") if r.dataset == args.dataset]
    records.sort(key=lambda r: (r.method, r.space, r.seed, r.id))
    lines = ["| method | space | seed | param-free ops in normal cell | normal cell ops | retrained test acc (%) | run s |",
             "|---|---|---|---|---|---|---|"]
    per_method: dict[str, list[int]] = {}
    for r in records:
        ops = normal_cell(r.genotype)
        free = sum(op in PARAMETER_FREE for op in ops)
        per_method.setdefault(r.method, []).append(free)
        counts: dict[str, int] = {}
        for op in ops:
            counts[op] = counts.get(op, 0) + 1
        text = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {r.method} | {r.space} | {r.seed} | {free}/{len(ops)} | {text} | "
                     f"{r.metrics.get('test_accuracy', float('nan')):.2f} | {r.costs.get('wall_s', float('nan')):.0f} |")
    lines += ["", "| method | runs | mean param-free ops in the normal cell | mean test acc (%) |", "|---|---|---|---|"]
    for method, frees in per_method.items():
        accs = [r.metrics["test_accuracy"] for r in records if r.method == method]
        lines.append(f"| {method} | {len(frees)} | {statistics.mean(frees):.2f} | {statistics.mean(accs):.2f} |")
    if records:
        cfg = records[-1].config
        lines += ["", f"Budget (from the stored configs): search {json.dumps(cfg['search'])}; "
                      f"eval {json.dumps(cfg['eval'])}"]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--spaces", default="s2,s4")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--seeds", default="0-1")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--search-epochs", type=int, default=10)
    ap.add_argument("--search-batch", type=int, default=64)
    ap.add_argument("--search-channels", type=int, default=16)
    ap.add_argument("--search-layers", type=int, default=8)
    ap.add_argument("--search-images", type=int, default=20000, help="both halves of the search split")
    ap.add_argument("--eval-epochs", type=int, default=10)
    ap.add_argument("--eval-batch", type=int, default=96)
    ap.add_argument("--eval-channels", type=int, default=16)
    ap.add_argument("--eval-layers", type=int, default=8)
    ap.add_argument("--eval-images", type=int, default=20000)
    ap.add_argument("--eval-cutout", type=int, default=0)
    ap.add_argument("--method-set", dest="method_sets", action="append", default=[], metavar="METHOD:KEY=VALUE",
                    help="a --set for one method only, e.g. darts-pt:selector.tune_epochs_per_decision=1")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    print(f"# collapse study: {shlex.join(sys.argv)}", file=sys.stderr)
    print(f"# python {platform.python_version()} on {platform.node()}", file=sys.stderr)
    if not args.report_only:
        run_grid(args)
    print(report(args))


if __name__ == "__main__":
    main()
