"""The shared body of a search cell: nodes summing their incoming edges. Cell types subclass it and
decide what an edge computes from the sampler's weights (``edge_forward``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import torch
from torch import nn

from harness.api import ArchWeights, CellSpec, on_off_auto
from harness.nn import dwconv, groups, slots
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

    def forward(self, states, arch: ArchWeights, edge=None):
        """``edge(e, x, arch)`` computes edge e (default: ``edge_forward``)."""
        edge = edge or self.edge_forward
        states = list(states)
        for dst in range(self.spec.n_inputs, self.spec.n_inputs + self.spec.n_nodes):
            outs = [edge(e, states[self.spec.edges[e][0]], arch) for e in self.incoming[dst]]
            outs = [o for o in outs if o is not None]  # an edge a sampler switched off returns None
            if not outs:
                raise RuntimeError(f"node {dst} of a {self.kind} cell has no active input edge")
            states.append(sum(outs[1:], outs[0]))
        return states


def set_fast(net: nn.Module, on: bool, recompute: bool = False) -> list[str]:
    """Switch every cell body of ``net`` that has a fast path (``supports_fast``) to it, or back; with
    ``recompute`` its fused sums recompute their inputs in backward (``runtime.fast_recompute``).
    Returns the names of the bodies switched, so callers can report what runs fast."""
    switched = []
    for name, module in net.named_modules():
        if getattr(module, "supports_fast", False):
            module.fast = bool(on)
            module.fast_recompute = bool(on and recompute)
            switched.append(name)
    # the supernet's BatchNorm counters as one add per forward (harness.nn.groups.batched_bn_counts)
    batched = bool(on) and isinstance(net, Supernet) and groups.why_not(net) is None
    if batched:
        groups.enable(net)
    if isinstance(net, Supernet):
        net.batched_bn_counts = batched
    return switched


def launch_bound(x: torch.Tensor) -> bool:
    """Whether ``x``'s device pays per kernel launch more than for arithmetic (CUDA): where an uncaptured
    forward should run only the ops it needs rather than every op in fewer kernels."""
    return x.is_cuda


def _on_fused_path(body) -> bool:
    """A body with a ``FusedMixed`` fast path is on it: switched to fast, and its own ``edge_forward`` is the
    one the fused forward computes. Only then may a forward carry K sample groups (``accepts_samples``)."""
    return body.fast and body.supports_fast


class Supernet(nn.Module):
    """Base of the spaces' search networks: ``self.sampler`` owns the architecture parameters, every
    other parameter is a weight. A space's ``forward`` runs inside :meth:`bn_counts` (set by
    :func:`set_fast`: the BatchNorm counters of one forward as one multi-tensor add)."""

    sampler: nn.Module
    batched_bn_counts = False

    def bn_counts(self):
        return groups.batched_bn_counts() if self.batched_bn_counts else contextlib.nullcontext()

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

    accepts_samples = property(_on_fused_path)  # K sample groups (harness.nn.groups) on the fast path

    def forward(self, states, arch: ArchWeights):
        if _on_fused_path(self):
            if self._fused is None:
                self._fused = self.make_fused()
            return self._fused(states, arch)
        return super().forward(states, arch)

    def make_fused(self) -> FusedMixed:
        """The fast path, built at the first fast forward (again after ``_fused`` is reset): the mixed cell's
        node sums. A subclass that overrides ``edge_forward`` says ``supports_fast = True`` and gives
        ``FusedMixed`` here what its edges add (``units``, ``prepare``, ``finish``)."""
        return FusedMixed(self)

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
    # on the fast path, what a forward of one sampled architecture runs. "auto": the fused all-op form
    # (every op, masked by the hard one-hot: no host read, capturable) on a CPU and while a CUDA graph is
    # captured (harness.nn.groups.capturing), the sampled op per edge (the eager form, one host read) on CUDA
    # otherwise: uncaptured, computing every op costs more than the launches it saves (H200, GDAS on darts,
    # batch 64: 259 ms fused vs 167 ms eager, 118 ms captured; BENCHMARKS.md, "GPU figures, 2026-12-04").
    # "always": the fused form everywhere; "never": the sampled op per edge everywhere except inside a CUDA
    # graph (which cannot read the host). An optimizer that runs sample groups (ROME) keeps it fused
    fused: str = "auto"
    # training forwards (one sampled architecture, or K sample groups), from the first captured step on, in
    # harness.nn.slots's form: per edge one conv slot holding the chosen op's weights and depthwise geometry
    # (Triton kernels), pools once per source, BatchNorm statistics to the chosen op only; no host read, and
    # about a third of the bytes of the captured all-op pass, which computes every op. "auto" (the default):
    # wherever it can run (a step captured in a CUDA graph, Triton present, a cell whose every op it knows: not
    # NAS-Bench-201's dense convs), elsewhere the all-op pass without a word; true: the same, logging and
    # recording why not where it cannot; false: never. On by default since the H200 run of 2026-12-05
    # (BENCHMARKS.md, "GPU figures, 2026-12-05, the third H200 run"; benchmarks/results/2026-12-05-gpu/): GDAS on
    # darts (batch 64, C=16, 8 cells) captured in 67.1 ms a step through the slots against 106.2 ms through
    # the all-op pass, peak 3.52 against 6.88 GiB, fp32 drift within both rounding baselines, no host sync;
    # ROME v2's captured slots 332.9 ms against 495.4 ms for its chosen-op pass, the fastest before
    # (optimizer.group_ops=auto takes them on CUDA)
    slots: str | bool = "auto"

    def __post_init__(self):
        if self.fused not in ("auto", "always", "never"):
            raise ValueError(f"fused must be 'auto', 'always' or 'never', not {self.fused!r}")
        object.__setattr__(self, "slots", on_off_auto(self.slots, "slots"))


class SinglePathBody(CellBody):
    """Runs only the sampled op of each edge: out = w[k] * op_k(x) + sum_{j != k} w[j], where the
    hard weights make the second term zero-valued but let every op's probability get a gradient
    (xautodl forward_gdas). Edges a sampler marks inactive are skipped.

    With ``fast`` (issue 17) the path is chosen on the device instead: every op of every edge runs through
    the fused mixed cell (:class:`harness.nn.fused.FusedMixed`), weighted by the hard one-hot mask m of
    the sampled ops (detached) times the straight-through weights, and the same per-edge term
    sum_{j != k} w[j] is added as a bias::

        out_e = a_e * ew_e * (sum_j m_j w_j op_j(x) + sum_j (1 - m_j) w_j)

    (a_e: the sampler's ``active`` mask, ew_e: its edge weights). In value and in every gradient this is
    the single-path formula above: the unchosen ops' outputs are multiplied by exact zeros, an inactive
    edge contributes exactly zero and passes no gradient. What differs: the unchosen ops are computed
    (the compute and activation memory of a DARTS mixed cell), their BatchNorm running statistics are
    updated by every forward instead of only when chosen (the training forward uses batch statistics, so
    the trajectory is unchanged), and ``noise`` ops draw for every edge. In exchange the forward makes no
    host decision (the sampler's host lists are never read), so the step has no host sync and can be
    captured in a CUDA graph, and its kernels are the fused cell's few large ones. It also accepts K
    sample groups (weights (K, edges, ops), ``harness.nn.groups``), which the eager path cannot. A forward
    of one sample takes this form on a CPU and while captured; on CUDA uncaptured it runs the sampled op
    per edge (:meth:`chosen_forward`), which is faster there (``SinglePathConfig.fused``).

    Routed (``route_samples``, set by an optimizer that runs K sample groups, ROME's ``group_ops="chosen"``):
    on the fast path every forward runs chosen ops only. A forward of K > 1 sample groups runs, per edge,
    each op that some sample chose once, on the blocks of the samples that chose it (BatchNorm statistics
    per sample, running statistics updated in sample order, as K eager forwards update them), and puts the
    blocks back in sample order::

        out_e[s] = op_{k_s}(x[s]) * (w[s, k_s] c) + (sum_{j != k_s} w[s, j]) c,   c = a[s, e] ew[s, e]

    the eager formula per sample (its scale c folded into both terms), an inactive edge a zero block.
    Compute and memory are the eager K-loop's (one op per edge and sample), kernels about (distinct ops
    chosen) per edge instead of K, and one host read per pass (the sampled ops), so such a step cannot be
    captured in a CUDA graph. A forward of one sample runs :meth:`chosen_forward`."""

    _fused = None
    route_samples = False
    fused_mode = "always"  # SinglePathConfig.fused (SinglePathCell sets it; "always" for a body built alone)
    keep_fused = False  # set by an optimizer that runs sample groups through the fused form (ROME's all-op pass)

    @property
    def supports_fast(self) -> bool:
        return type(self).edge_forward is SinglePathBody.edge_forward

    accepts_samples = property(_on_fused_path)  # K sample groups (harness.nn.groups) on the fast path

    @property
    def computes_every_op(self) -> bool:
        """Whether a forward computes every op of every edge (the fused path, not routed): a mixed-op
        supernet's activation memory instead of one op's per edge. The slots (``cell.slots``, once taken)
        compute one conv chain per edge and the pools."""
        if not _on_fused_path(self) or self.route_samples or self._slots is not None:
            return False
        some = next(self.parameters(), None)  # the form a forward takes depends on its device
        return some is None or self._fused_alone(some)

    def forward(self, states, arch: ArchWeights):
        if _on_fused_path(self):
            if self._slots_now(states[0]):
                return self.slot_forward(states, arch)
            if arch.samples == 1 and self._slots is not None:  # evaluation: the modules read their own statistics
                return self.chosen_forward(states, arch)
            if self.route_samples:  # chosen ops only: routed sample groups, or one sample as the eager cell
                self._own_buffers()
                return self.routed_forward(states, arch) if arch.samples != 1 else self.chosen_forward(states, arch)
            if arch.samples == 1 and not self._fused_alone(states[0]):
                return self.chosen_forward(states, arch)
            return self.fused_forward(states, arch)
        if arch.samples != 1:
            raise RuntimeError(f"the eager single-path cell runs one sampled architecture per forward, not "
                               f"{arch.samples} (sample groups need the fast path: harness.nn.cells.set_fast)")
        return super().forward(states, arch)

    def _folded_weights(self, arch: ArchWeights):
        """The eager formula's two weights of each edge's sampled op k, its scale c (the sampler's device-side
        active mask times the edge weight, where given) folded into both: (w[k] c, (sum_{j != k} w[j]) c),
        each (edges,), or (K, edges) for K sample groups."""
        w = arch.weights[self.kind]
        chosen = w.gather(-1, arch.index[self.kind].unsqueeze(-1)).squeeze(-1)
        bias = w.sum(-1) - chosen
        scale = arch.active[self.kind].to(w.dtype) if arch.active is not None else None
        if arch.edge_weights is not None:
            ew = arch.edge_weights[self.kind]
            scale = ew if scale is None else scale * ew
        if scale is not None:
            chosen, bias = chosen * scale, bias * scale
        return chosen, bias

    def chosen_forward(self, states, arch: ArchWeights):
        """One sample, the sampled op of each edge (the eager cell's compute, one host read), each node's
        edges weighted and summed by one matrix product::

            node = sum_e (op_e(x) * (w[k] c) + (sum_{j != k} w[j]) c)  =  b_node + [w_e c_e]_e @ [op_e(x)]_e

        (the eager formula, the edge's scale c folded into both terms: :meth:`_folded_weights`; b_node the
        node's summed second terms, for the whole cell in one product): per node the op outputs side by side
        and one matrix product (its backward three kernels), instead of a multiply-add per edge (four kernels
        back) and the adds between them. An edge the sampler switched off (host_active) adds zeros. The
        routed pass of one sample group (:meth:`routed_forward`)."""
        active = arch.host_active[self.kind] if arch.host_active is not None else None
        chosen, bias = self._folded_weights(arch)  # (edges,) each
        return self._routed(states, [arch.host_index[self.kind]], None if active is None else [active],
                            chosen.unsqueeze(0), bias.unsqueeze(0), arch)

    def _node_ranges(self) -> list[tuple[int, int]] | None:
        """Each node's incoming edges as a range (lo, hi) of edge indices, or None if some node's are not
        consecutive (the DARTS and NB201 cells list them node by node)."""
        out = []
        for dst in range(self.spec.n_inputs, self.spec.n_inputs + self.spec.n_nodes):
            es = self.incoming[dst]
            if not es or es != list(range(es[0], es[0] + len(es))):
                return None
            out.append((es[0], es[-1] + 1))
        return out

    def _incidence(self, like: torch.Tensor) -> torch.Tensor:
        """(edges, nodes) 0/1: edge e feeds node d; made once per device and dtype."""
        cache = self.__dict__.setdefault("_incidence_cache", {})
        key = (like.device, like.dtype)
        if key not in cache:
            inc = torch.zeros(len(self.spec.edges), self.spec.n_nodes)
            for e, (_, dst) in enumerate(self.spec.edges):
                inc[e, dst - self.spec.n_inputs] = 1.0
            cache[key] = inc.to(device=like.device, dtype=like.dtype)
        return cache[key]

    def _fused_alone(self, x: torch.Tensor) -> bool:
        """Whether a forward of one sampled architecture takes the fused all-op form (``fused_mode``). Once
        built (a captured run's warm-up), a body stays on it: its ops' BatchNorm buffers are then views of one
        tensor, which the eager form's in-place running-statistics updates would break for backward (the
        routed path gives them back with :meth:`_own_buffers`, which a captured graph's copies would miss)."""
        if self.keep_fused or self._fused is not None or groups.capturing(x):
            return True
        return self.fused_mode == "always" or (self.fused_mode == "auto" and not launch_bound(x))

    slots = False  # SinglePathConfig.slots: True, "auto" or False (SinglePathCell sets it)
    _slots = None  # harness.nn.slots.ChosenSlots, once used

    def _slots_now(self, x: torch.Tensor) -> bool:
        """Whether this forward takes :mod:`harness.nn.slots`'s form (``SinglePathConfig.slots``): a
        training forward (one sample or K sample groups), captured or once a captured one has run it, where
        its kernels can run, for a body that has not bound its BatchNorm buffers to the all-op pass and does
        not route sample groups on the host (ROME's group_ops=chosen). Once taken, every training forward
        takes it (its BatchNorm buffers are views of the form's tensors, which a captured graph writes); an
        evaluation forward runs the chosen op per edge, which only reads them."""
        if not (self.slots and self.training) or self.route_samples:
            return False
        if self._slots is None:
            if (not groups.capturing(x) or self._fused is not None or dwconv.why_not(x) is not None
                    or slots.why_not(self) is not None):
                return False
            self._slots = slots.ChosenSlots(self)
        return dwconv.why_not(x) is None

    def leave_captured_form(self) -> None:
        """Leave the slots for the rest of the run (harness.graphs.GraphedStep, when a captured step failed and
        the run goes on uncaptured): the BatchNorm buffers become the modules' own again."""
        if self._slots is None:
            return
        self._slots, self.slots = None, False
        self._own_buffers(always=True)

    def slot_forward(self, states, arch: ArchWeights):
        """The sampled op of each edge chosen on the device (:class:`harness.nn.slots.ChosenSlots`), for one
        sample or K sample groups: the eager formula with the edge's scale folded into both terms
        (:meth:`_folded_weights`); an edge a sample leaves out (``active``) adds zeros and keeps no
        statistics."""
        chosen, bias = self._folded_weights(arch)
        active = arch.active[self.kind] if arch.active is not None else None
        return self._slots.run(states, arch.index[self.kind], chosen, bias, active)

    def fused_forward(self, states, arch: ArchWeights):
        if self._fused is None:
            self._fused = FusedMixed(self)
        w = arch.weights[self.kind]
        chosen = torch.zeros_like(w).scatter_(-1, arch.index[self.kind].unsqueeze(-1), 1.0) * w
        bias = w.sum(-1) - chosen.sum(-1)
        if arch.active is not None:
            on = arch.active[self.kind].to(w.dtype)
            chosen = chosen * on.unsqueeze(-1)
            bias = bias * on
        ew = arch.edge_weights[self.kind] if arch.edge_weights is not None else None
        return self._fused.run(states, chosen, ew, bias)

    def _own_buffers(self, always: bool = False) -> None:
        """Give every op's BatchNorm its own running buffers again if the fused path (or, ``always``, any
        form) had made them views of one tensor (a view shares its base's version counter: one op's in-place
        running-statistics update would invalidate what another op saved for backward)."""
        if self._fused is None and not always:
            return
        for m in self.ops.modules():
            for name, t in m._buffers.items():
                if t is not None and t._base is not None:
                    m._buffers[name] = t.clone()
        self._fused = None

    def routed_forward(self, states, arch: ArchWeights):
        """K sample groups, each edge's chosen ops run once per op on the samples that chose them; each
        node's edges weighted per sample and summed by one batched matrix product (as :meth:`chosen_forward`
        does for one sample): node[s] = b_node[s] + [w_e c_e][s] @ [op_e(x)[s]]_e."""
        chosen, bias = self._folded_weights(arch)  # (K, edges) each
        # the one host read of the pass (shared by every cell): per sample, each edge's op and whether it
        # keeps the edge
        index = arch.host_index[self.kind]
        active = arch.host_active[self.kind] if arch.host_active is not None else None
        return self._routed(states, index, active, chosen, bias, arch)

    def _routed(self, states, index, active, chosen, bias, arch: ArchWeights):
        """K = len(index) sample groups (``index[s][e]``: sample s's op on edge e; ``active[s][e]``: whether
        it keeps the edge; ``chosen``/``bias`` (K, edges) the folded weights)."""
        k = len(index)
        ranges = self._node_ranges()
        states = list(states)
        # each state's K blocks, taken apart once (one backward node each) rather than sliced per use (a
        # slice's backward writes a zero tensor of the whole size)
        blocks: dict[int, tuple] = {}

        def pieces(e, x):
            src = self.spec.edges[e][0]
            if src not in blocks:
                blocks[src] = (x,) if k == 1 else x.split(x.shape[0] // k)
            return self._routed_pieces(e, x, blocks[src], [row[e] for row in index],
                                       None if active is None else [row[e] for row in active])

        if ranges is None:  # nodes whose edges are not consecutive: a multiply-add per edge
            chosen, bias = chosen.unbind(1), bias.unbind(1)

            def edge(e, x, _):
                out = pieces(e, x)
                like = next((t for t in out if t is not None), None)
                if like is None:  # no sample keeps this edge
                    return None
                whole = torch.cat([like.new_zeros(like.shape) if t is None else t for t in out])
                shape = (k,) + (1,) * whole.dim()
                whole = torch.addcmul(bias[e].reshape(shape), whole.view(k, -1, *whole.shape[1:]),
                                      chosen[e].reshape(shape))
                return whole.view(-1, *whole.shape[2:])

            return super().forward(states, arch, edge=edge)
        weights = chosen.split([hi - lo for lo, hi in ranges], dim=1)
        node_bias = (bias @ self._incidence(bias)).unbind(1)  # (K,) per node
        zero = None
        for d, (lo, hi) in enumerate(ranges):
            outs = [pieces(e, states[self.spec.edges[e][0]]) for e in range(lo, hi)]
            like = next((t for out in outs for t in out if t is not None), None)
            if like is None:  # no sample keeps any edge into this node
                raise RuntimeError(f"node {len(states)} of a {self.kind} cell has no active input edge")
            gaps = any(t is None for out in outs for t in out)
            if gaps and (zero is None or zero.shape != like.shape):  # one zero block for the cell
                zero = like.new_zeros(like.shape)
            # sample-major, then edge: Y[s, e] = edge e's output for sample s (zeros where s keeps no e)
            y = torch.cat([zero if outs[i][s] is None else outs[i][s] for s in range(k) for i in range(hi - lo)])
            node = torch.baddbmm(node_bias[d].view(k, 1, 1), weights[d].unsqueeze(1), y.view(k, hi - lo, -1))
            states.append(node.view(k * like.shape[0], *like.shape[1:]))
        return states

    def _routed_pieces(self, e, x, blocks, ops, on):
        """Edge e over K sample blocks (``blocks``: x split per sample): ``ops[s]`` is sample s's op,
        ``on[s]`` whether it keeps the edge. Each sample's op output, None where it does not keep the edge."""
        k = len(blocks)
        by_op: dict[int, list[int]] = {}
        for s in range(k):
            if on is None or on[s]:
                by_op.setdefault(ops[s], []).append(s)
        out: list = [None] * k
        for j in sorted(by_op):
            members = by_op[j]
            xin = x if len(members) == k else blocks[members[0]] if len(members) == 1 else \
                torch.cat([blocks[s] for s in members])
            with groups.sample_groups(len(members)):
                y = self.ops[e][j](xin)
            m = y.shape[0] // len(members)  # output rows per sample (the same for every op of the edge)
            for s, part in zip(members, y.split(m) if len(members) > 1 else (y,)):
                out[s] = part
        return out

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
    # the eager path picks modules on the host; the fast path chooses on the device (harness.graphs)
    graph_capturable = "fast"

    def __init__(self, config: SinglePathConfig):
        self.config = config

    def build(self, spec: CellSpec) -> nn.Module:
        body = SinglePathBody(spec)
        body.fused_mode = self.config.fused
        body.slots = self.config.slots
        return body


# ---------------------------------------------------------------------------------------------
# Partial channel connections (PC-DARTS; DrNAS's progressive search builds on them)


def channel_shuffle(x, groups: int):
    """(B, C, H, W): channel ``g * (C/groups) + i`` moves to ``i * groups + g`` (ShuffleNet's shuffle)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


@dataclass(frozen=True)
class PartialConfig:
    k: int = 4  # 1/k of each edge's channels go through the ops (PC-DARTS: K=4 on CIFAR)

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"k (the partial channel divisor) must be >= 1, not {self.k}")


def _widened(old: torch.Tensor, new_shape, index: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
    out = old
    for d, (o, n) in enumerate(zip(old.shape, new_shape)):
        if o != n:
            out = out.index_select(d, index[(o, n)].to(out.device))
    return out


class PartialMixedBody(MixedBody):
    """Every op of an edge sees only the first ``C/k`` channels of its input; the other channels bypass
    the ops (max-pooled 2x2 on a stride-2 edge), are concatenated after the op sum, and the result is
    channel-shuffled with ``k`` groups, then scaled by the edge weight if the sampler gives one::

        out_e = shuffle(cat(sum_k w[e, k] op_k(x[:, :C/k]), bypass(x[:, C/k:])), k) * edge_weight[e]

    (yuhuixu1993/PC-DARTS ``model_search.py`` ``MixedOp.forward``/``channel_shuffle``; with ``k = 1`` it is
    the plain mixed edge, as xiangning-chen/DrNAS ``DARTS-space/model_search.py`` returns it.) The ops are
    built for ``C/k`` channels, so the activations they keep for backward shrink by ``k``.
    :meth:`set_partial` changes ``k`` during a search (DrNAS's progressive scheme), widening every op."""

    def __init__(self, spec: CellSpec, k: int):
        if spec.channels % k:
            raise ValueError(f"partial channels: the cell's {spec.channels} channels are not divisible by k={k}")
        self.full_spec = spec
        super().__init__(replace(spec, channels=spec.channels // k))
        self.k = k
        self.bypass_pool = nn.MaxPool2d(2, 2)
        self.register_buffer("partial_k", torch.tensor(k))

    # which ops of each edge run (host lists; None: all). An op whose weight is zero by construction (a
    # pruned op, DrNAS) contributes nothing and no gradient, so leaving it out is the same math
    active_ops: list[list[bool]] | None = None

    def set_active_ops(self, active: list[list[bool]] | None) -> None:
        if active is not None and any(not any(row) for row in active):
            raise ValueError(f"every edge of a {self.kind} cell needs an op that runs")
        self.active_ops = active
        self._fused = None  # its units are the ops that run

    # The fast path: the same math through FusedMixed. Channel shuffle and concatenation are linear and the
    # same for every edge of a cell, so a node's sum of shuffled edge outputs is the shuffle of
    #   cat(sum_e ew_e sum_k w[e, k] op_k(x_src[:, :C/k]), sum_e ew_e bypass_e(x_src[:, C/k:]))
    # whose first half is a mixed cell's node sum over the sliced sources (FusedMixed with ``prepare``
    # slicing each source, edge weights folded into the op weights as for MixedBody) and whose second half
    # ``finish`` adds: each edge's bypass (max-pooled on a stride-2 edge) weighted by its edge weight
    supports_fast = True
    accepts_samples = False  # (K sample groups: single-path cells only)

    def make_fused(self) -> FusedMixed:
        return FusedMixed(self, units=self._units(), prepare=self._sliced, finish=self._finished)

    def _units(self):
        """The ops that run (``active_ops``), in the eager forward's order (node by node, edge by edge);
        None: every op (FusedMixed's own list, stateless ops shared per source)."""
        if self.active_ops is None:
            return None
        spec = self.spec
        return [(self.ops[e][j], spec.edges[e][0], ((dst, e, j),))
                for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes) for e in self.incoming[dst]
                for j, on in enumerate(self.active_ops[e]) if on]

    def _sliced(self, src, x):
        return x if self.k == 1 else x[:, :x.shape[1] // self.k]

    def _finished(self, dst, total, states, ew):
        if self.k == 1:
            return total
        rest = None
        for e in self.incoming[dst]:
            x = states[self.spec.edges[e][0]]
            r = x[:, x.shape[1] // self.k:]
            if r.shape[2] != total.shape[2]:
                r = self.bypass_pool(r)
            if ew is not None:
                r = r * ew[e]
            rest = r if rest is None else rest + r
        return channel_shuffle(torch.cat([total, rest], dim=1), self.k)

    def _op_sum(self, e, x, w):
        ops = self.ops[e]
        keep = range(len(ops)) if self.active_ops is None else [j for j, on in enumerate(self.active_ops[e]) if on]
        out = None
        for j in keep:
            term = w[j] * ops[j](x)
            out = term if out is None else out + term
        return out

    def edge_forward(self, e, x, arch: ArchWeights):
        w = arch.weights[self.kind][e]
        if self.k == 1:
            out = self._op_sum(e, x, w)
            return out if arch.edge_weights is None else out * arch.edge_weights[self.kind][e]
        part = x.shape[1] // self.k
        out = self._op_sum(e, x[:, :part], w)
        rest = x[:, part:]
        if out.shape[2] != x.shape[2]:
            rest = self.bypass_pool(rest)
        out = channel_shuffle(torch.cat([out, rest], dim=1), self.k)
        if arch.edge_weights is not None:
            out = out * arch.edge_weights[self.kind][e]
        return out

    def set_partial(self, k: int, generator: torch.Generator | None = None) -> dict[int, tuple]:
        """Rebuild every op for ``C/k`` channels, keeping what was learnt: each tensor's old channels stay
        where they were and the new ones copy randomly chosen old ones (one draw per op and per width, so
        a conv's output copies and the BN after it agree), as DrNAS's ``net2wider.py`` widens (its
        Out/InChannelWider and BNWider: copies of random existing channels).

        Returns, per new parameter (by ``id``), ``(old parameter, widen)`` where ``widen(t)`` maps a tensor
        shaped like the old parameter to the new shape the same way (an optimizer widens its state with it,
        as net2wider's ``configure_optimizer`` carries the momentum buffers over)."""
        if k == self.k:
            return {}
        carried: dict[int, tuple] = {}
        c = self.full_spec.channels
        if c % k:
            raise ValueError(f"partial channels: the cell's {c} channels are not divisible by k={k}")
        spec = replace(self.full_spec, channels=c // k)
        for e in range(len(spec.edges)):
            for j, name in enumerate(spec.ops[e]):
                old = self.ops[e][j]
                new = spec.op_factory(name, spec.channels, spec.strides[e]).to(self.partial_k.device)
                index: dict[tuple[int, int], torch.Tensor] = {}
                state, old_state = {}, old.state_dict()
                for key, t_new in new.state_dict().items():
                    t_old = old_state[key]
                    for o, n in zip(t_old.shape, t_new.shape):
                        if o != n and (o, n) not in index:
                            extra = torch.randint(0, o, (n - o,), generator=generator) if n > o else None
                            index[(o, n)] = (torch.cat([torch.arange(o), extra]) if extra is not None
                                             else torch.arange(n))
                    state[key] = _widened(t_old, t_new.shape, index).clone()
                new.load_state_dict(state)
                new.train(old.training)
                old_params = dict(old.named_parameters())
                for name_p, p in new.named_parameters():
                    carried[id(p)] = (old_params[name_p],
                                      lambda t, shape=p.shape, index=index: _widened(t, shape, index).clone())
                self.ops[e][j] = new
        self.spec = spec
        self.k = k
        self.partial_k.fill_(k)
        self._fused = None
        return carried

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint taken after set_partial holds wider ops: take its k (a persistent buffer) first
        k = state_dict.get(prefix + "partial_k")
        if k is not None and int(k) != self.k:
            self.set_partial(int(k))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class PartialMixedCell:
    graph_capturable = True  # slicing, pooling, concatenation and a fixed shuffle: no host decisions

    def __init__(self, config: PartialConfig):
        self.config = config

    def build(self, spec: CellSpec) -> nn.Module:
        return PartialMixedBody(spec, self.config.k)
