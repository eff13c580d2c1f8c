"""Search spaces: which ops each edge may take, how a supernet and an evaluation network are built,
and the default rule that turns architecture weights into a genotype.

Built-in spaces (registered by the ``core`` plugin): ``darts`` (S0), ``s1``..``s4`` (RobustDARTS),
``nb201`` (NAS-Bench-201).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness.genotypes import Genotype


@dataclass(frozen=True)
class NetShape:
    """What a network needs to know about its data."""

    in_channels: int
    num_classes: int
    resolution: int


class SearchSpace(ABC):
    name: str
    description: str
    family: str  # "darts" | "nb201": which genotype format and network skeleton
    cell_kinds: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]  # (src, dst) in the space's edge order
    n_inputs: int
    n_nodes: int

    @abstractmethod
    def edge_ops(self, kind: str) -> tuple[tuple[str, ...], ...]:
        """The candidate op names of every edge of a ``kind`` cell, in edge order (alpha column order)."""

    @property
    def n_ops(self) -> int:
        """Ops per edge; every built-in space has the same count on all edges."""
        return len(self.edge_ops(self.cell_kinds[0])[0])

    @abstractmethod
    def build_search_network(self, sampler, cell_type, channels: int, layers: int, shape: NetShape) -> nn.Module:
        """The supernet; its ``forward(x)`` draws ``sampler()`` once and returns logits."""

    @abstractmethod
    def derive(self, probabilities: dict[str, torch.Tensor]) -> Genotype:
        """The space's standard derivation rule from (edges, ops) probabilities per cell kind."""

    @abstractmethod
    def parse(self, text: str) -> Genotype:
        """Parse and validate a genotype string of this space; errors name the bad part."""

    @abstractmethod
    def build_eval_network(self, genotype: Genotype, channels: int, layers: int, shape: NetShape,
                           auxiliary: bool = False) -> nn.Module:
        """The standalone network of a derived genotype, for retraining and parameter counts."""

    @abstractmethod
    def eval_defaults(self) -> dict[str, Any]:
        """EvalBudget overrides for this space's evaluation network (channels, layers)."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "edges": [f"{dst}<-{src}" for src, dst in self.edges],
            "ops": {kind: [list(ops) for ops in self.edge_ops(kind)] for kind in self.cell_kinds},
        }
