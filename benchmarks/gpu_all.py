"""`gpu_session.sh all`: every missing GPU figure in one device call, in priority order, within a budget.

Step measurements run in one worker process (``search_step.main`` per item: torch and the plugins are
imported once, not once per item); the two end-to-end searches run ``harness run`` as subprocesses,
each with its own store. Every result is appended to ``all.jsonl`` as one JSON line the moment it is
taken, so a call cut off by the device's time limit still returns everything measured before. An item
starts only if its estimate fits in what is left of ``--budget``; a skipped or failed item is a JSON
line saying so.

This process only watches the worker (:func:`supervise`): a kernel that has never run on a GPU (the
Triton depthwise, slot and BatchNorm kernels) can kill the process, leave its CUDA context unusable (an
illegal address is sticky: every later CUDA call in that process fails) or hang, and in one process that
would lose every item after it. An item that kills its worker or runs past its limit
(:data:`ITEM_LIMIT`) gets a "failed" line saying so, and a new worker takes the items after it.

    python benchmarks/gpu_all.py --out DIR [--budget 510] [--tiny]
    python benchmarks/gpu_all.py --out DIR --budget 250 --rest-of FIRST/all.jsonl   # a second call: the rest
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
OTHER_METHODS = ("gdas", "rome-v2", "entrannas", "darts-2nd", "single-darts", "darts-pt-fixed-alpha",
                 "entrannas-dst", "rome-v1")
ISSUE_17 = ("gdas", "rome-v1", "rome-v2", "entrannas", "entrannas-dst")
# the baselines' step items (issue 12): estimates in seconds, never timed on a GPU. Grounded since 2026-12-05 (tenth
# session) in the items with the same arguments that the H200 did time (2026-12-04b-gpu: single-darts 10.9 s,
# darts-pt-fixed-alpha 9.3 s, both the mixed cell), scaled by eager kernels a step where a cell is its own (CPU
# counts with foreach optimizers, BENCHMARKS.md: single-darts 15,057, pc-darts 12,283, drnas 11,345, darts-minus
# 27,112; an eager step on a GPU is launch-bound), times 1.3. Before: 20-35 s each (230 s together, now 200 s with
# the drift baselines below), so that a tight budget skipped them sooner than needed. SDARTS-ADV (7 PGD passes a
# step, 3 steps) stays a guess. PC-DARTS, DrNAS and DARTS- have 10 s more for two rounding baselines (two more
# eager passes: items())
BASELINES = {"pc-darts": 25, "drnas": 25, "snas": 15, "fairdarts": 15, "sdarts-rs": 15, "sdarts-adv": 55,
             "beta-darts": 15, "darts-minus": 35}
TINY_BASELINES = ("pc-darts", "drnas", "sdarts-adv", "darts-minus")
TINY_SYNC_CHECKED = ("gdas darts", "rome-v2 darts", "entrannas darts", "entrannas darts device")


def _load(name: str):
    """One of the benchmark scripts beside this one, as a module."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _search_step():
    return _load("search_step")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def items(tiny: bool):
    """(estimate_s, label, kind, args) in priority order. Estimates: each item's time on the H200 runs of
    2026-12-04 (benchmarks/results/2026-12-04-gpu/ and 2026-12-04b-gpu/, ``item_s``) at the sizes below,
    times about 1.3, so that an item is not cut in the middle. Measured there: about 490 s up to and
    including the end-to-end items (ROME's two chosen-op items estimated: they failed that run), the
    variants items about 50 s more, the float64 check 19 s, packing 306 s: a 510 s budget skips the last
    ones, and a second call takes them (``--only``)."""
    size = ["--batch", "4", "--channels", "4", "--layers", "3", "--resolution", "16"] if tiny else []
    # TINY: one step and no warm-up per mode (a CPU check of the script's paths: its times are not kept; on a CUDA
    # device a CUDA graph's warm-up is taken regardless). 53 s instead of 60 on the CPU machine (2026-12-05)
    mid, few, warm = ("1", "1", "0") if tiny else ("15", "6", "5")
    step = ["--warmup", warm, "--compare", *size]
    # DARTS: the drift verdict that decides runtime.cuda_graph's default, against three rounding baselines
    # (one draw left the darts graph step "outside" by one step on 2026-12-04; BENCHMARKS.md)
    draws = ["--drift-baseline", "--baseline-draws", "3", "--sync-check"]
    # issue 17's drift verdicts came out "outside" by one step for GDAS, ROME's all-op pass and EnTranNAS-DST
    # against the 1-ulp float32 baseline, which sits below cuDNN's TF32 rounding (BENCHMARKS.md, the second H200
    # run): those items and the slot items also take a baseline at TF32's rounding unit
    tf32 = ["--tf32-baseline"]
    out = [(130, "darts darts", "step", ["--method", "darts", "--space", "darts", "--steps", mid, *step, *draws]),
           (50, "darts nb201", "step", ["--method", "darts", "--space", "nb201", "--steps", "1" if tiny else "30",
                                        *step, *draws]),
           # issue 12's memory target: the fused sums recomputed in backward (1.4 GiB less kept, counted on a
           # CPU: BENCHMARKS.md), timed against the same eager step
           (40, "darts darts recompute", "step", ["--method", "darts", "--space", "darts", "--steps", few if tiny else "10",
                                                  *step, "--set", "runtime.fast_recompute=true"]),
           # issue 12: which kernels hold DARTS's step (115.8 ms captured against a 23 ms traffic floor)
           (40, "profile darts darts", "profile", ["--method", "darts", "--space", "darts", *size, "--top", "25",
                                                   "--steps", "1" if tiny else "3", "--warmup", warm])]
    # issue 17's methods (their own fused / device-chosen paths) with the rounding baseline and the sync
    # check; ROME's eager step is ~0.8 s, its grouped ones K=7 samples. Since 2026-12-05 ROME v2's and v1's defaults
    # also have a graph mode (the slots): their item is about the H200's two former ROME v2 items in one (35.6 s
    # without a graph mode, 44.1 s for the slots with a second baseline), so 55 s
    est = {"rome-v2": 55, "rome-v1": 55, "darts-2nd": 51, "gdas": 23, "entrannas-dst": 25}
    # TINY: ROME with K=2 samples (its grouped and routed passes are the same code; the CPU check stays under
    # a minute)
    k_tiny = ["--set", "optimizer.samples=2"] if tiny else []
    out += [(est.get(m, 20), f"{m} darts", "step",
             ["--method", m, "--space", "darts", "--steps", few, *step,
              *(["--drift-baseline", "--sync-check"] if m in ISSUE_17 else []),
              *(tf32 if m in ("gdas", "entrannas-dst") else []), *(k_tiny if m.startswith("rome") else [])])
            for m in OTHER_METHODS]
    # ROME's default (optimizer.group_ops=auto, cell.slots=auto since 2026-12-05) is timed by "rome-v2 darts": its
    # fast mode (uncaptured) the chosen-op pass, its graph mode the all-op pass through the conv slots; GDAS's
    # graph mode is its slots. The forms they replaced come after the baselines (below)
    # EnTranNAS(-DST) with transit cells derived on the device uncaptured too (transit_on_device=auto, the
    # default, derives on the device only in the captured step, on the host otherwise)
    for m in ("entrannas", "entrannas-dst"):
        at = [label for _, label, _, _ in out].index(f"{m} darts")
        out.insert(at + 1, (20, f"{m} darts device", "step",
                            ["--method", m, "--space", "darts", "--steps", few, *step, "--drift-baseline",
                             "--sync-check", "--set", "cell.transit_on_device=true"]))
    e2e = (["--dataset", "digits", "--preset", "smoke", "--set", "search.max_train_images=256"] if tiny else
           ["--dataset", "fashion-mnist", "--data-dir", ".carry", "--preset", "quick"])
    e2e += ["--set", "search.epochs=1", "--set", "eval.epochs=1",
            "--set", f"eval.max_train_images={256 if tiny else 2000}"]
    # "e2e graph" as a user runs it: runtime.cuda_graph=auto (the default since 2026-12-04) captures on CUDA
    out += [(30, "e2e graph", "e2e", e2e),
            (73, "e2e eager", "e2e", [*e2e, "--set", "runtime.fast=false", "--set", "runtime.cuda_graph=false"])]
    # issue 12: the captured DARTS step in other forms of the same math (step_variants.py), after the items
    # issue 12 asks `all` for (a tight budget skips these first). Ranked on 2026-12-04 (no-merge+pw-matmul
    # 1.09x the old merge+conv form, channels_last 0.79x); the default since also spreads the first
    # depthwise conv per source (SPREAD_DEPTHWISE: 0.94 GiB less kept for backward, counted on a CPU), so
    # darts times the default against both earlier forms. TINY: two forms each, the switches and the memory
    # format exercised (nb201 with channels_last), so the CPU check stays under a minute.
    # The depthwise convs in Triton kernels (harness.nn.dwconv, on in captured steps since 2026-12-05's H200 run:
    # the "triton-dw" variant 92.0 ms against 104.8): each geometry of the DARTS step against torch's kernels (92
    # kernel forms to compile, 27 s on this CPU with an empty Triton cache, then CUDA-graph replays of 80
    # geometries: estimated; its one GPU try failed in its first capture, a fault of this script's, fixed: an
    # autograd graph kept alive across the capture, tests/test_kernel_bench.py). TINY: the two most-called
    # geometries of a smaller net, in Triton's interpreter.
    out += [(55, "dwconv darts", "dwconv", ["--method", "darts", "--space", "darts", "--reps", "1" if tiny else "20",
                                            *(["--batch", "2", "--channels", "2", "--layers", "2", "--resolution",
                                               "8", "--max-geometries", "2"] if tiny else [])])]
    # the step's training BatchNorm calls, torch's kernels against harness.nn.bntriton's (at 8 and 1 images a
    # statistics program), shape by shape (29 shapes at paper size, 26 kernel forms to compile; never run on a
    # GPU: estimated). TINY: the two most-called shapes, in the interpreter
    out += [(35, "bn darts", "bn", ["--method", "darts", "--space", "darts", "--reps", "1" if tiny else "20",
                                    *(["--batch", "2", "--channels", "2", "--layers", "2", "--resolution", "8",
                                       "--max-shapes", "2"] if tiny else [])])]
    # BatchNorm in Triton kernels too (harness.nn.bntriton, off by default: torch's NCHW kernels ran at a fifth
    # of the memory's bandwidth in the H200 profile), with the depthwise ones (the default's) and without
    # ("triton-bn"); "spread", the default before 2026-12-05 (torch's depthwise kernels), checks the switch taken
    # then. no-merge+pw-matmul, the form before the spread ones (timed three times), gave its place
    out += [(85, "variants darts darts", "variants", ["--method", "darts", "--space", "darts", *size,
                                                      "--variants", "default,triton-dw+bn" if tiny else
                                                      "default,triton-dw+bn,spread,triton-bn",
                                                      "--steps", "1" if tiny else "10", "--warmup", warm]),
            # nb201: its BatchNorm in Triton kernels against the default (no-merge, which tied twice, gave way)
            (25, "variants darts nb201", "variants", ["--method", "darts", "--space", "nb201", *size,
                                                      "--variants", "default,channels-last" if tiny else
                                                      "default,triton-bn",
                                                      "--steps", "1" if tiny else "10", "--warmup", warm])]
    # Since 2026-12-05 (eleventh session) issue 17's open targets (GDAS and ROME v2 at 2.4-2.9x their eager steps
    # against 3x on the third H200 run) come right after the DARTS kernel forms, before the baselines, which that
    # run timed all but two of: their variants and profiles are what the next cut needs.
    # issue 17: GDAS's captured step through the conv slots (the default since 2026-12-05) against the all-op
    # pass with the Triton depthwise kernels (DEPTHWISE_TRITON, also the default since then), side by side
    # and both slot steps with BatchNorm in Triton kernels (the slots' BatchNorm calls go through
    # harness.nn.groups.batch_norm: BATCHNORM_TRITON applies; 352 forward and 337 backward calls in GDAS's step, 496
    # and 463 in ROME's, counted on a CPU: BENCHMARKS.md), the lever the DARTS profile points to (torch's NCHW
    # BatchNorm kernels at a fifth of the memory's bandwidth; "bn darts": 7.13 against 10.98 ms a forward)
    out += [(60, "variants gdas darts", "variants", ["--method", "gdas", "--space", "darts", *size,
                                                     "--variants", "default,all-op,triton-bn",
                                                     "--steps", "1" if tiny else "10", "--warmup", warm]),
            (60, "variants rome-v2 darts", "variants", ["--method", "rome-v2", "--space", "darts", *size,
                                                        "--variants", "default,triton-bn",
                                                        "--steps", "1" if tiny else "8", "--warmup", warm,
                                                        *k_tiny])]
    # issue 17: where the slot steps' kernel time goes (uncaptured, in the captured form), for the next cut: GDAS
    # and ROME v2 (K=7). TINY: the captured form without the slots (which a CPU runs only in Triton's interpreter,
    # minutes here), ROME with K=2
    no_slots = ["--set", "cell.slots=false"] if tiny else []
    out += [(40, "profile gdas darts", "profile", ["--method", "gdas", "--space", "darts", *size, "--top", "25",
                                                   "--steps", "1" if tiny else "3", "--warmup", warm,
                                                   "--as-captured", *no_slots]),
            (60, "profile rome-v2 darts", "profile", ["--method", "rome-v2", "--space", "darts", *size, "--top",
                                                      "25", "--steps", "1" if tiny else "2", "--warmup", warm,
                                                      "--as-captured", *no_slots, *k_tiny])]
    # issue 12's "every other method on darts": the baselines added since the H200 runs (issues 15, 16), never
    # timed on a GPU; each eager vs fast vs graph (every method's step is capturable since 2026-12-05, and the
    # partial-channel cells of pc-darts and drnas and darts-minus's auxiliary skip run fused on the fast path: their
    # kernels a step 2.8-3.5x fewer, counted on a CPU). After the items that decide issue 12's targets, before the
    # extras for the next cut. darts-pt's search step is darts's
    # (same sampler, optimizer and cell: item "darts darts"). Estimates: BASELINES; SDARTS-ADV's 7 PGD steps a
    # step, so fewer steps
    k = (["--set", "cell.k=2", "--set", "optimizer.k_schedule=2,1"] if tiny else  # C=16: K must divide it
         ["--set", "cell.k=4", "--set", "optimizer.k_schedule=4,2"])  # (the quick preset's; the paper's 6,4 at C=36)
    adv = ["--steps", "3", "--warmup", "2"] if not tiny else ["--steps", few, "--warmup", warm,
                                                             "--set", "optimizer.pgd_steps=1"]  # (TINY: 1 of 7)
    # TINY: the four whose cell or optimizer is their own (partial channels, progressive stages, PGD, the auxiliary
    # skip); SNAS, FairDARTS, SDARTS-RS and beta-DARTS run the mixed cell under a first-order-family optimizer
    # (each method's step on every space: tests/test_components_contract.py; captured: tests/test_graphs.py)
    # PC-DARTS and DrNAS leave alpha alone in their first epochs (warm-up: 15 of 50, 10 of each stage's 25), and
    # search_step.py times the step of epoch 0: with no warm-up the step timed is the arch step plus the weight step
    # that the rest of their search takes, and the drift check reaches alpha. The three cells that run fused since
    # 2026-12-05 (partial channels, the auxiliary skip) also take the 1-ulp and the TF32-unit rounding baselines
    # (the fused form's fp32 drift on the GPU; on this CPU within three 1-ulp draws on Fashion-MNIST:
    # BENCHMARKS.md), at about two more eager passes each (not in TINY: 4 s more of the suite's time, on a path that
    # issue 17's items already take there)
    own = {"pc-darts": ["--set", "optimizer.warmup_epochs=0"],
           "drnas": [*k, "--set", "optimizer.warmup_epochs=0"]}
    fused_since = ("pc-darts", "drnas", "darts-minus")
    out += [(est, f"{m} darts", "step",
             ["--method", m, "--space", "darts", *(adv if m == "sdarts-adv" else ["--steps", few, "--warmup", warm]),
              "--compare", *size, *own.get(m, []),
              *(["--drift-baseline", *tf32] if m in fused_since and not tiny else [])])
            for m, est in BASELINES.items() if not tiny or m in TINY_BASELINES]
    # the captured forms the slots replaced as the defaults on CUDA (2026-12-05: GDAS 106.2 against 67.1 ms, ROME's
    # all-op pass 685.7 against 332.9), after the baselines, timed again against the new defaults (gpu_tables.py's
    # rules decide both)
    out += [(23, "gdas darts all-op", "step",
             ["--method", "gdas", "--space", "darts", "--steps", few, *step, "--drift-baseline", "--sync-check",
              *tf32, "--set", "cell.slots=false"]),
            (66, "rome-v2 darts all", "step",
             ["--method", "rome-v2", "--space", "darts", "--steps", few, *step, "--drift-baseline", "--sync-check",
              *tf32, "--set", "optimizer.group_ops=all", "--set", "cell.slots=false", *k_tiny])]
    # issue 17: if a drift verdict says "outside", whether float32 rounding met a kink (ReLU, argmax) or the
    # math differs: each float32 mode against the float64 step, on the GPU (toy sizes; BENCHMARKS.md)
    out += [(25, "f64 rome-v2", "f64", ["--method", "rome-v2", "--space", "darts", "--steps", "2" if tiny else "6",
                                        "--modes", "eager", "fast"])]
    # issue 13: quick nb201 searches alone, then 4 and 8 at once on the GPU (162 s on the H200)
    # (306 s on the H200 of the second 2026-12-04 run: 25 + 84 + 197)
    out += [(320, "packing", "packing", ["1"] if tiny else ["1", "4", "8"])]  # tiny: the plumbing only
    # Since the ninth session of 2026-12-04: items two H200 runs already measured, on paths no later change
    # touched except through shared code (DARTS's second order, Single-DARTS, DARTS-PT's fixed alpha,
    # EnTranNAS-DST, which met its 3x; ROME v1, whose grouped passes are v2's code) go after the end-to-end and
    # kernel-form items, so that one call's budget reaches what is
    # still open: the slots, the end-to-end search with CUDA graphs on by default, the Triton depthwise kernels
    # (and since 2026-12-05 the eager end-to-end search, timed twice on unchanged code: 42.7 s on the H200, so that
    # the first call reaches the kernel-form items that decide DEPTHWISE_TRITON and BATCHNORM_TRITON)
    # "variants darts nb201" stays right after darts's variants since 2026-12-05 (third session): its new form
    # (BatchNorm in Triton kernels) may decide nb201's 30 ms target (31.4 ms on the H200), and a second call of
    # 250 s takes the skipped items in this order
    # Since 2026-12-05 (sixth session) "darts darts recompute" goes there too: measured twice (7.18 GiB, 122.8 ms on
    # the H200), off by default, and the default's own peak (in "darts darts") was cut 1.9 GiB since, counted on a
    # CPU, so the first call's budget goes to the items that decide the kernel switches first
    later = ("darts darts recompute", "e2e eager", "darts-2nd darts", "single-darts darts", "darts-pt-fixed-alpha darts", "entrannas-dst darts",
             "entrannas-dst darts device", "rome-v1 darts")
    moved = [item for item in out if item[1] in later]
    out = [item for item in out if item[1] not in later]
    at = [label for _, label, _, _ in out].index("f64 rome-v2")
    out = out[:at] + moved + out[at:]
    if tiny:  # the meta-device sync check (a CPU's stand-in for CUDA's) only where tests/test_gpu_session.py reads
        # it: 0.2-0.9 s more an item in meta kernels that torch runs in Python (8 items: 5 s of the 53 s on this
        # CPU, 2026-12-05); each form's own host reads are pinned by its unit tests (tests/test_single_path_fast.py,
        # test_transit_on_device.py, test_slots.py)
        out = [(est, label, kind, args if label in TINY_SYNC_CHECKED else [a for a in args if a != "--sync-check"])
               for est, label, kind, args in out]
    return out


def packing(packs: list[str], tiny: bool, write) -> None:
    """benchmarks/gpu_packing.py's rows: on CUDA K runs on the one GPU; on a CPU (tiny) K workers."""
    _load("gpu_packing").measure([int(k) for k in packs], "cuda" if _cuda() else "cpu", tiny, write)


def e2e_run(label: str, args: list[str], out: Path) -> dict:
    """One quick-preset DARTS search on nb201 (the figure is the search time) in its own store: runtime
    settings are not part of a run's identity, so a shared store would skip the second run."""
    store = out / f".e2e-{label.replace(' ', '-')}.sqlite"
    store.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "harness.cli", "run", "--plugin", "darts", "--space", "nb201", "--seeds", "0",
           "--store", str(store), "--device", "auto", *args]
    subprocess.run(cmd, check=True)
    from harness.store import ResultStore

    with ResultStore(store) as results:
        (rec,) = results.records(None)
    return {"label": label, "status": rec.status, "error": rec.error, "device": rec.device,
            "search_s": rec.costs.get("search_s"), "wall_s": rec.costs.get("wall_s"),
            "steps": rec.search.get("steps"), "runtime": rec.search.get("runtime"), "genotype": rec.genotype,
            "command": rec.command}


# An item running longer than max(ITEM_LIMIT[0] x its estimate, its estimate + ITEM_LIMIT[1] s) is taken as
# hung and its worker stopped. The estimates are 1.3x the H200's times where measured, guesses where not (the
# Triton kernels' items): a slow item is let run to about three times its guess, not more, so that one hang
# costs at most the time of the items it would have pushed out anyway.
ITEM_LIMIT = (3.0, 90.0)
# The worker's exit status after an item failed on CUDA (the context unusable, or memory the item may still hold:
# _hand_off): a new worker takes the rest.
CONTEXT_LOST = 3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=510.0, help="seconds for all items together")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: checks the script on a CPU")
    ap.add_argument("--only", default="", help="comma-separated item labels (e.g. 'e2e graph,e2e eager'): "
                    "take just these, in priority order (what an earlier call's time limit skipped)")
    ap.add_argument("--rest-of", metavar="JSONL", help="an earlier call's all.jsonl: take every item it did not "
                    "take (skipped by its budget, or never reached before its time limit), in priority order; an "
                    "item it measured or that failed there is left out (--only retakes one)")
    # the worker's: the call's start (time.time()), so that every worker keeps the call's one budget
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = items(args.tiny)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        labels = [label for _, label, _, _ in todo]
        unknown = [w for w in wanted if w not in labels]
        if unknown:
            ap.error(f"--only: unknown item(s) {unknown}; items are {labels}")
        todo = [item for item in todo if item[1] in wanted]
    if args.rest_of:
        if args.only:
            ap.error("--rest-of and --only: give one of them")
        todo = rest_of(todo, Path(args.rest_of), ap.error)
    if args.worker:
        return work(args, todo, out)
    if not todo:  # (--rest-of a call that took every item): no worker to start
        print("nothing to take", flush=True)
        return 0
    started = time.time()

    def worker(labels: list[str]) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--worker", "--out", str(out),
                "--budget", str(args.budget), "--started", repr(started), "--only", ",".join(labels),
                *(["--tiny"] if args.tiny else [])]

    supervise(out, todo, worker)
    print(f"done in {time.time() - started:.0f} s: {out / 'all.jsonl'}", flush=True)
    return 0


def rest_of(todo: list, earlier: Path, error) -> list:
    """``todo``'s items that the call which wrote ``earlier`` (its all.jsonl) did not take: skipped by its budget
    or never reached (its time limit ended it first, or cut its line); one it measured, or that failed there, is
    taken. Prints what it takes, so that the second call's log says what it is the rest of."""
    if not earlier.is_file():
        error(f"--rest-of: {earlier} is not a file (give the all.jsonl an earlier call returned)")
    records = _records(earlier)
    labels = {label for _, label, _, _ in todo}
    if not {item_label(r) for r in records} & labels:
        error(f"--rest-of: {earlier} has no line naming one of this script's items (is it the all.jsonl of "
              f"`gpu_session.sh all`?); items are {sorted(labels)}")
    done = {r.get("item") or r.get("failed") for r in records} & labels
    rest = [item for item in todo if item[1] not in done]
    print(f"rest of {earlier}: {len(done)} item(s) taken there ({', '.join(sorted(done))}); "
          f"{len(rest)} to take: {', '.join(label for _, label, _, _ in rest)}", flush=True)
    return rest


def _records(jsonl: Path) -> list[dict]:
    """The lines written so far (a line cut off by a kill is not one)."""
    if not jsonl.exists():
        return []
    out = []
    for line in jsonl.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def item_label(record: dict) -> str | None:
    """The item a line of all.jsonl belongs to: a measurement ("item"), or one that "failed" or was "skipped"
    (gpu_tables.py reads the lines by it too)."""
    return record.get("item") or record.get("failed") or record.get("skipped")


def _append(jsonl: Path, record: dict) -> None:
    """One line, appended by one write call (a buffered file writes a long line in pieces, which a kill
    could cut between) and closed at once: it survives a kill right after."""
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(jsonl, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def _ended(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def supervise(out: Path, todo: list, worker, limit=None, poll_s: float = 0.2) -> None:
    """Take ``todo``'s items in worker processes (``worker(labels)``: its command line) until each
    has a line in ``out/all.jsonl``. A worker names the item it is taking in ``out/all.current``
    (``{"label", "t"}``, removed once the item's line is written). When a worker dies inside an item, or
    the item outlives ``limit(estimate)`` seconds (then it and its subprocesses are killed), the item gets a
    "failed" line saying which, and a new worker takes the items after it; a worker that ends without
    taking any item leaves its items "failed" with its exit status (no endless restarts)."""
    limit = limit or (lambda est: max(ITEM_LIMIT[0] * est, est + ITEM_LIMIT[1]))
    jsonl, current = out / "all.jsonl", out / "all.current"
    earlier = len(_records(jsonl))  # lines of an earlier call into the same folder are not this call's
    estimates = {label: est for est, label, _, _ in todo}
    running: list = []  # the worker now running
    given_up: set = set()  # items a worker died or hung in: never taken again, even if their line was lost

    def stop(signum, frame):  # a stop of this process (a timeout's SIGTERM) takes the worker's tree with it
        if running and running[0].poll() is None:
            _kill_tree(running[0].pid)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            done = {item_label(r) for r in _records(jsonl)[earlier:]}
            left = [label for _, label, _, _ in todo if label not in done and label not in given_up]
            if not left:
                return
            current.unlink(missing_ok=True)
            # in this process's group, not its own: the device tool's stop of the call (a signal to the
            # group) must reach it, or it would go on measuring into the next call
            proc = subprocess.Popen(worker(left))
            running[:] = [proc]
            hung = None
            while proc.poll() is None:
                time.sleep(poll_s)
                now = _current(current)
                if now is not None and time.time() - now["t"] > limit(estimates.get(now["label"], 0.0)):
                    hung = now
                    _kill_tree(proc.pid)  # with the end-to-end search it may have started
                    proc.wait()
            now = hung or _current(current)
            cut = _cut_tail(jsonl)  # a line the worker died writing: kept, in a failure line
            taken = {item_label(r) for r in _records(jsonl)[earlier:]} - done
            if cut is not None and (now is None or now["label"] in taken):
                _append(jsonl, {"failed": "(between items)", "error": f"the worker process ended "
                                f"({_ended(proc.returncode)}) while writing a line", "cut_off_line": cut})
            if now is not None and now["label"] not in taken:
                given_up.add(now["label"])
                spent = round(time.time() - now["t"], 1)
                est = estimates.get(now["label"], 0.0)
                why = (f"stopped after {spent} s, over its limit of {limit(est):.0f} s (estimate {est} s): "
                       "taken as hung" if hung else
                       f"the worker process ended ({_ended(proc.returncode)}) while taking this item")
                _append(jsonl, {"failed": now["label"], "error": why, "item_s": spent,
                                **({"cut_off_line": cut} if cut is not None else {})})
                print(f"failed {now['label']}: {why}; a new worker takes the items after it", flush=True)
            elif not taken:
                for label in left:
                    _append(jsonl, {"failed": label, "error": f"the worker process ended ({_ended(proc.returncode)}) "
                                                              "before taking any item"})
                print(f"the worker ended ({_ended(proc.returncode)}) before taking any item", flush=True)
                return
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cut_tail(jsonl: Path) -> str | None:
    """If the file does not end its last line (a worker died writing it), that unfinished line, cut off the
    file (so that the next line starts a line of its own; the caller keeps the text)."""
    if not jsonl.exists() or not jsonl.stat().st_size:
        return None
    data = jsonl.read_bytes()
    if data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n") + 1
    with open(jsonl, "rb+") as fh:
        fh.truncate(start)
    return data[start:].decode(errors="replace")[:2000]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it (found in /proc: Linux, as the device machine and CI)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # after "pid (comm) state"
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _current(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # none, or caught half written
        return None


def _hand_off() -> str | None:
    """After an item failed: why a new worker takes the items after it (None: CUDA was not used, this process
    is as it was). The context may be unusable (a sticky error: an illegal address, a device-side assert); and
    where it is not, what the item held may stay held: on the H200 of 2026-12-05 a capture that failed
    (``dwconv darts``) left 20 GiB in CUDA-graph pools and 116 GiB reserved, and every later item of that
    worker, and the end-to-end search it started, ran out of memory (benchmarks/results/2026-12-05-gpu/).
    A new process gives it all back."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    try:
        torch.zeros(1, device="cuda").add_(1).cpu()
        torch.cuda.synchronize()
    except Exception:  # noqa: BLE001 - any error here means the context is gone
        return "unusable after this item: a new worker takes the items after it"
    return "maybe holding this item's memory: a new worker takes the items after it"


def _release_cached() -> None:
    """Between items on CUDA: the blocks torch's allocator keeps cached for this process go back to the device
    (an item peaking at 47 GiB, ROME's all-op pass, left them reserved for the next items and their
    subprocesses)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _count_triton_kernels() -> dict:
    """What Triton's compiler did in this process, counted since the dict was last cleared: kernels "compiled"
    (and their "compile_s") and loaded "from_cache" (benchmarks/triton_cache.py's carried cache, or an earlier
    item's). Empty where Triton or its compilation listener is not there, or runs as the interpreter."""
    counts: dict = {}
    try:
        import triton

        def listen(*, cache_hit, times=None, **_):
            key = "from_cache" if cache_hit else "compiled"
            counts[key] = counts.get(key, 0) + 1
            if not cache_hit and times is not None:
                counts["compile_s"] = counts.get("compile_s", 0.0) + times.total / 1e6

        triton.knobs.compilation.listener = listen
    except (ImportError, AttributeError):
        pass
    return counts


def work(args, todo: list, out: Path) -> int:
    """The worker: ``todo``'s items in order, each started only if its estimate fits in what is left of the
    call's budget (counted from ``--started``: the call's start, before this process was)."""
    interpreted = args.tiny and not _cuda()
    if interpreted:
        # a CPU runs the Triton kernels (harness.nn.dwconv) only in Triton's interpreter, which Triton
        # chooses when it is imported: before any item imports it (set, not defaulted: tests/conftest.py leaves "0"
        # for the processes its tests start). Then on only for the kernel items (dwconv, bn), as tests/conftest.py
        # does for the tests that ask: the shipped defaults take the kernels in a captured form (DEPTHWISE_TRITON,
        # cell.slots=auto), which the profile items' as-captured steps would otherwise run in the interpreter
        # (100 s for TINY's GDAS profile instead of 2)
        os.environ["TRITON_INTERPRET"] = "1"
        from harness.nn.dwconv import interpreter_checks

        interpreter_checks(overflow=False, debug=False)  # work it drops unless debug (as tests/conftest.py)
    jsonl, current = out / "all.jsonl", out / "all.current"
    started = args.started if args.started is not None else time.time()
    deadline = started + args.budget
    search_step = _search_step()
    kernels = _count_triton_kernels()

    def write(record: dict) -> None:
        _append(jsonl, record)

    for estimate, label, kind, item_args in todo:
        now = time.time()
        if now + estimate > deadline:
            spent = now - started
            write({"skipped": label, "spent_s": round(spent, 1), "estimate_s": estimate, "budget_s": args.budget})
            print(f"skipped {label}: {spent:.0f} s spent, estimate {estimate} s, budget {args.budget:.0f} s",
                  flush=True)
            continue
        current.write_text(json.dumps({"label": label, "t": now}))
        if interpreted:
            os.environ["TRITON_INTERPRET"] = "1" if kind in ("dwconv", "bn") else "0"
        kernels.clear()
        t0 = time.monotonic()
        lost = None
        try:
            if kind == "packing":  # one line per row, each the moment it is taken
                packing(item_args, args.tiny, lambda row, t0=t0: write(
                    {"item": label, "item_s": round(time.monotonic() - t0, 1), **row}))
                current.unlink(missing_ok=True)
                continue
            if kind == "step":
                record = search_step.main(item_args)
            elif kind == "profile":
                record = _load("step_profile").main(item_args)
            elif kind == "variants":
                record = _load("step_variants").main(item_args)
            elif kind == "dwconv":
                record = _load("dwconv_bench").main(item_args)
            elif kind == "bn":
                record = _load("bn_bench").main(item_args)
            elif kind == "f64":
                record = _load("drift_vs_float64").main(
                    [*item_args, "--device", "cuda" if _cuda() else "cpu"])
            else:
                record = e2e_run(label, item_args, out)
            record = {"item": label, "item_s": round(time.monotonic() - t0, 1), **record}
            if kernels:
                record["triton_kernels"] = {k: round(v, 2) for k, v in kernels.items()}
        except BaseException as exc:  # noqa: BLE001 - one failed item must not lose the others
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            record = {"failed": label, "error": f"{type(exc).__name__}: {exc}"[:500]}
            lost = _hand_off()
            if lost:
                record["cuda_context"] = lost
        write(record)
        current.unlink(missing_ok=True)
        if lost:
            return CONTEXT_LOST
        _release_cached()
    return 0


if __name__ == "__main__":
    sys.exit(main())
