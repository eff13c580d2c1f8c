"""PC-DARTS: "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search" (Xu, Xie, Zhang,
Chen, Qi, Tian, Xiong; ICLR 2020), built only on the public contract (``harness.blocks``).

What it is, as the official code does it (yuhuixu1993/PC-DARTS @b74702f, ``model_search.py``,
``train_search.py``, ``architect.py``; read for facts, not copied):

* partial channel connections: on every edge only the first ``C/K`` channels go through the candidate ops,
  the rest bypass them (max-pooled on a stride-2 edge), and the concatenation is channel-shuffled with ``K``
  groups; ``K = 4`` on CIFAR (``MixedOp``). Here the cell type ``partial`` (``harness.blocks.PartialMixedCell``);
* edge normalisation: a second set of architecture parameters ``beta``, one per edge, 1e-3 * randn like
  alpha; each node's incoming edges are weighted by the softmax of their betas over that node
  (``Network.forward``: ``weights2``), multiplying the edge's mixed output (``Cell.forward``);
* derivation multiplies the two: ``W[e, k] = softmax(alpha_e)[k] * softmax_node(beta)[e]``, then DARTS's
  rule (per node the 2 edges with the largest non-``none`` ``W``, argmax non-``none`` op on each;
  ``Network.genotype``). Here :meth:`EdgeNormSampler.probabilities` returns that product, so the ``argmax``
  selector and every per-epoch record rank it;
* the optimisation is first-order DARTS (``--unrolled`` off) with: batch 256, SGD lr 0.1 cosine to 0,
  momentum 0.9, weight decay 3e-4, 50 epochs, C=16, 8 cells; Adam on alpha and beta with lr 6e-4, betas
  (0.5, 0.999), weight decay 1e-3; the architecture is not updated in the first 15 epochs
  (``train_search.py``: ``if epoch >= 15``). 8 ops, ``none`` included (``genotypes.py`` PRIMITIVES).

Choices written down:

* the warm-up is counted on the paper's 50-epoch search: a search of ``T`` epochs warms up
  ``floor(15 * T / 50)`` epochs (``warmup_reference``), so a short CPU search still updates alpha; with
  ``T = 50`` it is the official 15 (``--set optimizer.warmup_reference=0`` takes ``warmup_epochs`` as is);
* the paper gives no NAS-Bench-201 settings (its benchmark numbers come from later papers' reruns); the same
  settings are used there, with ``K = 4`` on the 16-channel first stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import ArchWeights, MethodInfo, Reported
from harness.blocks import BilevelConfig, FirstOrderBilevel, PartialConfig, PartialMixedCell, SoftmaxConfig, SoftmaxSampler
from harness.plugins import hookimpl

PAPER = ("Xu, Xie, Zhang, Chen, Qi, Tian, Xiong. PC-DARTS: Partial Channel Connections for Memory-Efficient "
         "Architecture Search. ICLR 2020")


class EdgeNormSampler(SoftmaxSampler):
    """softmax(alpha) per edge for the ops, and per node a softmax of the incoming edges' betas."""

    graph_capturable = True  # pure tensor ops

    def __init__(self, config: SoftmaxConfig, space):
        super().__init__(config, space)
        self.betas = nn.ParameterDict({
            kind: nn.Parameter(self.config.init_scale * torch.randn(len(space.edges))) for kind in space.cell_kinds
        })
        # edge e's node, as an index into the nodes that have incoming edges
        nodes = sorted({dst for _, dst in space.edges})
        self.register_buffer("node_of", torch.tensor([nodes.index(dst) for _, dst in space.edges]),
                             persistent=False)
        self.n_nodes = len(nodes)

    def edge_weights(self, beta: torch.Tensor) -> torch.Tensor:
        """(edges,) softmax of beta over the edges entering the same node."""
        shifted = beta - beta.max()  # one shift for every node keeps each node's softmax unchanged
        num = shifted.exp()
        den = torch.zeros(self.n_nodes, dtype=num.dtype, device=num.device).index_add_(0, self.node_of, num)
        return num / den[self.node_of]

    def forward(self) -> ArchWeights:
        return ArchWeights({k: F.softmax(a, dim=-1) for k, a in self.alphas.items()},
                           edge_weights={k: self.edge_weights(b) for k, b in self.betas.items()})

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {k: F.softmax(a.detach(), dim=-1) * self.edge_weights(self.betas[k].detach()).unsqueeze(-1)
                for k, a in self.alphas.items()}

    def arch_parameters(self) -> list[torch.Tensor]:
        return [*self.alphas.values(), *self.betas.values()]


@dataclass(frozen=True)
class PCDartsConfig(BilevelConfig):
    lr: float = 0.1
    lr_min: float = 0.0
    arch_lr: float = 6e-4
    warmup_epochs: int = 15
    warmup_reference: int = 50  # warmup_epochs is counted on a search this long (0: take it as is)

    def __post_init__(self):
        super().__post_init__()
        if self.warmup_reference < 0:
            raise ValueError(f"warmup_reference must be >= 0, not {self.warmup_reference}")


class WarmupBilevel(FirstOrderBilevel):
    """First-order DARTS whose architecture step starts after a warm-up scaled to the search length."""

    graph_capturable = True  # as FirstOrderBilevel: arch_enabled changes only in set_progress

    def warmup_for(self, total_epochs: int) -> int:
        c = self.config
        if not c.warmup_reference:
            return c.warmup_epochs
        return c.warmup_epochs * total_epochs // c.warmup_reference

    def set_progress(self, epoch, total_epochs):
        super().set_progress(epoch, total_epochs)
        self.arch_enabled = epoch >= self.warmup_for(total_epochs)


def _nb201(metric_rows, source, n=None) -> tuple[Reported, ...]:
    return tuple(Reported("nb201", ds, "test_accuracy", mean, source, std=std, n=n, aggregation="mean-std")
                 for ds, mean, std in metric_rows)


DRNAS_README = ("as quoted in the DrNAS authors' README (xiangning-chen/DrNAS @f2caa4d README.MD, "
                "'On NAS-Bench-201' table, row 'PC-DARTS')")

REPORTED = (
    Reported("darts", "cifar10", "test_error", 2.57,
             "as quoted in EnTranNAS (seed 003) Table 2, row 'PC-DARTS + cutout [49]'", std=0.07,
             aggregation="mean-std", note="row lists 3.6M params, 0.1 GPU-days; n not stated"),
    *_nb201((("cifar10", 93.41, 0.30), ("cifar100", 67.48, 0.89), ("imagenet16-120", 41.31, 0.22)),
            DRNAS_README),
)


@hookimpl
def harness_register_samplers(register):
    register("edge-softmax", lambda config, space: EdgeNormSampler(config, space), SoftmaxConfig,
             doc="softmax(alpha) per edge and a softmax of beta over each node's edges (PC-DARTS edge normalisation)")


@hookimpl
def harness_register_cell_types(register):
    register("partial", lambda config: PartialMixedCell(config), PartialConfig,
             doc="mixed cell whose ops see 1/k of the channels, the rest bypassing, channel-shuffled (PC-DARTS)")


@hookimpl
def harness_register_optimizers(register):
    register("warmup-first-order", lambda config, **kw: WarmupBilevel(config, **kw), PCDartsConfig,
             doc="first-order DARTS, PC-DARTS settings (lr 0.1, arch lr 6e-4), alpha frozen for the first "
                 "30% of the search (15 of 50 epochs)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="pc-darts", sampler="edge-softmax", optimizer="warmup-first-order", selector="argmax", cell="partial",
        budgets={"paper": {"search": {"epochs": 50, "batch_size": 256}}},
        op_sets={"darts": "all"},  # genotypes.py PRIMITIVES: the 8 ops, 'none' included
        paper=PAPER,
        reported=REPORTED,
        doc="PC-DARTS: partial channel connections (K=4) and edge normalisation on first-order DARTS",
    ))
