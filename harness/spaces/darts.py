"""The DARTS CNN space (S0) and RobustDARTS's reduced spaces S1-S4 (SPEC-FACTS §1, §2).

Cells: 2 inputs (0 = cell k-2, 1 = cell k-1), 4 intermediate nodes, 14 edges enumerated node by
node and within a node by input index; the output concatenates nodes 2..5. Reduction cells sit at
layers//3 and 2*layers//3; edges leaving a reduction cell's inputs have stride 2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.api import ArchWeights, CellSpec
from harness.errors import HarnessError
from harness.genotypes import DartsGenotype, parse_genotype
from harness.nn.fused import FusedBatchNorm, JointStates, joint_relu_conv_bn_ok, relu_conv_bn_jointly
from harness.nn.cells import Supernet
from harness.nn.ops import DARTS_OPS, PARAMETER_FREE, FactorizedReduce, Identity, ReLUConvBN, darts_op
from harness.spaces import CellEdge, CellGraph, NetShape, SearchSpace

STEPS = 4
EDGES = tuple((src, 2 + node) for node in range(STEPS) for src in range(2 + node))
CONCAT = (2, 3, 4, 5)

# RobustDARTS S1: a different pair of ops per edge (order matters: alpha columns index into it).
S1_NORMAL = (
    ("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"), ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "sep_conv_3x3"), ("skip_connect", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "sep_conv_3x3"), ("max_pool_3x3", "skip_connect"), ("skip_connect", "dil_conv_3x3"),
    ("dil_conv_3x3", "dil_conv_5x5"), ("dil_conv_3x3", "dil_conv_5x5"),
)
S1_REDUCE = (
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "dil_conv_3x3"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"),
)


def _uniform(ops: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(ops for _ in EDGES)


class DartsFamilySpace(SearchSpace):
    family = "darts"
    cell_kinds = ("normal", "reduce")
    edges = EDGES
    n_inputs = 2
    n_nodes = STEPS

    def __init__(self, name: str, description: str, normal, reduce, protocols=("darts",), op_set="all"):
        self.name = name
        self.description = description
        self._ops = {"normal": tuple(normal), "reduce": tuple(reduce)}
        self._protocols = tuple(protocols)
        self.op_set = op_set

    def edge_ops(self, kind: str):
        return self._ops[kind]

    # -- op sets, search and evaluation settings ------------------------------------------------

    def op_sets(self) -> dict[str, str]:
        n = len(self._ops["normal"][0])
        if not any("none" in ops for kind in self.cell_kinds for ops in self._ops[kind]):
            return {"all": f"every op the space lists ({n} per edge on the first edge)"}
        return {"all": f"every op the space lists, none included ({n} per edge)",
                "no-none": f"without none ({n - 1} per edge)" + (
                    ": darts-pt's S5, ROME's S0, EnTranNAS's standard space (docs/reference-facts.md §2)"
                    if self.name == "darts" else "")}

    def with_op_set(self, name: str) -> DartsFamilySpace:
        super().with_op_set(name)  # validates the name
        if name == self.op_set:
            return self
        if name == "all" or self.op_set != "all":
            raise HarnessError(f"op set {name!r} must be taken from space {self.name!r}'s full op list")
        keep = {kind: tuple(tuple(o for o in ops if o != "none") or ops for ops in self._ops[kind])
                for kind in self.cell_kinds}
        return DartsFamilySpace(self.name, f"{self.description} [op set {name}]", keep["normal"],
                                keep["reduce"], self._protocols, op_set=name)

    def search_defaults(self) -> dict[str, Any]:
        # the DARTS supernet: C=16, 8 cells (quark0/darts train_search.py; RobustDARTS's the same)
        return {"channels": 16, "layers": 8}

    def eval_protocols(self) -> dict[str, str]:
        described = {
            "robustdarts": "RobustDARTS's S1-S4 protocol: 8 cells, C=16 (CIFAR-100, SVHN and any other "
                           "dataset: the repo default); CIFAR-10 20 cells, C=36, except S2 and S4 at C=16 "
                           "(ROME Table 6 caption)",
            "darts": "20 cells, C=36 on every dataset (DARTS; SDARTS's setting on S1-S4)",
        }
        return {p: described[p] for p in self._protocols}

    def eval_defaults(self, dataset: str | None = None, protocol: str | None = None) -> dict[str, Any]:
        if self.eval_protocol(protocol) == "robustdarts":
            if dataset == "cifar10":
                return {"channels": 16 if self.name in ("s2", "s4") else 36, "layers": 20}
            return {"channels": 16, "layers": 8}
        return {"channels": 36, "layers": 20}

    # -- networks -------------------------------------------------------------------------------

    def build_search_network(self, sampler, cell_type, channels: int, layers: int, shape: NetShape) -> nn.Module:
        return DartsSearchNetwork(self, sampler, cell_type, channels, layers, shape)

    def build_eval_network(self, genotype, channels, layers, shape, auxiliary=False) -> nn.Module:
        return NetworkCIFAR(self.validate(genotype), channels, layers, shape, auxiliary)

    # -- genotypes ------------------------------------------------------------------------------

    def derive(self, probabilities: dict[str, torch.Tensor]) -> DartsGenotype:
        """DARTS rule: per node keep the 2 incoming edges with the largest non-``none`` weight, and on
        each the argmax non-``none`` op; pairs ordered by descending edge strength (quark0/darts).
        Edge op lists are indexed with the global edge number (RobustDARTS's local-index bug avoided)."""
        cells = {}
        for kind in self.cell_kinds:
            p = probabilities[kind].detach().float().cpu().tolist()  # one host read, not one per element
            ops = self._ops[kind]
            chosen: list[tuple[str, int]] = []
            for node in range(STEPS):
                candidates = []
                for e, (src, dst) in enumerate(EDGES):
                    if dst != 2 + node:
                        continue
                    best_k, best_w = None, -1.0
                    for k, name in enumerate(ops[e]):
                        if name != "none" and p[e][k] > best_w:
                            best_k, best_w = k, p[e][k]
                    if best_k is not None:
                        candidates.append((best_w, -src, src, ops[e][best_k]))
                candidates.sort(reverse=True)
                chosen.extend((name, src) for _, _, src, name in candidates[:2])
            cells[kind] = tuple(chosen)
        return DartsGenotype(cells["normal"], CONCAT, cells["reduce"], CONCAT)

    def parse(self, text: str) -> DartsGenotype:
        return self.validate(parse_genotype(text))

    def summarize(self, genotype: DartsGenotype) -> dict[str, Any]:
        return {"param_free_normal": sum(op in PARAMETER_FREE for op, _ in genotype.normal),
                "param_free_reduce": sum(op in PARAMETER_FREE for op, _ in genotype.reduce)}

    def cell_graph(self, genotype: DartsGenotype) -> dict[str, CellGraph]:
        # labels as in the DARTS paper's cell figures (Liu et al. 2019, Fig. 4/5): inputs c_{k-2}, c_{k-1},
        # intermediate nodes 0..3, output c_{k} (the concatenation of the nodes in ``concat``)
        inputs, out = ("c_{k-2}", "c_{k-1}"), "c_{k}"
        graphs = {}
        for kind in self.cell_kinds:
            edges = [CellEdge(inputs[src] if src < 2 else str(src - 2), str(n), op, EDGES.index((src, 2 + n)))
                     for n, pairs in enumerate(genotype.nodes(kind)) for op, src in pairs]
            concat = genotype.normal_concat if kind == "normal" else genotype.reduce_concat
            edges += [CellEdge(str(c - 2), out, "") for c in concat]
            graphs[kind] = CellGraph(inputs, tuple(str(n) for n in range(STEPS)), out, tuple(edges))
        return graphs

    def validate(self, genotype) -> DartsGenotype:
        if not isinstance(genotype, DartsGenotype):
            raise HarnessError(f"space {self.name!r} takes DARTS genotypes (Genotype(normal=[...], ...)), "
                               f"not {genotype.to_string()!r}")
        for kind in self.cell_kinds:
            nodes = genotype.nodes(kind)
            if len(nodes) != STEPS:
                raise HarnessError(f"genotype {kind} cell has {len(nodes)} intermediate nodes; space "
                                   f"{self.name!r} has {STEPS}")
            for n, pairs in enumerate(nodes):
                if not pairs:
                    raise HarnessError(f"node {2 + n} of the genotype's {kind} cell has no input")
                for op, src in pairs:
                    e = EDGES.index((src, 2 + n))
                    if op not in self._ops[kind][e]:
                        raise HarnessError(
                            f"op {op!r} on edge {2 + n}<-{src} of the {kind} cell is not in space "
                            f"{self.name!r}; valid ops there: "
                            f"{', '.join(o for o in self._ops[kind][e] if o != 'none')}"
                        )
        for concat in (genotype.normal_concat, genotype.reduce_concat):
            if not concat or any(not 2 <= c < 2 + STEPS for c in concat):
                raise HarnessError(f"genotype concat {list(concat)} must name nodes in 2..{1 + STEPS}")
        return genotype


# ----------------------------------------------------------------------------------------------
# Search network


class SearchCell(nn.Module):
    def __init__(self, space: DartsFamilySpace, cell_type, c_pp, c_p, c, reduction, reduction_prev,
                 position=0, first_of_kind=False):
        super().__init__()
        self.reduction = reduction
        kind = "reduce" if reduction else "normal"
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        spec = CellSpec(
            kind=kind, n_inputs=2, n_nodes=STEPS, edges=EDGES, ops=space.edge_ops(kind),
            strides=tuple(2 if reduction and src < 2 else 1 for src, _ in EDGES), channels=c,
            op_factory=lambda name, ch, stride: darts_op(name, ch, stride, affine=False, search=True),
            position=position, first_of_kind=first_of_kind, space=space,
        )
        self.body = cell_type.build(spec)

    _joint_bn = None

    def forward(self, s0, s1, arch: ArchWeights):
        pre = (self.preprocess0, self.preprocess1)
        if getattr(self.body, "fast", False) and s0.shape == s1.shape and joint_relu_conv_bn_ok(pre):
            # the fast path: both preprocessing blocks as one grouped pass, handed on side by side too
            if self._joint_bn is None:
                self._joint_bn = FusedBatchNorm([b[2] for b in pre])
            h = relu_conv_bn_jointly(pre, (s0, s1), self._joint_bn)
            inputs = JointStates(h.chunk(2, dim=1))
            inputs.joint = {(0, 1): h}
        else:
            inputs = [self.preprocess0(s0), self.preprocess1(s1)]
        states = self.body(inputs, arch)
        return torch.cat(states[2:], dim=1)


class DartsSearchNetwork(Supernet):
    """The DARTS supernet (quark0/darts model_search.py layout): stem 3C, ``layers`` cells."""

    def __init__(self, space, sampler, cell_type, channels, layers, shape: NetShape, stem_multiplier=3):
        super().__init__()
        self.space = space
        self.sampler = sampler
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(shape.in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        seen: set[bool] = set()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            cell = SearchCell(space, cell_type, c_pp, c_p, c_curr, reduction, reduction_prev,
                              position=i, first_of_kind=reduction not in seen)
            seen.add(reduction)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, shape.num_classes)

    def forward(self, x, arch: ArchWeights | None = None):
        if arch is None:
            arch = self.sampler()
        with self.bn_counts():
            s0 = s1 = self.stem(x)
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, arch)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))


# ----------------------------------------------------------------------------------------------
# Evaluation network (quark0/darts model.py NetworkCIFAR)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep).mul(mask)


class EvalCell(nn.Module):
    def __init__(self, genotype: DartsGenotype, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        kind = "reduce" if reduction else "normal"
        edges = genotype.cell(kind)
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.inputs = [src for _, src in edges]
        self.degree = genotype.degree(kind)  # inputs per node: 2 in DARTS genotypes, any with DST
        self.ops = nn.ModuleList(
            darts_op(op, c, 2 if reduction and src < 2 else 1, affine=True, search=False) for op, src in edges
        )
        self.multiplier = len(self.concat)
        self.drop_prob = 0.0

    def forward(self, s0, s1):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        start = 0
        for d in self.degree:
            node = None
            for j in range(start, start + d):
                h = self.ops[j](states[self.inputs[j]])
                if self.training and self.drop_prob > 0 and not isinstance(self.ops[j], Identity):
                    h = drop_path(h, self.drop_prob)
                node = h if node is None else node + h
            start += d
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """After the 2/3 reduction: ReLU, AvgPool 5/3, 1x1 conv 128, BN, ReLU, 2x2 conv 768, BN, ReLU, Linear.
    The 5/3 pooling gives the 2x2 map the 2x2 conv expects only for 8..10-pixel maps (CIFAR's 8x8);
    other sizes (28x28 or 8x8 data give 7x7 or 2x2 there) are pooled adaptively to 2x2 instead."""

    def __init__(self, c, num_classes, size: int):
        super().__init__()
        pool = (nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False) if 8 <= size <= 10
                else nn.AdaptiveAvgPool2d(2))
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), pool,
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    """Returns ``(logits, aux_logits or None)``; ``drop_path_prob`` is set by the training loop."""

    def __init__(self, genotype: DartsGenotype, channels, layers, shape: NetShape, auxiliary=False):
        super().__init__()
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self._aux_at = 2 * layers // 3
        c_curr = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(shape.in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        size = shape.resolution
        c_aux = None
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
                size = (size + 1) // 2
            cell = EvalCell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self._aux_at:
                c_aux = c_p
                aux_size = size
        self.auxiliary_head = AuxiliaryHead(c_aux, shape.num_classes, aux_size) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, shape.num_classes)

    def forward(self, x):
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            cell.drop_prob = self.drop_path_prob
            s0, s1 = s1, cell(s0, s1)
            if i == self._aux_at and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), aux


def builtin_darts_spaces() -> list[DartsFamilySpace]:
    rdarts = ("robustdarts", "darts")  # S1-S4: RobustDARTS's protocol by default, DARTS/SDARTS's by name
    return [
        DartsFamilySpace("darts", "DARTS CNN space S0: 8 ops on all 14 edges (none used only in the "
                         "supernet; derivation skips it)", _uniform(DARTS_OPS), _uniform(DARTS_OPS)),
        DartsFamilySpace("s1", "RobustDARTS S1: a pre-optimised pair of ops per edge", S1_NORMAL, S1_REDUCE,
                         rdarts),
        DartsFamilySpace("s2", "RobustDARTS S2: skip_connect, sep_conv_3x3",
                         _uniform(("skip_connect", "sep_conv_3x3")), _uniform(("skip_connect", "sep_conv_3x3")),
                         rdarts),
        DartsFamilySpace("s3", "RobustDARTS S3: none, skip_connect, sep_conv_3x3",
                         _uniform(("none", "skip_connect", "sep_conv_3x3")),
                         _uniform(("none", "skip_connect", "sep_conv_3x3")), rdarts),
        DartsFamilySpace("s4", "RobustDARTS S4: noise, sep_conv_3x3",
                         _uniform(("noise", "sep_conv_3x3")), _uniform(("noise", "sep_conv_3x3")), rdarts),
    ]
