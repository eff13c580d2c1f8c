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
class CellEdge:
    """One edge of a drawn cell: ``src`` -> ``dst`` (node labels) carrying ``op`` ("" for a plain
    connection, e.g. an intermediate node into the cell's concatenated output); ``index`` is the edge's
    place in ``SearchSpace.edges`` (its alpha row), None for a plain connection."""

    src: str
    dst: str
    op: str
    index: int | None = None


@dataclass(frozen=True)
class CellGraph:
    """A derived cell as a labelled graph (``harness plot cell``): its input nodes, intermediate nodes and
    output node in drawing order, and the edges between them."""

    inputs: tuple[str, ...]
    nodes: tuple[str, ...]
    output: str
    edges: tuple[CellEdge, ...]


@dataclass(frozen=True)
class NetShape:
    """What a network needs to know about its data."""

    in_channels: int
    num_classes: int
    resolution: int


class SearchSpace(ABC):
    """A search space; registered by ``harness_register_spaces`` (checked by ``harness.testing.check_space``).
    How its architectures are evaluated is the space's: a retraining (``eval_protocols``/``eval_defaults``
    and ``build_eval_network``), or a query of a benchmark registered for it (``harness_register_benchmarks``
    with ``spaces=`` naming it, on the datasets that benchmark covers)."""

    name: str
    description: str
    family: str  # the genotype format and network skeleton ("darts", "nb201", or a plugin's own)
    cell_kinds: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]  # (src, dst) in the space's edge order
    n_inputs: int
    n_nodes: int
    layers_unit: str = "cells"  # what a network's ``layers`` counts ("cells per stage" on NB201)

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
    def validate(self, genotype: Genotype) -> Genotype:
        """``genotype`` itself if this space can build it (its family, ops and edges), else a HarnessError
        naming what is wrong. The runner validates every selector's genotype before it is recorded."""

    @abstractmethod
    def build_eval_network(self, genotype: Genotype, channels: int, layers: int, shape: NetShape,
                           auxiliary: bool = False) -> nn.Module:
        """The standalone network of a derived genotype, for retraining and parameter counts. Its forward
        returns ``(logits, aux_logits)`` (``aux_logits`` None without the auxiliary head or in eval
        mode) and it has a ``drop_path_prob`` attribute that the retraining sets every epoch."""

    # -- search and evaluation settings the space owns ------------------------------------------

    op_set: str = "all"  # which of ``op_sets()`` this object's ``edge_ops`` are

    def op_sets(self) -> dict[str, str]:
        """The op sets a search on this space may use: name -> description. ``"all"`` is every op the
        space lists; a space may offer subsets (the DARTS space without ``none``, say), which a method
        recipe declares (``MethodInfo.op_sets``) and ``search.op_set`` selects."""
        return {"all": "every op of the space"}

    def with_op_set(self, name: str) -> SearchSpace:
        """This space searching only the ops of op set ``name`` (same name, edges, genotypes)."""
        if name not in self.op_sets():
            from harness.errors import unknown

            raise unknown(f"op set of space {self.name!r}", name, self.op_sets())
        return self

    def search_defaults(self) -> dict[str, Any]:
        """SearchBudget fields this space fixes for every method and preset unless a method's paper
        says otherwise: the supernet's width and depth (``channels``, ``layers``)."""
        return {}

    def eval_protocols(self) -> dict[str, str]:
        """Named evaluation protocols: name -> description. The first is the default."""
        return {"default": "the space's evaluation network"}

    def eval_protocol(self, protocol: str | None = None) -> str:
        """``protocol`` checked against ``eval_protocols()`` (None or "": the default)."""
        protocols = self.eval_protocols()
        if not protocol:
            return next(iter(protocols))
        if protocol not in protocols:
            from harness.errors import unknown

            raise unknown(f"eval protocol of space {self.name!r}", protocol, protocols)
        return protocol

    @abstractmethod
    def eval_defaults(self, dataset: str | None = None, protocol: str | None = None) -> dict[str, Any]:
        """EvalBudget overrides for this space's evaluation network under ``protocol`` (None: the
        default one) for ``dataset`` (channels, layers, ...)."""

    def summarize(self, genotype: Genotype) -> dict[str, Any]:
        """Counts a record keeps beside the genotype (``search.*``), e.g. parameter-free ops per cell kind
        (the collapse measure); a space without such counts returns {}."""
        return {}

    def cell_graph(self, genotype: Genotype) -> dict[str, CellGraph]:
        """Each cell kind of ``genotype`` as a labelled graph, for drawing (``harness plot cell``) and for
        marking the derived op of every edge (``harness plot alphas``). A space that does not override it
        cannot be drawn, and says so."""
        from harness.errors import HarnessError

        raise HarnessError(f"space {self.name!r} does not say how to draw its cells (SearchSpace.cell_graph)")

    def ops_summary(self) -> dict[str, Any]:
        """Per cell kind, the op list every edge searches, or the per-edge lists where they differ."""
        out: dict[str, Any] = {}
        for kind in self.cell_kinds:
            per_edge = [list(ops) for ops in self.edge_ops(kind)]
            out[kind] = per_edge[0] if all(o == per_edge[0] for o in per_edge) else per_edge
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "layers_unit": self.layers_unit,
            "edges": [f"{dst}<-{src}" for src, dst in self.edges],
            "ops": {kind: [list(ops) for ops in self.edge_ops(kind)] for kind in self.cell_kinds},
            "op_sets": self.op_sets(),
            "search_defaults": self.search_defaults(),
            "eval_protocols": self.eval_protocols(),
        }
