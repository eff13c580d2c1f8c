"""NAS-Bench-201 (SPEC-FACTS §3): a 4-node cell (node 0 = input), 6 edges in the order
1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2, ops none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3; output = node 3. Skeleton (TinyNetwork): stem, N cells at C, residual block to 2C,
N cells, residual block to 4C, N cells, BN+ReLU, pool, linear. Derivation: argmax per edge,
``none`` included (xautodl DARTS/GDAS on NB201).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.api import ArchWeights, CellSpec
from harness.errors import HarnessError
from harness.genotypes import NB201Genotype, parse_genotype
from harness.nn.cells import Supernet
from harness.nn.ops import NB201_OPS, PARAMETER_FREE, ReLUConvBN, nb201_op
from harness.spaces import CellEdge, CellGraph, NetShape, SearchSpace

EDGES = NB201Genotype.EDGES


class ResNetBasicBlock(nn.Module):
    """ReLUConvBN 3x3 stride 2 -> ReLUConvBN 3x3, plus AvgPool 2x2 -> 1x1 conv shortcut."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0),
                                        nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class _Skeleton(nn.Module):
    """Stem, three stages of cells separated by residual blocks, lastact, pool, classifier."""

    def __init__(self, channels, n_cells, shape: NetShape, make_cell):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(shape.in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        layers = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            layers.extend(make_cell(c) for _ in range(n_cells))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, shape.num_classes)

    def head(self, x):
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))


class NB201SearchCell(nn.Module):
    def __init__(self, space, cell_type, c, position=0):
        super().__init__()
        spec = CellSpec(kind="normal", n_inputs=1, n_nodes=3, edges=EDGES, ops=space.edge_ops("normal"),
                        strides=(1,) * len(EDGES), channels=c,
                        op_factory=lambda name, ch, stride: nb201_op(name, ch, stride, affine=False, search=True),
                        position=position, first_of_kind=position == 0, space=space)
        self.body = cell_type.build(spec)

    def forward(self, x, arch: ArchWeights):
        return self.body([x], arch)[-1]


class NB201SearchNetwork(_Skeleton, Supernet):
    def __init__(self, space, sampler, cell_type, channels, n_cells, shape):
        count = iter(range(3 * n_cells))
        super().__init__(channels, n_cells, shape, lambda c: NB201SearchCell(space, cell_type, c, next(count)))
        self.space = space
        self.sampler = sampler

    def forward(self, x, arch: ArchWeights | None = None):
        if arch is None:
            arch = self.sampler()
        with self.bn_counts():
            x = self.stem(x)
            for cell in self.cells:
                x = cell(x, arch) if isinstance(cell, NB201SearchCell) else cell(x)
            return self.head(x)


class NB201EvalCell(nn.Module):
    def __init__(self, genotype: NB201Genotype, c):
        super().__init__()
        self.ops = nn.ModuleList(nb201_op(op, c, 1, affine=True, search=False) for op in genotype.ops)

    def forward(self, x):
        nodes = [x]
        for dst in (1, 2, 3):
            nodes.append(sum(self.ops[e](nodes[src]) for e, (src, d) in enumerate(EDGES) if d == dst))
        return nodes[3]


class TinyNetwork(_Skeleton):
    """The NAS-Bench-201 evaluation network; returns ``(logits, None)`` like NetworkCIFAR."""

    def __init__(self, genotype, channels, n_cells, shape):
        super().__init__(channels, n_cells, shape, lambda c: NB201EvalCell(genotype, c))
        self.genotype = genotype
        self.drop_path_prob = 0.0  # unused: the NB201 protocol has no drop path

    def forward(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x), None


class NB201Space(SearchSpace):
    name = "nb201"
    description = "NAS-Bench-201: 6 edges, 5 ops (none, skip, conv1x1, conv3x3, avg pool), 15,625 cells"
    family = "nb201"
    cell_kinds = ("normal",)
    edges = EDGES
    n_inputs = 1
    n_nodes = 3
    layers_unit = "cells per stage"

    def edge_ops(self, kind: str):
        return tuple(NB201_OPS for _ in EDGES)

    def build_search_network(self, sampler, cell_type, channels, layers, shape):
        return NB201SearchNetwork(self, sampler, cell_type, channels, layers, shape)

    def build_eval_network(self, genotype, channels, layers, shape, auxiliary=False):
        return TinyNetwork(self.validate(genotype), channels, layers, shape)

    def search_defaults(self) -> dict[str, Any]:
        # NAS-Bench-201's search supernet: C=16, N=5 cells per stage (15 searching cells); xautodl's
        # DARTS/GDAS/SETN configs and darts-pt's nasbench201 code all use it (SPEC-FACTS §3.5)
        return {"channels": 16, "layers": 5}

    def eval_protocols(self) -> dict[str, str]:
        return {"nb201": "NAS-Bench-201's training protocol (C=16, N=5, 200 epochs, SGD 0.1 nesterov)"}

    def eval_defaults(self, dataset: str | None = None, protocol: str | None = None) -> dict[str, Any]:
        self.eval_protocol(protocol)  # the one protocol: nb201
        # NB201's own protocol: C=16, N=5, no auxiliary head, cutout or drop path (SPEC-FACTS §3.2, §3.4)
        return {"channels": 16, "layers": 5, "auxiliary_weight": 0.0, "cutout": 0, "drop_path": 0.0,
                "lr": 0.1, "weight_decay": 5e-4, "batch_size": 256, "epochs": 200}

    def derive(self, probabilities: dict[str, torch.Tensor]) -> NB201Genotype:
        p = probabilities["normal"].detach().float().cpu()
        return NB201Genotype(tuple(NB201_OPS[int(k)] for k in p.argmax(dim=1)))

    def parse(self, text: str) -> NB201Genotype:
        return self.validate(parse_genotype(text))

    def summarize(self, genotype: NB201Genotype) -> dict[str, Any]:
        return {"param_free": sum(op in PARAMETER_FREE for op in genotype.ops)}

    def cell_graph(self, genotype: NB201Genotype) -> dict[str, CellGraph]:
        # nodes 0 (the cell's input) .. 3 (its output), as in the NAS-Bench-201 paper's Figure 1; a 'none'
        # edge is no connection and is not drawn
        edges = tuple(CellEdge(str(src), str(dst), op, i) for i, ((src, dst), op) in enumerate(zip(EDGES, genotype.ops))
                      if op != "none")
        return {"normal": CellGraph(("0",), ("1", "2"), "3", edges)}

    def validate(self, genotype) -> NB201Genotype:
        if not isinstance(genotype, NB201Genotype):
            raise HarnessError(f"space 'nb201' takes NAS-Bench-201 strings (|op~0|+|op~0|op~1|+...), "
                               f"not {genotype.to_string()!r}")
        for op in genotype.ops:
            if op not in NB201_OPS:
                raise HarnessError(f"op {op!r} is not in space 'nb201'; valid ops: {', '.join(NB201_OPS)}")
        return genotype
