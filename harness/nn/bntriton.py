"""BatchNorm's training pass in Triton kernels: an optional form of the captured step's BatchNorm layers
(issue 12).

The H200 profile of the DARTS step (BENCHMARKS.md, "Where the step's time goes") put torch's BatchNorm
kernels at 18 of its 132.5 ms of kernels: ``batch_norm_collect_statistics_kernel`` 26 us a call (166
calls), ``batch_norm_transform_input_kernel`` 25 us, ``batch_norm_backward_kernel`` 59 us (162 calls). By
the step's byte count (``benchmarks/results/2026-12-04c-dwconv/bytes_by_operator.log``: 8.36 GB read and
written by 216 forward calls, 11.65 GB by 210 backward calls) a forward call moves about 39 MB and a
backward one 55 MB: 8 and 12 us at the H200's 4.8 TB/s. torch's NCHW kernels reduce each channel in one
thread block (a DARTS cell's shared BatchNorm has up to a few hundred channels of 64 x 32 x 32 values), so
the step's BatchNorm calls run at a fraction of the memory's bandwidth. The kernels here spread every
reduction over (image, block of channels) programs and merge the partial results in a small second kernel:

* plane statistics: per (image, channel), the plane's mean and sum of squared deviations from it, both
  from the plane held in registers when it fits (two passes over it otherwise): exact partial results, no
  E[x^2] - E[x]^2 cancellation;
* combine: per block of channels, each sample block's images merged (Chan, Golub and LeVeque's pairwise
  variance: M2 = sum M2_i + HW * sum (mean_i - mean)^2), mean and 1/sqrt(var + eps) stored, and the
  running statistics updated as successive ``F.batch_norm`` calls update them, sample 1 first (unbiased
  variance, ``momentum``);
* normalise: (image, block of channels, block of pixels) tiles, as :mod:`harness.nn.dwconv`'s;
* backward: per (image, channel) sums of dy and dy * (x - mean); combined per sample and channel (the
  weight's and bias's gradients there too); then dx = rstd * w * (dy - sum dy / M - (x - mean) * rstd^2 *
  sum dy (x - mean) / M), M the values per channel of a sample block.

Sample groups (:mod:`harness.nn.groups`: the batch as K blocks of images, each normalised by its own
statistics) are one call at any K: the sample of image n is n // (N / K). Six kernels a training call (three
each way) against torch's three (two forward, one backward); a captured graph replays a launch for about a
microsecond.

Whether it is faster than torch's kernels is for a GPU to say (``benchmarks/step_variants.py``'s ``triton-bn``
and ``triton-dw+bn``); off by default (``harness.nn.groups.BATCHNORM_TRITON``), and only in the form a CUDA
graph captures, as the depthwise kernels. On a CPU the kernels run only in Triton's interpreter
(``TRITON_INTERPRET=1``, for the tests).
"""

from __future__ import annotations

import torch

from harness.nn import dwconv
from harness.nn.dwconv import _block, _tiles, tl, triton
from harness.nn.groups import engine_needs

why_not = dwconv.why_not  # why the kernels cannot run on a tensor: the depthwise kernels' conditions

# The kernels: plain functions made Triton kernels at first use (as harness.nn.dwconv's, which
# benchmarks/dwconv_compile.py --bn also compiles for a GPU this machine does not have).


def _block_stats_kernel(x_ptr, mean_ptr, m2_ptr, C, HW, NS, NB, N_CB, IMG: tl.constexpr, CB: tl.constexpr,
                        PB: tl.constexpr, DT: tl.constexpr):
    # program: sample s, its image block b (images s*NS + b*IMG .. up to IMG of them, within the sample),
    # channels [cb*CB, cb*CB + CB): the block's mean and sum of squared deviations from it, per channel
    cb = tl.program_id(0) % N_CB
    sb = tl.program_id(0) // N_CB
    s = sb // NB
    b = sb % NB
    c = cb * CB + tl.arange(0, CB)
    c_ok = c < C
    first = (s * NS + b * IMG).to(tl.int64)
    if IMG == 1:  # (a constant: Triton 3.6 spilled 4 bytes of the min below in two 1-image forms)
        imgs = 1
    else:
        imgs = tl.minimum(NS - b * IMG, IMG)
    acc = tl.zeros([CB, PB], dtype=DT)
    for i in range(0, IMG):  # per-thread sums over the block's images, one reduction at the end
        rows = x_ptr + (((first + i) * C + c) * HW)[:, None]
        live = c_ok[:, None] & (i < imgs)
        for start in range(0, HW, PB):
            offs = start + tl.arange(0, PB)
            acc += tl.load(rows + offs[None, :], mask=live & (offs < HW)[None, :], other=0.0)
    mean = tl.sum(acc, axis=1) / (imgs * HW)
    acc = tl.zeros([CB, PB], dtype=DT)
    for i in range(0, IMG):  # again, from the mean: exact, no E[x^2] - E[x]^2 cancellation
        rows = x_ptr + (((first + i) * C + c) * HW)[:, None]
        live = c_ok[:, None] & (i < imgs)
        for start in range(0, HW, PB):
            offs = start + tl.arange(0, PB)
            ok = live & (offs < HW)[None, :]
            d = tl.where(ok, tl.load(rows + offs[None, :], mask=ok, other=0.0) - mean[:, None], 0.0)
            acc += d * d
    tl.store(mean_ptr + sb * C + c, mean, mask=c_ok)
    tl.store(m2_ptr + sb * C + c, tl.sum(acc, axis=1), mask=c_ok)


def _combine_kernel(mean_ptr, m2_ptr, rm_ptr, rv_ptr, smean_ptr, srstd_ptr, const_ptr, C, NS, NB, K, HW,
                    TRACK: tl.constexpr, IMG: tl.constexpr, CB: tl.constexpr, IB: tl.constexpr, DT: tl.constexpr):
    # program: channels [pid*CB, pid*CB + CB), every sample in order (the running statistics' updates): its
    # NB image blocks merged, each weighted by its values (IMG images but the last: NS - (NB-1)*IMG)
    c = tl.program_id(0) * CB + tl.arange(0, CB)
    c_ok = c < C
    momentum = tl.load(const_ptr)
    eps = tl.load(const_ptr + 1)
    if TRACK:
        rm = tl.load(rm_ptr + c, mask=c_ok, other=0.0)
        rv = tl.load(rv_ptr + c, mask=c_ok, other=0.0)
    count = NS * HW
    for s in range(0, K):
        acc = tl.zeros([CB], dtype=DT)
        for b0 in range(0, NB, IB):
            b = b0 + tl.arange(0, IB)
            ok = (b < NB)[:, None] & c_ok[None, :]
            at = ((s * NB + b) * C)[:, None] + c[None, :]
            n_b = (tl.minimum(NS - b * IMG, IMG) * HW)[:, None]
            acc += tl.sum(tl.load(mean_ptr + at, mask=ok, other=0.0) * n_b, axis=0)
        mu = acc / count
        m2 = tl.zeros([CB], dtype=DT)
        for b0 in range(0, NB, IB):
            b = b0 + tl.arange(0, IB)
            ok = (b < NB)[:, None] & c_ok[None, :]
            at = ((s * NB + b) * C)[:, None] + c[None, :]
            n_b = (tl.minimum(NS - b * IMG, IMG) * HW)[:, None]
            d = tl.where(ok, tl.load(mean_ptr + at, mask=ok, other=0.0) - mu[None, :], 0.0)
            m2 += tl.sum(tl.load(m2_ptr + at, mask=ok, other=0.0) + n_b * d * d, axis=0)
        tl.store(smean_ptr + s * C + c, mu, mask=c_ok)
        tl.store(srstd_ptr + s * C + c, 1.0 / tl.sqrt(m2 / count + eps), mask=c_ok)
        if TRACK:
            rm = (1.0 - momentum) * rm + momentum * mu
            rv = (1.0 - momentum) * rv + momentum * (m2 / (count - 1))
    if TRACK:
        tl.store(rm_ptr + c, rm, mask=c_ok)
        tl.store(rv_ptr + c, rv, mask=c_ok)


def _normalize_kernel(x_ptr, y_ptr, smean_ptr, srstd_ptr, w_ptr, b_ptr, C, HW, NS, N_CB, AFFINE: tl.constexpr,
                      CB: tl.constexpr, PB: tl.constexpr):
    n = (tl.program_id(0) // N_CB).to(tl.int64)
    c = (tl.program_id(0) % N_CB) * CB + tl.arange(0, CB)
    offs = tl.program_id(1) * PB + tl.arange(0, PB)
    c_ok = c < C
    ok = c_ok[:, None] & (offs < HW)[None, :]
    stat = (n // NS) * C + c
    mu = tl.load(smean_ptr + stat, mask=c_ok, other=0.0)[:, None]
    r = tl.load(srstd_ptr + stat, mask=c_ok, other=0.0)[:, None]
    at = ((n * C + c) * HW)[:, None] + offs[None, :]
    y = (tl.load(x_ptr + at, mask=ok, other=0.0) - mu) * r
    if AFFINE:
        y = y * tl.load(w_ptr + c, mask=c_ok, other=0.0)[:, None] + tl.load(b_ptr + c, mask=c_ok, other=0.0)[:, None]
    tl.store(y_ptr + at, y, mask=ok)


def _grad_sums_kernel(g_ptr, x_ptr, smean_ptr, sdy_ptr, sdyx_ptr, C, HW, NS, NB, N_CB, IMG: tl.constexpr,
                      CB: tl.constexpr, PB: tl.constexpr, DT: tl.constexpr):
    # program: an image block and a channel block, as the statistics': sum dy and sum dy * (x - mean)
    cb = tl.program_id(0) % N_CB
    sb = tl.program_id(0) // N_CB
    s = sb // NB
    b = sb % NB
    c = cb * CB + tl.arange(0, CB)
    c_ok = c < C
    first = (s * NS + b * IMG).to(tl.int64)
    if IMG == 1:  # (a constant: Triton 3.6 spilled 4 bytes of the min below in two 1-image forms)
        imgs = 1
    else:
        imgs = tl.minimum(NS - b * IMG, IMG)
    mu = tl.load(smean_ptr + s * C + c, mask=c_ok, other=0.0)[:, None]
    sdy = tl.zeros([CB, PB], dtype=DT)
    sdyx = tl.zeros([CB, PB], dtype=DT)
    for i in range(0, IMG):
        rows = (((first + i) * C + c) * HW)[:, None]
        live = c_ok[:, None] & (i < imgs)
        for start in range(0, HW, PB):
            offs = start + tl.arange(0, PB)
            ok = live & (offs < HW)[None, :]
            g = tl.load(g_ptr + rows + offs[None, :], mask=ok, other=0.0)
            sdy += g
            sdyx += g * tl.where(ok, tl.load(x_ptr + rows + offs[None, :], mask=ok, other=0.0) - mu, 0.0)
    tl.store(sdy_ptr + sb * C + c, tl.sum(sdy, axis=1), mask=c_ok)
    tl.store(sdyx_ptr + sb * C + c, tl.sum(sdyx, axis=1), mask=c_ok)


def _grad_combine_kernel(sdy_ptr, sdyx_ptr, srstd_ptr, tdy_ptr, tdyx_ptr, dw_ptr, db_ptr, C, NB, K,
                         AFFINE: tl.constexpr, CB: tl.constexpr, IB: tl.constexpr, DT: tl.constexpr):
    # program: channels [pid*CB, pid*CB + CB): the image blocks' sums per sample; the affine gradients
    c = tl.program_id(0) * CB + tl.arange(0, CB)
    c_ok = c < C
    dw = tl.zeros([CB], dtype=DT)
    db = tl.zeros([CB], dtype=DT)
    for s in range(0, K):
        a = tl.zeros([CB], dtype=DT)
        b = tl.zeros([CB], dtype=DT)
        for b0 in range(0, NB, IB):
            i = b0 + tl.arange(0, IB)
            ok = (i < NB)[:, None] & c_ok[None, :]
            at = ((s * NB + i) * C)[:, None] + c[None, :]
            a += tl.sum(tl.load(sdy_ptr + at, mask=ok, other=0.0), axis=0)
            b += tl.sum(tl.load(sdyx_ptr + at, mask=ok, other=0.0), axis=0)
        tl.store(tdy_ptr + s * C + c, a, mask=c_ok)
        tl.store(tdyx_ptr + s * C + c, b, mask=c_ok)
        if AFFINE:
            dw += b * tl.load(srstd_ptr + s * C + c, mask=c_ok, other=0.0)
            db += a
    if AFFINE:
        tl.store(dw_ptr + c, dw, mask=c_ok)
        tl.store(db_ptr + c, db, mask=c_ok)


def _dx_kernel(g_ptr, x_ptr, dx_ptr, smean_ptr, srstd_ptr, tdy_ptr, tdyx_ptr, w_ptr, C, HW, NS, N_CB,
               AFFINE: tl.constexpr, CB: tl.constexpr, PB: tl.constexpr):
    n = (tl.program_id(0) // N_CB).to(tl.int64)
    c = (tl.program_id(0) % N_CB) * CB + tl.arange(0, CB)
    offs = tl.program_id(1) * PB + tl.arange(0, PB)
    c_ok = c < C
    ok = c_ok[:, None] & (offs < HW)[None, :]
    stat = (n // NS) * C + c
    m = NS * HW
    mu = tl.load(smean_ptr + stat, mask=c_ok, other=0.0)
    r = tl.load(srstd_ptr + stat, mask=c_ok, other=0.0)
    mean_dy = tl.load(tdy_ptr + stat, mask=c_ok, other=0.0) / m
    proj = tl.load(tdyx_ptr + stat, mask=c_ok, other=0.0) * r * r / m
    scale = r
    if AFFINE:
        scale = r * tl.load(w_ptr + c, mask=c_ok, other=0.0)
    at = ((n * C + c) * HW)[:, None] + offs[None, :]
    g = tl.load(g_ptr + at, mask=ok, other=0.0)
    x = tl.load(x_ptr + at, mask=ok, other=0.0)
    dx = (g - mean_dy[:, None] - (x - mu[:, None]) * proj[:, None]) * scale[:, None]
    tl.store(dx_ptr + at, dx, mask=ok)


KERNELS = (_block_stats_kernel, _combine_kernel, _normalize_kernel, _grad_sums_kernel, _grad_combine_kernel,
           _dx_kernel)
# sizes are run-time arguments (not specialised per value equal to 1 or divisible by 16): a few forms a step
_SIZES = ("C", "HW", "N_CB", "NS", "NB", "K")


def _settings(x: torch.Tensor):
    return dwconv.launch_settings(x, KERNELS, _SIZES)


_CONST: dict = {}


def _constants(momentum: float, eps: float, device, dtype) -> torch.Tensor:
    """(momentum, eps) as a tensor of the input's dtype on its device, cached: exact in float64 (a Python
    float passed to a kernel is float32) and no host->device copy in a step (a CUDA graph could not replay
    one)."""
    key = (float(momentum), float(eps), device, dtype)
    if key not in _CONST:
        _CONST[key] = torch.tensor([momentum, eps], dtype=dtype, device=device)
    return _CONST[key]


# IMAGES_PER_PROGRAM: the images one statistics (or gradient-sum) program reads for its block of channels,
# summed per thread and reduced once: 1 is a program per (image, channel block), a DARTS cell-input pass's 32 x 32
# planes 4 KB each (tens of thousands of small programs, each with its own cross-warp reduction); 8 reads 32 KB.
# Which is faster is for a GPU (benchmarks/bn_bench.py times both: --images-per-program).
IMAGES_PER_PROGRAM = 8
# the combine kernels' tiles: up to 64 image blocks of 32 channels a step of their loop
_COMBINE_CH = 32


def _layout(x: torch.Tensor, samples: int, images: int | None):
    """The launch geometry both passes share: (N, C, HW, images per sample, images per program, image blocks
    per sample, (channels, pixels) tile, channel blocks, warps, the combine kernels' (block tile, channels))."""
    n, c = x.shape[:2]
    hw = x[0, 0].numel()
    ns = n // samples
    img = max(1, min(int(IMAGES_PER_PROGRAM if images is None else images), ns))
    nb = triton.cdiv(ns, img)
    cb, pb = _tiles(c, hw)
    warps = max(1, min(8, cb * pb // 128))
    return n, c, hw, ns, img, nb, cb, pb, triton.cdiv(c, cb), warps, (_block(nb, cap=64), _COMBINE_CH)


def forward(x, weight, bias, running_mean, running_var, momentum: float, eps: float, samples: int = 1,
            images: int | None = None):
    """Training BatchNorm of ``x`` (N, C, H, W), contiguous, in ``samples`` blocks of N / samples images each
    normalised by its own statistics; the running statistics (if given) updated in place as ``samples``
    successive ``F.batch_norm`` calls update them. ``images``: per statistics program (None:
    ``IMAGES_PER_PROGRAM``). Returns (y, mean, rstd), the last two (samples, C)."""
    (stats_k, combine_k, norm_k, _, _, _), dt = _settings(x)
    n, c, hw, ns, img, nb, cb, pb, n_cb, warps, (ib, ccb) = _layout(x, samples, images)
    if ns * hw <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    part = torch.empty((2, samples * nb, c), dtype=x.dtype, device=x.device)
    stats_k[(samples * nb * n_cb,)](x, part[0], part[1], c, hw, ns, nb, n_cb, IMG=img, CB=cb, PB=pb, DT=dt,
                                    num_warps=warps)
    stat = torch.empty((2, samples, c), dtype=x.dtype, device=x.device)
    track = running_mean is not None
    combine_k[(triton.cdiv(c, ccb),)](part[0], part[1], running_mean if track else x, running_var if track else x,
                                      stat[0], stat[1], _constants(momentum, eps, x.device, x.dtype), c, ns, nb,
                                      samples, hw, TRACK=track, IMG=img, CB=ccb, IB=ib, DT=dt, num_warps=4)
    y = torch.empty_like(x)
    affine = weight is not None
    norm_k[(n * n_cb, triton.cdiv(hw, pb))](x, y, stat[0], stat[1], weight if affine else x, bias if affine else x,
                                            c, hw, ns, n_cb, AFFINE=affine, CB=cb, PB=pb, num_warps=warps)
    return y, stat[0], stat[1]


def backward(grad, x, weight, mean, rstd, samples: int, need_input: bool = True, need_affine: bool = True,
             images: int | None = None):
    """(dx, dweight, dbias) of :func:`forward`'s output, each None where not asked for (or no weight)."""
    (_, _, _, sums_k, gcombine_k, dx_k), dt = _settings(x)
    n, c, hw, ns, img, nb, cb, pb, n_cb, warps, (ib, ccb) = _layout(x, samples, images)
    affine = weight is not None and need_affine
    part = torch.empty((2, samples * nb, c), dtype=x.dtype, device=x.device)
    sums_k[(samples * nb * n_cb,)](grad, x, mean, part[0], part[1], c, hw, ns, nb, n_cb, IMG=img, CB=cb, PB=pb,
                                   DT=dt, num_warps=warps)
    tot = torch.empty((2, samples, c), dtype=x.dtype, device=x.device)
    dw = torch.empty_like(weight) if affine else None
    db = torch.empty_like(weight) if affine else None
    gcombine_k[(triton.cdiv(c, ccb),)](part[0], part[1], rstd, tot[0], tot[1], dw if affine else x,
                                       db if affine else x, c, nb, samples, AFFINE=affine, CB=ccb, IB=ib, DT=dt,
                                       num_warps=4)
    dx = None
    if need_input:
        dx = torch.empty_like(x)
        dx_k[(n * n_cb, triton.cdiv(hw, pb))](grad, x, dx, mean, rstd, tot[0], tot[1],
                                              weight if weight is not None else x, c, hw, ns, n_cb,
                                              AFFINE=weight is not None, CB=cb, PB=pb, num_warps=warps)
    return dx, dw, db


class BatchNormTrain(torch.autograd.Function):
    """:func:`forward` with :func:`backward`; keeps the input, the weight and the (samples, C) statistics,
    as torch's BatchNorm does, and computes each gradient only when the backward pass uses it."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, samples, images):
        x = x.contiguous()
        ctx.images = IMAGES_PER_PROGRAM if images is None else images  # the backward reads as the forward did
        y, mean, rstd = forward(x, weight, bias, running_mean, running_var, momentum, eps, samples, ctx.images)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.samples = samples
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0] and engine_needs(x)
        need_affine = weight is not None and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and (
            engine_needs(weight))
        if not (need_x or need_affine):
            return None, None, None, None, None, None, None, None, None
        dx, dw, db = backward(grad.contiguous(), x, weight, mean, rstd, ctx.samples, need_x, need_affine,
                              ctx.images)
        return dx, dw, db, None, None, None, None, None, None


def batch_norm(x, running_mean, running_var, weight, bias, momentum: float, eps: float,
               samples: int = 1, images: int | None = None) -> torch.Tensor:
    """Training ``F.batch_norm`` (batch statistics, running statistics updated) in the kernels above, each of
    ``samples`` consecutive blocks of the batch by its own statistics (:func:`harness.nn.groups.batch_norm`'s
    meaning); ``images``: per statistics program (None: ``IMAGES_PER_PROGRAM``)."""
    return BatchNormTrain.apply(x, weight, bias, running_mean, running_var, float(momentum), float(eps),
                                int(samples), images)
