"""Several sampled architectures in one forward pass ("sample groups", issue 17).

ROME updates on K sampled architectures per step (its Alg. 1), which the eager optimizer runs as K
forward/backward passes, each launching the whole network's kernels. Grouped, the K samples run as one
pass: the batch is repeated K times (sample-major, ``x.repeat(K, 1, 1, 1)``), the sampler's weights get a
leading sample dimension (K, edges, ops), the fused cells weight each sample's block of the batch with its
own architecture (one batched matmul), and every layer that works image by image (convolutions, pooling,
ReLU, the classifier) needs no change. The one layer that mixes images is BatchNorm: in training mode it
must normalise each sample's images with that sample's statistics, as K separate passes would.
:func:`batch_norm` does so with one ``F.batch_norm`` call per sample's block for a few samples, and beyond
that with one call over the samples laid side by side in channels (a transpose there and back); either way the
running statistics end as K successive passes would leave them (momentum applied K times, sample 1 first).

The sample count of the forward in progress is a context variable (:func:`sample_groups`); BatchNorm
modules read it once :func:`enable` has switched their class to :class:`SampleBatchNorm2d` (identical when
no groups are active: the same ``state_dict``, the same numerics).
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F
from torch import nn

_SAMPLES = contextvars.ContextVar("harness_sample_groups", default=1)
_COUNTS = contextvars.ContextVar("harness_bn_counts", default=None)
_AS_CAPTURED = contextvars.ContextVar("harness_as_captured", default=False)


def current() -> int:
    """How many samples the forward pass in progress holds (1 outside :func:`sample_groups`)."""
    return _SAMPLES.get()


@contextlib.contextmanager
def sample_groups(k: int):
    """Run the forward passes inside as ``k`` sample groups (batch = k blocks of the same images)."""
    token = _SAMPLES.set(int(k))
    try:
        yield
    finally:
        _SAMPLES.reset(token)


_COEF: dict = {}


def _update_coefficients(k: int, momentum: float, device, dtype) -> tuple[torch.Tensor, float]:
    """(c, a) with c[s] = (1-m)^(k-1-s) and a = (1-m)^k - (1-m) * sum(c): k successive running-statistic
    updates r <- (1-m) r + m stat_s, written with t_s = (1-m) r0 + m stat_s (what one ``F.batch_norm`` call
    leaves in a buffer that started at r0), give a * r0 + sum_s c[s] t_s. Cached per setting, so a step
    makes no host->device copy (a CUDA graph could not replay one)."""
    key = (k, momentum, device, dtype)
    if key not in _COEF:
        decay = 1.0 - momentum
        c = [decay ** (k - 1 - s) for s in range(k)]
        _COEF[key] = (torch.tensor(c, dtype=dtype, device=device), decay ** k - decay * sum(c))
    return _COEF[key]


@contextlib.contextmanager
def batched_bn_counts():
    """Within: BatchNorm layers (:class:`SampleBatchNorm2d`, the fused cell's) add to their
    ``num_batches_tracked`` counters at the end, in one multi-tensor add per increment value, instead of one
    tiny kernel each (a DARTS supernet forward has ~50 of them outside the fused cells). The counters end
    with the same values; nothing reads them in between (momentum is set, so they only count)."""
    pending: dict[int, list] = {}
    token = _COUNTS.set(pending)
    try:
        yield
    finally:
        _COUNTS.reset(token)
        by_step: dict[int, list[torch.Tensor]] = {}
        for counter, step in pending.values():
            by_step.setdefault(step, []).append(counter)
        for step, counters in by_step.items():
            torch._foreach_add_(counters, step)


def count_batches(counter: torch.Tensor, step: int) -> None:
    """``counter += step`` now, or at the end of the :func:`batched_bn_counts` block in progress."""
    pending = _COUNTS.get()
    if pending is None:
        counter.add_(step)
        return
    entry = pending.setdefault(id(counter), [counter, 0])
    entry[1] += step


@contextlib.contextmanager
def as_captured():
    """Within: layers take the form they take while a CUDA graph is being captured, on any device
    (``benchmarks/step_traffic.py --as-captured`` counts such a step without a GPU)."""
    token = _AS_CAPTURED.set(True)
    try:
        yield
    finally:
        _AS_CAPTURED.reset(token)


def capturing(x: torch.Tensor) -> bool:
    """Whether the step in progress is being captured into a CUDA graph (``x``: a tensor of the step), or
    counted as if (:func:`as_captured`)."""
    return _AS_CAPTURED.get() or (x.is_cuda and torch.cuda.is_current_stream_capturing())


def engine_needs(t: torch.Tensor) -> bool:
    """Inside a backward: whether this backward pass uses ``t``'s gradient. ``ctx.needs_input_grad`` says
    only that ``t`` requires one; a step's backward asks for some gradients only (the architecture step's
    for alpha: no weight gradients), and autograd's own formulas skip the rest, as this lets a Function do
    (torch's engine query, the one ``torch.autograd.graph.register_multi_grad_hook`` uses)."""
    try:
        return torch._C._will_engine_execute_node(torch.autograd.graph.get_gradient_edge(t).node)
    except (AttributeError, RuntimeError):  # a torch without the query: compute it
        return True


# Up to this many samples, :func:`batch_norm` normalises each block with its own call: 4k + 1 kernels for the
# forward and backward (k normalisations each way, a concatenation and its backward, the affine gradients summed
# over k uses), against 15 for the side-by-side call at any k, which also copies the activations there and back
# in both passes (counted by benchmarks/search_step.py's counter, 2026-12-04; ROME's chosen-op pass normalises
# mostly groups of 1-3 samples, its all-op pass always K = 7). Inside a CUDA graph capture a launch costs next
# to nothing and the copies are what remains, so a captured step normalises block by block at any k (ROME's
# all-op step at the paper's size: 903 instead of 1,016 GB moved, for 821 more kernels;
# benchmarks/results/2026-12-04-kernels-recounted/).
PER_BLOCK_UP_TO = 3
# BATCHNORM_TRITON: while a CUDA graph is captured, training BatchNorm (any number of sample blocks in one call)
# in harness.nn.bntriton's kernels instead of torch's (whose NCHW kernels reduce a channel per thread block).
# Off until a GPU has timed it (benchmarks/step_variants.py's "triton-bn" and "triton-dw+bn"); uncaptured
# steps keep torch's kernels (a Python Function's host cost).
BATCHNORM_TRITON = False


def batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats: bool, momentum: float, eps: float,
               samples: int) -> torch.Tensor:
    """``F.batch_norm`` with each of ``samples`` consecutive blocks of the batch normalised by its own
    statistics (training), and the running statistics updated as ``samples`` successive calls would."""
    if use_batch_stats and BATCHNORM_TRITON and capturing(x):
        from harness.nn import bntriton  # (it imports this module)

        if bntriton.why_not(x) is None:
            return bntriton.batch_norm(x, running_mean, running_var, weight, bias, momentum, eps, samples)
    if samples == 1 or not use_batch_stats:  # eval with running statistics: the same for every sample
        return F.batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum, eps)
    if samples <= PER_BLOCK_UP_TO or capturing(x):
        # one call per block, in sample order: what successive passes do
        return torch.cat([F.batch_norm(block, running_mean, running_var, weight, bias, True, momentum, eps)
                          for block in x.split(x.shape[0] // samples)])
    k, c = samples, x.shape[1]
    n = x.shape[0] // k
    rest = tuple(x.shape[2:])
    side = x.view(k, n, c, *rest).transpose(0, 1).reshape(n, k * c, *rest)  # sample s -> channels s*c..
    track = running_mean is not None
    tmp = torch.stack([running_mean, running_var]).repeat(1, k) if track else None  # (2, k*c), r0 per sample
    w = weight.repeat(k) if weight is not None else None
    b = bias.repeat(k) if bias is not None else None
    out = F.batch_norm(side, tmp[0] if track else None, tmp[1] if track else None, w, b, True, momentum, eps)
    if track:
        with torch.no_grad():
            coef, a = _update_coefficients(k, momentum, tmp.device, tmp.dtype)
            summed = torch.matmul(coef, tmp.view(2, k, c))  # (2, c): sum_s c[s] t_s for mean and var
            torch._foreach_mul_([running_mean, running_var], a)
            torch._foreach_add_([running_mean, running_var], [summed[0], summed[1]])
    return out.view(n, k, c, *rest).transpose(0, 1).reshape(k * n, c, *rest)


class SampleBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that keeps sample groups apart (:func:`batch_norm`); plain BatchNorm otherwise."""

    def forward(self, x):
        k = current()
        if k == 1 and _COUNTS.get() is None:
            return super().forward(x)
        self._check_input_dim(x)
        track = self.track_running_stats and self.running_mean is not None
        if self.training and track:
            count_batches(self.num_batches_tracked, k)
        return batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                          self.weight, self.bias, self.training or not track, self.momentum, self.eps, k)


def why_not(net: nn.Module) -> str | None:
    """None when every module of ``net`` that mixes images of a batch is a BatchNorm2d this module can
    keep per sample, else the first one that is not (named)."""
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if not isinstance(m, nn.BatchNorm2d):
                return f"{name} is a {type(m).__name__} (sample groups know BatchNorm2d)"
            if m.momentum is None and m.track_running_stats:
                return f"{name} uses a cumulative moving average (momentum=None)"
    return None


def enable(net: nn.Module) -> None:
    """Switch every ``nn.BatchNorm2d`` of ``net`` to :class:`SampleBatchNorm2d` (in place; idempotent)."""
    reason = why_not(net)
    if reason is not None:
        raise ValueError(f"cannot run sample groups: {reason}")
    for m in net.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SampleBatchNorm2d
