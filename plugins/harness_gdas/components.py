"""GDAS components, following xautodl's search_model_gdas.py (SPEC-FACTS §4.2). The Gumbel sampler and
the single-path cell are core building blocks (``harness.blocks``), re-exported here under their old names."""

from __future__ import annotations

from dataclasses import dataclass

from harness.api import SelectionContext
from harness.blocks import (  # noqa: F401 - re-exported
    GumbelConfig,
    GumbelSampler,
    SinglePathBody,
    SinglePathCell,
    SinglePathConfig,
    gumbel_hard,
)
from harness.genotypes import DartsGenotype


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

    cheap = True  # reads only the probabilities: the host also records what it would derive every epoch

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
