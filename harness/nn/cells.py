"""The shared body of a search cell: nodes summing their incoming edges. Cell types subclass it and
decide what an edge computes from the sampler's weights (``edge_forward``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from harness.api import ArchWeights, CellSpec
from harness.nn.fused import FusedMixed


class CellBody(nn.Module):
    """Inputs -> nodes. ``self.ops[e]`` holds edge e's candidate ops in alpha-column order.

    ``fast`` is set by :func:`set_fast` (the search loop does it on CUDA unless ``runtime.fast=false``);
    a body that has a faster implementation of the same math switches to it when ``fast`` is true."""

    fast = False

    def __init__(self, spec: CellSpec):
        super().__init__()
        self.spec = spec
        self.kind = spec.kind
        self.ops = nn.ModuleList(
            nn.ModuleList(spec.op_factory(name, spec.channels, spec.strides[e]) for name in spec.ops[e])
            for e in range(len(spec.edges))
        )
        self.incoming: list[list[int]] = [[] for _ in range(spec.n_inputs + spec.n_nodes)]
        for e, (_, dst) in enumerate(spec.edges):
            self.incoming[dst].append(e)

    def edge_forward(self, e: int, x, arch: ArchWeights):
        raise NotImplementedError

    def forward(self, states, arch: ArchWeights):
        states = list(states)
        for dst in range(self.spec.n_inputs, self.spec.n_inputs + self.spec.n_nodes):
            outs = [self.edge_forward(e, states[self.spec.edges[e][0]], arch) for e in self.incoming[dst]]
            outs = [o for o in outs if o is not None]  # an edge a sampler switched off returns None
            if not outs:
                raise RuntimeError(f"node {dst} of a {self.kind} cell has no active input edge")
            states.append(sum(outs[1:], outs[0]))
        return states


def set_fast(net: nn.Module, on: bool) -> list[str]:
    """Switch every cell body of ``net`` that has a fast path (``supports_fast``) to it, or back.
    Returns the names of the bodies switched, so callers can report what runs fast."""
    switched = []
    for name, module in net.named_modules():
        if getattr(module, "supports_fast", False):
            module.fast = bool(on)
            switched.append(name)
    return switched


class Supernet(nn.Module):
    """Base of the spaces' search networks: ``self.sampler`` owns the architecture parameters, every
    other parameter is a weight."""

    sampler: nn.Module

    def weight_parameters(self) -> list:
        arch = {id(p) for p in self.sampler.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]


# ---------------------------------------------------------------------------------------------
# The two cell types every method here uses (moved from the darts and gdas plugins)


@dataclass(frozen=True)
class MixedConfig:
    pass


class MixedBody(CellBody):
    """Every candidate op runs; the edge output is sum_k w[e, k] * op_k(x) (times an optional edge
    weight). No data-dependent branching, so no host-device sync. With ``fast`` the same math runs
    through :class:`harness.nn.fused.FusedMixed` (ops grouped per source node, a few large kernels)."""

    _fused = None

    @property
    def supports_fast(self) -> bool:
        """Only when ``edge_forward`` is this class's: a subclass that changes what an edge computes
        (partial channels, say) must not be replaced by the fused sum of every op."""
        return type(self).edge_forward is MixedBody.edge_forward

    def forward(self, states, arch: ArchWeights):
        if self.fast and self.supports_fast:
            if self._fused is None:
                self._fused = FusedMixed(self)
            return self._fused(states, arch)
        return super().forward(states, arch)

    def edge_forward(self, e, x, arch: ArchWeights):
        w = arch.weights[self.kind][e]
        ops = self.ops[e]
        out = w[0] * ops[0](x)
        for k in range(1, len(ops)):
            out = out + w[k] * ops[k](x)
        if arch.edge_weights is not None:
            out = out * arch.edge_weights[self.kind][e]
        return out


class MixedCell:
    graph_capturable = True  # pure tensor ops, no host-side decisions (harness.graphs)

    def __init__(self, config: MixedConfig):
        self.config = config

    def build(self, spec: CellSpec) -> nn.Module:
        return MixedBody(spec)


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
    # runs the one op per edge a sampler names (ArchWeights.host_index): only with a sampler that declares
    # single_path (harness.testing.check_together refuses any other pairing before a run starts)
    requires = {"sampler": ("single_path",)}

    def __init__(self, config: SinglePathConfig):
        self.config = config

    def build(self, spec: CellSpec) -> nn.Module:
        return SinglePathBody(spec)
