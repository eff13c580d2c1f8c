"""Fair DARTS: "Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search" (Chu, Zhou,
Zhang, Li; ECCV 2020), built only on the public contract (``harness.blocks``).

What it is, as the official code does it (xiaomi-automl/FairDARTS, ``fairdarts/``; read for facts, not copied):

* every op of an edge is weighted by its own ``sigmoid(alpha)`` (no softmax, so ops do not compete;
  ``model_search.py`` ``Network.forward``); alpha starts at exactly 0 (weight 0.5; ``_initialize_alphas``);
* the architecture loss adds the zero-one loss ``-w * MSE(sigmoid(alpha), 0.5)`` over the normal and
  reduction alphas together, ``w = 10`` (``separate_loss.py`` ``ConvSeparateLoss``, ``train_search.py``
  ``--aux_loss_weight 10``), which pushes every weight towards 0 or 1. It is in the weight step's loss
  too, where it has no gradient (it reads only alpha), so the weight step here is DARTS's;
* first-order (``architect.py`` ``step``: one backward of the validation loss) with batch 128, SGD lr 0.005
  cosine to 0.001, momentum 0.9, weight decay 3e-4, 50 epochs, C=16, 8 cells; Adam on alpha with lr 3e-3,
  betas (0.9, 0.999) (the flag is misnamed ``--arch_lr_gamma 0.9``), weight decay 1e-3;
* 7 ops, no ``none`` (``genotypes.py`` PRIMITIVES);
* derivation ``threshold_sparse`` at 0.85 (``utils.py`` ``parse``): per node the 2 incoming edges with the
  largest sigmoid value (over all their ops), and on each its best op only if that value is >= 0.85; so a
  node may keep 2, 1 or 0 inputs.

Choices written down:

* a node whose kept edges all fall below the threshold would have no input, which no evaluation network can
  build; there this selector keeps the node's single strongest edge (its best op), and says so in the run's
  log. The official parse leaves such a node empty;
* on NAS-Bench-201 (no FairDARTS numbers; each edge needs exactly one op) the space's own rule is used: the
  argmax op per edge of the sigmoid weights;
* with ``--set search.op_set=all`` (``none`` searched) ``none`` never ranks or is kept, as in DARTS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.api import MethodInfo, Reported, SelectionContext
from harness.blocks import AlphaSampler, BilevelConfig, FirstOrderBilevel
from harness.genotypes import DartsGenotype
from harness.plugins import hookimpl

PAPER = ("Chu, Zhou, Zhang, Li. Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture "
         "Search. ECCV 2020")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FairSigmoidConfig:
    init: float = 0.0  # official: alphas = zeros (every weight 0.5)


class FairSigmoidSampler(AlphaSampler):
    """Each op of an edge weighted by its own sigmoid(alpha)."""

    graph_capturable = True

    def initial_alpha(self, shape):
        return torch.full(shape, float(self.config.init))

    def transform(self, alpha):
        return torch.sigmoid(alpha)


def zero_one_loss(alphas) -> torch.Tensor:
    """``-MSE(sigmoid(alpha), 0.5)`` over every entry of every alpha matrix (``ConvSeparateLoss``'s loss2)."""
    sig = torch.cat([torch.sigmoid(a).reshape(-1) for a in alphas])
    return -F.mse_loss(sig, torch.full_like(sig, 0.5))


@dataclass(frozen=True)
class ZeroOneConfig(BilevelConfig):
    lr: float = 0.005
    lr_min: float = 0.001
    arch_lr: float = 3e-3
    arch_beta1: float = 0.9
    zero_one_weight: float = 10.0  # --aux_loss_weight


class ZeroOneBilevel(FirstOrderBilevel):
    """First-order DARTS whose architecture loss adds ``zero_one_weight * zero_one_loss(alpha)``."""

    graph_capturable = True

    def arch_loss(self, net, batch):
        return super().arch_loss(net, batch) + self.config.zero_one_weight * zero_one_loss(self.a_params)


@dataclass(frozen=True)
class ThresholdConfig:
    threshold: float = 0.85  # --op_threshold

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1] (a sigmoid value), not {self.threshold}")


class ThresholdSelector:
    """FairDARTS's ``threshold_sparse`` derivation on DARTS-family spaces; the space's rule elsewhere."""

    cheap = True  # reads only the weights

    def __init__(self, config: ThresholdConfig):
        self.config = config

    def select(self, net, ctx: SelectionContext):
        probs = net.sampler.probabilities()
        base = ctx.space.derive(probs)
        if not isinstance(base, DartsGenotype):
            return base
        return self.threshold_sparse(ctx.space, probs)

    def threshold_sparse(self, space, probs) -> DartsGenotype:
        cells = {}
        dsts = tuple(sorted({dst for _, dst in space.edges}))  # the intermediate nodes, also the concat
        for kind in ("normal", "reduce"):
            p = probs[kind].detach().float().cpu().tolist()
            ops = space.edge_ops(kind)
            nodes = []
            for dst in dsts:
                best = []  # (value, src, op) of each incoming edge's strongest non-none op
                for e, (src, d) in enumerate(space.edges):
                    if d != dst:
                        continue
                    scored = [(v, name) for v, name in zip(p[e], ops[e]) if name != "none"]
                    if scored:
                        v, name = max(scored, key=lambda t: t[0])
                        best.append((v, src, name))
                top = sorted(best, key=lambda t: (-t[0], t[1]))[:2]
                kept = [(name, src) for v, src, name in top if v >= self.config.threshold]
                if not kept:
                    log.info("threshold %.2f: node %d of the %s cell kept no input; its strongest edge "
                             "(%s from %d, %.3f) is kept", self.config.threshold, dst, kind, top[0][2], top[0][1],
                             top[0][0])
                    kept = [(top[0][2], top[0][1])]
                nodes.append(kept)
            cells[kind] = nodes
        return space.validate(DartsGenotype.from_nodes(cells["normal"], dsts, cells["reduce"], dsts))


REPORTED = (
    Reported("darts", "cifar10", "test_accuracy", 97.46,
             "the Fair DARTS authors' README (xiaomi-automl/FairDARTS @270cfc9 README.md, 'Performance Stability' "
             "table, row 'mean,var')", std=0.049, n=7, aggregation="mean-std",
             note="7 searches (FairDARTS_a..g, 97.35-97.51); the README prints '97.46±0.049' under 'mean,var': "
                  "0.049 is the seven values' population standard deviation (0.0495; sample std 0.053). "
                  "~3.32M params, ~458M FLOPs"),
)


@hookimpl
def harness_register_samplers(register):
    register("fair-sigmoid", lambda config, space: FairSigmoidSampler(config, space), FairSigmoidConfig,
             doc="independent sigmoid(alpha) per op, alpha starting at 0 (Fair DARTS)")


@hookimpl
def harness_register_optimizers(register):
    register("zero-one", lambda config, **kw: ZeroOneBilevel(config, **kw), ZeroOneConfig,
             doc="first-order DARTS plus the zero-one loss -w * MSE(sigmoid(alpha), 0.5), w = 10 (Fair DARTS)")


@hookimpl
def harness_register_selectors(register):
    register("threshold", lambda config: ThresholdSelector(config), ThresholdConfig,
             doc="Fair DARTS's threshold_sparse: per node the top-2 edges, each kept if its best sigmoid >= 0.85")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="fairdarts", sampler="fair-sigmoid", optimizer="zero-one", selector="threshold", cell="mixed",
        budgets={"paper": {"search": {"epochs": 50, "batch_size": 128}}},
        op_sets={"darts": "no-none"},  # fairdarts/genotypes.py PRIMITIVES: 7 ops, no 'none'
        paper=PAPER,
        reported=REPORTED,
        doc="Fair DARTS: sigmoid op weights with the zero-one loss and threshold derivation",
    ))
