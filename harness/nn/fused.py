"""The fast forward of a mixed search cell: the same math as running every op of every edge one by one
(``CellBody`` + ``edge_forward``), in a few large kernels instead of hundreds of tiny ones.

A mixed DARTS cell runs 14 edges x 8 ops, each op a chain of 1-8 small kernels on 16-64 channels; on a
GPU almost all of that time is launch overhead and under-filled kernels (``shared/PERF-NOTES.md``). This
module regroups the same computation:

* **Per source node.** Every op of every edge leaving node i reads the same input x_i, so they are run
  together once x_i is complete (sources in order; node j is complete once sources < j have run). The
  cell's inputs are complete together, so their ops run as one pass, on inputs stacked per unit.
* **Units grouped by structure.** Each (edge, op) is a *unit*; units whose modules have the same layer
  chain (e.g. ReLU-dwconv5x5-conv1x1-BN-ReLU-dwconv5x5-conv1x1-BN for ``sep_conv_5x5``) form a group and
  run as one chain on a tensor holding all of them side by side in channels (unit-major): a depthwise
  conv over m units is one conv with ``groups = m*C``; a dense conv (pointwise or NB201's 3x3) reading
  the shared input is one conv with the m weights stacked as output channels, later ones a conv with
  ``groups = m``; BatchNorm over m units is one call over m*C channels (its statistics are per channel,
  so nothing changes); ReLU of x_i is computed once per source; pooling of x_i once per group (and per
  source where a group's units read the cell inputs in turn: ``SPREAD_POOLS``).
* **One BatchNorm per pass** for every group ending in a BatchNorm with the same settings (separable and
  dilated convs, the pools' BN, the stride-2 skip): their pre-BN outputs are concatenated and normalised
  in one call.
* **One weighted sum per source.** The unit outputs U (B, M, C*H*W) are combined into every target node
  at once: contributions = A @ U with A[d, u] = w[e_u, k_u] (x edge weight), one batched GEMM.
* ``none`` units are dropped (they add w * 0); ``noise`` units are drawn for the whole cell up front in
  the eager order, so the random stream is the same as the eager cell's.

BatchNorm running statistics stay in the op modules: on first use, each group's buffers are gathered
into one tensor and the modules' ``running_mean``/``running_var``/``num_batches_tracked`` become views of
it, so the fused call updates exactly what the eager modules would (and ``state_dict``, eval mode and the
eager path keep working). The views are re-made whenever a module's buffer is found replaced (``.to()``,
``load_state_dict`` with ``assign``).

Modules this file does not know (a plugin's own op) run eagerly as single units inside the fast path, so
the fast path never refuses a cell; ``FusedMixed.eager_units`` lists them.

Numerics: the same operations in fp32, summed in a different order (the GEMM), so results agree with the
eager cell to rounding (~1e-6 relative per step); ``tests/test_fused.py`` checks a step and a short
search trajectory.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torch.nn.modules.utils import _pair

from harness.nn import dwconv, groups
from harness.nn.ops import FactorizedReduce, Identity, Noise, Zero


# ---------------------------------------------------------------------------------------------
# Describing an op module as a chain of layers


def _flatten(module: nn.Module) -> list[nn.Module] | None:
    """The leaf layers of nested ``nn.Sequential`` containers, or None if anything else is inside."""
    if isinstance(module, nn.Sequential):
        out: list[nn.Module] = []
        for child in module:
            sub = _flatten(child)
            if sub is None:
                return None
            out += sub
        return out
    return [module] if _layer_key(module) is not None else None


def _layer_key(m: nn.Module):
    if isinstance(m, nn.ReLU):
        return ("relu",)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros" or m.bias is not None or isinstance(m.padding, str):
            return None
        if m.groups == m.in_channels == m.out_channels:
            kind = "dw"
        elif m.groups == 1:
            kind = "dense"
        else:
            return None
        return ("conv", kind, m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation)
    if isinstance(m, nn.BatchNorm2d):
        if m.momentum is None or (m.running_mean is None) != (m.running_var is None):
            return None
        return ("bn", m.num_features, m.affine, m.track_running_stats, m.eps, m.momentum)
    if isinstance(m, nn.MaxPool2d):
        if m.dilation != 1 or m.return_indices:
            return None
        return ("maxpool", m.kernel_size, m.stride, m.padding, m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override is not None:
            return None
        return ("avgpool", m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    return None


def unit_key(module: nn.Module):
    """What a unit's module computes, as a hashable structure key (None: run it eagerly)."""
    if isinstance(module, Zero):
        return ("zero",)
    if isinstance(module, Identity):
        return ("identity",)
    if isinstance(module, Noise):
        return ("noise", module.stride, module.mean, module.std)
    if isinstance(module, FactorizedReduce):
        bn = _layer_key(module.bn)
        return None if bn is None else ("fr", module.conv_1.in_channels, module.conv_1.out_channels, bn)
    layers = _flatten(module)
    if layers is None:
        return None
    return ("chain",) + tuple(_layer_key(m) for m in layers)


# ---------------------------------------------------------------------------------------------
# Fused BatchNorm over several modules


# True while a pass's mix is recomputed in backward (FusedMixed ``recompute``): BatchNorm normalises by the
# batch statistics again but leaves the running statistics and the batch counters alone (updated once, by
# the forward)
_RECOMPUTING = contextvars.ContextVar("fused_recomputing", default=False)


class _FusedBN:
    """m BatchNorm2d modules with equal settings, normalised by one call over their concatenated
    channels; their running buffers are views of one tensor each. ``scratch``: one more module's worth of
    statistics after theirs (mean 0, variance 1, count 0) that no module reads (harness.nn.slots writes
    there what no module keeps)."""

    def __init__(self, bns: Sequence[nn.BatchNorm2d], scratch: bool = False):
        self.bns = list(bns)
        self.scratch = scratch
        self.track = self.bns[0].track_running_stats and self.bns[0].running_mean is not None
        self.rm = self.rv = self.nbt = None
        self._ptrs: list[int] = []

    def bind(self) -> None:
        """Make the modules' buffers views of one fused tensor each, keeping their current values, unless they
        are (first use, or a module's buffer replaced: ``.to()``, ``load_state_dict(assign=True)``)."""
        if self.rm is not None and self._current() == self._ptrs:
            return
        bns = self.bns
        with torch.no_grad():
            like, count = bns[0].running_mean, bns[0].num_batches_tracked
            extra = ([like.new_zeros(like.shape)], [like.new_ones(like.shape)], [count.new_zeros(())]) \
                if self.scratch else ([], [], [])
            self.rm = torch.cat([b.running_mean for b in bns] + extra[0])
            self.rv = torch.cat([b.running_var for b in bns] + extra[1])
            self.nbt = torch.stack([b.num_batches_tracked for b in bns] + extra[2])
        c = bns[0].num_features
        for i, b in enumerate(bns):
            b._buffers["running_mean"] = self.rm[i * c:(i + 1) * c]
            b._buffers["running_var"] = self.rv[i * c:(i + 1) * c]
            b._buffers["num_batches_tracked"] = self.nbt[i]
        self._ptrs = self._current()

    def _current(self) -> list[int]:
        return [p for b in self.bns for p in (b.running_mean.data_ptr(), b.running_var.data_ptr())]

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        first = self.bns[0]
        training = first.training
        if self.track:
            self.bind()
        weight = bias = None
        if first.affine:
            weight = _cat([b.weight for b in self.bns])
            bias = _cat([b.bias for b in self.bns])
        use_batch_stats = training or not self.track
        k = groups.current()
        rm, rv = (self.rm, self.rv) if self.track else (None, None)
        if training and self.track:
            if _RECOMPUTING.get():  # the same call (autograd keeps the same tensors), its updates thrown away
                rm, rv = rm.clone(), rv.clone()
            else:
                groups.count_batches(self.nbt, k)
        return groups.batch_norm(h, rm, rv, weight, bias, use_batch_stats, first.momentum, first.eps, k)


def _mix(per_image, hs, bns, n_units):
    """A pass's weighted sum: U = its unit outputs (each block's closing BatchNorm applied) side by side, then
    (B, targets, units) @ (B, units, C*H*W)."""
    outs = [bn(h) if bn is not None else h for h, bn in zip(hs, bns)]
    u_all = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
    return torch.bmm(per_image, u_all.reshape(u_all.shape[0], n_units, -1))


def _recomputed_mix(per_image, hs, bns, n_units):
    """:func:`_mix` under activation checkpointing: backward keeps only its inputs (the BatchNorm inputs,
    which BatchNorm keeps anyway, and the weights) and runs it again, in the forward's sample groups, with
    the running statistics left alone."""
    k, again = groups.current(), False

    def region(per_image, *hs):
        nonlocal again
        token = _RECOMPUTING.set(again)
        again = True
        try:
            with groups.sample_groups(k):
                return _mix(per_image, hs, bns, n_units)
        finally:
            _RECOMPUTING.reset(token)

    return torch.utils.checkpoint.checkpoint(region, per_image, *hs, use_reentrant=False, preserve_rng_state=False)


FusedBatchNorm = _FusedBN  # public name: m BatchNorm2d modules as one call (plugins' own fused paths)


class JointStates(list):
    """A cell's input states that also come side by side in one tensor: ``joint[(0, 1)]`` is
    ``torch.cat([states[0], states[1]], 1)`` already computed (the fused forward then reads it instead of
    concatenating again)."""

    joint: dict


def relu_conv_bn_jointly(blocks: Sequence[nn.Module], xs: Sequence[torch.Tensor], bn: _FusedBN) -> torch.Tensor:
    """m ReLU -> 1x1 Conv2d -> BatchNorm2d blocks (``ReLUConvBN``) on m equally shaped inputs, as one ReLU, one
    grouped convolution and one BatchNorm call: their outputs side by side in channels (``bn`` holds the
    blocks' BatchNorm modules, in order)."""
    h = F.relu(torch.cat(list(xs), dim=1))
    weight = _cat([b[1].weight for b in blocks])
    if POINTWISE_MATMUL:
        return bn(_pointwise(h, weight, len(blocks)))
    return bn(F.conv2d(h, weight, None, 1, 0, 1, len(blocks)))


def joint_relu_conv_bn_ok(blocks: Sequence[nn.Module]) -> bool:
    """Whether ``blocks`` are ReLUConvBN blocks (1x1, stride 1, no padding, same shapes) that
    :func:`relu_conv_bn_jointly` can run together."""
    keys = set()
    for b in blocks:
        layers = _flatten(b)
        if layers is None or len(layers) != 3:
            return False
        key = tuple(_layer_key(m) for m in layers)
        if key[0] != ("relu",) or key[1][:2] != ("conv", "dense") or key[2][0] != "bn":
            return False
        if key[1][4:] != ((1, 1), (1, 1), (0, 0), (1, 1)):
            return False
        keys.add(key)
    return len(keys) == 1


# ---------------------------------------------------------------------------------------------
# Groups of units


@dataclass
class _Group:
    key: tuple
    units: list[int]  # indices into the pass's unit list
    modules: list[nn.Module]
    layers: list[list[nn.Module]] = field(default_factory=list)  # per unit, its flattened layers
    bns: dict[int, _FusedBN] = field(default_factory=dict)  # layer index -> fused BN
    skip_last: bool = False  # the final BN is shared with other groups and run by the caller
    spread: tuple | None = None  # a ReLU -> depthwise chain's _spread_plan (None: not spread)
    spread_index: dict = field(default_factory=dict)  # _spread_depthwise's gather index (the Triton form: its
    # inverse), per (device, form)


def _spread_plan(srcs: Sequence[int]) -> tuple | None:
    """For a group whose units read S distinct sources, each the same k > 1 times (a source's edges, or
    the two cell inputs' edges): (the distinct sources in order, k, the units ordered source by source,
    for each unit its (source index, occurrence)). None otherwise."""
    distinct = list(dict.fromkeys(srcs))
    k, rem = divmod(len(srcs), len(distinct))
    if k < 2 or rem or any(srcs.count(src) != k for src in distinct):
        return None
    seen = {src: 0 for src in distinct}
    where = []
    for src in srcs:
        where.append((distinct.index(src), seen[src]))
        seen[src] += 1
    order = sorted(range(len(srcs)), key=lambda u: where[u])
    return distinct, k, order, where


def _spread_depthwise(group: _Group, li: int, h: torch.Tensor, plan: tuple, triton: bool) -> torch.Tensor:
    """A group's first depthwise conv (after its ReLU) on each distinct source once, instead of on the
    units' inputs side by side (a source's input repeated per unit): one depthwise conv with k outputs
    per input channel (the units of that source), its outputs then gathered into the units' order. The
    same products; what backward keeps is the S sources' ReLU output (kept by the ReLU anyway) where it
    was the m = S*k repeated inputs, and the gather keeps only its index. ``triton``: the conv in
    :mod:`harness.nn.dwconv`'s kernels, which write each output channel where the gather would put it."""
    distinct, k, order, where = plan
    desc = group.key[1:][li]
    _, _, c_in, _, kernel, stride, padding, dilation = desc
    n_src = len(distinct)
    # weights of the units source by source, then (source, channel, occurrence): k filters per channel
    w = _conv_weight([group.layers[u][li].weight for u in order], kernel)
    w = w.view(n_src, k, c_in, 1, *w.shape[-2:]).transpose(1, 2).reshape(n_src * c_in * k, 1, *w.shape[-2:])
    # made at the first forward on a device (GraphedStep's warm-up steps come before its capture, which
    # could not copy it from the host), as FusedMixed._consts makes its matrices
    index = group.spread_index.get((h.device, triton))
    if index is None:  # unit i's channel c is output channel (s_i * C + c) * k + j_i
        gather = [(s * c_in + c) * k + j for s, j in where for c in range(c_in)]
        if triton:  # the Triton form writes output channel o to dest[o]: the gather's inverse
            dest = [0] * len(gather)
            for slot, o in enumerate(gather):
                dest[o] = slot
            gather = dest
        index = group.spread_index[(h.device, triton)] = torch.tensor(gather, device=h.device)
    if triton:  # output channel o reads input channel o // k
        return dwconv.depthwise_conv(h, w, stride, padding, dilation, k, dest=index)
    return F.conv2d(h, w, None, stride, padding, dilation, n_src * c_in).index_select(1, index)


def _tail_bn_key(key: tuple) -> tuple | None:
    """The settings of a group's final BatchNorm, or None if it does not end in one."""
    if key[0] in ("chain", "fr") and key[-1][0] == "bn":
        return key[-1]
    return None


def _last_bn(group: _Group, unit: int) -> nn.BatchNorm2d:
    return group.layers[unit][-1] if group.key[0] == "chain" else group.modules[unit].bn


def _cat(tensors: list[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat``, except that one tensor is returned as it is (no copy kernel for a group of one)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=dim)


def _repeat(x: torch.Tensor, m: int) -> torch.Tensor:
    return x if m == 1 else x.repeat(1, m, 1, 1)


def _stacked(srcs: Sequence[int], get) -> torch.Tensor:
    """The per-unit inputs side by side in channels (unit-major): ``get(src)`` for each unit."""
    if len(set(srcs)) == 1:
        return _repeat(get(srcs[0]), len(srcs))
    return _cat([get(src) for src in srcs], dim=1)


# How the fused chains compute, two choices of kernels for the same math, ranked on an H200 by
# ``benchmarks/step_variants.py`` (BENCHMARKS.md, "GPU figures, 2026-12-04, the second H200 run"): the captured
# DARTS step on darts took 106.4 ms with both as set here against 115.7 ms with the 3x3 depthwise units
# widened to 5x5 and the 1x1 convs grouped in cuDNN (the form before; 1.09x), nb201 31.4 against 31.5 ms;
# on a CPU at the smoke preset's supernet size 1.06-1.20x (benchmarks/results/2026-12-04b-cpu-fused/).
# MERGE_KERNEL: depthwise kernels smaller than this join the groups of this size of the same chain shape,
# zero-padded (5: a 3x3 unit widened to 25 taps where it needs 9, one conv less per chain shape; 0: none).
MERGE_KERNEL = 0
# POINTWISE_MATMUL: grouped 1x1 convolutions as one batched matrix product (cuBLAS) instead of a grouped
# cuDNN convolution.
POINTWISE_MATMUL = True
# SPREAD_DEPTHWISE: a group's first depthwise conv runs on each source once, k filters per channel, instead
# of on the source's input repeated for its k units (_spread_depthwise): a DARTS forward keeps 0.94 GiB
# less for backward (7.68 -> 6.73 GiB as captured, batch 64, C=16, 8 cells; counted on a CPU,
# BENCHMARKS.md), for +2% kernels; its GPU time is for step_variants.py ("spread" vs "no-merge+pw-matmul").
SPREAD_DEPTHWISE = True
# SPREAD_POOLS: a group that starts with a pool (the DARTS space's pools, each followed by its BatchNorm), on
# the two cell inputs read by alternate units ([s0, s1, s0, s1, ...]: a cell-input pass's edges), pools each
# source once and repeats the pooled maps for the units (_pool_tiles), instead of pooling the inputs repeated
# per unit: the same outputs, a quarter of the pooling in a DARTS cell-input pass (2 maps instead of 8); on
# the jointly preprocessed inputs without stacking them at all. Less work of the same kind, no new kernel.
SPREAD_POOLS = True
# DEPTHWISE_TRITON: while a CUDA graph is captured, the chains' depthwise convs in Triton kernels
# (harness.nn.dwconv), a ReLU right before one fused into its loads, and a shared input read by every unit
# without its repeat. On since the H200 run of 2026-12-05 (BENCHMARKS.md, "GPU figures, 2026-12-05, the third
# H200 run"; benchmarks/results/2026-12-05-gpu/all.jsonl, "variants darts darts"): the captured DARTS step on
# darts (batch 64, C=16, 8 cells) took 92.0 ms against 104.8 ms with torch's kernels, its losses with the
# default form's as long as the rounding baseline stays with eager (gpu_tables.py's rule). Uncaptured steps keep
# torch's kernels (a Python Function's host cost); without Triton (or off CUDA) nothing changes.
DEPTHWISE_TRITON = True


def _triton_dw(h: torch.Tensor) -> bool:
    """Whether this pass runs its depthwise convs in :mod:`harness.nn.dwconv`'s kernels."""
    return DEPTHWISE_TRITON and groups.capturing(h) and dwconv.why_not(h) is None


class _Pointwise(torch.autograd.Function):
    """A 1x1 convolution (stride 1, no padding) with ``groups`` groups as one batched matrix product:
    (g, out/g, in/g) @ (B, g, in/g, H*W) -> (B, out, H, W). Its own backward so that it keeps only its
    input and weight for it: autograd's matmul would keep the weight broadcast over the batch, a (B*g,
    out/g, in/g) copy per call (0.3 GiB of a DARTS forward at batch 64, C=16, 8 cells: BENCHMARKS.md)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        ctx.groups = groups
        return _pointwise_product(h, weight, groups)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight = ctx.saved_tensors
        g = ctx.groups
        n, c, hh, ww = h.shape
        o = weight.shape[0]
        w = weight.view(g, o // g, c // g)
        grad = grad.reshape(n, g, o // g, hh * ww)
        grad_h = grad_w = None
        if ctx.needs_input_grad[0] and groups.engine_needs(h):
            grad_h = torch.matmul(w.transpose(1, 2), grad).view(n, c, hh, ww)
        if ctx.needs_input_grad[1] and groups.engine_needs(weight):  # per image (B, g, out/g, in/g), summed
            grad_w = torch.matmul(grad, h.reshape(n, g, c // g, hh * ww).transpose(2, 3)).sum(0).view_as(weight)
        return grad_h, grad_w, None


def _pointwise(h: torch.Tensor, weight: torch.Tensor, n_groups: int) -> torch.Tensor:
    """A 1x1 convolution (stride 1, no padding) with ``n_groups`` groups as one batched matrix product.
    While a CUDA graph is captured (the default step on CUDA) by :class:`_Pointwise`, which keeps 0.3 GiB
    less for backward in a DARTS step; uncaptured by ``torch.matmul`` (the weight copies kept), since a
    Python autograd Function costs host time per call: up to 14% of a small host-bound fused step on a CPU
    (BENCHMARKS.md), where a replayed graph pays none."""
    if groups.capturing(h):
        return _Pointwise.apply(h, weight, n_groups)
    return _pointwise_product(h, weight, n_groups)


def _pointwise_product(h: torch.Tensor, weight: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(g, out/g, in/g) @ (B, g, in/g, H*W) -> (B, out, H, W): the product both forms of ``_pointwise``
    compute (autograd's matmul backward uncaptured, :class:`_Pointwise`'s captured)."""
    n, c, hh, ww = h.shape
    w = weight.view(n_groups, weight.shape[0] // n_groups, c // n_groups)
    return torch.matmul(w, h.reshape(n, n_groups, c // n_groups, hh * ww)).view(n, weight.shape[0], hh, ww)


def _widened(desc: tuple) -> tuple:
    """A depthwise conv layer's key as the ``MERGE_KERNEL`` conv that computes the same with its weights
    zero-padded: same stride and dilation, "same" padding (sep_conv_3x3 -> 5x5, dil_conv_3x3 -> 5x5 at
    dilation 2). Any other layer as it is."""
    if desc[0] != "conv" or desc[1] != "dw":
        return desc
    _, kind, c_in, c_out, (kh, kw), stride, (ph, pw), (dh, dw) = desc
    if kh != kw or kh % 2 == 0 or kh >= MERGE_KERNEL or (ph, pw) != (dh * (kh - 1) // 2, dw * (kw - 1) // 2):
        return desc
    k = MERGE_KERNEL
    return ("conv", kind, c_in, c_out, (k, k), stride, (dh * (k - 1) // 2, dw * (k - 1) // 2), (dh, dw))


def _merge_kernel_sizes(groups: dict[tuple, list[int]]) -> dict[tuple, list[int]]:
    """Chain groups that differ only in depthwise kernel sizes (sep_conv_3x3 and sep_conv_5x5; dil_conv_3x3
    and dil_conv_5x5) become one group under the widened key, the smaller kernels' units first: one chain
    of kernels instead of two, the 3x3 weights zero-padded to 5x5 in each forward. The same math: the
    padded taps multiply by zero (the conv's own zero padding covers the wider window), so the results
    differ only by summation order. A group with no partner, or of a single unit, keeps its own key."""
    by_wide: dict[tuple, list[tuple]] = {}
    for key in groups:
        wide = ("chain",) + tuple(_widened(d) for d in key[1:]) if key[0] == "chain" else key
        by_wide.setdefault(wide, []).append(key)
    out: dict[tuple, list[int]] = {}
    for wide, keys in by_wide.items():
        if len(keys) == 1 or min(len(groups[key]) for key in keys) < 2:
            # (a group of one unit: its pad, the concatenation and the shared input's repeat cost more
            # kernels than the merged chain saves; measured on EnTranNAS's engine cells)
            for key in keys:
                out[key] = groups[key]
        else:  # smaller kernels first: one pad per layer for all of them
            ordered = sorted(keys, key=lambda key: [d[4] for d in key[1:] if d[0] == "conv"])
            out[wide] = [u for key in ordered for u in groups[key]]
    return out


def _conv_weight(weights: list[torch.Tensor], kernel: tuple[int, int]) -> torch.Tensor:
    """The units' conv weights stacked; runs of smaller kernels zero-padded to ``kernel`` (one pad a run)."""
    runs: list[list[torch.Tensor]] = []
    for w in weights:
        if runs and runs[-1][0].shape == w.shape:
            runs[-1].append(w)
        else:
            runs.append([w])
    parts = []
    for run in runs:
        w = _cat(run)
        dh, dw = kernel[0] - w.shape[-2], kernel[1] - w.shape[-1]
        parts.append(w if not (dh or dw) else F.pad(w, (dw // 2, dw // 2, dh // 2, dh // 2)))
    return _cat(parts)


def _pool_tiles(srcs: Sequence[int], layers: Sequence[tuple]) -> int:
    """r > 1 when a chain starts with a pool and its units' sources are one run of distinct sources repeated
    r times (``SPREAD_POOLS``), else 0."""
    if not (SPREAD_POOLS and layers and layers[0][0] in ("maxpool", "avgpool")):
        return 0
    d = len(set(srcs))
    r = len(srcs) // d
    return r if d > 1 and r > 1 and list(srcs) == list(srcs[:d]) * r else 0


def _run_chain(group: _Group, srcs: Sequence[int], inputs: _Inputs, skip_last: bool = False) -> torch.Tensor:
    """All m units of a chain group -> (B, m*C_out, H, W), unit-major. With one source the units share
    their input until the first layer with per-unit weights; with several (the two cell inputs run
    together) the inputs are stacked first and every layer runs per unit (grouped)."""
    m = len(group.units)
    shared = len(set(srcs)) == 1
    h = inputs[srcs[0]]
    layers = group.key[1:-1] if skip_last else group.key[1:]  # skip_last: the caller runs the final BN
    # ReLU -> depthwise conv on sources that several units read: the conv per source (_spread_depthwise)
    spread = group.spread if SPREAD_DEPTHWISE else None
    triton_dw = _triton_dw(h)
    relu_next = False  # a ReLU left to the depthwise conv that follows it (triton_dw)
    tiles = 0 if shared else _pool_tiles(srcs, layers)  # the pool per distinct source, then repeated
    for li, desc in enumerate(layers):
        kind = desc[0]
        if kind == "relu":
            if li == 0 and spread is not None:
                distinct = spread[0]
                h = inputs.relu(distinct[0]) if len(distinct) == 1 else inputs.stack(distinct, relu=True)
            elif li == 0:
                h = inputs.relu(srcs[0]) if shared else inputs.stack(srcs, relu=True)
            elif triton_dw and li + 1 < len(layers) and layers[li + 1][:2] == ("conv", "dw"):
                relu_next = True
            else:
                h = F.relu(h)
            continue
        if li == 1 and spread is not None:
            h, shared = _spread_depthwise(group, li, h, spread, triton_dw), False
            continue
        if li == 0 and not shared:
            h = inputs.stack(srcs[:len(srcs) // tiles] if tiles else srcs)
        if kind == "conv":
            _, conv_kind, c_in, _, _, stride, padding, dilation = desc
            weight = _conv_weight([layers[li].weight for layers in group.layers], desc[4])
            if conv_kind == "dw" and triton_dw:  # output channel u*C + c reads channel c of a shared input
                h, relu_next = dwconv.depthwise_conv(h, weight, stride, padding, dilation, 1, relu_next), False
            elif conv_kind == "dw":
                h = F.conv2d(_repeat(h, m) if shared else h, weight, None, stride, padding, dilation, m * c_in)
            elif POINTWISE_MATMUL and desc[4] == (1, 1) and stride == (1, 1) and padding == (0, 0):
                h = _pointwise(h, weight, 1 if shared else m)
            else:
                h = F.conv2d(h, weight, None, stride, padding, dilation, 1 if shared else m)
            shared = False
        elif kind == "bn":
            if shared:
                h, shared = _repeat(h, m), False
            h = group.bns[li](h)
        elif kind == "maxpool":
            _, k, st, p, ceil = desc
            h = _MaxPool.apply(h, k, st, p, ceil) if groups.capturing(h) else F.max_pool2d(h, k, st, p, 1, ceil)
        elif kind == "avgpool":
            _, k, st, p, ceil, include = desc
            h = (_AvgPool.apply(h, k, st, p, ceil, include) if groups.capturing(h)
                 else F.avg_pool2d(h, k, st, p, ceil, include))
        if li == 0 and tiles:
            h = _repeat(h, tiles)
    return _repeat(h, m) if shared else h


# The pools while a CUDA graph is captured (as _pointwise: a Python Function's host cost is paid once, at
# the capture), keeping less for backward than torch's: max pooling its input only, where torch keeps the
# input and the argmax indices (int64: twice the output's bytes), recomputed in backward instead (one more
# pooling kernel); average pooling nothing but the input's shape, where torch keeps the input (its backward
# reads only the shape). A DARTS forward at batch 64, C=16, 8 cells: BENCHMARKS.md.


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, k, st, p, ceil):
        ctx.save_for_backward(h)
        ctx.args = (_pair(k), _pair(st), _pair(p), ceil)
        return F.max_pool2d(h, k, st, p, 1, ceil)

    @staticmethod
    def backward(ctx, grad):
        (h,) = ctx.saved_tensors
        k, st, p, ceil = ctx.args
        _, idx = torch.ops.aten.max_pool2d_with_indices(h, k, st, p, [1, 1], ceil)
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, h, k, st, p, [1, 1], ceil, idx), None, None, \
            None, None


class _AvgPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, k, st, p, ceil, include):
        ctx.layout = (h.shape, h.stride())
        ctx.args = (_pair(k), _pair(st), _pair(p), ceil, include)
        return F.avg_pool2d(h, k, st, p, ceil, include)

    @staticmethod
    def backward(ctx, grad):
        like = torch.empty_strided(*ctx.layout, dtype=grad.dtype, device=grad.device)  # values never read
        return torch.ops.aten.avg_pool2d_backward(grad, like, *ctx.args, None), None, None, None, None, None


def _run_fr(group: _Group, srcs: Sequence[int], inputs: _Inputs, skip_last: bool = False) -> torch.Tensor:
    """m FactorizedReduce units (the stride-2 skip_connect), as FactorizedReduce.forward: one pair of
    convolutions for all of them (dense on a shared input, grouped on stacked inputs)."""
    m = len(group.units)
    frs = group.modules
    half = frs[0].conv_1.out_channels
    shared = len(set(srcs)) == 1
    h = inputs.relu(srcs[0]) if shared else inputs.stack(srcs, relu=True)
    groups = 1 if shared else m
    shifted = h[:, :, 1:, 1:]
    if shifted.shape[-1] < 1 or shifted.shape[-2] < 1:
        shifted = h
    a = F.conv2d(h, _cat([f.conv_1.weight for f in frs]), None, 2, 0, 1, groups)
    b = F.conv2d(shifted, _cat([f.conv_2.weight for f in frs]), None, 2, 0, 1, groups)
    if b.shape[-2:] != a.shape[-2:]:
        b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
    n, _, hh, ww = a.shape
    h = torch.stack([a.view(n, m, half, hh, ww), b.view(n, m, half, hh, ww)], dim=2).view(n, m * 2 * half, hh, ww)
    return h if skip_last else group.bns[0](h)


# ---------------------------------------------------------------------------------------------
# The fused cell forward


class _Unit:
    """One op module of the cell and where its output goes: ``links`` = ((dst, edge, op column), ...).
    A mixed cell's unit is one (edge, op) with one link; with feature sharing (EnTranNAS) one module per
    (source, op) feeds every edge that leaves the source with that op."""

    __slots__ = ("uid", "module", "src", "links")

    def __init__(self, uid: int, module: nn.Module, src: int, links: tuple[tuple[int, int, int], ...]):
        self.uid, self.module, self.src, self.links = uid, module, src, links


class _Inputs:
    """What the ops of one forward read, each computed once: ``inputs[src]`` (``prepare(src, states[src])``,
    or its slice of a ``joint`` tensor), ``relu(src)``, and ``stack(srcs)``: several units' inputs side by
    side in channels (their ReLU with ``relu=True``), taken from ``joint`` where the caller already has
    them as one tensor ({sources: their op inputs side by side}: a cell's jointly preprocessed inputs)."""

    def __init__(self, states: list, prepare, joint: dict | None = None):
        self.states, self.prepare, self.joint = states, prepare, joint or {}
        self.cache: dict[int, torch.Tensor] = {}
        self.relus: dict = {}  # by source, or by a joint key

    def __getitem__(self, src: int) -> torch.Tensor:
        out = self.cache.get(src)
        if out is None:
            key = next((key for key in self.joint if src in key), None)
            if key is not None:
                out = self.joint[key].chunk(len(key), dim=1)[key.index(src)]
            else:
                x = self.states[src]
                out = x if self.prepare is None else self.prepare(src, x)
            self.cache[src] = out
        return out

    def relu(self, src) -> torch.Tensor:
        """ReLU of a source's op input (``src`` a joint key: of the joint tensor), once per forward."""
        out = self.relus.get(src)
        if out is None:
            out = self.relus[src] = F.relu(self.joint[src] if isinstance(src, tuple) else self[src])
        return out

    def stack(self, srcs: Sequence[int], relu: bool = False) -> torch.Tensor:
        key = tuple(srcs)
        if key in self.joint:
            return self.relu(key) if relu else self.joint[key]
        return _stacked(srcs, self.relu if relu else self.__getitem__)


def _share_stateless(units: list[_Unit]) -> list[_Unit]:
    """One unit for the ops of a source that compute the same output and hold no parameters or buffers
    (skip_connect's Identity, NB201's bare avg_pool_3x3): every edge leaving the node with that op reads
    it, so it is computed and kept in U once, feeding all their links (the eager cell computes it once per
    edge; the weighted sum is the same). Ops with weights or BatchNorm statistics keep one unit per edge,
    and ``noise`` draws per edge."""
    out, first = [], {}
    for u in units:
        key = unit_key(u.module)
        if (key is not None and key[0] in ("identity", "chain") and next(u.module.parameters(), None) is None
                and next(u.module.buffers(), None) is None):
            kept = first.setdefault((u.src, key), u)
            if kept is not u:
                kept.links = kept.links + u.links
                continue
        out.append(u)
    return out


class FusedMixed:
    """Fast forward for a mixed ``CellBody`` (``body.ops[e][k]`` weighted by ``arch.weights[kind][e, k]``).

    Not an ``nn.Module``: it holds references to the body's own op modules and parameters, so the
    parameter list, ``state_dict`` and optimizer state are those of the eager cell.

    Other cell types with the same node = weighted sum of op outputs structure give their own ``units``
    (``(module, src, ((dst, edge, op column), ...))`` in the order their eager forward first runs them,
    which is the order ``noise`` units draw in), ``prepare(src, x)`` (what a source's ops read, e.g. a
    bottleneck; default x) and ``finish(dst, sum, states, ew)`` (the node's state from its sum; default the
    sum), which also gets the cell's states so far (its inputs, then each node finished before ``dst``) and the
    forward's edge weights (``ew``, None without): a cell type whose edges add a term of their own to a node
    (partial channels' bypass, DARTS-'s auxiliary skip) adds it there."""

    # recompute each pass's mix (its units' closing BatchNorm, their concatenation U and the weighted sum) in
    # backward instead of keeping U for it: U is a copy of every op output, 1.6 of the 7.8 GiB a DARTS search
    # forward keeps at batch 64, C=16, 8 cells (6.4 with this; BENCHMARKS.md); the cost is that BatchNorm and
    # GEMM once more.
    # Read from the body (``harness.nn.cells.set_fast(..., recompute=True)``: runtime.fast_recompute)
    @property
    def recompute(self) -> bool:
        return getattr(self.body, "fast_recompute", False)

    def __init__(self, body: nn.Module, units=None, prepare=None, finish=None):
        spec = body.spec
        self.body = body
        self.kind = spec.kind
        self.n_inputs, self.n_nodes = spec.n_inputs, spec.n_nodes
        self.prepare, self.finish = prepare, finish
        self.eager_units: list[tuple[int, int]] = []
        if units is None:
            draw_order = [(e, k) for dst in range(self.n_inputs, self.n_inputs + self.n_nodes)
                          for e in body.incoming[dst] for k in range(len(body.ops[e]))]
            rank = {ek: i for i, ek in enumerate(draw_order)}  # the eager cell: node by node, edge by edge
            flat = [(rank[(e, k)], body.ops[e][k], src, ((dst, e, k),))
                    for e, (src, dst) in enumerate(spec.edges) for k in range(len(body.ops[e]))]
            all_units = _share_stateless([_Unit(uid, mod, src, links) for uid, mod, src, links in flat])
        else:
            all_units = [_Unit(uid, mod, src, tuple(links)) for uid, (mod, src, links) in enumerate(units)]
        # noise units drawn in their uid order (the eager forward's)
        self.noise_units = sorted((u for u in all_units if isinstance(u.module, Noise)), key=lambda u: u.uid)
        first_edge = next(e for e, (src, _) in enumerate(spec.edges) if src == 0)
        self._input_stride = spec.strides[first_edge]  # cell inputs -> intermediate nodes
        sources = sorted({src for src, _ in spec.edges})
        # passes: the cell inputs together (they are ready together), then each intermediate node alone
        first = tuple(src for src in sources if src < self.n_inputs)
        self.passes = ([first] if first else []) + [(src,) for src in sources if src >= self.n_inputs]
        self.plans = []
        for pass_srcs in self.passes:
            units, groups = [], {}
            for unit in all_units:
                if unit.src not in pass_srcs:
                    continue
                key = unit_key(unit.module)
                if key == ("zero",):
                    continue
                if key is None:
                    key = ("eager", len(units))
                    self.eager_units.extend((e, k) for _, e, k in unit.links)
                units.append(unit)
                groups.setdefault(key, []).append(len(units) - 1)
            groups = _merge_kernel_sizes(groups)
            targets = sorted({dst for src, dst in spec.edges if src in pass_srcs})
            # groups whose last layer is a BatchNorm with the same settings share one BN call (its
            # statistics are per channel, so normalising their concatenation changes nothing)
            tails: dict[tuple, list[tuple]] = {}
            for key, idx in groups.items():
                tail = _tail_bn_key(key)
                if tail is not None:
                    tails.setdefault(tail, []).append(key)
            merged = {key for keys in tails.values() if len(keys) > 1 for key in keys}
            blocks = []  # (groups with their unit sources, shared final BN or None)
            for tail, keys in tails.items():
                if len(keys) > 1:
                    members = [self._group(key, groups[key], units, skip_last=True) for key in keys]
                    last = [_last_bn(g, unit) for g, _ in members for unit in range(len(g.units))]
                    blocks.append((members, _FusedBN(last)))
            for key, idx in groups.items():
                if key not in merged:
                    blocks.append(([self._group(key, idx, units)], None))
            order = [u for members, _ in blocks for g, _ in members for u in g.units]  # U's unit axis
            # one row per (unit, link): A[target, unit] = w[edge, op] (x edge weight)
            links = [(targets.index(dst), j, e, k) for j, u in enumerate(order) for dst, e, k in units[u].links]
            self.plans.append((blocks, order, links, targets, units))
        self._device_cache: dict = {}

    @staticmethod
    def _group(key, idx, units, skip_last: bool = False):
        """A group and its units' sources; ``skip_last``: its final BN is run by the caller."""
        mods = [units[u].module for u in idx]
        g = _Group(key, idx, mods, skip_last=skip_last)
        srcs = [units[u].src for u in idx]
        if key[0] == "chain":
            g.layers = [_flatten(mod) for mod in mods]
            n = len(key) - 1
            for li, desc in enumerate(key[1:]):
                if desc[0] == "bn" and not (skip_last and li == n - 1):
                    g.bns[li] = _FusedBN([layers[li] for layers in g.layers])
            if n > 1 and key[1][0] == "relu" and key[2][:2] == ("conv", "dw"):
                g.spread = _spread_plan(srcs)
        elif key[0] == "fr" and not skip_last:
            g.bns[0] = _FusedBN([mod.bn for mod in mods])
        return g, srcs

    def _node_like(self, inputs) -> torch.Tensor:
        """A tensor of the intermediate nodes' (pre-``finish``) shape: the first source's op input, strided
        as its edges are."""
        s = self._input_stride
        return inputs[0] if s == 1 else inputs[0][:, :, ::s, ::s]

    def _draw_noise(self, inputs) -> dict:
        """Every ``noise`` unit's output, drawn now in the eager cell's order: only the shape matters, and
        no other op of the cell draws random numbers."""
        node_like = self._node_like(inputs)
        return {u.uid: u.module(inputs[u.src] if u.src < self.n_inputs else node_like) for u in self.noise_units}

    def _consts(self, device, dtype, n_ops: int):
        """For the whole forward: ``mix`` (edges*ops, sum_p targets_p*units_p), the 0/1 matrix taking the
        flattened (edge, op) weights to every pass's A[target, unit] (laid out pass after pass), and
        ``inc`` (edges, sum_p targets_p), every pass's edge -> target incidence (`none`-only edges included:
        where a per-edge constant, the single-path cell's bias, is added to the target nodes); with the
        offsets of each pass in both. One matmul makes every pass's mixing matrix (no gather or scatter per
        pass)."""
        key = (device, dtype, n_ops)
        if key not in self._device_cache:
            edges = self.body.spec.edges
            cells = sum(len(targets) * len(order) for _, order, _, targets, _ in self.plans)
            mix = torch.zeros(len(edges) * n_ops, cells)
            inc = torch.zeros(len(edges), sum(len(p[3]) for p in self.plans))
            offsets, cell_off, target_off = [], 0, 0
            for pass_srcs, (_, order, links, targets, _) in zip(self.passes, self.plans):
                for t, j, e, k in links:
                    mix[e * n_ops + k, cell_off + t * len(order) + j] = 1.0
                for e, (src, dst) in enumerate(edges):
                    if src in pass_srcs:
                        inc[e, target_off + targets.index(dst)] = 1.0
                offsets.append((cell_off, target_off))
                cell_off += len(targets) * len(order)
                target_off += len(targets)
            self._device_cache[key] = (mix.to(device=device, dtype=dtype), inc.to(device=device, dtype=dtype),
                                       offsets)
        return self._device_cache[key]

    def __call__(self, states: list[torch.Tensor], arch) -> list[torch.Tensor]:
        ew = arch.edge_weights[self.kind] if arch.edge_weights is not None else None
        return self.run(states, arch.weights[self.kind], ew)

    def run(self, states: list[torch.Tensor], w: torch.Tensor, ew: torch.Tensor | None = None,
            bias: torch.Tensor | None = None, joint: dict | None = None) -> list[torch.Tensor]:
        """Node j = sum over edges e into j of ew[e] * (sum_k w[e, k] op_k(x_src) + bias[e]).

        ``w`` (edges, ops), ``ew`` and ``bias`` (edges,); or, for K sample groups (``harness.nn.groups``:
        the batch is K blocks, sample-major), (K, edges, ops) and (K, edges): block s is weighted by w[s].
        ``joint``: {sources: their op inputs side by side in channels}, where the caller has them so."""
        samples = w.shape[0] if w.dim() == 3 else 0  # 0: no sample dimension
        if samples and samples != groups.current():
            raise RuntimeError(f"weights for {samples} samples in a forward run as {groups.current()} sample groups")
        s = samples or 1
        w2 = w.reshape(s, -1)
        ew2 = None if ew is None else ew.reshape(s, -1)
        bias2 = None if bias is None else bias.reshape(s, -1)
        if bias2 is not None and ew2 is not None:
            bias2 = bias2 * ew2
        n_ops = w.shape[-1]
        mix, inc, offsets = self._consts(w.device, w.dtype, n_ops)
        wx = w2 if ew2 is None else (w2.view(s, -1, n_ops) * ew2.unsqueeze(-1)).view(s, -1)
        a_all = wx @ mix  # every pass's A[target, unit] = w[edge, op] (x edge weight): (samples, cells)
        node_bias_all = None if bias2 is None else bias2 @ inc  # (samples, every pass's targets)
        states = list(states)
        if joint is None and self.prepare is None:
            joint = getattr(states, "joint", None)  # JointStates: the cell inputs already side by side
        inputs = _Inputs(states, self.prepare, joint=joint)
        noise = self._draw_noise(inputs) if self.noise_units else {}
        acc: dict[int, torch.Tensor] = {}

        def complete(node: int) -> torch.Tensor:  # a node nothing but `none` feeds is zeros, as in eager
            out = acc.pop(node) if node in acc else torch.zeros_like(self._node_like(inputs))
            return out if self.finish is None else self.finish(node, out, states, ew)

        for p, pass_srcs in enumerate(self.passes):
            while len(states) <= max(pass_srcs):  # a node is complete once every source before it has run
                states.append(complete(len(states)))
            blocks, order, _, targets, units = self.plans[p]
            cell_off, target_off = offsets[p]
            node_bias = None if node_bias_all is None else node_bias_all[:, target_off:target_off + len(targets)]
            if not order:  # every op leaving these sources is `none`
                if node_bias is not None:  # ... but a single-path edge still adds its bias
                    like = self._node_like(inputs)
                    for d, dst in enumerate(targets):
                        part = torch.zeros_like(like).view(s, -1).add_(node_bias[:, d:d + 1])
                        part = part.view_as(like)
                        acc[dst] = part if dst not in acc else acc[dst] + part
                continue
            hs, bns = [], []
            for members, shared_bn in blocks:
                parts = []
                for g, srcs in members:
                    kind = g.key[0]
                    if kind == "chain":
                        parts.append(_run_chain(g, srcs, inputs, g.skip_last))
                    elif kind == "identity":
                        parts.append(inputs.stack(srcs))
                    elif kind == "fr":
                        parts.append(_run_fr(g, srcs, inputs, g.skip_last))
                    elif kind == "noise":
                        parts.append(_cat([noise[units[u].uid] for u in g.units], dim=1))
                    else:  # eager unit
                        parts.append(g.modules[0](inputs[srcs[0]]))
                hs.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
                bns.append(shared_bn)
            n = hs[0].shape[0]
            a = a_all[:, cell_off:cell_off + len(targets) * len(order)].view(s, len(targets), len(order))
            # (B, targets, C*H*W) by one bmm, block i of the batch weighted by sample i's (targets, units)
            # matrix, broadcast over the block (stride 0 within it; with one sample the whole batch is a
            # view: torch.matmul would copy U transposed and the result back instead)
            per_image = a.unsqueeze(1).expand(s, n // s, *a.shape[1:]).reshape(n, *a.shape[1:])
            mix = _recomputed_mix if self.recompute and torch.is_grad_enabled() and self.body.training else _mix
            contrib = mix(per_image, hs, bns, len(order))
            # one target's part: the units' channels (BatchNorm keeps them) shared out, spatial dims as they are
            shape = (n, sum(h.shape[1] for h in hs) // len(order)) + tuple(hs[0].shape[2:])
            if node_bias is not None:
                contrib = contrib + node_bias.unsqueeze(1).expand(s, n // s, -1).reshape(n, -1, 1)
            # unbind: its backward is one stack, where a select per target costs a zero-filled copy each
            for dst, part in zip(targets, contrib.unbind(1)):
                part = part.view(shape)  # strided (B, C*H*W) rows: a view, no copy
                acc[dst] = part if dst not in acc else acc[dst] + part
        while len(states) < self.n_inputs + self.n_nodes:
            states.append(complete(len(states)))
        return states
