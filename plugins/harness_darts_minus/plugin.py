"""DARTS-: "DARTS-: Robustly Stepping out of Performance Collapse Without Indicators" (Chu, Wang, Zhang, Zhang,
Wei, Yan; ICLR 2021), built only on the public contract (``harness.blocks``).

What it is, as the official code does it (Meituan-AutoML/DARTS- @66ec8a5b; read for facts, not copied):

* every mixed edge's output gets an auxiliary skip added, ``sum_k w_k op_k(x) + beta_t * aux(x)``
  (``src/search/model_search.py`` ``MixedOp.forward``), where ``aux`` is the identity on stride-1 edges and a
  ``FactorizedReduce(C, C, affine=False)`` on the stride-2 edges of a reduction cell; ``aux`` is not an
  architecture choice and has no alpha, so derivation is DARTS's unchanged;
* ``beta_t`` follows ``src/utils.py`` ``DecayScheduler.step(epoch)``, called at the start of every search
  epoch: linear ``beta * (T_max - epoch) / (T_max - T_start)`` (also ``cosine``, ``slow_cosine``), frozen after
  ``T_stop``, ``beta`` before ``T_start``; the paper's runs (``scripts/run_darts_minus.sh``) use ``--skip_beta
  1 --decay linear`` with ``T_max = T_stop = 50`` (= the 50 search epochs) and ``T_start = 0``: 1 at the
  first epoch down to 0.02 at the last. Here ``decay_max``/``decay_stop`` default to the number of search
  epochs, which is the same on the paper's 50-epoch search and keeps the decay whole on a shorter one;
* the rest is first-order DARTS (``src/search/args.py``: batch 64, lr 0.025 -> 0.001 cosine, momentum 0.9,
  weight decay 3e-4, Adam 3e-4 with 1e-3 decay, 50 epochs, C=16, 8 cells, not unrolled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.api import MethodInfo, Reported
from harness.blocks import MixedBody
from harness.nn.fused import FusedMixed
from harness.nn.ops import FactorizedReduce
from harness.plugins import hookimpl

PAPER = ("Chu, Wang, Zhang, Zhang, Wei, Yan. DARTS-: Robustly Stepping out of Performance Collapse Without "
         "Indicators. ICLR 2021")
DECAYS = ("linear", "cosine", "slow_cosine", "none")


@dataclass(frozen=True)
class AuxSkipConfig:
    beta: float = 1.0  # official --skip_beta
    decay: str = "linear"  # official --decay (linear in the paper's scripts)
    decay_start: int = 0  # T_start
    decay_stop: int | None = None  # T_stop (None: the number of search epochs)
    decay_max: int | None = None  # T_max (None: the number of search epochs)

    def __post_init__(self):
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {', '.join(DECAYS)}, not {self.decay!r}")


def skip_weight(config: AuxSkipConfig, epoch: int, epochs: int) -> float:
    """beta_t at the start of search epoch ``epoch`` (0-based) of ``epochs``, as DecayScheduler.step called
    every epoch leaves it (after ``T_stop`` it keeps the value it had there, so a resumed run gets it too)."""
    t_max = config.decay_max if config.decay_max is not None else epochs
    t_stop = config.decay_stop if config.decay_stop is not None else epochs
    if epoch < config.decay_start or config.decay == "none":
        return config.beta
    epoch = min(epoch, t_stop)
    span = t_max - config.decay_start
    if config.decay == "linear":
        return config.beta * (t_max - epoch) / span
    if config.decay == "cosine":
        return config.beta * (1 + math.cos(math.pi * epoch / span)) / 2.0
    return config.beta * math.cos((math.pi / 2) * epoch / span)  # slow_cosine


class AuxSkipBody(MixedBody):
    """A mixed cell whose every edge adds ``beta_t * aux(x)`` (identity, or FactorizedReduce on stride 2)."""

    def __init__(self, spec, config: AuxSkipConfig):
        super().__init__(spec)
        self.config = config
        self.aux = nn.ModuleList(FactorizedReduce(spec.channels, spec.channels, affine=False) if stride == 2
                                 else nn.Identity() for stride in spec.strides)
        self.register_buffer("skip_beta", torch.tensor(float(config.beta)), persistent=False)

    def set_progress(self, epoch: int, epochs: int) -> None:
        self.skip_beta.fill_(skip_weight(self.config, epoch, epochs))

    def edge_forward(self, e, x, arch):
        return super().edge_forward(e, x, arch) + self.skip_beta * self.aux[e](x)

    # The fast path: a node's sum of these edges is the mixed cell's node sum (the fused forward) plus
    # beta_t times each incoming edge's auxiliary skip, which ``finish`` adds (the same math; the float64
    # trajectories agree, tests/test_darts_minus.py)
    supports_fast = True
    accepts_samples = False  # (K sample groups: single-path cells only)

    def make_fused(self) -> FusedMixed:
        return FusedMixed(self, finish=self._finished)

    def _finished(self, dst, total, states, ew):
        for e in self.incoming[dst]:  # (the skip is not edge-weighted: edge_forward adds it after the weight)
            total = total + self.skip_beta * self.aux[e](states[self.spec.edges[e][0]])
        return total


class AuxSkipCell:
    graph_capturable = True  # beta_t is a device buffer updated in place between epochs

    def __init__(self, config: AuxSkipConfig):
        self.config = config

    def build(self, spec) -> nn.Module:
        return AuxSkipBody(spec, self.config)


@hookimpl
def harness_register_cell_types(register):
    register("aux-skip", lambda config: AuxSkipCell(config), AuxSkipConfig,
             doc="mixed cell plus an auxiliary skip per edge whose weight decays over the search (DARTS-)")


_SD_T1 = "as quoted in Single-DARTS (seed 001) Table 1, row 'DARTS- [11]'"
REPORTED = tuple(
    Reported("nb201", dataset, metric, mean, f"{_SD_T1}, column '{column}'", std=std, aggregation="mean-std",
             note="Single-DARTS does not say over how many runs its baseline rows are")
    for dataset, metric, mean, std, column in (
        ("cifar10", "valid_accuracy", 91.03, 0.44, "CIFAR-10 validation"),
        ("cifar10", "test_accuracy", 93.80, 0.40, "CIFAR-10 test"),
        ("cifar100", "valid_accuracy", 71.36, 1.51, "CIFAR-100 validation"),
        ("cifar100", "test_accuracy", 71.53, 1.51, "CIFAR-100 test"),
        ("imagenet16-120", "valid_accuracy", 44.87, 1.46, "ImageNet-16-120 validation"),
        ("imagenet16-120", "test_accuracy", 45.12, 0.82, "ImageNet-16-120 test"),
    )
)


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="darts-minus", sampler="softmax", optimizer="first-order", selector="argmax", cell="aux-skip",
        budgets={"paper": {"search": {"epochs": 50, "batch_size": 64}}},
        op_sets={"darts": "all"},  # src/spaces.py s5, "original DARTS space": the 8 ops, 'none' included
        paper=PAPER,
        reported=REPORTED,
        doc="DARTS-: DARTS (1st order) with a decaying auxiliary skip connection on every edge",
    ))
