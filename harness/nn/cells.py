"""The shared body of a search cell: nodes summing their incoming edges. Cell types subclass it and
decide what an edge computes from the sampler's weights (``edge_forward``)."""

from __future__ import annotations

from torch import nn

from harness.api import ArchWeights, CellSpec


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
