"""EnTranNAS and EnTranNAS-DST components (Yang et al., "Towards Improving the Consistency, Efficiency,
and Flexibility of Differentiable Neural Architecture Search", CVPR 2021; SPEC-FACTS §4.8). No official
code exists; everything here follows the paper's text. Every choice the paper leaves open is a config
field and is listed here.

Samplers
--------
``entrannas-softmax`` (:class:`TemperedSoftmaxSampler`, Eq. 5): p = softmax(alpha / tau), alpha =
``init_scale`` * randn per cell kind (DARTS's init; the paper does not state one). tau = ``tau0`` *
``tau_decay`` ** epoch (5.0 and 0.923 on CIFAR-10), set by ``set_progress``. No Gumbel noise.
``probabilities()`` returns softmax(alpha / tau) at the *current* tau (the P the Engine cell uses and
the paper's derivation ranks), so the argmax selector and the Transit cells derive from the same
matrix.

``dst`` (:class:`DSTSampler`, Eqs. 5, 7-9, 11): p as above; per intermediate node j,
p_hat = p / max_{(i,k) into j} p; t_j = ``max_threshold`` * sigmoid(beta_j); q = ReLU(p_hat - t_j);
q_hat = q / sum_k q per edge, and 0 on an edge whose q are all zero (the division uses a denominator of
1 there, so no NaN and no host sync). Choices:

* **No node is ever left without an input.** The maximal element of a node has p_hat = p / p = 1.0
  exactly (IEEE division of a value by itself), and t_j <= ``max_threshold`` < 1. The paper relies on
  sigmoid(beta) < 1, which fails in float32 for beta >~ 17 (sigmoid rounds to 1.0); the factor
  ``max_threshold`` = 1 - 1e-4 keeps q >= 1e-4 for that element for every beta, including +-inf-like.
* beta: one per intermediate node per cell kind, initialised to ``beta_init`` = 0 (t = 0.5; the paper
  does not state it). With alpha near 0 and tau = 5 every p_hat starts near 1, so every connection
  starts alive and the regulariser sparsifies over time.
* ``regularization()`` = ``lam`` * sum over cell kinds of mean_j(-log t_j) (Eq. 11 per cell; -log t is
  computed as softplus(-beta) - log(max_threshold)). Eq. 11 is written for one cell; the paper
  searches a normal and a reduction cell and does not say how the two terms combine. ``lam_kinds``
  = "sum" (default) adds them, so each cell kind's thresholds feel the full ``lam`` as Eq. 11 states
  it for a cell; "mean" averages them (the regulariser of the whole network then has Eq. 11's scale). ``lam`` = 0.1: the CIFAR-10 value is not stated;
  0.1 is the middle of the three ImageNet values (0.2, 0.1, 0.05) and the one the paper's video uses.
* ``mask_none`` = True: the paper's standard space has 7 ops and no ``none``; where a space lists
  ``none`` (darts S0, s3, nb201) its logit is masked to -inf, so it never holds weight (an edge whose
  ops are all ``none`` would keep them; no space has one). False keeps ``none`` as an ordinary op.
* tau: the same schedule as EnTranNAS on CIFAR-10 (5.0, x0.923 per epoch); ImageNet DST used 1.0, x0.9
  (set ``tau0``/``tau_decay``).
* ``forward()`` returns :class:`SparseArchWeights`: the ArchWeights contract plus ``host_selected``,
  per cell kind and edge the op columns with q_hat > 0, copied to the host once per forward (one
  ``.cpu()`` for both kinds). ``probabilities()`` returns q_hat (so its non-zero set *is* the derived
  architecture); ``strengths()`` returns q (comparable across the edges of a node, for ranking).

Cell type ``engine-transit`` (:class:`EngineTransitCell`)
--------------------------------------------------------
* **Engine cells** are those with ``CellSpec.first_of_kind`` (first normal and first reduction cell;
  on NB201, whose cells are all "normal", only the first cell). ``engine_cells="all"`` makes every
  cell an engine (the paper's "all Engine" ablation of Table 1). An engine cell is the mixed cell:
  node j = sum_e sum_k w[e, k] * o_k(x_src) (times ``edge_weights[e]`` and skipping edges that
  ``host_active`` switches off, for topology samplers). With ``engine_skip_zero`` and a sampler that
  reports ``host_selected`` (DST), ops whose weight is exactly zero are not run: numerically identical
  (their weight and its gradient are both zero) and the paper's point that the valid propagation of a
  DST engine cell equals the derived cell.
* **Transit cells** run only the currently derived sub-graph, re-derived every forward: with a sampler
  that reports ``host_selected`` (DST) that set (Eq. 10, every (i, k) with q_hat > 0, any in-degree);
  otherwise ``spec.space.derive`` applied to the detached weights of this forward (the DARTS top-2 rule
  on S0-S4, argmax per edge on NB201). The derivation is done once per forward for all cell kinds (one
  device->host copy of the stacked weights) and cached on the forward's ArchWeights object (weakly
  referenced), so later transit cells reuse it. Eq. 6 sums the selected ops *unweighted*, so by
  default (``transit_weighted`` = False) transit cells carry no arch gradient; they "share alpha only
  through the derived genotype". ``transit_weighted`` = True multiplies each selected op by its
  weight (an alternative the paper does not use). NB201 ``none`` ops in a derived genotype run their
  Zero module (cheap), so a node whose derived inputs are all ``none`` is zeros, as in the benchmark.
* **On the fast path** (``runtime.fast``, issue 17) engine cells run through the fused mixed cell, and
  transit cells run their derived ops (chosen on the host, one read per forward). With
  ``transit_on_device`` = True a transit cell instead derives on the device (:class:`DeviceDerivation`:
  the space's rule as tensor operations) and runs every op through the fused cell, masked by the
  derived 0/1 one-hot (detached: unweighted, Eq. 6), so the step reads nothing on the host and can be
  captured in a CUDA graph; with "auto" (the default) a transit cell derives on the device only while a
  CUDA graph is captured (uncaptured, its host path is faster). The same values and gradients (float64
  tests); what differs: the unselected
  ops are computed, their BatchNorm running statistics are updated by every forward, ``noise`` draws
  for every op, and a node left with no derived input would be zeros instead of an error.
* **Feature sharing** (``feature_sharing`` = True, Sec. 2.3): op k's module depends on the source node
  only (w_k^(i)); its output o_k(x_i) is computed once per forward and reused by every later node.
  Modules are created per (source, op name), the union over the source's outgoing edges (S1 has
  different op pairs per edge). Op modules per cell: (n-1) * K instead of |E| * K, where n-1 = the
  number of nodes that feed intermediate nodes (2 inputs + first 3 intermediate nodes = 5 in the DARTS
  cell; 3 in NB201). Sources 0 and 1 of a reduction cell use stride 2 (``spec.strides``).
* **Bottleneck** (``bottleneck`` = 4; 1 disables): every source node passes once through ReLU-1x1
  conv-BN (C -> C/4, the DARTS preprocessing block) before entering its candidate ops; ops run at
  C/4; each intermediate node is the sum of its op outputs through 1x1 conv-BN (C/4 -> C, no ReLU, so
  the node stays a linear sum as in DARTS). BN is affine-free as everywhere in the search network.
  The reduced width is max(``bottleneck_min_channels``, C // ratio), rounded up to an even number
  (FactorizedReduce, the stride-2 skip_connect, needs even channels) -- C=16/32 give 4/8 exactly.

* **On S4 (noise vs sep_conv_3x3) the collapse to noise is absorbing**, in the paper's method as here:
  transit cells run their derived ops unweighted (Eq. 6) and the noise op ignores its input (RobustDARTS
  src/operations.py draws it from the detached input's shape), so once every transit cell after the
  engine cells derives ``noise`` the loss no longer depends on the engine cells and alpha receives no
  gradient; the search keeps the collapsed genotype to the end. Measured in the collapse study
  (BENCHMARKS.md: EnTranNAS seed 0 on S4) and pinned by a test; not a harness defect.

Selector ``dst-keep-nonzero`` (:class:`KeepNonzeroSelector`)
-----------------------------------------------------------
The derived architecture is every (i, k) with q_hat > 0 (``none`` excluded): any number of inputs per
node. It is kept as ``selector.last_sparse`` ({kind: [(src, dst, op, q_hat), ...]}) and logged. On the
DARTS spaces the returned genotype is exactly that set, written with one list of (op, input) pairs per
node (``DartsGenotype.nodes``; it prints in the flat DARTS form when every node has two inputs), pairs
ordered by q_hat; the retrain network sums every listed op into its node. Two ops on one edge are two
pairs with the same input. A node whose only surviving connection is ``none`` (possible only with
``mask_none`` = False) keeps its strongest non-``none`` op, so the network stays connected. On NB201
(one op per edge, fixed by the benchmark) each edge gets its strongest non-zero op, or ``none`` when the
edge has no non-zero op (exactly the sparse set when at most one op per edge survives). With a non-DST
sampler every weight is non-zero, so the rule keeps every op of every edge (use ``argmax`` there).
"""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import ArchWeights, CellSpec, SelectionContext
from harness.errors import HarnessError
from harness.genotypes import DartsGenotype, NB201Genotype
from harness.nn import groups
from harness.nn.fused import FusedBatchNorm, FusedMixed, relu_conv_bn_jointly
from harness.nn.ops import ReLUConvBN
from harness.nn.samplers import AlphaSampler, deferred

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Samplers


@dataclass
class SparseArchWeights(ArchWeights):
    """ArchWeights plus ``host_selected[kind][e]``: the op columns of edge e with non-zero weight."""

    host_selected: dict[str, list[list[int]]] | None = None


@dataclass(frozen=True)
class TemperedSoftmaxConfig:
    tau0: float = 5.0
    tau_decay: float = 0.923  # tau = tau0 * tau_decay ** epoch
    init_scale: float = 1e-3


class TemperedSoftmaxSampler(AlphaSampler):
    """p = softmax(alpha / tau) per edge (EnTranNAS Eq. 5), tau annealed geometrically per epoch."""

    graph_capturable = True  # tensor ops only; tau changes in set_progress

    def __init__(self, config: TemperedSoftmaxConfig, space):
        if config.tau0 <= 0 or config.tau_decay <= 0:
            raise HarnessError(f"tau0 and tau_decay must be positive, not {config.tau0}, {config.tau_decay}")
        super().__init__(config, space)
        self.tau = config.tau0

    def set_progress(self, epoch, total_epochs):
        self.tau = self.config.tau0 * self.config.tau_decay ** epoch

    def transform(self, alpha):
        return F.softmax(alpha / self.tau, dim=-1)


@dataclass(frozen=True)
class DSTConfig:
    tau0: float = 5.0
    tau_decay: float = 0.923
    init_scale: float = 1e-3
    beta_init: float = 0.0  # t_j = max_threshold * sigmoid(beta_j); 0 -> t = 0.5
    lam: float = 0.1  # lambda of Eq. 11 (CIFAR-10 value not stated in the paper)
    max_threshold: float = 1.0 - 1e-4  # keeps t_j < 1 in floating point: a node's max element survives
    mask_none: bool = True  # paper's space has no `none`: mask its logit to -inf
    lam_kinds: str = "sum"  # Eq. 11 per cell kind, "sum"med over normal and reduce, or their "mean"

    def __post_init__(self):
        if self.lam_kinds not in ("sum", "mean"):
            raise ValueError(f"lam_kinds must be 'sum' or 'mean', not {self.lam_kinds!r}")
        if not 0.0 < self.max_threshold < 1.0:
            raise ValueError(f"max_threshold must lie in (0, 1), not {self.max_threshold}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, not {self.lam}")


class DSTSampler(TemperedSoftmaxSampler):
    """Differentiable sparsification (EnTranNAS-DST, Eqs. 7-9): weights q_hat with exact zeros."""

    graph_capturable = True  # the host copy of the alive ops is made only if a cell reads it

    def __init__(self, config: DSTConfig, space):
        super().__init__(TemperedSoftmaxConfig(config.tau0, config.tau_decay, config.init_scale), space)
        self.config = config
        edges = tuple(space.edges)
        dsts = sorted({dst for _, dst in edges})
        node_of_edge = torch.tensor([dsts.index(dst) for _, dst in edges])
        self.register_buffer("node_of_edge", node_of_edge, persistent=False)
        self.register_buffer("node_mask", node_of_edge[None, :] == torch.arange(len(dsts))[:, None],
                             persistent=False)  # (nodes, edges)
        for kind in space.cell_kinds:
            ops = space.edge_ops(kind)
            none = torch.zeros(len(edges), space.n_ops, dtype=torch.bool)
            if config.mask_none:
                for e, names in enumerate(ops):
                    if any(n != "none" for n in names):
                        none[e] = torch.tensor([n == "none" for n in names])
            self.register_buffer(f"none_{kind}", none, persistent=False)
        self.betas = nn.ParameterDict({
            kind: nn.Parameter(torch.full((len(dsts),), float(config.beta_init))) for kind in space.cell_kinds
        })

    def thresholds(self, kind: str) -> torch.Tensor:
        return self.config.max_threshold * torch.sigmoid(self.betas[kind])

    def coefficients(self, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q_hat, q, p_hat) for one cell kind, all (edges, ops), differentiable in alpha and beta."""
        logits = (self.alphas[kind] / self.tau).masked_fill(getattr(self, f"none_{kind}"), float("-inf"))
        p = F.softmax(logits, dim=-1)
        edge_max = p.amax(dim=-1)  # (edges,)
        node_max = edge_max[None, :].masked_fill(~self.node_mask, 0.0).amax(dim=1)  # p >= 0
        p_hat = p / node_max[self.node_of_edge, None]
        q = F.relu(p_hat - self.thresholds(kind)[self.node_of_edge, None])
        s = q.sum(dim=-1, keepdim=True)
        q_hat = q / (s + (s <= 0).to(s.dtype))  # all-zero edge: 0 / 1, no NaN, no sync
        return q_hat, q, p_hat

    def forward(self) -> SparseArchWeights:
        weights = {kind: self.coefficients(kind)[0] for kind in self.alphas}

        def load():  # one device->host copy per forward, made only if a cell reads which ops are alive
            host = torch.stack([w.detach() > 0 for w in weights.values()]).cpu().tolist()
            return ({kind: [[k for k, alive in enumerate(row) if alive] for row in rows]
                     for kind, rows in zip(weights, host)},)

        (selected,) = deferred(load, 1)
        return SparseArchWeights(weights, host_selected=selected)

    @torch.no_grad()
    def probabilities(self):
        return {kind: self.coefficients(kind)[0] for kind in self.alphas}

    @torch.no_grad()
    def strengths(self):
        """q before the per-edge op normalisation: comparable across the edges of one node."""
        return {kind: self.coefficients(kind)[1] for kind in self.alphas}

    @torch.no_grad()
    def p_hat(self):
        """p normalised by the node's maximum (Eq. 7), before the threshold."""
        return {kind: self.coefficients(kind)[2] for kind in self.alphas}

    def arch_parameters(self):
        return list(self.alphas.values()) + list(self.betas.values())

    def regularization(self):
        c = self.config
        if c.lam == 0:
            return None
        neg_log_t = [F.softplus(-b).mean() - math.log(c.max_threshold) for b in self.betas.values()]
        total = sum(neg_log_t[1:], neg_log_t[0])
        return c.lam * (total if c.lam_kinds == "sum" else total / len(neg_log_t))


# ---------------------------------------------------------------------------------------------
# Cell type


@dataclass(frozen=True)
class EngineTransitConfig:
    feature_sharing: bool = True  # op weights depend on the source node only (w_k^(i))
    bottleneck: int = 4  # channel reduction ratio before the candidate ops; 1 disables
    bottleneck_min_channels: int = 2
    transit_weighted: bool = False  # Eq. 6: transit cells sum the derived ops unweighted
    engine_skip_zero: bool = True  # engine cells skip ops whose weight is exactly zero (DST)
    engine_cells: str = "first"  # "first": first normal + first reduction cell; "all": every cell
    # on the fast path: True, transit cells derive on the device and run every op masked by the derived
    # one-hot (no host read: the step can be captured in a CUDA graph); False, the derived ops only, chosen
    # on the host; "auto", on the device while a CUDA graph is captured (harness.nn.groups.capturing) and on
    # the host otherwise. Measured on an H200 (entrannas, darts, batch 64; BENCHMARKS.md, "GPU figures,
    # 2026-12-04"): host 160 ms a step uncaptured, device 242 ms uncaptured and 44 ms captured
    transit_on_device: str | bool = "auto"

    def __post_init__(self):
        value = {"true": True, "false": False, "auto": "auto"}.get(str(self.transit_on_device).lower())
        if value is None:
            raise ValueError(f"transit_on_device must be true, false or auto, not {self.transit_on_device!r}")
        object.__setattr__(self, "transit_on_device", value)
        if self.bottleneck < 1:
            raise ValueError(f"bottleneck must be >= 1 (1 disables), not {self.bottleneck}")
        if self.engine_cells not in ("first", "all"):
            raise ValueError(f"engine_cells must be 'first' or 'all', not {self.engine_cells!r}")


def bottleneck_channels(channels: int, ratio: int, minimum: int = 2) -> int:
    if ratio == 1:
        return channels
    c = max(minimum, channels // ratio)
    return c + (c % 2)


class _DerivedCache:
    """The derivation of one forward, keyed by (a weak reference to) that forward's ArchWeights."""

    def __init__(self):
        self._ref = None
        self._value = None

    def get(self, arch: ArchWeights, spec: CellSpec) -> dict[str, list[list[int]]]:
        if self._ref is not None and self._ref() is arch:
            return self._value
        value = derive_selection(arch, spec.space)
        self._ref, self._value = weakref.ref(arch), value
        return value


def genotype_selection(genotype, space) -> dict[str, list[list[int]]]:
    """A genotype of ``space`` as per-kind, per-edge lists of op columns to run."""
    edges = list(space.edges)
    out = {}
    for kind in space.cell_kinds:
        ops = space.edge_ops(kind)
        sel: list[list[int]] = [[] for _ in edges]
        if isinstance(genotype, DartsGenotype):
            for n, pairs in enumerate(genotype.nodes(kind)):
                for op, src in pairs:
                    e = edges.index((src, space.n_inputs + n))
                    k = ops[e].index(op)
                    if k not in sel[e]:
                        sel[e].append(k)
        elif isinstance(genotype, NB201Genotype):
            for e, op in enumerate(genotype.ops):
                sel[e].append(ops[e].index(op))
        else:
            raise HarnessError(f"engine-transit cells cannot run a {type(genotype).__name__} genotype "
                               f"(space {space.name!r}); they know DARTS and NB201 genotypes")
        out[kind] = sel
    return out


class DeviceDerivation:
    """The transit cells' derivation as tensor operations on the device (``transit_on_device``): the (edges,
    ops) 0/1 mask of the derived ops, equal to what :func:`derive_selection` reads on the host. Rules: DST
    weights, every op with q_hat > 0; the DARTS spaces, per node the 2 incoming edges with the largest
    non-``none`` weight (ties to the smaller source, as ``DartsFamilySpace.derive`` sorts them) and on each
    its first largest non-``none`` op; NB201, the first largest op per edge (``NB201Space.derive``). Weights
    are compared in float32, as the host rules compare them."""

    def __init__(self, spec: CellSpec):
        from harness.spaces.darts import DartsFamilySpace
        from harness.spaces.nb201 import NB201Space

        if isinstance(spec.space, NB201Space):
            self.rule = "argmax"
        elif isinstance(spec.space, DartsFamilySpace):
            self.rule = "top2"
        else:
            raise HarnessError(f"transit_on_device knows the DARTS and NB201 derivation rules, not space "
                               f"{getattr(spec.space, 'name', spec.space)!r}; use transit_on_device=false")
        self.is_none = torch.tensor([[name == "none" for name in ops] for ops in spec.ops])
        n_edges = len(spec.edges)
        incoming = [[e for e, (_, dst) in enumerate(spec.edges) if dst == spec.n_inputs + n]
                    for n in range(spec.n_nodes)]  # in edge order: ascending source
        width = max(map(len, incoming))
        self.node_edges = torch.tensor([inc + [n_edges] * (width - len(inc)) for inc in incoming])
        self._on: dict = {}

    def mask(self, w: torch.Tensor, sparse: bool) -> torch.Tensor:
        w = w.detach()
        if sparse:  # DST: the alive connections
            return (w > 0).to(w.dtype)
        p = w.float()
        key = p.device
        if key not in self._on:
            self._on[key] = (self.is_none.to(p.device), self.node_edges.to(p.device))
        is_none, node_edges = self._on[key]
        # one-hots by scatter (F.one_hot may check its indices on the host)
        if self.rule == "argmax":
            return torch.zeros_like(w).scatter_(-1, p.argmax(dim=-1, keepdim=True), 1.0)
        masked = p.masked_fill(is_none, -1.0)  # weights are >= 0: a non-none op always wins
        best = masked.argmax(dim=-1, keepdim=True)
        strength = torch.cat([masked.gather(-1, best).squeeze(-1), p.new_full((1,), float("-inf"))])
        order = torch.sort(strength[node_edges], dim=1, descending=True, stable=True).indices[:, :2]
        keep = torch.zeros_like(strength).scatter_(0, node_edges.gather(1, order).flatten(), 1.0)[:-1]
        return torch.zeros_like(w).scatter_(-1, best, 1.0) * keep[:, None].to(w.dtype)


def derive_selection(arch: ArchWeights, space) -> dict[str, list[list[int]]]:
    """The space's derivation rule on this forward's (detached) weights; one device->host copy."""
    if space is None:
        raise HarnessError("engine-transit cells need CellSpec.space to derive the transit genotype")
    kinds = list(arch.weights)
    host = torch.stack([arch.weights[k].detach().float() for k in kinds]).cpu()
    return genotype_selection(space.derive(dict(zip(kinds, host))), space)


class EngineTransitBody(nn.Module):
    """One EnTranNAS search cell: an Engine (mixed, weighted) or a Transit (derived sub-graph) cell,
    with feature sharing and a channel bottleneck. ``forward(states, arch)`` returns inputs + nodes."""

    def __init__(self, spec: CellSpec, config: EngineTransitConfig, cache: _DerivedCache):
        super().__init__()
        self.spec = spec
        self.kind = spec.kind
        self.config = config
        self._cache = cache
        self.is_engine = config.engine_cells == "all" or spec.first_of_kind
        c, cb = spec.channels, bottleneck_channels(spec.channels, config.bottleneck, config.bottleneck_min_channels)
        self.bottleneck_width = cb
        self.incoming: list[list[int]] = [[] for _ in range(spec.n_inputs + spec.n_nodes)]
        for e, (_, dst) in enumerate(spec.edges):
            self.incoming[dst].append(e)
        self.sources = sorted({src for src, _ in spec.edges})
        src_stride: dict[int, int] = {}
        self.keys: list[list[str]] = []
        self.ops = nn.ModuleDict()
        for e, (src, _) in enumerate(spec.edges):
            stride = spec.strides[e]
            if config.feature_sharing and src_stride.setdefault(src, stride) != stride:
                raise HarnessError(f"feature sharing needs one stride per source node; node {src} of the "
                                   f"{spec.kind} cell has strides {src_stride[src]} and {stride}")
            row = []
            for k, name in enumerate(spec.ops[e]):
                key = f"s{src}_{name}" if config.feature_sharing else f"e{e}_{k}"
                if key not in self.ops:
                    self.ops[key] = spec.op_factory(name, cb, stride)
                row.append(key)
            self.keys.append(row)
        if config.bottleneck > 1:
            self.reduce = nn.ModuleDict({str(s): ReLUConvBN(c, cb, 1, 1, 0, affine=False) for s in self.sources})
            self.restore = nn.ModuleList(
                nn.Sequential(nn.Conv2d(cb, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))
                for _ in range(spec.n_nodes))
        else:
            self.reduce = None
            self.restore = None

    fast = False  # set by harness.nn.cells.set_fast (supports_fast)
    supports_fast = True
    _fused = None
    _derivation = None  # DeviceDerivation (transit_on_device)
    _TRANSIT_CACHE = 64  # fused transit forwards kept, one per derived selection (least recently used out)

    def _fused_forward(self, selection: list[list[int]] | None) -> FusedMixed:
        """This cell as :class:`harness.nn.fused.FusedMixed` units (issue 17): one per op module that
        ``selection`` runs (per (source, op) with feature sharing), linked to every selected (edge, op
        column) it feeds, in the eager forward's first-use order (the order ``noise`` draws in); the
        bottleneck is the units' ``prepare``, the restoring conv-BN each node's ``finish``. ``selection``
        None: every op (the engine cell)."""
        spec = self.spec
        units, seen = [], {}
        for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
            n_links = 0
            for e in self.incoming[dst]:
                for k in (range(len(spec.ops[e])) if selection is None else selection[e]):
                    key = self.keys[e][k]
                    if key not in seen:
                        seen[key] = len(units)
                        units.append((self.ops[key], spec.edges[e][0], []))
                    units[seen[key]][2].append((dst, e, k))
                    n_links += 1
            if not n_links:
                raise RuntimeError(f"node {dst} of the {self.kind} cell at position {spec.position} has no "
                                   f"selected input connection")
        prepare = None if self.reduce is None else (lambda src, x: self.reduce[str(src)](x))
        finish = None if self.restore is None else (lambda dst, x, *_: self.restore[dst - spec.n_inputs](x))
        return FusedMixed(self, units=units, prepare=prepare, finish=finish)

    _reduce_bn = None

    def _reduce_inputs(self, states) -> dict[tuple[int, ...], torch.Tensor]:
        """The cell inputs' bottlenecks (ReLU, 1x1 conv, BN each) as one grouped pass, side by side in
        channels: {input sources: what ``self.reduce[str(src)](states[src])`` gives for each, concatenated},
        in 4 calls instead of 3 per input ({} where the inputs cannot be run together)."""
        srcs = [s for s in self.sources if s < self.spec.n_inputs]
        if self.reduce is None or len(srcs) < 2 or len({tuple(states[s].shape) for s in srcs}) > 1:
            return {}
        mods = [self.reduce[str(s)] for s in srcs]  # ReLUConvBN: ReLU, Conv2d, BatchNorm2d
        if self._reduce_bn is None:
            self._reduce_bn = FusedBatchNorm([m[2] for m in mods])
        joint = getattr(states, "joint", {}).get(tuple(srcs))  # the preprocessing's output, side by side
        xs = [joint] if joint is not None else [states[s] for s in srcs]
        return {tuple(srcs): relu_conv_bn_jointly(mods, xs, self._reduce_bn)}

    def _fast_forward(self, states, arch: ArchWeights):
        joint = self._reduce_inputs(states)  # the fused forwards take the inputs' bottlenecks from here
        w = arch.weights[self.kind]
        if self.is_engine:
            # every op of every edge, weighted: the ops a DST sampler zeroed (which the eager engine skips
            # with engine_skip_zero) add exact zeros and pass no gradient (q_hat's ReLU is flat there)
            if self._fused is None:
                self._fused = self._fused_forward(None)
            if arch.active is not None:
                w = w * arch.active[self.kind].to(w.dtype).unsqueeze(-1)
            ew = arch.edge_weights[self.kind] if arch.edge_weights is not None else None
            return self._fused.run(states, w, ew, joint=joint)
        on_device = self.config.transit_on_device
        if on_device == "auto":  # once derived on the device (a captured run's warm-up) it stays there, as the
            on_device = self._derivation is not None or groups.capturing(w)  # single-path cell's fused form
        if on_device:  # every op, masked by the derivation made on the device
            if self._derivation is None:
                self._derivation = DeviceDerivation(self.spec)
            mask = self._derivation.mask(w, sparse=getattr(arch, "host_selected", None) is not None)
            if self._fused is None:
                self._fused = self._fused_forward(None)
            return self._fused.run(states, w * mask if self.config.transit_weighted else mask, joint=joint)
        # a transit cell: the derived ops only (chosen on the host, as eagerly). A sparse selection (the
        # derived cell's 2 inputs per node, or fewer ops) runs eagerly: fusing a handful of ops launches more
        # kernels than it saves (measured, BENCHMARKS.md); a dense one (a DST search's early steps) runs
        # as one fused forward per distinct selection; unweighted (Eq. 6) unless transit_weighted
        sel = self.selection(arch)
        if sum(map(len, sel)) <= 2 * self.spec.n_nodes:
            reduced = {src: part for srcs, h in joint.items() for src, part in zip(srcs, h.chunk(len(srcs), 1))}
            return self._eager_forward(states, arch, sel, reduced)
        key = tuple(map(tuple, sel))
        cache = self.__dict__.setdefault("_transit", {})
        fused = cache.pop(key, None) or self._fused_forward(sel)
        cache[key] = fused
        if len(cache) > self._TRANSIT_CACHE:
            cache.pop(next(iter(cache)))
        if not self.config.transit_weighted:
            w = torch.ones_like(w.detach())
        return fused.run(states, w, joint=joint)

    def selection(self, arch: ArchWeights) -> list[list[int]] | None:
        """Per edge the op columns to run; None means every column (a full engine cell)."""
        selected = getattr(arch, "host_selected", None)
        if self.is_engine:
            if self.config.engine_skip_zero and selected is not None:
                return selected[self.kind]
            return None
        if selected is not None:
            return selected[self.kind]
        return self._cache.get(arch, self.spec)[self.kind]

    def forward(self, states, arch: ArchWeights):
        if self.fast:
            return self._fast_forward(states, arch)
        return self._eager_forward(states, arch, self.selection(arch))

    def _eager_forward(self, states, arch: ArchWeights, sel: list[list[int]] | None,
                       reduced: dict[int, torch.Tensor] | None = None):
        spec = self.spec
        states = list(states)
        weighted = self.is_engine or self.config.transit_weighted
        w = arch.weights[self.kind]
        edge_w = arch.edge_weights[self.kind] if arch.edge_weights is not None else None
        active = arch.host_active[self.kind] if arch.host_active is not None and self.is_engine else None
        reduced = {} if reduced is None else reduced
        feats: dict[str, torch.Tensor] = {}

        def feature(e: int, k: int) -> torch.Tensor:
            key = self.keys[e][k]
            out = feats.get(key)
            if out is None:
                src = spec.edges[e][0]
                x = reduced.get(src)
                if x is None:
                    x = reduced[src] = self.reduce[str(src)](states[src]) if self.reduce is not None else states[src]
                out = feats[key] = self.ops[key](x)
            return out

        for j, dst in enumerate(range(spec.n_inputs, spec.n_inputs + spec.n_nodes)):
            node = None
            for e in self.incoming[dst]:
                if active is not None and not active[e]:
                    continue
                cols = range(len(spec.ops[e])) if sel is None else sel[e]
                edge = None
                for k in cols:
                    f = feature(e, k)
                    if weighted:
                        f = w[e, k] * f
                    edge = f if edge is None else edge + f
                if edge is None:
                    continue
                if weighted and edge_w is not None:
                    edge = edge * edge_w[e]
                node = edge if node is None else node + edge
            if node is None:
                raise RuntimeError(f"node {dst} of the {self.kind} cell at position {spec.position} has no "
                                   f"selected input connection")
            states.append(self.restore[j](node) if self.restore is not None else node)
        return states


class EngineTransitCell:
    """Builds Engine cells (CellSpec.first_of_kind) and Transit cells; cells of one network share the
    per-forward derivation cache."""

    graph_capturable = "fast"  # with transit_on_device (graph_blocker says so otherwise)

    @property
    def graph_blocker(self) -> str | None:
        if self.config.transit_on_device is False:
            return ("transit cells derive their ops on the host (cell.transit_on_device=true or auto derives on "
                    "the device)")
        return None

    def __init__(self, config: EngineTransitConfig):
        self.config = config
        self._cache = _DerivedCache()

    def build(self, spec: CellSpec) -> nn.Module:
        return EngineTransitBody(spec, self.config, self._cache)


# ---------------------------------------------------------------------------------------------
# Selector


@dataclass(frozen=True)
class KeepNonzeroConfig:
    exclude_none: bool = True  # `none` connections are not part of the derived architecture


class KeepNonzeroSelector:
    """EnTranNAS-DST derivation (Eq. 10): every (i, k) with non-zero coefficient. See the module
    docstring for how the variable in-degree set is mapped onto the fixed-format genotype."""

    requires = {"space": {"family": ("darts", "nb201")}}  # the genotype families it writes
    cheap = True  # reads only the sampler's coefficients: the host also records it every epoch

    def __init__(self, config: KeepNonzeroConfig):
        self.config = config
        self.last_sparse: dict[str, list[tuple[int, int, str, float]]] | None = None

    def select(self, net, ctx: SelectionContext):
        space = ctx.space
        sampler = net.sampler
        coef = {k: v.detach().float().cpu() for k, v in sampler.probabilities().items()}
        strengths = sampler.strengths() if hasattr(sampler, "strengths") else coef
        strengths = {k: v.detach().float().cpu() for k, v in strengths.items()}
        p_hat = sampler.p_hat() if hasattr(sampler, "p_hat") else strengths
        p_hat = {k: v.detach().float().cpu() for k, v in p_hat.items()}
        edges = list(space.edges)
        sparse, cells = {}, {}
        for kind in space.cell_kinds:
            ops = space.edge_ops(kind)
            c, q, ph = coef[kind], strengths[kind], p_hat[kind]
            keep = [(src, dst, ops[e][k], float(c[e, k])) for e, (src, dst) in enumerate(edges)
                    for k in range(len(ops[e]))
                    if float(c[e, k]) > 0 and not (self.config.exclude_none and ops[e][k] == "none")]
            sparse[kind] = keep
            alive = {(src, dst, op) for src, dst, op, _ in keep}
            if space.family == "darts":
                nodes = []
                for dst in range(space.n_inputs, space.n_inputs + space.n_nodes):
                    conns = sorted(((w, -src, src, op) for src, d, op, w in keep if d == dst), reverse=True)
                    if not conns:  # only `none` survived into this node: keep its strongest real op
                        best = max(((float(q[e, k]), float(ph[e, k]), -src, src, op)
                                    for e, (src, d) in enumerate(edges) if d == dst
                                    for k, op in enumerate(ops[e]) if op != "none"), default=None)
                        if best is None:
                            raise HarnessError(f"node {dst} of the {kind} cell has no op other than 'none'")
                        conns = [(0.0, -best[3], best[3], best[4])]
                    nodes.append([(op, src) for _, _, src, op in conns])
                cells[kind] = nodes
            elif space.family == "nb201":
                names = []
                for e, (src, dst) in enumerate(edges):
                    live = [(float(q[e, k]), op) for k, op in enumerate(ops[e]) if (src, dst, op) in alive]
                    names.append(max(live)[1] if live else "none")
                cells[kind] = tuple(names)
            else:
                raise HarnessError(f"dst-keep-nonzero knows the darts and nb201 genotype families, not "
                                   f"{space.family!r} (space {space.name!r})")
        self.last_sparse = sparse
        log.info("dst-keep-nonzero sparse architecture: %s", format_sparse(sparse))
        if space.family == "nb201":
            return NB201Genotype(cells["normal"])
        concat = tuple(range(space.n_inputs, space.n_inputs + space.n_nodes))
        return DartsGenotype.from_nodes(cells["normal"], concat, cells["reduce"], concat)


def format_sparse(sparse: dict[str, list[tuple[int, int, str, float]]]) -> str:
    return "; ".join(f"{kind}: " + ", ".join(f"{dst}<-{src} {op} {w:.3f}" for src, dst, op, w in conns)
                     for kind, conns in sparse.items())
