"""SNAS: "SNAS: Stochastic Neural Architecture Search" (Xie, Zheng, Liu, Lin; ICLR 2019), built only on the
public contract (``harness.blocks``).

What it is, as the official code does it (SNAS-Series/SNAS-Series, ``SNAS/model_search.py``,
``SNAS/train_search.py``, ``SNAS/utils.py``; read for facts, not copied):

* every edge's op weights are one relaxed concrete sample ``softmax((log_alpha + G) / tau)``, ``G`` standard
  Gumbel noise (``_get_categ_mask``); one sample per cell kind per forward, shared by every cell of that
  kind (``forward``: ``_get_weights`` once for the normal and once for the reduction alphas); every op
  runs, weighted (no single path);
* ``log_alpha`` starts as ``normal(1, 0.01)`` (``--loc_mean 1 --loc_std 0.01``);
* the temperature anneals linearly per epoch from ``--temp 1`` to ``--temp_min 0.03``
  (``Temp_Scheduler.decay_whole_process``, stepped before each epoch with the README's
  ``--temp_annealing``): epoch ``e`` (0-based) uses ``0.03 + 0.97 * (1 - (e + 1) / 150)``, the 150 being
  the scheduler's fixed total (= the README's ``--epochs 150``);
* weights and architecture are trained together on the same training batch (single level): one backward
  of the loss, then SGD on the weights (lr 0.025 cosine to 0.001, momentum 0.9, weight decay 3e-4, grad norm
  clipped at 5) and Adam on log_alpha (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3, grad norm clipped
  at 10); the whole training set is the search data (no validation split). Batch 64, 150 epochs, C=16, 8
  cells, 8 ops with ``none`` (``genotypes.py`` PRIMITIVES);
* the resource constraint (``--resource_efficient``) is off by default in the official flags; it is not
  offered here (off, as the issue asks for by default).

Choices written down:

* ``anneal_epochs`` (the ``150``) defaults to the search's own length, which is the official schedule on the
  paper's 150 epochs and still reaches ``tau_min`` on a shorter search;
* derivation: DARTS's rule on ``softmax(log_alpha)`` (``argmax`` selector), ``none`` excluded. The official
  ``genotype()`` also ranks ``none``; the architectures the paper evaluates are its ``edge_all`` children
  (every edge whose argmax is not ``none``), which a fixed 2-input DARTS genotype cannot express;
* data: the harness's search split has two halves; ``data="full"`` steps on a batch of each (every image
  of the training set once per epoch), as SNAS trains on all of it;
* ``--drop_path_prob 0.3`` during the search is not applied (the search cells here have no drop path).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.api import ArchWeights, MethodInfo, Reported
from harness.blocks import AlphaSampler, SingleLevel, SingleLevelConfig
from harness.plugins import hookimpl

PAPER = "Xie, Zheng, Liu, Lin. SNAS: Stochastic Neural Architecture Search. ICLR 2019"


@dataclass(frozen=True)
class ConcreteConfig:
    tau: float = 1.0  # --temp
    tau_min: float = 0.03  # --temp_min
    anneal_epochs: int | None = None  # the scheduler's total (official 150); None: the search's epochs
    loc_mean: float = 1.0  # log_alpha ~ normal(loc_mean, loc_std)
    loc_std: float = 0.01

    def __post_init__(self):
        if not 0 < self.tau_min <= self.tau:
            raise ValueError(f"need 0 < tau_min <= tau, not tau_min={self.tau_min}, tau={self.tau}")
        if self.anneal_epochs is not None and self.anneal_epochs <= 0:
            raise ValueError(f"anneal_epochs must be positive, not {self.anneal_epochs}")


def concrete_sample(log_alpha: torch.Tensor, tau: float) -> torch.Tensor:
    """One relaxed one-hot per row: softmax((log_alpha + G) / tau), G = -log(E), E ~ Exp(1) (= -log(-log U))."""
    e = torch.empty_like(log_alpha).exponential_().clamp_min_(torch.finfo(log_alpha.dtype).tiny)
    return F.softmax((log_alpha - e.log()) / tau, dim=-1)


class ConcreteSampler(AlphaSampler):
    """A fresh concrete sample of every edge's op weights per forward and cell kind."""

    graph_capturable = True  # tensor ops and the device's random stream; tau changes only in set_progress

    def __init__(self, config: ConcreteConfig, space):
        super().__init__(config, space)
        self.tau = config.tau

    def initial_alpha(self, shape):
        return torch.empty(shape).normal_(self.config.loc_mean, self.config.loc_std)

    def temperature_at(self, epoch: int, total_epochs: int) -> float:
        c = self.config
        span = c.anneal_epochs if c.anneal_epochs is not None else total_epochs
        return max(c.tau_min, c.tau_min + (c.tau - c.tau_min) * (1 - (epoch + 1) / span))

    def set_progress(self, epoch, total_epochs):
        self.tau = self.temperature_at(epoch, total_epochs)

    def forward(self) -> ArchWeights:
        return ArchWeights({kind: concrete_sample(a, self.tau) for kind, a in self.alphas.items()})

    def transform(self, alpha):  # what probabilities() reports and derivation ranks: the noiseless softmax
        return F.softmax(alpha, dim=-1)


@dataclass(frozen=True)
class JointConfig(SingleLevelConfig):
    data: str = "full"  # the whole training set
    arch_grad_clip: float | None = 10.0


REPORTED = (
    Reported("darts", "cifar10", "test_error", 2.85,
             "as quoted in EnTranNAS (seed 003) Table 2, row 'SNAS (moderate) + cutout [48]'", std=0.02,
             aggregation="mean-std", note="the moderate resource constraint; 2.8M params, 1.5 GPU-days"),
    *(Reported("nb201", ds, "test_accuracy", mean,
               "as quoted in the DrNAS authors' README (xiangning-chen/DrNAS @f2caa4d README.MD, "
               "'On NAS-Bench-201' table, row 'SNAS')", std=std, aggregation="mean-std")
      for ds, mean, std in (("cifar10", 92.77, 0.83), ("cifar100", 69.34, 1.98), ("imagenet16-120", 43.16, 2.64))),
)


@hookimpl
def harness_register_samplers(register):
    register("concrete", lambda config, space: ConcreteSampler(config, space), ConcreteConfig,
             doc="a relaxed Gumbel-softmax sample of every edge's ops per forward, tau 1 -> 0.03 linearly (SNAS)")


@hookimpl
def harness_register_optimizers(register):
    register("joint", lambda config, **kw: SingleLevel(config, **kw), JointConfig,
             doc="weights and alpha stepped together on each training batch, both halves of the split, "
                 "alpha's gradient clipped at 10 (SNAS)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="snas", sampler="concrete", optimizer="joint", selector="argmax", cell="mixed",
        budgets={"paper": {"search": {"epochs": 150, "batch_size": 64}}},
        op_sets={"darts": "all"},  # SNAS/genotypes.py PRIMITIVES: the 8 ops, 'none' included
        paper=PAPER,
        reported=REPORTED,
        doc="SNAS: concrete-relaxed op samples with an annealed temperature, single-level training",
    ))
