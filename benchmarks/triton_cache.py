"""Every Triton kernel form a GPU call launches (``gpu_session.sh all``'s Triton items), compiled through
Triton's JIT as the GPU will compile it, on a machine without one: a stand-in driver reports the GPU's target
(sm_90: an H100/H200) and each launch is a ``warmup`` (compile, launch nothing). Two uses:

* a check: the JIT's own path (its argument specialisation, ``do_not_specialize``) is what neither Triton's
  interpreter (the tests) nor ``triton.compile`` on a hand-made signature (``dwconv_compile.py``) goes
  through. A constexpr listed in ``do_not_specialize`` passed both and failed every kernel's first launch on a
  GPU (found here on 2026-12-05; ``harness.nn.dwconv.runtime_sizes``);
* a cache the GPU call carries: with the GPU image's Triton and Python, the cache keys are the ones the GPU
  computes (Triton's version and files, the kernel's source, its specialisation, the target, ptxas's version),
  so the call loads each kernel instead of compiling it (about 0.3 s a form, some 140 forms: dwconv_compile.py).
  ``gpu_session.sh`` installs it when ``.carry/triton-cache`` is there and its Triton version is the
  machine's; ``gpu_all.py`` records per item how many kernels were compiled and how many came from the cache.

    /tmp/v212/bin/python benchmarks/triton_cache.py             # the GPU image's Triton 3.6 / Python 3.12
                                                                  # (recipe: results/2026-12-05-triton36/run.sh;
                                                                  # what it needs: triton==3.6.0 on Python 3.12;
                                                                  # the key holds nothing of torch's)
    python benchmarks/triton_cache.py --limit 2 --out /tmp/tc     # a check: the first 2 forms of each part
    python benchmarks/triton_cache.py --install .carry/triton-cache DEST   # (gpu_session.sh, on the GPU)

Only the cubin and metadata of each kernel are kept (``TRITON_STORE_BINARY_ONLY``, which is not part of the
cache key, and the first IR removed after): about 35 KB a form instead of 360 (4.6 MiB for the 136 forms).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one

# (label, what the part's network is, which launches): the Triton forms of gpu_all.py's items. dw and bn: each
# depthwise geometry (harness.nn.dwconv: DEPTHWISE_TRITON's convs and the conv slots' per-unit-geometry form) or
# training BatchNorm shape (harness.nn.bntriton) of one forward, launched as benchmarks/dwconv_bench.py and
# bn_bench.py launch it, on tensors of their own (forward and both gradients; BatchNorm at 8 and 1 images a
# program); step: one step of the method in its captured form with the named Triton forms on, as step_variants.py
# and search_step.py run it (the slots' geometry tables are slices of one table: at an offset that is not a
# multiple of 16 bytes Triton compiles a form of its own, 8 of them in GDAS's step, which the replay misses).
PARTS = (
    ("darts dw", ["--method", "darts"], "dw"),  # dwconv darts
    ("darts bn", ["--method", "darts"], "bn"),  # bn darts (8 and 1 images a program)
    ("nb201 bn", ["--method", "darts", "--space", "nb201"], "bn"),
    ("gdas slots", ["--method", "gdas", "--set", "cell.slots=true"], "dw"),
    ("rome-v2 slots", ["--method", "rome-v2", "--set", "optimizer.group_ops=all", "--set", "cell.slots=true"],
     "dw"),  # K=7 sample groups
    ("darts step", ["--method", "darts"], "step dw bn"),  # variants darts darts: triton-dw, triton-bn, both
    ("nb201 step", ["--method", "darts", "--space", "nb201"], "step bn"),  # variants darts nb201: triton-bn
    # variants gdas darts's all-op (its fused all-op pass with DEPTHWISE_TRITON, the default since 2026-12-05)
    ("gdas step", ["--method", "gdas", "--set", "cell.slots=false"], "step dw"),
    # GDAS's captured step (the slots, cell.slots=auto) with Triton's BatchNorm too (variants gdas darts: default,
    # triton-bn; gdas darts, profile gdas darts). (ROME v2's slot step: no depthwise form GDAS's has not, checked
    # on 2026-12-05 at 100 s of CPU, so not here; its items compile what they find missing.)
    ("gdas slots step", ["--method", "gdas"], "step bn"),
)
TINY = ["--batch", "2", "--channels", "4", "--layers", "3", "--resolution", "16"]
MANIFEST = "manifest.json"


class _TargetOnly:
    """Triton's active driver, standing in for a GPU's: the target it would report, device 0, stream 0. The
    JIT needs nothing else to compile (``warmup``); a launch would fail."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0


class _Warmup:
    """A JIT kernel whose ``kernel[grid](*args)`` compiles the launch's form (``warmup=True``)."""

    def __init__(self, jit):
        self.jit = jit

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.jit.run(*args, grid=grid, warmup=True, **kwargs)


def _captured_step(net, opt, args, dw: bool, bn: bool) -> None:
    """One step of ``opt`` on ``net`` (an architecture and a weight step on random batches) in the form a CUDA
    graph captures, the depthwise (``dw``) and BatchNorm (``bn``) Triton forms on, the conv slots wherever the
    cell takes them; each Triton launch compiled, not run (the kernels' outputs stay unwritten: a step's values
    mean nothing here)."""
    from unittest import mock

    import torch
    from dwconv_compile import _recording

    from harness.api import Batch
    from harness.nn import bntriton, dwconv, fused, groups

    gen = torch.Generator().manual_seed(0)

    def batch():
        return Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen),
                     torch.randint(0, args.classes, (args.batch,), generator=gen))

    with mock.patch.object(dwconv, "why_not", lambda x: None), mock.patch.object(bntriton, "why_not", lambda x: None), \
            mock.patch.object(fused, "DEPTHWISE_TRITON", dw), mock.patch.object(groups, "BATCHNORM_TRITON", bn), \
            _recording(dwconv, "_launch_settings", dwconv.KERNELS, _Warmup), \
            _recording(bntriton, "_settings", bntriton.KERNELS, _Warmup), groups.as_captured():
        opt.step(net, batch(), batch())


def build(out: Path, arch: int, limit: int, parts) -> dict:
    os.environ.pop("TRITON_INTERPRET", None)  # the JIT, not the interpreter (read at triton.jit)
    os.environ["TRITON_CACHE_DIR"] = str(out)
    os.environ["TRITON_STORE_BINARY_ONLY"] = "1"
    import torch
    import triton
    from triton.runtime import driver

    import bn_bench
    import dwconv_bench
    import dwconv_compile
    import search_step
    from gpu_all import _count_triton_kernels

    driver.set_active(_TargetOnly(arch))
    counts = _count_triton_kernels()  # gpu_all.py's count: kernels "compiled" and loaded "from_cache"

    def tally() -> dict:
        return {"compiled": counts.get("compiled", 0), "cache_hits": counts.get("from_cache", 0)}

    done = []
    for label, step_args, kind in parts:
        t0, before = time.perf_counter(), tally()
        ap = argparse.ArgumentParser()
        search_step.step_arguments(ap, space="darts")
        ap.add_argument("--set", dest="sets", action="append", default=[])
        args = ap.parse_args(step_args)
        registry, spec, space, layers, shape = search_step.resolve_step(args)
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, "cpu")
        search_step.ready(sampler, net, opt, True)
        net.train()
        if kind.startswith("step"):
            _captured_step(net, opt, args, dw="dw" in kind.split(), bn="bn" in kind.split())
            what = "one captured step"
        else:
            x = torch.randn(args.batch, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(1))
            calls = bn_bench.collect(net, x) if kind == "bn" else dwconv_bench.collect(net, x)
            if limit:
                calls = dict(list(calls.items())[:limit])
            forms = dwconv_compile.bn_forms_of if kind == "bn" else dwconv_compile.forms_of
            forms(calls, wrap=_Warmup)
            what = f"{len(calls)} {'shapes' if kind == 'bn' else 'geometries'}"
        done.append({"part": label, "args": step_args, "launched": what,
                     **{k: n - before[k] for k, n in tally().items()}, "seconds": round(time.perf_counter() - t0, 1)})
        # (a form an earlier part of this process loaded counts as neither: Triton keeps it in memory)
        print(f"{label}: {what}, {done[-1]['compiled']} forms compiled, {done[-1]['cache_hits']} already there, "
              f"{done[-1]['seconds']} s", flush=True)
    # each kernel's first IR, which Triton keeps even with binaries only (270 KB a form): a hit needs the metadata
    # and the cubin, and every file its group lists (3.8's get_group misses on a listed file that is gone; 3.6's
    # leaves it out), so the IR goes from the list too
    for source in out.glob("*/*.source"):
        source.unlink()
    _point_groups_at(out)
    manifest = {"command": "python benchmarks/triton_cache.py " + shlex.join(sys.argv[1:]),
                "triton": triton.__version__, "torch": torch.__version__, "python": platform.python_version(),
                "arch": arch, "parts": done, "entries": len([p for p in out.iterdir() if p.is_dir()]),
                "bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
                "date": time.strftime("%Y-%m-%d")}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    print(f"{manifest['entries']} kernels, {manifest['bytes'] / 2**20:.1f} MiB in {out} (Triton {triton.__version__}, "
          f"Python {manifest['python']}, sm_{arch})")
    return manifest


def _point_groups_at(cache: Path) -> int:
    """Each kernel's file list (``__grp__<kernel>.json``: absolute paths) made to list the files ``cache`` holds
    for it, where they are; the number of kernels."""
    groups = list(cache.glob("*/__grp__*.json"))
    for grp in groups:
        names = json.loads(grp.read_text()).get("child_paths", {})
        grp.write_text(json.dumps({"child_paths": {name: str(grp.parent / name) for name in names
                                                   if (grp.parent / name).is_file()}}))
    return len(groups)


def install(src: Path, dest: Path) -> str:
    """``src`` (a cache this script built) copied to ``dest`` with each kernel's file list pointing there
    (Triton keeps absolute paths in it), if its Triton is this machine's; what was done, in a line."""
    try:
        import triton
    except ImportError as exc:
        return f"triton cache: not installed, Triton is not importable here ({exc})"
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return f"triton cache: not installed, {src / MANIFEST} unreadable ({exc})"
    if manifest.get("triton") != triton.__version__:
        return (f"triton cache: not installed, built with Triton {manifest.get('triton')}, this machine has "
                f"{triton.__version__} (its kernels would not match)")
    shutil.copytree(src, dest, dirs_exist_ok=True)
    groups = _point_groups_at(dest)
    return (f"triton cache: {groups} kernels from {src} (Triton {manifest['triton']}, sm_{manifest.get('arch')}, "
            f"built {manifest.get('date')}) in {dest}")


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".carry/triton-cache", help="the cache folder (emptied first, unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep what --out holds: each form found there is counted "
                    "as a cache hit instead of compiled (how an installed cache is checked)")
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (90: H100/H200)")
    ap.add_argument("--limit", type=int, default=0, help="the first N geometries or shapes of each part (0: all)")
    ap.add_argument("--tiny", action="store_true", help="each part's network at a tiny size (a check of the path: "
                    "its forms are not the paper size's)")
    ap.add_argument("--parts", default="", help="comma-separated part labels (default: all): "
                    + ", ".join(label for label, _, _ in PARTS))
    ap.add_argument("--install", nargs=2, metavar=("SRC", "DEST"), help="install a built cache (see above)")
    args = ap.parse_args(argv)
    if args.install:
        print(install(Path(args.install[0]), Path(args.install[1])), flush=True)
        return None
    parts = PARTS
    if args.parts:
        wanted = [w.strip() for w in args.parts.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in {label for label, _, _ in PARTS}]
        if unknown:
            ap.error(f"--parts: unknown part(s) {unknown}; parts are {[label for label, _, _ in PARTS]}")
        parts = [p for p in PARTS if p[0] in wanted]
    out = Path(args.out)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        parts = [(label, [*step_args, *TINY], kind) for label, step_args, kind in parts]
    return build(out.resolve(), args.arch, args.limit, parts)


if __name__ == "__main__":
    main()
