"""Single-DARTS components (paper: Single-DARTS, SPEC-FACTS §4.7).

* ``sigmoid`` sampler: every op of an edge weighted independently by sigmoid(alpha) (no competition
  between ops). alpha starts at ``init`` = -ln 7, so every weight starts at exactly 0.125 (§4's setting and
  Table 5's "Sigmoid" row; Table 5's "Sigmoid*" row, "* init alpha as 0", is the worse one). ``activation="softmax"`` keeps the paper's
  softmax ablation (Table 5) with the same single-level optimizer. ``init_noise`` (default 0, the
  paper states an exact constant init) adds ``init_noise * randn`` to alpha.
* ``single-level`` optimizer (Eq. 16): one training batch per step, ONE forward and ONE backward of
  one loss (cross-entropy plus the sampler's regularization, if any), then both the weight optimizer
  (SGD momentum, cosine lr, grad-norm clip on the weights only) and the architecture optimizer (Adam)
  step on those same gradients. No validation batch is drawn (``needs_val_batch = False``).

Choices where the paper is vague (each a config field):

* defaults are the paper's DARTS-space search (lr 0.025 cosine, wd 3e-4, momentum 0.9, alpha Adam
  lr 3e-4 betas (0.5, 0.999)); the ``single-darts`` method switches to the NB201 settings (lr 0.005)
  on nb201.
* alpha weight decay ``arch_weight_decay = 0`` everywhere: the paper gives 0 for its DARTS-space
  search "to avoid extra gradients on zero operations" and states nothing for NB201.
* cosine floor ``lr_min = 0``: the paper says "cosine" without a floor; it follows P-DARTS, whose
  search cosine decays to 0.
* grad clip 5 on the weights (DARTS convention; the paper does not mention clipping).
* which data (``data``): the paper's single-level step needs one training batch, and it does not
  say whether that comes from the whole training set or from the half that bilevel methods train
  weights on (its appendix reports that both work). ``data="half"`` (default) steps on the weight
  half of the harness's search split only (the same images DARTS trains its weights on, so the two
  differ only in the optimisation; the other half is left unused); ``data="full"`` also steps on the
  other half: every step takes a single-level step on a weight-half batch and then one on an
  arch-half batch, so an epoch covers the whole training set once.
* derivation: the ``argmax`` selector applies the space's own rule to the sigmoid values
  (``probabilities()`` returns sigmoid(alpha), not normalised): DARTS spaces keep per node the 2
  edges with the largest non-``none`` sigmoid value and the argmax non-``none`` op on each; NB201
  takes the argmax per edge (``none`` included). The paper does not describe derivation under
  sigmoid; since sigmoid is monotone this equals the rule applied to alpha itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.blocks import AlphaSampler, SingleLevelConfig

ACTIVATIONS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class SigmoidConfig:
    init: float = -math.log(7.0)  # sigmoid(-ln 7) = 1/8
    activation: str = "sigmoid"  # "sigmoid" (Single-DARTS) | "softmax" (the paper's ablation)
    init_noise: float = 0.0

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")


class SigmoidSampler(AlphaSampler):
    """Per-op independent weights sigmoid(alpha) (or softmax over the edge, for the ablation)."""

    graph_capturable = True  # pure tensor ops, no host-side decisions (harness.graphs)

    def initial_alpha(self, shape):
        return torch.full(shape, float(self.config.init)) + self.config.init_noise * torch.randn(shape)

    def transform(self, alpha):
        return torch.sigmoid(alpha) if self.config.activation == "sigmoid" else F.softmax(alpha, dim=-1)


@dataclass(frozen=True)
class SingleDartsConfig(SingleLevelConfig):
    """The shared single-level step (``harness.blocks.SingleLevel``) with the paper's settings as defaults."""

    lr_min: float = 0.0  # "cosine" without a floor (P-DARTS decays to 0)
    arch_weight_decay: float = 0.0  # "to avoid extra gradients on zero operations"
