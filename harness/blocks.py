"""The building blocks several differentiable-NAS methods share, at one stable import path (issue 14).

A plugin builds its components from these and from nothing in another plugin::

    from harness.blocks import AlphaSampler, FirstOrderBilevel, BilevelConfig, SinglePathCell

* samplers: :class:`AlphaSampler` (one alpha matrix per cell kind; subclass and give ``transform``),
  :class:`SoftmaxSampler` (DARTS), :class:`GumbelSampler` and :func:`gumbel_hard` (GDAS's straight-through
  Gumbel-max, one sample per cell kind per forward);
* cell types: :class:`CellBody` (nodes summing their incoming edges; subclass and give ``edge_forward``),
  :class:`MixedCell` (every op runs, weighted: DARTS; a fused fast path on CUDA), :class:`SinglePathCell`
  (only the sampled op runs: GDAS, ROME), :class:`PartialMixedCell` (1/k of the channels through the ops,
  channel shuffle: PC-DARTS, DrNAS; ``set_partial`` widens it during a search) and :func:`channel_shuffle`;
* bilevel optimizers: :class:`FirstOrderBilevel` (alternating first-order DARTS with its cosine weight lr,
  the arch step's gradient taken for alpha only) and :class:`SecondOrderBilevel` (unrolled DARTS), both
  configured by :class:`BilevelConfig` (quark0/darts defaults), and :class:`SingleLevel` (one loss, one
  backward, weights and alpha step together: Single-DARTS, SNAS) with :class:`SingleLevelConfig`;
* the network side: :class:`Supernet` (what ``weight_parameters`` means) and :func:`set_fast`;
* running several sampled architectures as one pass (issue 17): the module :mod:`sample_groups`
  (``harness.nn.groups``), :func:`exponential_like` (noise drawn in a caller's order), :func:`deferred`
  (host lists copied from the device only if a cell reads them) and :func:`fill_unused_grads` (every weight
  steps, as the reference code's ``zero_grad()`` makes it);
* :func:`clip_grad_norm`: ``torch.nn.utils.clip_grad_norm_``'s 2-norm clipping without a host call per
  gradient (what a launch-bound GPU step pays for a supernet's ~1,400 gradients).

Names here are the public API: they keep their meaning across minor versions of nas-harness.
"""

from harness.nn import groups as sample_groups
from harness.nn.bilevel import (
    BilevelConfig,
    FirstOrderBilevel,
    SecondOrderBilevel,
    SingleLevel,
    SingleLevelConfig,
    clip_grad_norm,
    fill_unused_grads,
)
from harness.nn.cells import (
    CellBody,
    MixedBody,
    MixedCell,
    MixedConfig,
    PartialConfig,
    PartialMixedBody,
    PartialMixedCell,
    SinglePathBody,
    SinglePathCell,
    SinglePathConfig,
    Supernet,
    channel_shuffle,
    set_fast,
)
from harness.nn.samplers import (
    AlphaSampler,
    GumbelConfig,
    GumbelSampler,
    SoftmaxConfig,
    SoftmaxSampler,
    deferred,
    exponential_like,
    gumbel_hard,
)

__all__ = [
    "AlphaSampler", "BilevelConfig", "CellBody", "FirstOrderBilevel", "GumbelConfig", "GumbelSampler",
    "MixedBody", "MixedCell", "MixedConfig", "PartialConfig", "PartialMixedBody", "PartialMixedCell",
    "SecondOrderBilevel", "SingleLevel", "SingleLevelConfig", "SinglePathBody", "SinglePathCell",
    "SinglePathConfig", "SoftmaxConfig", "SoftmaxSampler", "Supernet", "channel_shuffle", "clip_grad_norm", "deferred",
    "exponential_like", "fill_unused_grads", "gumbel_hard", "sample_groups", "set_fast",
]
