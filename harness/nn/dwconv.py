"""Depthwise convolutions in Triton kernels: an optional form of the fused cell's depthwise layers (issue 12).

A profile of the captured-to-be DARTS step on an H200 (BENCHMARKS.md, "Where the step's time goes") put
torch's own float32 depthwise kernels at 42 of its 132 ms of kernels, the largest share being the weight
gradient (``conv_depthwise2d_grad_weight_kernel``: 120 calls, 130 us each, where reading its two operands
once takes about 36 us at the H200's bandwidth: that kernel reduces each of the KH*KW taps of a channel in
its own thread block, so it reads the channel's input and gradient KH*KW times). The kernels here:

* forward: one program per (image, block of output channels, block of output pixels), the taps unrolled;
* input gradient: one program per (image, block of input channels, block of input pixels), summing over the output
  channels that read that input channel and the taps whose window covers the pixel;
* weight gradient: one program per (output channel, slice of the batch), every tap of the channel from
  one read of the output gradient (a taps x pixels accumulator, or pixels x taps where the compiler lays that
  one better: :func:`pixels_major`), the slices' partial sums then added by
  ``torch.sum`` (a fixed order: the same bits on every run, unlike atomic adds).

Output channel ``o`` reads input channel ``(o // k) % C`` (``C`` input channels, ``k`` filters per channel):
``k = 1`` with ``O = m*C`` is the units' shared input repeated m times without the copy, ``O = k*C`` is
the spread form's k filters per channel (:func:`harness.nn.fused._spread_depthwise`, whose gather into the units'
order the forward folds into where it writes: ``dest``). ``relu=True`` reads
``max(x, 0)`` (the fused cell's ReLU before a depthwise conv, fused into its loads; its backward masks
the input gradient where ``x <= 0``).

In the captured DARTS step by default (``harness.nn.fused.DEPTHWISE_TRITON``): 92.0 against 104.8 ms a step with
torch's kernels on an H200 (``benchmarks/step_variants.py``'s ``triton-dw``, 2026-12-05; BENCHMARKS.md); each
geometry against torch's is ``benchmarks/dwconv_bench.py``'s. The single-path cells' conv slots
(:mod:`harness.nn.slots`) run their per-unit geometries here too.
Kernels are compiled at first use; on a CPU they run only in Triton's interpreter (``TRITON_INTERPRET=1``,
slow, for the tests).
"""

from __future__ import annotations

import functools
import os

import torch

from harness.nn.groups import engine_needs

try:  # Triton ships with torch's CUDA wheels; the CPU-only ones lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None
    tl = None


def why_not(x: torch.Tensor) -> str | None:
    """Why the Triton kernels cannot run on ``x`` (None: they can)."""
    if triton is None:
        return "Triton is not installed (it comes with torch's CUDA wheels)"
    if x.dtype not in (torch.float32, torch.float64):
        return f"dtype {x.dtype}: the kernels take float32 and float64"
    if x.is_cuda:
        return None
    if x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        # the interpreter needs Triton's own library functions in its form, which Triton decides at import
        if type(tl.zeros).__name__ != "InterpretedFunction":
            return "TRITON_INTERPRET=1 was set after Triton was imported (set it before)"
        return None
    return f"device {x.device}: the kernels run on CUDA (on a CPU in Triton's interpreter, TRITON_INTERPRET=1)"


def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# The kernels: plain functions, made Triton kernels at first use (:func:`_kernels`; triton.jit reads
# TRITON_INTERPRET when it is called, Triton's own library when it is imported: tests/conftest.py sets it
# before either), which benchmarks/dwconv_compile.py also compiles for a GPU this machine does not have.


def _fwd_kernel(x_ptr, w_ptr, y_ptr, dest_ptr, geo_ptr, C, H, W, O, HO, WO, KM, N_CB, UNIT_CH, SAMPLE_UNITS, N_OUT,
                PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr, KH: tl.constexpr,
                KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                RELU: tl.constexpr, REMAP: tl.constexpr, GEO: tl.constexpr, EVEN: tl.constexpr, CB: tl.constexpr,
                PB: tl.constexpr, DT: tl.constexpr):
    # program: image n, output channels [cb*CB, cb*CB + CB), output pixels [pb*PB, pb*PB + PB). The per-pixel
    # and per-channel divisions unsigned (every operand is >= 0): no sign corrections (instructions a float op
    # 12.3 -> 11.8 under Triton 3.6; the program id's, tried unsigned too, no fewer: 2026-12-05d-sass)
    n = (tl.program_id(0) // N_CB).to(tl.int64)
    ch0 = (tl.program_id(0) % N_CB) * CB
    ch = ch0 + tl.arange(0, CB)
    offs = tl.program_id(1) * PB + tl.arange(0, PB)
    ch_ok = ch < O
    inside = offs < HO * WO
    oy = (offs.to(tl.uint32) // WO.to(tl.uint32)).to(tl.int32)
    ox = offs - oy * WO
    c_in = ((ch.to(tl.uint32) // KM.to(tl.uint32)) % C.to(tl.uint32)).to(tl.int32)  # the input channel it reads
    acc = tl.zeros([CB, PB], dtype=DT)
    if GEO:  # the program's channels are one unit's (forward() makes CB divide UNIT_CH): its kernel size k,
        # dilation and padding from its row of the table, scalars; its k x k taps only, each behind one branch
        # for the whole program (a 3x3 unit runs 9 taps, where a geometry per channel masked the grid's 25 and
        # issued them all; run-time tap loops, tried, cost more per tap: 2026-12-05d-sass)
        unit = ch0 // UNIT_CH
        kk = tl.load(geo_ptr + unit * 3)
        dg = tl.load(geo_ptr + unit * 3 + 1)
        pg = tl.load(geo_ptr + unit * 3 + 2)
        # sample groups: unit u of SAMPLE_UNITS per sample reads its sample's block of N_OUT input images
        x_rows = x_ptr + (((n + (unit // SAMPLE_UNITS) * N_OUT) * C + c_in) * H * W)[:, None]
        for i in tl.static_range(KH):
            if i < kk:  # one branch for the program (the unit's), not a mask per tap and pixel
                iy = oy * SH - pg + i * dg
                row = iy.to(tl.uint32) < H.to(tl.uint32)
                if not EVEN:
                    row = row & inside
                for j in tl.static_range(KW):
                    if j < kk:
                        ix = ox * SW - pg + j * dg
                        tap = row & (ix.to(tl.uint32) < W.to(tl.uint32))
                        v = tl.load(x_rows + (iy * W + ix)[None, :], mask=tap[None, :], other=0.0)
                        if RELU:
                            v = tl.maximum(v, 0.0)
                        acc += v * tl.load(w_ptr + ch * (KH * KW) + i * KW + j)[:, None]
    else:
        x_rows = x_ptr + ((n * C + c_in) * H * W)[:, None]
        for i in tl.static_range(KH):
            iy = oy * SH - PH + i * DH
            # 0 <= iy < H as one unsigned comparison (a negative row wraps above H): one instruction where two
            # were, per tap and pixel (benchmarks/dwconv_compile.py's SASS columns); likewise the columns and the
            # weight gradient's bounds
            row = iy.to(tl.uint32) < H.to(tl.uint32)
            if not EVEN:
                row = row & inside
            for j in tl.static_range(KW):
                ix = ox * SW - PW + j * DW
                tap = row & (ix.to(tl.uint32) < W.to(tl.uint32))
                if EVEN:  # every channel and pixel of the block is one: the tap's bounds alone, and the pixel's
                    # pointer plus the tap's constant shift (padding and dilation are constexpr): the compiler
                    # folds the shift into the load's immediate offset, where a 32-bit index per tap cost a
                    # 64-bit address computation per tap and pixel (instructions a float op 14.7 -> 12.3 under
                    # Triton 3.6: benchmarks/results/2026-12-05d-sass/)
                    v = tl.load((x_rows + (iy * W + ox * SW)[None, :]) + (j * DW - PW), mask=tap[None, :],
                                other=0.0)
                    wt = tl.load(w_ptr + ch * (KH * KW) + i * KW + j)
                else:
                    v = tl.load(x_rows + (iy * W + ix), mask=ch_ok[:, None] & tap, other=0.0)
                    wt = tl.load(w_ptr + ch * (KH * KW) + i * KW + j, mask=ch_ok, other=0.0)
                if RELU:
                    v = tl.maximum(v, 0.0)
                acc += v * wt[:, None]
    if REMAP:  # output channel o is written to channel dest[o]
        ch = tl.load(dest_ptr + ch, mask=ch_ok, other=0)
    y_rows = y_ptr + ((n * O + ch) * HO * WO)[:, None]
    if EVEN:
        tl.store(y_rows + offs[None, :], acc)
    else:
        tl.store(y_rows + offs[None, :], acc, mask=ch_ok[:, None] & inside[None, :])


def _dx_kernel(g_ptr, w_ptr, x_ptr, dx_ptr, dest_ptr, geo_ptr, C, H, W, O, HO, WO, KM, R, N_CB, UNIT_CH, SAMPLE_UNITS,
               N_OUT,
               PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr, KH: tl.constexpr,
               KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
               RELU: tl.constexpr, REMAP: tl.constexpr, GEO: tl.constexpr, CB: tl.constexpr, PB: tl.constexpr,
               DT: tl.constexpr):
    # program: image n, input channels [cb*CB, cb*CB + CB), input pixels [pb*PB, pb*PB + PB)
    n = (tl.program_id(0) // N_CB).to(tl.int64)
    c0 = (tl.program_id(0) % N_CB) * CB
    c = c0 + tl.arange(0, CB)
    offs = tl.program_id(1) * PB + tl.arange(0, PB)
    c_ok = c < C
    inside = offs < H * W
    y = offs // W
    x = offs % W
    acc = tl.zeros([CB, PB], dtype=DT)
    # the output channels that read input channel c: o = (r*C + c)*KM + q for r < R = O // (C*KM), q < KM
    for rq in range(0, R * KM):
        o = ((rq // KM) * C + c) * KM + rq % KM
        go = o
        if REMAP:  # its gradient is channel dest[o] of the output's
            go = tl.load(dest_ptr + o, mask=c_ok, other=0)
        if GEO:  # these output channels are one unit's (grad_input() chooses CB so): its geometry as scalars
            # and its k x k taps only, as in the forward
            unit = (((rq // KM) * C + c0) * KM + rq % KM) // UNIT_CH  # its first channel's
            kk = tl.load(geo_ptr + unit * 3)
            dg = tl.load(geo_ptr + unit * 3 + 1)
            pg = tl.load(geo_ptr + unit * 3 + 2)
            # sample groups: input image n feeds output image n - offset of the units of its sample only; the
            # other samples' units are skipped, not masked
            gn = n - (unit // SAMPLE_UNITS) * N_OUT
            if (gn >= 0) & (gn < N_OUT):
                g_rows = g_ptr + ((gn * O + go) * HO * WO)[:, None]
                g_pix = g_rows + (y * WO + x)[None, :]
                for i in tl.static_range(KH):
                    if i < kk:
                        sy = pg - i * dg
                        if SH == 1 and SW == 1:  # 0 <= t < n as one unsigned comparison, as the forward
                            row = inside & ((y + sy).to(tl.uint32) < HO.to(tl.uint32))
                        else:
                            ty = y + sy  # = oy * SH for the output row whose window's tap i covers row y
                            oy = ty // SH
                            row = inside & (ty >= 0) & (ty - oy * SH == 0) & (oy < HO)
                        for j in tl.static_range(KW):
                            if j < kk:
                                sx = pg - j * dg
                                if SH == 1 and SW == 1:  # the pixel's own place in the gradient plus the tap's
                                    # shift, a scalar for the program (its unit's): 17.3 -> 16.2 instructions a
                                    # float op alone (Triton 3.6), with _DX_GEO's 4 elements a thread 9.6
                                    # (benchmarks/results/2026-12-05f-dw-stride2/slots_summary.md)
                                    tap = row & ((x + sx).to(tl.uint32) < WO.to(tl.uint32))
                                    g = tl.load(g_pix + (sy * WO + sx), mask=c_ok[:, None] & tap[None, :],
                                                other=0.0)
                                else:
                                    tx = x + sx
                                    ox = tx // SW
                                    tap = row & (tx >= 0) & (tx - ox * SW == 0) & (ox < WO)
                                    g = tl.load(g_rows + (oy * WO + ox)[None, :],
                                                mask=c_ok[:, None] & tap[None, :], other=0.0)
                                acc += g * tl.load(w_ptr + o * (KH * KW) + i * KW + j, mask=c_ok,
                                                   other=0.0)[:, None]
        else:
            g_rows = g_ptr + ((n * O + go) * HO * WO)[:, None]
            for i in tl.static_range(KH):
                ty = y + PH - i * DH
                oy = ty // SH
                row = inside & (ty >= 0) & (ty - oy * SH == 0) & (oy < HO)
                for j in tl.static_range(KW):
                    tx = x + PW - j * DW
                    ox = tx // SW
                    tap = row & (tx >= 0) & (tx - ox * SW == 0) & (ox < WO)
                    ok = c_ok[:, None] & tap
                    if SH == 1 and SW == 1:  # as the forward: the tap's shift a constant (8.2 -> 7.1)
                        g = tl.load((g_rows + (oy * WO + x)[None, :]) + (PW - j * DW), mask=ok, other=0.0)
                    else:
                        g = tl.load(g_rows + (oy * WO + ox), mask=ok, other=0.0)
                    acc += g * tl.load(w_ptr + o * (KH * KW) + i * KW + j, mask=c_ok, other=0.0)[:, None]
    rows = ((n * C + c) * H * W)[:, None] + offs[None, :]
    mask = c_ok[:, None] & inside[None, :]
    if RELU:
        acc = tl.where(tl.load(x_ptr + rows, mask=mask, other=0.0) > 0, acc, 0.0)
    tl.store(dx_ptr + rows, acc, mask=mask)


def _dw_kernel(g_ptr, x_ptr, part_ptr, dest_ptr, geo_ptr, N, C, H, W, O, HO, WO, KM, PER_SPLIT, UNIT_CH,
               SAMPLE_UNITS,
               PH, PW, DH, DW, KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
               RELU: tl.constexpr, REMAP: tl.constexpr, GEO: tl.constexpr, FLAT: tl.constexpr, PM: tl.constexpr,
               TAPS: tl.constexpr, BLOCK: tl.constexpr, DT: tl.constexpr):
    # PM: the accumulator as (pixels, taps) instead of (taps, pixels); the same sums (see pixels_major)
    o = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    c = (o // KM) % C
    go = o
    if REMAP:
        go = tl.load(dest_ptr + o).to(tl.int64)
    t = tl.arange(0, TAPS)  # tap t = (t // KW, t % KW); TAPS >= KH*KW, a power of two
    if PM:
        ti = (t // KW)[None, :]
        tj = (t % KW)[None, :]
        real_tap = (t < KH * KW)[None, :]
    else:
        ti = (t // KW)[:, None]
        tj = (t % KW)[:, None]
        real_tap = (t < KH * KW)[:, None]
    if GEO:
        unit = o // UNIT_CH
        row3 = geo_ptr + unit * 3
        kk = tl.load(row3)
        dh = tl.load(row3 + 1)
        ph = tl.load(row3 + 2)
        dw, pw = dh, ph
        real_tap = real_tap & (ti < kk) & (tj < kk)
        x_first = (unit // SAMPLE_UNITS) * N  # sample groups: its sample's block of input images
    else:
        dh, ph, dw, pw = DH, PH, DW, PW
        x_first = 0
    if PM:
        acc = tl.zeros([BLOCK, TAPS], dtype=DT)
    else:
        acc = tl.zeros([TAPS, BLOCK], dtype=DT)
    n_end = tl.minimum((split + 1) * PER_SPLIT, N)
    for n in range(split * PER_SPLIT, n_end):
        g_plane = g_ptr + (n * O + go) * HO * WO
        x_plane = x_ptr + ((n + x_first) * C + c) * H * W
        for start in range(0, HO * WO, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            inside = offs < HO * WO
            g = tl.load(g_plane + offs, mask=inside, other=0.0)
            if PM:
                pix, inside2, g2 = offs[:, None], inside[:, None], g[:, None]
            else:
                pix, inside2, g2 = offs[None, :], inside[None, :], g[None, :]
            iy = (pix // WO) * SH - ph + ti * dh
            ix = (pix % WO) * SW - pw + tj * dw
            ok = (real_tap & inside2 & (iy.to(tl.uint32) < H.to(tl.uint32))
                  & (ix.to(tl.uint32) < W.to(tl.uint32)))
            if FLAT:  # stride 1 and as wide as the input: pixel p's tap reads p + the tap's shift
                v = tl.load(x_plane + pix + ((ti * dh - ph) * W + tj * dw - pw), mask=ok, other=0.0)
            else:
                v = tl.load(x_plane + iy * W + ix, mask=ok, other=0.0)
            if RELU:
                v = tl.maximum(v, 0.0)
            acc += v * g2
    if PM:
        taps = tl.sum(acc, axis=0)
    else:
        taps = tl.sum(acc, axis=1)
    tl.store(part_ptr + (o * tl.num_programs(1) + split) * (KH * KW) + t, taps, mask=t < KH * KW)


# Compiled once per value of each constexpr argument (kernel size, stride, a fused ReLU, tile shape, and in the
# forward and input gradient padding and dilation: 38 + 38 + 16 forms for the DARTS step's 80 geometries,
# counted at paper size by benchmarks/dwconv_compile.py on 2026-12-05, 60 while padding and dilation were run-time
# values) and, by Triton's default, per integer argument equal to 1 or divisible by 16: the sizes (and the
# weight gradient's padding and dilation) are exempt, so a GPU run compiles about a hundred kernels at its first
# (warm-up) step instead of hundreds more. A name here that is a constexpr in a kernel (the forward's and input
# gradient's PH, PW, DH, DW) is left out of that kernel's exemption (runtime_sizes).
_SIZES = ("C", "H", "W", "O", "HO", "WO", "KM", "R", "N", "N_CB", "PER_SPLIT", "UNIT_CH", "SAMPLE_UNITS", "N_OUT",
          "PH", "PW", "DH", "DW")


KERNELS = (_fwd_kernel, _dx_kernel, _dw_kernel)


def constexprs(fn) -> set[str]:
    """The parameters of the kernel function ``fn`` annotated ``tl.constexpr`` (also benchmarks/dwconv_compile.py's
    signatures)."""
    return {k for k, v in fn.__annotations__.items() if "constexpr" in str(v)}


def runtime_sizes(fn, sizes: tuple) -> list[str]:
    """The parameters of ``fn`` named in ``sizes`` that are run-time values (not ``tl.constexpr``): the ones
    Triton is told not to specialise. Triton's JIT refuses a constexpr in ``do_not_specialize`` with a
    CompilationError at the first launch on a GPU (3.6 and 3.8 alike), which neither the interpreter nor
    ``triton.compile`` (benchmarks/dwconv_compile.py) sees: the forward's and input gradient's padding and
    dilation are constexprs, the weight gradient's run-time values, under the same names."""
    params = fn.__code__.co_varnames[:fn.__code__.co_argcount]
    return [a for a in params if a in sizes and a not in constexprs(fn)]


def interpreter_checks(overflow: bool, debug: bool) -> None:
    """Set Triton's interpreter's int32 overflow check and debug mode (no Triton: nothing to set). The interpreter
    redoes every int32 add, subtract and multiply of a kernel in int64 for the overflow check, then drops the
    check unless debug is on too (triton/language/semantic.py, device_assert; Triton 3.6 and 3.8): about half of
    an interpreted launch for nothing. tests/conftest.py and ``benchmarks/gpu_all.py --tiny`` turn both off;
    the kernel-form tests turn both on, where an overflow fails the launch."""
    if triton is None:
        return
    import dataclasses

    import triton.runtime.interpreter as interpreter

    builder = interpreter.interpreter_builder
    builder.options = dataclasses.replace(builder.options, sanitize_overflow=overflow, debug=debug)


@functools.cache
def _jitted(fns: tuple, sizes: tuple, interpret: bool) -> tuple:
    del interpret  # part of the cache key: triton.jit reads TRITON_INTERPRET when it is called
    return tuple(triton.jit(fn, do_not_specialize=runtime_sizes(fn, sizes)) for fn in fns)


def kernel_dtype(x: torch.Tensor):
    """The ``DT`` constexpr the kernels accumulate in for ``x``."""
    return tl.float64 if x.dtype == torch.float64 else tl.float32


def launch_settings(x: torch.Tensor, fns: tuple, sizes: tuple):
    """(``fns`` as Triton kernels for ``x``'s device, made at first use and kept; their ``DT``): the run-time
    integer arguments named in ``sizes`` are not specialised. Also harness.nn.bntriton's."""
    return _jitted(fns, sizes, os.environ.get("TRITON_INTERPRET") == "1" and not x.is_cuda), kernel_dtype(x)


def _launch_settings(x: torch.Tensor):
    return launch_settings(x, KERNELS, _SIZES)


def _block(n: int, cap: int = 1024) -> int:
    return max(16, min(cap, triton.next_power_of_2(n)))


def _tiles(channels: int, pixels: int, elements: int = 1024) -> tuple[int, int]:
    """(channels, pixels) of a program's tile: a plane's pixels up to ``elements``, then channels up to
    ``elements`` in all (a DARTS cell's 8x8 planes: 16 channels of 64 pixels, not 64-pixel programs)."""
    pb = _block(pixels, cap=elements)
    return max(1, min(elements // pb, triton.next_power_of_2(channels))), pb


def _warps(elements: int, taps: int, per_thread: int | None = None) -> int:
    """Warps for a forward or input-gradient tile: 4 elements a thread, 2 for 5x5 kernels. From ptxas -v for
    sm_90 (``benchmarks/dwconv_compile.py``, no GPU needed): at 4 a thread the 5x5 forward holds 128
    registers and the 5x5 input gradient 255 with spills; 3x3 kernels 58-141, no spills."""
    per_thread = per_thread or (4 if taps <= 9 else 2)
    return max(1, min(16, elements // (32 * per_thread)))


# The 5x5 input gradient's tile: 512 elements, one a thread (16 warps). At 1024, two a thread, Triton 3.6 (the GPU
# image's) capped it at 128 registers and spilled 24-60 bytes in 8 of the DARTS step's forms (Triton 3.8: 1);
# benchmarks/results/2026-12-05-triton36/.
_DX_WIDE = (512, 1)
# The slots' per-unit-geometry forms (GEO, a 5x5 tap grid behind per-program branches): 1024 elements, 4 a
# thread. At one a thread every tap's branch, weight load and shift were a thread's own for one multiply-add (16.2
# instructions a float op at stride 1, 20.1 at stride 2, Triton 3.6); at 4, 9.6 and 15.2 (3.8: 9.5, 13.0) with
# 76-94 registers and no spill under either version (2 a thread: 11.0-11.3; 8: 8.3-8.8 at 126-168 registers);
# benchmarks/results/2026-12-05f-dw-stride2/ (slots_summary.md, dx-tiles-*.log).
_DX_GEO = (1024, 4)
# ... and their forward: 4 elements a thread, where taps > 9 gives 2 to the fixed-geometry forms: 15.2 -> 12.7
# instructions a float op at stride 1 (Triton 3.6; 3.8: 13.6 -> 10.9), 64 registers (8 a thread: 11.5, 103-118)
_FWD_GEO = 4
# The fixed-geometry forward's elements a thread (None: _warps's 4 for 3x3, 2 for 5x5). 8 for 3x3 and 4 for 5x5, tried
# on the DARTS step's forms: 13.4 -> 12.1 and 10.1 -> 9.3 instructions a float op under Triton 3.6 (3.8: 12.1 -> 9.7,
# 9.2 -> 7.6) at 71-92 and 62-79 registers (40-54 now): not kept without a GPU to weigh the lost occupancy
# (benchmarks/results/2026-12-05f-dw-stride2/fwd-fixed-tiles-*.log)
_FWD_FIXED = None


# The weight gradient's accumulator where a tap's input addresses are not contiguous along the output pixels (stride
# 2): (pixels, taps) when True, (taps, pixels) when False, None: by Triton's version (pixels_major). Same sums in
# the same order per tap; only which axis Triton lays across a warp's threads changes.
DW_PIXELS_MAJOR: bool | None = None
_TRITON_BEFORE_3_8 = triton is not None and tuple(int(v) for v in triton.__version__.split(".")[:2]) < (3, 8)


def pixels_major(flat: bool) -> bool:
    """Whether a weight-gradient form takes the (pixels, taps) accumulator: never for the ``FLAT`` (stride-1)
    forms; for the others ``DW_PIXELS_MAJOR``, by default True under Triton before 3.8. Compiled for sm_90
    without a GPU (``benchmarks/dwconv_compile.py``'s SASS columns, the DARTS step's stride-2 forms; logs in
    benchmarks/results/2026-12-05f-dw-stride2/): Triton 3.6 (the GPU image's) lays a (taps, pixels) tile whose
    pixels are not contiguous with the taps across a warp's threads and issues about 42 instructions a
    multiply-add, and about 10 on a (pixels, taps) tile; Triton 3.8 the other way round."""
    if flat:
        return False
    if DW_PIXELS_MAJOR is not None:
        return DW_PIXELS_MAJOR
    return _TRITON_BEFORE_3_8


def _dest(dest, placeholder: torch.Tensor) -> torch.Tensor:
    """The ``dest`` pointer argument: the map, or (REMAP off, never read) any tensor on the device."""
    return placeholder if dest is None else dest


def _geometry(x, weight, stride, padding, dilation, geo=None):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    if geo is not None:  # every unit "same"-padded (checked where the table is made): the size at stride s
        ho, wo = (h - 1) // stride[0] + 1, (w - 1) // stride[1] + 1
    else:
        ho = out_size(h, kh, stride[0], padding[0], dilation[0])
        wo = out_size(w, kw, stride[1], padding[1], dilation[1])
    consts = dict(PH=padding[0], PW=padding[1], DH=dilation[0], DW=dilation[1], KH=kh, KW=kw, SH=stride[0],
                  SW=stride[1])
    return n, c, h, w, o, ho, wo, consts


_NO_SAMPLES = 1 << 30  # SAMPLE_UNITS when the input is not in sample blocks: every unit's offset is 0


def _geo(geo, placeholder: torch.Tensor, x: torch.Tensor, o: int) -> tuple[torch.Tensor, int, int, int]:
    """The ``geo_ptr``, ``UNIT_CH``, ``SAMPLE_UNITS`` and ``N_OUT`` arguments: the table, channels per unit,
    units per sample and output images (the input's images per sample), or (GEO off) placeholders."""
    if geo is None:
        return placeholder, 1, _NO_SAMPLES, x.shape[0]
    table, unit_ch, *rest = geo
    samples = rest[0] if rest else 1
    if table.shape[0] * unit_ch != o:  # the kernels take a program's channels as one unit's
        raise ValueError(f"geo: {o} output channels are not {table.shape[0]} units of unit_ch={unit_ch} channels")
    if samples == 1:
        return table, unit_ch, _NO_SAMPLES, x.shape[0]
    return table, unit_ch, o // unit_ch // samples, x.shape[0] // samples


def forward(x, weight, stride, padding, dilation, k: int, relu: bool = False, dest=None, geo=None) -> torch.Tensor:
    """The depthwise convolution: (N, C, H, W) x (O, 1, KH, KW) -> (N, O, HO, WO), output channel o reading
    input channel (o // k) % C, of max(x, 0) if ``relu``, written to channel ``dest[o]`` if given (a
    permutation of range(O), int64 on x's device: the conv followed by a channel gather, in one pass).

    ``geo = (table, unit_ch[, samples])``: output channel o belongs to unit o // unit_ch, whose kernel size k,
    dilation d and padding p are row ``o // unit_ch`` of ``table`` (int32 (units, 3) on x's device: read by
    the kernels, so it may change between replays of a captured graph), p = d*(k-1)/2 ("same" for every
    unit); its k x k taps are the top-left corner of the KH x KW weight grid (``padding`` and ``dilation``
    are then not used). With ``samples`` K > 1 the input is K blocks of N images (sample groups,
    sample-major) and the output N images: the units are K equal runs, run s reading block s (a sample's
    units side by side in channels, its images in the batch)."""
    (fwd, _, _), dt = _launch_settings(x)
    n, c, h, w, o, ho, wo, consts = _geometry(x, weight, stride, padding, dilation, geo)
    table, unit_ch, sample_units, n = _geo(geo, weight, x, o)
    y = torch.empty((n, o, ho, wo), dtype=x.dtype, device=x.device)
    cb, pb = _tiles(o, ho * wo)
    if geo is not None:  # a program's channels within one unit: its geometry one value (the kernel's GEO loops)
        cb = min(cb, unit_ch & -unit_ch)
    n_cb = triton.cdiv(o, cb)
    fwd[(n * n_cb, triton.cdiv(ho * wo, pb))](x, weight, y, _dest(dest, weight), table, c, h, w, o, ho, wo, k,
                                              n_cb, unit_ch, sample_units, n, **consts, RELU=relu,
                                              REMAP=dest is not None,
                                              GEO=geo is not None,
                                              EVEN=o % cb == 0 and (ho * wo) % pb == 0, CB=cb, PB=pb, DT=dt,
                                              num_warps=_warps(cb * pb, consts["KH"] * consts["KW"],
                                                               _FWD_GEO if geo is not None else _FWD_FIXED))
    return y


@functools.lru_cache(maxsize=None)
def _one_unit_blocks(c: int, k: int, r: int, unit_ch: int, cb: int) -> int:
    """The largest block of input channels, at most ``cb`` (a power of two), whose channels' output channels
    o = (r'*c + channel)*k + q lie in one unit (o // unit_ch) for every r' < r, q < k: the input gradient's
    per-unit geometry is then one value per block and output channel step (1 always qualifies)."""
    while cb > 1:
        if all((((rq // k) * c + c0) * k + rq % k) // unit_ch
               == (((rq // k) * c + min(c0 + cb, c) - 1) * k + rq % k) // unit_ch
               for c0 in range(0, c, cb) for rq in range(r * k)):
            return cb
        cb //= 2
    return 1


def grad_input(grad, x, weight, stride, padding, dilation, k: int, relu: bool = False, dest=None,
               geo=None) -> torch.Tensor:
    (_, dxk, _), dt = _launch_settings(x)
    n, c, h, w, o, ho, wo, consts = _geometry(x, weight, stride, padding, dilation, geo)
    dx = torch.empty_like(x)
    taps = consts["KH"] * consts["KW"]
    elements, per_thread = _DX_GEO if geo is not None else _DX_WIDE if taps > 9 else (1024, None)
    cb, pb = _tiles(c, h * w, elements)
    table, unit_ch, sample_units, n_out = _geo(geo, weight, x, o)
    if geo is not None:  # each output channel a program's input channels feed at a time within one unit
        cb = _one_unit_blocks(c, k, o // (c * k), unit_ch, cb)
    n_cb = triton.cdiv(c, cb)
    dxk[(n * n_cb, triton.cdiv(h * w, pb))](grad, weight, x, dx, _dest(dest, weight), table, c, h, w, o, ho, wo,
                                            k, o // (c * k), n_cb, unit_ch, sample_units, n_out, **consts,
                                            RELU=relu,
                                            REMAP=dest is not None, GEO=geo is not None, CB=cb, PB=pb, DT=dt,
                                            num_warps=_warps(cb * pb, taps, per_thread))
    return dx


def grad_weight(grad, x, weight, stride, padding, dilation, k: int, relu: bool = False, dest=None,
                geo=None) -> torch.Tensor:
    (_, _, dwk), dt = _launch_settings(x)
    n, c, h, w, o, ho, wo, consts = _geometry(x, weight, stride, padding, dilation, geo)
    table, unit_ch, sample_units, n = _geo(geo, weight, x, o)
    taps = triton.next_power_of_2(consts["KH"] * consts["KW"])
    block = _block(ho * wo, cap=max(16, 4096 // taps))
    # 16 accumulator elements a thread: up to 8 warps for the (taps x block) accumulator (at 4, Triton 3.6, the
    # GPU image's, held 168-241 registers a thread and spilled in three forms; at 8, 31-128 and none: ptxas -v
    # for sm_90, benchmarks/results/2026-12-05-triton36/), fewer for small planes: at 8 warps an 8x8 plane's
    # threads held 4 elements each and issued 20-23 instructions a multiply-add, against 7-14 at 16 (the
    # per-pixel index arithmetic shared by fewer taps; benchmarks/dwconv_compile.py's SASS columns,
    # benchmarks/results/2026-12-05c-sass/)
    warps = max(1, min(8, taps * block // (32 * 16)))
    # enough programs to fill a GPU (an H200 has 132 multiprocessors) with whole images per program: about
    # 1024 programs of 8 warps, more of fewer
    splits = max(1, min(n, -(-1024 * 8 // warps // o)))
    per_split = -(-n // splits)
    splits = -(-n // per_split)
    part = torch.empty((o, splits, consts["KH"] * consts["KW"]), dtype=x.dtype, device=x.device)
    flat = stride == (1, 1) and wo == w
    dwk[(o, splits)](grad, x, part, _dest(dest, weight), table, n, c, h, w, o, ho, wo, k, per_split, unit_ch,
                     sample_units, **consts, RELU=relu, REMAP=dest is not None, GEO=geo is not None,
                     FLAT=flat, PM=pixels_major(flat), TAPS=taps, BLOCK=block, DT=dt, num_warps=warps)
    return part.sum(1).view(weight.shape)  # the slices' partial sums in a fixed order


class DepthwiseConv(torch.autograd.Function):
    """:func:`forward` with its backward in the kernels above; keeps its input and weight only, and computes
    each gradient only when the backward pass uses it (an architecture step's backward asks for alpha's
    gradient alone)."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation, k, relu, dest, geo):
        x = x.contiguous()
        weight = weight.contiguous()
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, k, relu, dest, geo)
        return forward(x, weight, stride, padding, dilation, k, relu, dest, geo)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        dx = dw = None
        if ctx.needs_input_grad[0] and engine_needs(x):
            dx = grad_input(grad, x, weight, *ctx.conv)
        if ctx.needs_input_grad[1] and engine_needs(weight):
            dw = grad_weight(grad, x, weight, *ctx.conv)
        return dx, dw, None, None, None, None, None, None, None


def depthwise_conv(x, weight, stride, padding, dilation, k: int = 1, relu: bool = False, dest=None,
                   geo=None) -> torch.Tensor:
    """Autograd's form of :func:`forward` (the Triton kernels both ways)."""
    return DepthwiseConv.apply(x, weight, tuple(stride), tuple(padding), tuple(dilation), int(k), bool(relu), dest,
                               geo)
