"""ROME components (seed paper 000; SPEC-FACTS §4.6; no official code exists, facts from the paper).

Sampling (one architecture per forward, shared by all cells of a kind):

* operations (Eqs. 5-8): on every edge one op by straight-through Gumbel-Max over softmax(alpha)
  (``harness.blocks.gumbel_hard``); ``weights`` are the hard one-hots, ``index`` the ops;
* topology, ``rome-v1`` (Eqs. 10-14): one beta per *pair* of a node's inputs (DARTS spaces: 1+3+6+10
  = 20 per cell kind); a node draws one pair by straight-through Gumbel-Max over softmax(beta_node);
  an edge's weight is the sum of the straight-through weights of the pairs containing it (Eq. 13);
* topology, ``rome-v2`` (Eqs. 15-17): one beta per edge (14 per cell kind); per node the two largest
  of log softmax(beta_node) + Gumbel noise are kept (Gumbel-top2 = sampling two edges without
  replacement, appendix A); edge weights are straight-through: hard top-2 mask in value, gradient of
  the relaxed softmax((log p + g) / tau) over the node's edges (Eq. 16).

The sampler returns ``edge_weights`` (1 in value on kept edges, 0 elsewhere), ``active`` /
``host_active`` (exactly two kept edges per DARTS node) and ``host_index``; all host lists come from
one device->host copy per forward. GDAS's ``single-path`` cell runs only the kept edges, one op each
(8 ops per DARTS cell), scaling each by its op weight and edge weight.

Choices where the paper is vague (each a config field):

* ``tau_max``/``tau_min``/``tau_schedule``: the paper says tau "gradually decreases" and builds on
  GDAS; we use GDAS's linear 10 -> 0.1 over the search epochs (``tau_schedule="linear"``, xautodl's
  ``tau_max - (tau_max - tau_min) * e / (epochs - 1)``), shared by the op and topology samplers.
  ``tau_schedule="exponential"`` decays geometrically between the same end points instead
  (``tau_max * (tau_min / tau_max) ** (e / (epochs - 1))``), the other common reading.
* ``init_scale``: alpha and beta start at ``1e-3 * randn`` (the DARTS convention; not given).
* ``max_inputs`` (2 = Eq. 9): edges kept per node. A node with at most that many incoming edges
  keeps them all. On NAS-Bench-201 (single-input nodes with 1, 2 and 3 incoming edges) node 1 keeps
  its edge, node 2 both, node 3 samples 2 of 3 (v1: 3 pairs; v2: Gumbel-top2 over 3 betas); the
  selector writes ``none`` on an NB201 edge the topology drops, so search and evaluation see the same
  cell. ``--set sampler.max_inputs=3`` keeps every NB201 edge (topology then only via ``none``).
* Gradient to beta flows only through kept edges: a dropped edge is not computed (that is the point
  of the memory-efficient cell), so its zero straight-through weight has no output to multiply; the
  kept edges' relaxed weights still depend on every beta of the node through the softmax.
* ROME's S0 is the DARTS space *without* ``none`` (7 ops): the ``rome-v1``/``rome-v2`` recipes
  search the ``darts`` space's ``no-none`` op set (``MethodInfo.op_sets``), so ``none`` is never
  sampled there. On S3, whose op list has ``none``, it can be sampled (that edge then contributes
  zero); the selector never chooses ``none`` on a kept edge (``exclude_none``).
* Optimizer (Alg. 1): per step, K architectures on the validation batch, arch params (alpha, beta)
  updated with the MEAN of the K gradients (Eq. 20), then K new architectures on the training batch,
  weights updated with the SUM of the K gradients (Eq. 21); the paper gives no clipping, DARTS (whose
  code ROME builds on) clips at 5: ``weight_clip="sum"`` clips the summed gradient at ``grad_clip``
  once before the SGD step (what the optimizer steps on is bounded as in DARTS; default),
  ``weight_clip="per-sample"`` clips each of the K gradients at ``grad_clip`` before summing (each
  sampled architecture's contribution bounded as one DARTS step's, the sum by K * grad_clip). Weight lr 0.05 (ROME's base lr) cosine to ``lr_min`` 0.001 (DARTS's
  floor; ROME gives none), momentum 0.9, wd 3e-4; alpha/beta Adam 3e-4, betas (0.5, 0.999), wd 1e-3
  (DARTS's arch optimizer; ROME gives only the lr). Arch step before the weight step (Alg. 1).
* Selection z* = argmax p(z; alpha, beta) (Eq. 18): per node the most probable topology (v1: argmax
  pair; v2: top-2 betas, which maximise p_i p_j (1/(1-p_i) + 1/(1-p_j))), on each kept edge the argmax
  non-``none`` op. The two pairs of a node are ordered by p(edge kept) * p(op), strongest first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import ArchWeights, Batch, CellSpec, SelectionContext
from harness.errors import HarnessError
from harness.blocks import (
    BilevelConfig,
    FirstOrderBilevel,
    GumbelSampler,
    clip_grad_norm,
    deferred,
    exponential_like,
    fill_unused_grads,
    gumbel_hard,
    sample_groups,
)

_PAD = -1e9  # logit of a padding slot: never drawn, zero probability, finite (no inf/NaN gradients)


# ---------------------------------------------------------------------------------------------
# Samplers


@dataclass(frozen=True)
class RomeSamplerConfig:
    tau_max: float = 10.0
    tau_min: float = 0.1
    init_scale: float = 1e-3  # alpha, beta = init_scale * randn
    max_inputs: int = 2  # Eq. 9: incoming edges kept per node (nodes with fewer keep all)
    tau_schedule: str = "linear"  # "linear" (GDAS's) | "exponential"

    def __post_init__(self):
        if self.tau_schedule not in ("linear", "exponential"):
            raise ValueError(f"tau_schedule must be 'linear' or 'exponential', not {self.tau_schedule!r}")
        if self.max_inputs < 1:
            raise ValueError(f"max_inputs must be >= 1, not {self.max_inputs}")
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(f"need 0 < tau_min <= tau_max, not {self.tau_min}, {self.tau_max}")


def _inclusion(p: list[float], k: int) -> list[float]:
    """P(item i among k drawn without replacement with probabilities p), by enumerating orders."""
    out = [0.0] * len(p)
    if k >= len(p):
        return [1.0] * len(p)
    for order in itertools.permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for i in order:
            prob *= p[i] / left if left > 0 else 0.0
            left -= p[i]
        for i in order:
            out[i] += prob
    return out


class _RomeSampler(GumbelSampler):
    """Shared part: GDAS's op sampler (alpha per (edge, op), one straight-through Gumbel op per edge, tau
    10 -> 0.1 linearly, ``probabilities`` = softmax(alpha)) plus topology parameters beta, and one host
    copy of the ops and kept edges per forward."""

    n_topology: int  # topology parameters per cell kind

    def __init__(self, config: RomeSamplerConfig, space):
        super().__init__(config, space)
        self.n_edges = len(space.edges)
        dsts = sorted({dst for _, dst in space.edges})
        self.incoming = [tuple(e for e, (_, d) in enumerate(space.edges) if d == dst) for dst in dsts]
        self.keep = [min(config.max_inputs, len(inc)) for inc in self.incoming]
        self._layout()
        self.betas = nn.ParameterDict({
            kind: nn.Parameter(config.init_scale * torch.randn(self.n_topology)) for kind in space.cell_kinds
        })

    def set_progress(self, epoch, total_epochs):
        c = self.config
        if c.tau_schedule == "linear":
            return super().set_progress(epoch, total_epochs)
        self.tau = c.tau_max * (c.tau_min / c.tau_max) ** (epoch / max(1, total_epochs - 1))

    def _layout(self) -> None:
        raise NotImplementedError

    def _sample_topology(self, beta: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., edges) straight-through edge weights and bool kept mask, from (params,) betas and the
        Exp(1) draw ``e`` (..., nodes, width) behind the Gumbel noise (leading dims: independent samples)."""
        raise NotImplementedError

    def sample(self, samples: int) -> ArchWeights:
        """``samples`` architectures (a leading sample dimension when more than one). The noise is drawn
        sample by sample, per cell kind ops then topology, as ``samples`` successive forwards draw it."""
        kinds = list(self.alphas)
        draws = [{kind: (exponential_like(self.alphas[kind]), exponential_like(self.betas[kind], self.slot.shape))
                  for kind in kinds} for _ in range(samples)]
        weights, index, edge_weights, active = {}, {}, {}, {}
        for kind in kinds:
            alpha, beta = self.alphas[kind], self.betas[kind]
            e_ops = self._per_sample([d[kind][0] for d in draws])
            e_top = self._per_sample([d[kind][1] for d in draws])
            weights[kind], index[kind] = gumbel_hard(alpha.expand(e_ops.shape), self.tau, e_ops)
            edge_weights[kind], active[kind] = self._sample_topology(beta, e_top)

        def load():  # the one device->host copy (ops to run, edges to skip), only if a cell reads them
            host = torch.cat([torch.stack([index[k] for k in kinds]),
                              torch.stack([active[k] for k in kinds]).long()]).tolist()
            return (dict(zip(kinds, host[:len(kinds)])),
                    {k: _bools(row) for k, row in zip(kinds, host[len(kinds):])})

        host_index, host_active = deferred(load, 2)
        return ArchWeights(weights, index=index, host_index=host_index, host_active=host_active,
                           edge_weights=edge_weights, active=active, samples=samples)

    def topology_probabilities(self) -> dict[str, torch.Tensor]:
        """(edges,) probability that each edge is kept in a sample, per cell kind."""
        raise NotImplementedError

    def most_probable_topology(self) -> dict[str, list[bool]]:
        """Per cell kind, whether each edge belongs to the most probable topology."""
        raise NotImplementedError

    def arch_parameters(self):
        return list(self.alphas.values()) + list(self.betas.values())


def _bools(rows: list) -> list:
    """0/1 lists (nested per sample when K > 1) as bools."""
    return [_bools(v) if isinstance(v, list) else bool(v) for v in rows]


class RomeV1Sampler(_RomeSampler):
    """ROME-v1: Gumbel-Max over the pairs (``max_inputs``-subsets) of each node's incoming edges."""

    def _layout(self):
        self.subsets = [list(itertools.combinations(inc, k)) for inc, k in zip(self.incoming, self.keep)]
        self.n_topology = sum(len(s) for s in self.subsets)
        width = max(len(s) for s in self.subsets)
        slot = torch.zeros(len(self.subsets), width, dtype=torch.long)
        mask = torch.zeros(len(self.subsets), width, dtype=torch.bool)
        member = torch.zeros(len(self.subsets), width, self.n_edges)  # subset -> edges incidence
        offset = 0
        for node, subsets in enumerate(self.subsets):
            for s, edges in enumerate(subsets):
                slot[node, s], mask[node, s] = offset + s, True
                member[node, s, list(edges)] = 1.0
            offset += len(subsets)
        self.register_buffer("slot", slot, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("member", member, persistent=False)

    def _node_logits(self, beta):
        return beta[..., self.slot].masked_fill(~self.mask, _PAD)

    graph_capturable = True  # pure tensor ops; host lists copied only if a cell reads them

    def _sample_topology(self, beta, e):
        logits = self._node_logits(beta)
        st, idx = gumbel_hard(logits.expand(e.shape), self.tau, e)  # (..., nodes, width)
        edge_weights = torch.einsum("...ns,nse->...e", st, self.member)  # Eq. 13
        nodes = torch.arange(len(self.subsets), device=idx.device)
        chosen = self.member[nodes, idx]  # (..., nodes, edges)
        return edge_weights, chosen.sum(-2) > 0.5

    def subset_probabilities(self) -> dict[str, torch.Tensor]:
        """(nodes, width) probability of each pair (padding slots 0), per cell kind."""
        return {k: F.softmax(self._node_logits(b.detach()), dim=-1) for k, b in self.betas.items()}

    def topology_probabilities(self):
        return {k: torch.einsum("ns,nse->e", q, self.member) for k, q in self.subset_probabilities().items()}

    def most_probable_topology(self):
        out = {}
        for kind, q in self.subset_probabilities().items():
            keep = [False] * self.n_edges
            for node, subsets in enumerate(self.subsets):
                row = q[node, :len(subsets)].tolist()
                best = max(range(len(subsets)), key=lambda s: (row[s], -s))
                for e in subsets[best]:
                    keep[e] = True
            out[kind] = keep
        return out


class RomeV2Sampler(_RomeSampler):
    """ROME-v2: one beta per edge; per node Gumbel-top2 over softmax(beta_node)."""

    def _layout(self):
        self.n_topology = self.n_edges
        width = max(len(inc) for inc in self.incoming)
        slot = torch.zeros(len(self.incoming), width, dtype=torch.long)
        mask = torch.zeros(len(self.incoming), width, dtype=torch.bool)
        where = torch.zeros(self.n_edges, dtype=torch.long)
        for node, inc in enumerate(self.incoming):
            for pos, e in enumerate(inc):
                slot[node, pos], mask[node, pos] = e, True
                where[e] = node * width + pos
        self.k = max(self.keep)
        self.register_buffer("slot", slot, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("where", where, persistent=False)

    def _node_log_probs(self, beta):
        return F.log_softmax(beta[..., self.slot].masked_fill(~self.mask, _PAD), dim=-1)  # Eq. 15

    graph_capturable = True  # pure tensor ops; host lists copied only if a cell reads them

    def _sample_topology(self, beta, e):
        log_p = self._node_log_probs(beta)  # (nodes, width)
        perturbed = log_p - e.log()  # + Gumbel noise -log(E), per sample
        relaxed = F.softmax(perturbed / self.tau, dim=-1)  # Eq. 16
        top = perturbed.topk(self.k, dim=-1).indices  # padding ranks last; masked out below
        hard = torch.zeros_like(relaxed).scatter_(-1, top, 1.0) * self.mask  # Eq. 17
        st = hard - relaxed.detach() + relaxed
        return st.flatten(-2)[..., self.where], hard.flatten(-2)[..., self.where] > 0.5

    def edge_probabilities(self) -> dict[str, torch.Tensor]:
        """(edges,) p(e) = softmax of beta over the edge's node (Eq. 15)."""
        return {k: self._node_log_probs(b.detach()).exp().flatten()[self.where] for k, b in self.betas.items()}

    def topology_probabilities(self):
        out = {}
        for kind, p in self.edge_probabilities().items():
            incl = torch.zeros_like(p)
            host = p.tolist()
            for inc, k in zip(self.incoming, self.keep):
                for e, v in zip(inc, _inclusion([host[e] for e in inc], k)):
                    incl[e] = v
            out[kind] = incl
        return out

    def most_probable_topology(self):
        out = {}
        for kind, beta in self.betas.items():
            b = beta.detach().tolist()
            keep = [False] * self.n_edges
            for inc, k in zip(self.incoming, self.keep):
                for e in sorted(inc, key=lambda e: (-b[e], e))[:k]:
                    keep[e] = True
            out[kind] = keep
        return out


# ---------------------------------------------------------------------------------------------
# Optimizer


@dataclass(frozen=True)
class AccumulateConfig(BilevelConfig):
    lr: float = 0.05  # ROME's base lr
    samples: int = 7  # K
    arch_reduction: str = "mean"  # Eq. 20: mean of the K validation-loss gradients
    weight_reduction: str = "sum"  # Eq. 21: sum of the K training-loss gradients
    weight_clip: str = "sum"  # clip the summed gradient once ("sum") or each sample's ("per-sample")
    group_samples: bool = True  # on the fast cell path: the K samples as one grouped pass (issue 17)
    # what a grouped pass computes per edge: "all" every op, weighted by each sample's one-hot (no host read,
    # CUDA-graph capturable; a DARTS supernet's compute per sample; once captured, through the conv slots where
    # the cells take them: cell.slots, harness.nn.slots) or "chosen" only the ops the samples chose, once per op
    # (the eager loop's compute, one host read per pass, not capturable). "auto": on CUDA "all" where the step
    # will be captured and the cells take the slots, else "chosen"; "all" elsewhere. Measured on H200s (rome-v2,
    # darts, batch 64, C=16, 8 cells; BENCHMARKS.md): on 2026-12-05 the captured slots 332.9 ms a step (peak
    # 18.8 GiB), chosen 495.4 ms (8.9 GiB), the captured all-op pass without the slots 685.7 ms, the eager K-loop
    # 840-1054 ms; on 2026-12-04 chosen 486 ms, all 794 ms. On a CPU the fast path is off unless
    # runtime.fast_cpu (the smoke preset's tiny supernets, where the all-op pass was measured fastest)
    group_ops: str = "auto"
    # samples per grouped pass; 0: auto (all K on a CPU; on CUDA as many as fit in 70% of the free memory,
    # from the first step's one-sample pass). Fewer bound the activation memory, which grows with it
    sample_chunk: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.sample_chunk < 0:
            raise ValueError(f"sample_chunk must be >= 0 (0: all K samples in one pass), not {self.sample_chunk}")
        if self.group_ops not in ("auto", "all", "chosen"):
            raise ValueError(f"group_ops must be 'auto', 'all' or 'chosen', not {self.group_ops!r}")
        if self.weight_clip not in ("sum", "per-sample"):
            raise ValueError(f"weight_clip must be 'sum' or 'per-sample', not {self.weight_clip!r}")
        if self.samples < 1:
            raise ValueError(f"samples (K) must be >= 1, not {self.samples}")
        for name in ("arch_reduction", "weight_reduction"):
            if getattr(self, name) not in ("mean", "sum"):
                raise ValueError(f"{name} must be 'mean' or 'sum', not {getattr(self, name)!r}")


def _cell_bodies(net) -> list:
    """The network's cell bodies (modules holding a CellSpec)."""
    return [m for m in net.modules() if isinstance(getattr(m, "spec", None), CellSpec)]


def _cells_take_slots(bodies, device) -> bool:
    """Whether every one of ``bodies`` takes :mod:`harness.nn.slots`'s form once a step on ``device`` is captured
    (cell.slots true or auto, the depthwise kernels run there, every op of the cell known to the form)."""
    from harness.nn import slots

    return bool(bodies) and len(slots.asking(bodies)) == len(bodies) and slots.why_not_run(bodies, device, True) is None


class AccumulateBilevel(FirstOrderBilevel):
    """ROME's Alg. 1: K sampled architectures per update, gradients accumulated by backward passes
    one sample at a time (memory of one sample). Each ``net(x)`` draws a fresh architecture.

    Grouped (issue 17; ``group_samples``, when every cell of the net is on the fast path and the sampler
    can draw K samples at once): the K samples run as one forward and one backward
    (``harness.nn.groups``: the batch repeated K times, each block weighted by its own sampled
    architecture, BatchNorm statistics per sample), in chunks of ``sample_chunk``. The loss is the sum of
    the K per-sample losses times the same scale, so the gradients are the eager K-loop's (the same
    draws in the same order; tested against it). ``weight_clip="per-sample"`` needs each sample's weight
    gradient alone, so that step stays a loop. Nothing here reads a device value on the host.

    The grouped pass runs every op of every edge for each of its samples (the fused cell's formulation of
    the single-path choice, ``harness.nn.cells.SinglePathBody``), so its activation memory is about a
    DARTS supernet's per sample. ``sample_chunk=0`` sizes the passes on CUDA from the first step (one-sample
    passes, peak memory measured, then as many samples per pass as fit in 70% of what is free); set
    ``--set optimizer.sample_chunk=N`` to fix it, or ``runtime.fast=false`` for the eager single-path loop
    (ROME's own memory: one op per edge).

    ``group_ops="chosen"``: the grouped pass runs only the ops the samples chose, each once on the samples
    that chose it (``SinglePathBody.routed_forward``): the eager loop's compute and memory in fewer kernels,
    at the cost of one host read of the sampled ops per pass (so no CUDA graph)."""

    graph_capturable = True  # host-side decisions only from configuration and module flags

    # whether the run's step will be captured in a CUDA graph: None until the runner knows (harness.runner sets
    # it once runtime.cuda_graph is resolved; search_step.py per mode), False after a capture that failed
    expect_capture: bool | None = None
    _slots_ready: bool | None = None  # whether every cell body takes the conv slots on this device (found once)

    def __init__(self, config: AccumulateConfig, net, steps_per_epoch: int, epochs: int):
        super().__init__(config, net=net, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self._device_type = next(iter(net.sampler.arch_parameters())).device.type
        self._slots_ready = self._device_type == "cuda" and _cells_take_slots(_cell_bodies(net),
                                                                               next(net.parameters()).device)
        self._route(_cell_bodies(net))  # known from the start (the runner's out-of-memory hint reads it)

    @property
    def group_ops(self) -> str:
        """``config.group_ops`` with "auto" resolved for the network's device and step: on CUDA "all" where the
        step is captured (or not known yet not to be) and every cell takes the conv slots, else "chosen"; "all"
        elsewhere."""
        if self.config.group_ops != "auto":
            return self.config.group_ops
        if getattr(self, "_device_type", "cpu") != "cuda":
            return "all"
        return "all" if self._slots_ready and self.expect_capture is not False else "chosen"

    def leave_captured_form(self) -> None:
        """The run goes on uncaptured (harness.graphs.GraphedStep, after a capture that failed): group_ops=auto
        takes the chosen-op pass from the next step on, the faster one uncaptured."""
        self.expect_capture = False
        self._rerouted = False

    @property
    def runtime_choices(self) -> dict:
        """What this run resolved for its device, recorded with the run's runtime settings."""
        return {"group_ops": self.group_ops}

    @property
    def _routes(self) -> bool:
        """Whether grouped passes run only the chosen ops (``group_ops`` "chosen", or "auto" resolved to it)."""
        return self.config.group_samples and self.group_ops == "chosen"

    def _route(self, bodies) -> None:
        for b in bodies:  # single-path bodies; other cell types have no chosen-op pass
            if hasattr(b, "route_samples"):
                b.route_samples = self._routes
                # the all-op pass's one-sample passes (the CUDA memory probe, chunks of 1) stay fused
                b.keep_fused = self.config.group_samples and not self._routes

    @property
    def graph_blocker(self) -> str | None:
        """Why this configuration's step cannot be captured (``harness.graphs.why_not_graphed``)."""
        if not self._routes:
            return None
        auto = (" ('auto' on CUDA where the cells do not take the conv slots; optimizer.group_ops=all captures)"
                if self.config.group_ops == "auto" else "")
        return f"optimizer.group_ops='chosen'{auto} reads each pass's sampled ops on the host"

    def _scale(self, reduction: str) -> float:
        return 1.0 / self.config.samples if reduction == "mean" else 1.0

    _bodies: list | None = None  # the net's cell bodies, if it can run sample groups at all (found once)
    _rerouted = False  # the bodies told the configuration of the first step (once)

    def grouped(self, net, weight_step: bool = False) -> bool:
        """Whether this step runs its K samples as grouped passes. The network is inspected once (its
        modules do not change during a ROME search); each step only reads the bodies' fast flags."""
        c = self.config
        if not self._rerouted:  # the configuration of now (it may have been replaced since __init__)
            self._rerouted = True
            self._route(_cell_bodies(net))
        if not c.group_samples or (weight_step and c.weight_clip == "per-sample"):
            return False
        if self._bodies is None:
            bodies = _cell_bodies(net)
            able = callable(getattr(net.sampler, "sample", None)) and sample_groups.why_not(net) is None
            if able:
                sample_groups.enable(net)  # BatchNorm2d -> SampleBatchNorm2d: the same outside sample groups
            self._bodies = bodies if able else []
        return bool(self._bodies) and all(getattr(b, "accepts_samples", False) for b in self._bodies)

    _auto_chunk: int | None = None

    def _chunks(self, net):
        """Sample counts of this step's grouped passes (and the probe flag: on CUDA with ``sample_chunk=0``
        the first grouped step runs one-sample passes and measures one's peak memory)."""
        k, chunk = self.config.samples, self.config.sample_chunk or self._auto_chunk
        if chunk is None:
            device = next(iter(net.sampler.arch_parameters())).device
            if device.type != "cuda":
                chunk = self._auto_chunk = k
            else:
                return [1] * k, True
        return [min(chunk, k - i) for i in range(0, k, chunk)], False

    def _probe_start(self, device) -> int:
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)

    def _probe_end(self, device, before: int) -> None:
        """Samples per pass from one sample's activation memory (peak over what was allocated before) and
        what the device has free (its free memory plus what the caching allocator holds unused)."""
        per_sample = max(1, torch.cuda.max_memory_allocated(device) - before)
        free, _ = torch.cuda.mem_get_info(device)
        spare = free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        self._auto_chunk = max(1, min(self.config.samples, int(0.7 * spare / per_sample)))

    def _grouped_backward(self, net, batch: Batch, scale: float, arch_step: bool):
        """The K samples' losses in grouped passes, each pass's sum times ``scale`` backpropagated to the
        arch parameters (``arch_step``: with the sampler's regularisation, as ``arch_loss``) or to the
        weights: (summed loss, summed correct predictions; None for the arch step)."""
        total = correct = None
        chunks, probe = self._chunks(net)
        for i, k in enumerate(chunks):
            before = self._probe_start(batch.x.device) if probe and i == 0 else None
            arch = net.sampler.sample(k)
            with sample_groups.sample_groups(k):
                logits = net(batch.x.repeat(k, 1, 1, 1), arch)
            y = batch.y.repeat(k)
            losses = F.cross_entropy(logits, y, reduction="none").view(k, -1).mean(1)  # one per sample
            reg = net.sampler.regularization() if arch_step else None
            if reg is not None:
                losses = losses + reg
            (losses.sum() * scale).backward(inputs=self.a_params if arch_step else self.w_params)
            if before is not None:
                self._probe_end(batch.x.device, before)
            total = losses.detach().sum() if total is None else total + losses.detach().sum()
            if not arch_step:
                hits = (logits.detach().argmax(dim=1) == y).sum()
                correct = hits if correct is None else correct + hits
        return total, correct

    def arch_step(self, net, val: Batch):
        self.a_opt.zero_grad(set_to_none=True)
        scale = self._scale(self.config.arch_reduction)
        total = None
        if self.grouped(net):
            total, _ = self._grouped_backward(net, val, scale, arch_step=True)
            self.a_opt.step()
            return total / self.config.samples
        for _ in range(self.config.samples):
            loss = self.arch_loss(net, val)
            (loss * scale).backward(inputs=self.a_params)
            total = loss.detach() if total is None else total + loss.detach()
        self.a_opt.step()
        return total / self.config.samples

    def weight_step(self, net, train: Batch):
        self.w_opt.zero_grad(set_to_none=True)
        scale = self._scale(self.config.weight_reduction)
        k = self.config.samples
        if self.grouped(net, weight_step=True):
            total, correct = self._grouped_backward(net, train, scale, arch_step=False)
            fill_unused_grads(self.w_params)
            clip_grad_norm(self.w_params, self.config.grad_clip)
            self.w_opt.step()
            return total / k, correct / k
        per_sample = self.config.weight_clip == "per-sample"
        total = correct = summed = None
        for _ in range(k):
            logits = net(train.x)
            loss = F.cross_entropy(logits, train.y)
            (loss * scale).backward(inputs=self.w_params)
            if per_sample:  # clip this sample's gradient alone, then add it to the sum
                clip_grad_norm(self.w_params, self.config.grad_clip)
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.w_params]
                summed = grads if summed is None else torch._foreach_add(summed, grads)
                self.w_opt.zero_grad(set_to_none=True)
            hits = (logits.detach().argmax(dim=1) == train.y).sum()
            total = loss.detach() if total is None else total + loss.detach()
            correct = hits if correct is None else correct + hits
        if per_sample:
            for p, g in zip(self.w_params, summed):
                p.grad = g
        else:
            fill_unused_grads(self.w_params)  # a weight none of the K samples used: decay and momentum apply
            clip_grad_norm(self.w_params, self.config.grad_clip)
        self.w_opt.step()
        return total / k, correct / k  # mean over the K sampled architectures


# ---------------------------------------------------------------------------------------------
# Selector


@dataclass(frozen=True)
class MostProbableConfig:
    exclude_none: bool = True  # never choose `none` on a kept edge (ROME's S0 has no `none`)


class MostProbableSelector:
    """z* = argmax p(z; alpha, beta): the sampler's most probable topology, the argmax op on each kept
    edge. The choice is written as a score table for the space's own ``derive`` rule: kept edges score
    p(kept) * p(op) (``none`` zeroed), dropped edges score only ``none`` (1) where the space has it, so
    DARTS spaces keep exactly the chosen pair per node ordered by strength, and NB201 writes ``none``
    on dropped edges. With a sampler that has no topology (e.g. softmax) every edge counts as kept
    with probability 1, which on DARTS spaces is the DARTS rule."""

    cheap = True  # reads only the sampler's probabilities: the host also records it every epoch

    def __init__(self, config: MostProbableConfig):
        self.config = config

    def select(self, net, ctx: SelectionContext):
        space, sampler = ctx.space, net.sampler
        probs = sampler.probabilities()
        has_topology = callable(getattr(sampler, "most_probable_topology", None))
        keep = sampler.most_probable_topology() if has_topology else None
        incl = sampler.topology_probabilities() if has_topology else None
        scores = {}
        for kind in space.cell_kinds:
            p = probs[kind].detach().float().cpu()
            ops = space.edge_ops(kind)
            score = torch.zeros_like(p)
            for e in range(len(space.edges)):
                if keep is None or keep[kind][e]:
                    w = 1.0 if incl is None else float(incl[kind][e])
                    for k, name in enumerate(ops[e]):
                        if not (self.config.exclude_none and name == "none"):
                            score[e, k] = w * p[e, k]
                elif "none" in ops[e]:
                    score[e, ops[e].index("none")] = 1.0
            if keep is not None and space.family == "darts":
                for dst in range(space.n_inputs, space.n_inputs + space.n_nodes):
                    n = sum(keep[kind][e] for e, (_, d) in enumerate(space.edges) if d == dst)
                    if n != 2:
                        raise HarnessError(
                            f"{kind} node {dst} keeps {n} edges; DARTS genotypes need 2 per node "
                            f"(set sampler.max_inputs=2)")
            scores[kind] = score
        return space.derive(scores)


__all__ = [
    "AccumulateBilevel", "AccumulateConfig", "MostProbableConfig", "MostProbableSelector",
    "RomeSamplerConfig", "RomeV1Sampler", "RomeV2Sampler",
]
