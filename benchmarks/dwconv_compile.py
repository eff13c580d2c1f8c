"""Compile every form of harness.nn.dwconv's Triton kernels that a search step launches, for a GPU this
machine does not have (default sm_90, an H100/H200), and report each one's registers and spills from
``ptxas -v``: a kernel that does not compile, or spills, shows here before a session spends device time.
Triton's interpreter (the tests) checks what the kernels compute, not that they compile.

    python benchmarks/dwconv_compile.py --method darts          # darts space, paper size, sm_90
    python benchmarks/dwconv_compile.py --method darts --arch 80   # an A100
    python benchmarks/dwconv_compile.py --method gdas --slots      # GDAS's chosen-op slots (harness.nn.slots)
    python benchmarks/dwconv_compile.py --method darts --bn        # harness.nn.bntriton's BatchNorm kernels

The forms come from the real launch code: one forward of the search network records the Triton form's calls
(``benchmarks/dwconv_bench.py``'s ``collect``), then each call's forward, input-gradient and weight-gradient
launches run with the kernels replaced by recorders (on the meta device: shapes only), which keep the
constexpr arguments and warps of each launch. Each distinct form is compiled with ``triton.compile`` for the
target (Triton's bundled ptxas; no GPU needed) and its PTX put through ``ptxas -v``; its machine code (SASS,
by Triton's bundled nvdisasm) gives the "hot code" columns (:func:`sass_hot_code`): a thread's instructions,
float ops and loads where the kernel does its arithmetic. Under the GPU image's Triton 3.6 these showed the
depthwise weight gradient at 47 instructions a multiply-add where 3.8 compiled 14 (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
import search_step  # noqa: E402


class _Recorder:
    """Stands in for a Triton kernel at launch: ``kernel[grid](*args, **kwargs)`` records the launch's form."""

    def __init__(self, fn, forms: dict):
        self.fn, self.forms = fn, forms

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            import torch

            from harness.nn.dwconv import constexprs

            names = self.fn.__code__.co_varnames[: self.fn.__code__.co_argcount]
            bound = dict(zip(names, args))
            bound.update(kwargs)
            warps = bound.pop("num_warps", 4)
            consts = {k: v for k, v in bound.items() if k.isupper() and k == k.upper()
                      and not isinstance(v, torch.Tensor) and k in constexprs(self.fn)}
            sig = {}
            for k in names:
                v = bound[k]
                if isinstance(v, torch.Tensor):
                    sig[k] = {torch.float32: "*fp32", torch.float64: "*fp64", torch.int64: "*i64",
                              torch.int32: "*i32"}[v.dtype]
                elif k in consts:
                    sig[k] = "constexpr"
                else:
                    sig[k] = "i32"
            key = (self.fn.__name__, tuple(sorted((k, str(v)) for k, v in consts.items())), warps)
            self.forms.setdefault(key, (self.fn, sig, consts, warps, 0))
            fn, sig, consts, warps, n = self.forms[key]
            self.forms[key] = (fn, sig, consts, warps, n + 1)

        return launch


@contextlib.contextmanager
def _recording(module, settings: str, kernels: tuple, wrap=None):
    """Within: ``module``'s kernels (its launch-settings function ``settings`` replaced) launch into recorders
    instead, on meta tensors; yields the forms they record ({(kernel, constexprs, warps): (fn, signature,
    constexprs, warps, launches)}). ``wrap``: instead, each of the kernels the real settings give, passed
    through ``wrap`` (benchmarks/triton_cache.py: Triton's JIT compiling each launch's form, launching nothing)."""
    from unittest import mock

    from harness.nn import dwconv

    forms: dict = {}
    if wrap is None:
        recorders = tuple(_Recorder(fn, forms) for fn in kernels)
        patched = lambda x: (recorders, dwconv.kernel_dtype(x))  # noqa: E731
    else:
        real = getattr(module, settings)

        def patched(x):
            jitted, dt = real(x)
            return tuple(wrap(k) for k in jitted), dt
    with mock.patch.object(module, settings, patched):
        yield forms


def forms_of(calls, dtype="float32", wrap=None) -> dict:
    """{(kernel, constexprs, warps): (fn, signature, constexprs, warps, launches)} over the calls' forward
    and both gradient launches (``wrap``: see :func:`_recording`)."""
    import torch

    from harness.nn import dwconv

    dt = getattr(torch, dtype)
    with _recording(dwconv, "_launch_settings", dwconv.KERNELS, wrap) as forms:
        for (xs, ws, stride, padding, dilation, k, relu, dest, *geo), _ in calls.items():
            x = torch.empty(xs, device="meta", dtype=dt)
            w = torch.empty(ws, device="meta", dtype=dt)
            conv = (stride, padding, dilation, k, relu, None if dest is None else torch.empty(len(dest), device="meta",
                                                                                          dtype=torch.int64))
            if geo:  # harness.nn.slots's per-unit geometry table
                conv += ((torch.empty(geo[0][0], 3, device="meta", dtype=torch.int32), geo[0][1]),)
            y = dwconv.forward(x, w, *conv)
            dwconv.grad_input(torch.empty_like(y), x, w, *conv)
            dwconv.grad_weight(torch.empty_like(y), x, w, *conv)
    return forms


def bn_forms_of(calls, dtype="float32", wrap=None) -> dict:
    """:func:`forms_of` for harness.nn.bntriton's kernels: each call's forward and backward launches, at the
    default ``IMAGES_PER_PROGRAM`` and at 1 (the two ``benchmarks/bn_bench.py`` times)."""
    import torch

    from harness.nn import bntriton

    dt = getattr(torch, dtype)
    with _recording(bntriton, "_settings", bntriton.KERNELS, wrap) as forms:
        for shape, affine, track, samples in calls:
            x = torch.empty(shape, device="meta", dtype=dt)
            c = shape[1]
            w, b = (torch.empty(c, device="meta", dtype=dt) for _ in range(2)) if affine else (None, None)
            rm, rv = (torch.empty(c, device="meta", dtype=dt) for _ in range(2)) if track else (None, None)
            for images in sorted({bntriton.IMAGES_PER_PROGRAM, 1}):  # the default and bn_bench.py's other form
                y, mean, rstd = bntriton.forward(x, w, b, rm, rv, 0.1, 1e-5, samples, images)
                bntriton.backward(torch.empty_like(y), x, w, mean, rstd, samples, images=images)
    return forms


_FLOAT_OPS = ("FFMA", "FADD", "FMUL", "DFMA", "DADD", "DMUL")


def sass_hot_code(cubin: bytes, nvdisasm: Path) -> dict:
    """What one thread executes where a kernel does its arithmetic, read from its machine code (SASS, by the
    nvdisasm Triton bundles): the innermost loop with the most floating-point ops (a back edge: a branch to a
    label before it), else the whole kernel (unrolled, straight-line). Its instructions, floating-point ops
    (an FFMA is one), global loads, and instructions per float op: on a GPU a kernel whose threads issue many
    instructions per multiply-add is bound by instruction issue, not memory. A count in the code, not a
    measurement of time (issue 12: which kernels to look at first when a GPU times them)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as fh:
        fh.write(cubin)
    try:
        text = subprocess.run([str(nvdisasm), "-c", fh.name], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(fh.name)
    labels, ops = {}, []  # label -> index of the next instruction; (opcode, branch target)
    for line in text.splitlines():
        m = re.match(r"\s*(\.L_x_\d+):", line)
        if m:
            labels[m.group(1)] = len(ops)
            continue
        m = re.match(r"\s*/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);", line)
        if m:
            target = re.search(r"`\((\.L_x_\d+)\)", m.group(2))
            ops.append((m.group(1).split(".")[0], target.group(1) if target else None))

    def summary(scope: str, body: list) -> dict:
        flops = sum(op in _FLOAT_OPS for op, _ in body)
        return {"scope": scope, "instructions": len(body), "float_ops": flops,
                "loads": sum(op == "LDG" for op, _ in body),
                "per_float_op": round(len(body) / flops, 2) if flops else None}

    loops = [ops[labels[t]:i + 1] for i, (op, t) in enumerate(ops)
             if op == "BRA" and t in labels and labels[t] <= i]
    loops = [body for body in loops if any(op in _FLOAT_OPS for op, _ in body)]
    if loops:  # the most float ops, then the fewest instructions (the innermost of nested loops)
        return summary("loop", max(loops, key=lambda b: (sum(op in _FLOAT_OPS for op, _ in b), -len(b))))
    return summary("kernel", ops)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts")
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (90: H100/H200)")
    ap.add_argument("--limit", type=int, default=0, help="compile only the first N forms (0: all)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE")
    ap.add_argument("--slots", action="store_true",
                    help="a single-path method's forward in harness.nn.slots's form (cell.slots=true): its "
                         "per-unit-geometry kernels")
    ap.add_argument("--bn", action="store_true",
                    help="harness.nn.bntriton's BatchNorm kernels (groups.BATCHNORM_TRITON) instead of the depthwise ones")
    ap.add_argument("--no-sass", action="store_true",
                    help="registers and spills only, without the machine code's hot-code columns (nvdisasm takes "
                         "about 0.3 s a form)")
    ap.add_argument("--dw-tile", choices=("auto", "taps", "pixels"), default="auto",
                    help="the weight gradient's accumulator in its stride-2 forms: harness.nn.dwconv.DW_PIXELS_MAJOR "
                         "(auto: by Triton's version, dwconv.pixels_major)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    os.environ.pop("TRITON_INTERPRET", None)  # compiled kernels, not the interpreter's (read at triton.jit)
    from harness.nn import dwconv

    dwconv.DW_PIXELS_MAJOR = {"auto": None, "taps": False, "pixels": True}[args.dw_tile]
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import bn_bench
    import dwconv_bench

    if args.slots:
        args.sets.append("cell.slots=true")
    registry, spec, space, layers, shape = search_step.resolve_step(args)
    sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, "cpu")
    search_step.ready(sampler, net, opt, True)
    gen = torch.Generator().manual_seed(1234)
    net.train()  # (the slots' form runs in training forwards)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen)
    calls = bn_bench.collect(net, x) if args.bn else dwconv_bench.collect(net, x)
    forms = bn_forms_of(calls) if args.bn else forms_of(calls)
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    target = GPUTarget("cuda", args.arch, 32)
    rows = []
    for key, (fn, sig, consts, warps, launches) in list(forms.items())[: args.limit or None]:
        t0 = time.perf_counter()
        kernel = triton.jit(fn)
        compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts), target=target,
                                  options={"num_warps": warps})
        seconds = time.perf_counter() - t0
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as fh:
            fh.write(compiled.asm["ptx"])
        arch = f"sm_{args.arch}a" if args.arch == 90 else f"sm_{args.arch}"
        info = subprocess.run([str(ptxas), "-v", "--gpu-name", arch, fh.name, "-o", os.devnull],
                              capture_output=True, text=True, check=True).stderr
        os.unlink(fh.name)
        hot = None if args.no_sass else sass_hot_code(compiled.asm["cubin"], ptxas.parent / "nvdisasm")
        regs = re.search(r"Used (\d+) registers", info)
        spill = re.search(r"(\d+) bytes spill stores", info)
        rows.append({"kernel": fn.__name__.strip("_").replace("_kernel", ""),
                     "constexprs": {k: str(v) for k, v in consts.items()}, "num_warps": warps,
                     "launches_per_forward": launches, "registers": int(regs.group(1)) if regs else None,
                     "spill_store_bytes": int(spill.group(1)) if spill else 0,
                     "shared_bytes": compiled.metadata.shared, "compile_s": round(seconds, 2), "sass": hot})
    out = {"command": "python benchmarks/dwconv_compile.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "batch": args.batch, "channels": args.channels,
           "layers": layers, "slots": args.slots, "bn": args.bn, "arch": args.arch, "geometries": len(calls),
           "forms": len(forms), "compiled": rows,
           "triton": triton.__version__, "torch": torch.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d")}
    what = "training BatchNorm shapes" if args.bn else "depthwise geometries"
    print(f"{args.method} on {args.space} (C={args.channels}, {layers} cells): {len(calls)} {what} a "
          f"forward, {len(forms)} kernel forms; compiled {len(rows)} for sm_{args.arch} with Triton "
          f"{triton.__version__} (no GPU)")
    print("| kernel | constexprs | warps | launches a forward | registers | spill bytes | shared bytes | compile s "
          "| hot code: instructions, float ops, loads (a thread) | instructions a float op |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = ", ".join(f"{k}={v}" for k, v in r["constexprs"].items() if k != "DT")
        h = r["sass"]
        hot = ("- | -" if h is None else
               f"{h['scope']}: {h['instructions']}, {h['float_ops']}, {h['loads']} | {h['per_float_op']}")
        print(f"| {r['kernel']} | {c} | {r['num_warps']} | {r['launches_per_forward']} | {r['registers']} | "
              f"{r['spill_store_bytes']} | {r['shared_bytes']} | {r['compile_s']} | {hot} |")
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
