"""GDAS components, following xautodl's search_model_gdas.py (SPEC-FACTS §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import ArchWeights, CellSpec, SelectionContext
from harness.genotypes import DartsGenotype
from harness.nn.cells import CellBody
from harness.nn.samplers import AlphaSampler


@dataclass(frozen=True)
class GumbelConfig:
    tau_max: float = 10.0
    tau_min: float = 0.1
    init_scale: float = 1e-3


def gumbel_hard(logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through Gumbel-max per row: (hard one-hot with soft gradients, argmax index).

    Gumbel noise g = -log(E), E ~ Exp(1), clamped away from 0 so no row can become inf/NaN (xautodl
    resamples such rows instead; clamping avoids the host sync that checking would need)."""
    e = torch.empty_like(logits).exponential_().clamp_min_(torch.finfo(logits.dtype).tiny)
    probs = F.softmax((F.log_softmax(logits, dim=-1) - e.log()) / tau, dim=-1)
    index = probs.argmax(dim=-1)
    one_hot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
    return one_hot - probs.detach() + probs, index


class GumbelSampler(AlphaSampler):
    """One Gumbel sample per cell kind per forward, shared by all cells of that kind."""

    single_path = True  # names one op per edge (ArchWeights.host_index): cells run only that op

    def __init__(self, config: GumbelConfig, space):
        super().__init__(config, space)
        self.tau = config.tau_max

    def set_progress(self, epoch, total_epochs):
        c = self.config
        self.tau = c.tau_max - (c.tau_max - c.tau_min) * epoch / max(1, total_epochs - 1)

    def forward(self) -> ArchWeights:
        weights, index = {}, {}
        for kind, a in self.alphas.items():
            weights[kind], index[kind] = gumbel_hard(a, self.tau)
        # one device->host copy per forward: single-path cells must know which module to run
        host = torch.stack(list(index.values())).tolist()
        return ArchWeights(weights, index=index, host_index=dict(zip(index, host)))

    def transform(self, alpha):  # what probabilities() reports: the un-noised softmax
        return F.softmax(alpha, dim=-1)


@dataclass(frozen=True)
class SinglePathConfig:
    pass


class SinglePathBody(CellBody):
    """Runs only the sampled op of each edge: out = w[k] * op_k(x) + sum_{j != k} w[j], where the
    hard weights make the second term zero-valued but let every op's probability get a gradient
    (xautodl forward_gdas). Edges a sampler marks inactive are skipped."""

    def edge_forward(self, e, x, arch: ArchWeights):
        if arch.host_active is not None and not arch.host_active[self.kind][e]:
            return None
        w = arch.weights[self.kind][e]
        k = arch.host_index[self.kind][e]
        out = self.ops[e][k](x) * w[k] + (w.sum() - w[k])
        if arch.edge_weights is not None:
            out = out * arch.edge_weights[self.kind][e]
        return out


class SinglePathCell:
    def __init__(self, config: SinglePathConfig):
        self.config = config

    def build(self, spec: CellSpec) -> nn.Module:
        return SinglePathBody(spec)


# ---------------------------------------------------------------------------------------------
# Selector


@dataclass(frozen=True)
class PairTop2Config:
    pass


class PairTop2Selector:
    """GDAS's derivation on DARTS-like cells (xautodl search_model_gdas_nasnet.py ``genotype()``,
    L128-161 @f46486e2): per intermediate node, every (op, input) pair over all of its incoming edges,
    ``none`` excluded, is ranked by softmax(alpha) and the two largest are kept; both may come from
    the same input (xautodl's own TODO says so). Ties keep input order, then op order (a stable sort;
    xautodl's op order differs from the harness's, which matters only for exactly equal weights).
    Pairs are listed in descending weight. On spaces with one op per edge in the genotype (NB201) it
    is the space's own rule (argmax per edge, ``none`` included: xautodl's NB201 GDAS)."""

    def __init__(self, config: PairTop2Config):
        self.config = config

    def select(self, net, ctx: SelectionContext):
        space = ctx.space
        probs = net.sampler.probabilities()
        if space.family != "darts":
            return space.derive(probs)
        cells = {}
        for kind in space.cell_kinds:
            p = probs[kind].detach().float().cpu()
            ops = space.edge_ops(kind)
            nodes = []
            for dst in range(space.n_inputs, space.n_inputs + space.n_nodes):
                pairs = [(float(p[e, k]), name, src)
                         for e, (src, d) in enumerate(space.edges) if d == dst
                         for k, name in enumerate(ops[e]) if name != "none"]
                pairs = sorted(pairs, key=lambda t: -t[0])[:2]
                nodes.append(tuple((name, src) for _, name, src in pairs))
            cells[kind] = tuple(nodes)
        concat = tuple(range(space.n_inputs, space.n_inputs + space.n_nodes))
        return DartsGenotype.from_nodes(cells["normal"], concat, cells["reduce"], concat)
