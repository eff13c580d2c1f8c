"""DARTS-PT components (paper: Rethinking Architecture Selection in Differentiable NAS; SPEC-FACTS §4.5).

``pt`` selector (Algorithm 1, usable after any supernet-based search: ``--selector pt``)
  *Operation selection*: at every projection point one undecided edge per cell kind is picked at
  random (``random.Random(ctx.seed)``). For each candidate op o on it, o's weight on that edge is set to
  0 (other weights unchanged, no renormalisation) and the supernet's validation accuracy is measured
  (network in train mode, so BatchNorm uses batch statistics; under no_grad; over ``ctx.val_batches()``,
  capped at ``max_val_batches`` batches, None = the whole split). The op whose removal gives the
  LOWEST accuracy (``criterion="loss"``: the highest loss) is kept: the edge becomes a fixed one-hot.
  *Topology selection* (DARTS spaces): for every node with more than 2 inputs (one node per cell kind
  per projection point, nodes in random order), each remaining edge's whole weight row is zeroed in
  turn and the edge whose removal leaves the HIGHEST accuracy is dropped, until 2 remain.
  *Fine-tuning and the schedule of decisions* (darts-pt ``pt_project``: sota/cnn/projection.py
  L126-238 on the DARTS spaces, nasbench201/projection.py L76-131 on NB201, @4ec3149): the
  supernet is fine-tuned for ``tune_epochs`` epochs; a projection point is taken at the start of
  every epoch that is a multiple of ``tune_epochs_per_decision`` (proj_intv, 5) and at the last epoch,
  then that epoch trains. With P points (17 on the DARTS spaces: 14 op decisions + 3 nodes; 6 on
  NB201) ``tune_epochs`` = proj_intv*(P-1) + 1 on the DARTS spaces (81: decisions at epochs 0, 5, ...,
  80, one epoch after the last) and proj_intv*(P-1) on NB201 (25: decisions at 0, 5, 10, 15, 20 and
  24, so the last interval is 4 epochs, and one epoch follows the last decision); ``final_epoch``
  ("auto") picks the form by the space family as the two code bases do. A tuning epoch is a pass over
  ``ctx.train_batches()`` (or exactly ``tune_steps`` optimizer steps when set) with the run's own
  bilevel optimizer (alpha keeps being updated unless the optimizer freezes it). The weight lr is
  ``tune_lr`` = 0.0025 (0.025 / 10), constant: the reference creates a cosine scheduler on the DARTS
  spaces but never steps it (projection.py L135-136) and has none on NB201
  (``tune_lr_schedule="cosine"`` decays it to ``tune_lr_min`` instead). Momentum buffers are reset
  first (the reference re-creates its SGD); lr and mode are restored afterwards.
  The genotype is the space's own ``derive()`` rule applied to the projected weights (decided edges
  one-hot, dropped edges zero), so on DARTS spaces it reads off exactly the two kept edges per node.

*Checkpoints* (the harness's, with ``--checkpoint-dir``; the reference has none inside ``pt_project``):
after each projection point and each tuning epoch the selection offers its state to ``ctx.checkpoint``
(decisions, what is left to decide, the selection's random generator, the tuning epoch, the search's lrs;
the harness writes at most one a second, ``harness.search.SELECT_CHECKPOINT_MIN_S``), and a resumed run
goes on from the last one written exactly as the uninterrupted one (the network, the optimizer's momentum
and every random generator come back with it). A stop inside a tuning epoch or a point's measurements
redoes that epoch or point from its start.

Projection is a wrapper around the network's sampler (``net.sampler`` is replaced for the duration of
``select`` and always restored): every forward, in fine-tuning and in evaluation, returns the sampler's
weights with decided rows replaced by their one-hot and dropped/masked entries zeroed.

Choices where the paper is vague (config fields):
  * the epoch the reference trains after its final decision cannot change the genotype; it is run all
    the same (the supernet's state after selection is then the reference's).
  * ``select_none`` ("auto"): ``none`` is a candidate wherever the searched op set lists it, as in the
    reference (its loop runs over every op of the edge: S3 and NB201; darts-pt's DARTS space has no
    ``none``). Candidates are measured in op order and only a strictly lower accuracy replaces the
    best so far, so ``none`` (first on S3 and NB201), whose removal leaves the supernet unchanged,
    wins ties, as in the reference (projection.py L39-53). On the DARTS spaces the genotype is then
    read with the space's rule, which skips ``none``: an edge decided ``none`` reads as its first
    non-``none`` op and ranks with strength 0 among the node's edges, exactly what darts-pt's parser
    (model_search_darts_proj.py L117-158) makes of it.
  * ``topology`` ("auto"): on for spaces whose genotype keeps two inputs per node (DARTS family), off
    for NB201 (the paper's NB201 procedure has no topology step).

Samplers: dense samplers (softmax, sigmoid, fixed-uniform, ... whose ``ArchWeights.host_index`` is None)
are projected exactly as in the paper, with the ``mixed`` cell. Single-path samplers (``host_index``
set, e.g. ``gumbel``) only ever run one op per edge, so zeroing one op's weight cannot be measured on a
mixture. For them the selector measures the *deterministic argmax path* of the projected
``probabilities()``: removing op o makes the edge run its next most probable op, a decided edge runs
its op, a dropped edge is switched off (``host_active``). During fine-tuning the sampler keeps
sampling, with decided edges forced to their op and dropped edges off.

``fixed-uniform`` sampler (DARTS+PT with fixed alpha, "blank" mode): alpha = ``init_scale * randn``
(default 0: the paper's alpha = 0, exactly uniform softmax) is never trained. alpha stays a parameter
(requires_grad, so every optimizer can build its Adam over it) but a gradient hook replaces its
gradient with zeros, so with the default zero init no optimizer moves it (Adam/SGD of a zero
parameter with zero gradient is exactly zero, weight decay included). The sampler sets
``frozen = True``; the ``frozen-arch`` optimizer (a first-order DARTS variant used by the
``darts-pt-fixed-alpha`` method) then skips the architecture step (no val forward/backward, no val
batch drawn) — with any other sampler it behaves exactly like ``first-order``.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness import progress
from harness.api import ArchWeights, SelectionContext
from harness.errors import HarnessError
from harness.interrupts import check as check_stop
from harness.blocks import BilevelConfig, FirstOrderBilevel, SoftmaxSampler

# ---------------------------------------------------------------------------------------------
# Fixed-alpha sampler and the first-order variant that skips the arch step for it


@dataclass(frozen=True)
class FixedUniformConfig:
    init_scale: float = 0.0  # 0: alpha = 0 (the paper); the reference code leaves 1e-3*randn


class FixedUniformSampler(SoftmaxSampler):
    """softmax(alpha) with alpha frozen at its init (gradients zeroed by a hook)."""

    frozen = True
    graph_capturable = True  # pure tensor ops, no host-side decisions (harness.graphs)

    def __init__(self, config: FixedUniformConfig, space):
        super().__init__(config, space)
        for a in self.alphas.values():
            a.register_hook(torch.zeros_like)


class FrozenArchFirstOrder(FirstOrderBilevel):
    """First-order DARTS that skips the architecture step when the sampler says ``frozen``."""

    graph_capturable = True  # as FirstOrderBilevel: host-side state changes only in set_progress

    def __init__(self, config: BilevelConfig, net, steps_per_epoch: int, epochs: int):
        super().__init__(config, net=net, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self.frozen = bool(getattr(net.sampler, "frozen", False))
        self.needs_val_batch = not self.frozen
        self.arch_enabled = not self.frozen

    def set_progress(self, epoch, total_epochs):
        super().set_progress(epoch, total_epochs)
        self.arch_enabled = self.arch_enabled and not self.frozen


# ---------------------------------------------------------------------------------------------
# Projection wrapper


class ProjectedSampler(nn.Module):
    """Wraps a sampler; applies the selector's decisions to every forward.

    State (Python, changed only between evaluations): ``decided[kind][edge] = op``, ``dropped[kind]``
    (edges switched off), and one temporary perturbation ``mask_op = (kind, edge, op)`` or
    ``mask_edge = (kind, edge)``."""

    def __init__(self, base, space, single_path: bool):
        super().__init__()
        self.base = base
        self.space = space
        self.single_path = single_path
        self.evaluating = False
        self.decided: dict[str, dict[int, int]] = {k: {} for k in space.cell_kinds}
        self.dropped: dict[str, set[int]] = {k: set() for k in space.cell_kinds}
        self.mask_op: tuple[str, int, int] | None = None
        self.mask_edge: tuple[str, int] | None = None
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.frozen = bool(getattr(base, "frozen", False))

    # Sampler protocol, delegated
    def arch_parameters(self):
        return self.base.arch_parameters()

    def set_progress(self, epoch, total_epochs):
        self.base.set_progress(epoch, total_epochs)

    def regularization(self):
        return self.base.regularization()

    # state
    def changed(self):
        self._tensors = None

    def _off(self, kind: str) -> set[int]:
        off = set(self.dropped[kind])
        if self.mask_edge is not None and self.mask_edge[0] == kind:
            off.add(self.mask_edge[1])
        return off

    def _keep_fixed(self, kind: str, like: torch.Tensor):
        """(keep, fixed): projected = w * keep + fixed."""
        if self._tensors is None:
            self._tensors = {}
        if kind not in self._tensors:
            keep = torch.ones(like.shape)
            fixed = torch.zeros(like.shape)
            for e, k in self.decided[kind].items():
                keep[e] = 0.0
                fixed[e, k] = 1.0
            for e in self._off(kind):
                keep[e] = 0.0
                fixed[e] = 0.0
            if self.mask_op is not None and self.mask_op[0] == kind:
                keep[self.mask_op[1], self.mask_op[2]] = 0.0
            self._tensors[kind] = (keep.to(like.device, like.dtype), fixed.to(like.device, like.dtype))
        return self._tensors[kind]

    def project(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for kind, w in weights.items():
            keep, fixed = self._keep_fixed(kind, w)
            out[kind] = w * keep + fixed
        return out

    def probabilities(self):
        return self.project(self.base.probabilities())

    def _host_active(self, arch_active, kind, n_edges):
        active = list(arch_active[kind]) if arch_active is not None else [True] * n_edges
        for e in self._off(kind):
            active[e] = False
        return active

    def forward(self) -> ArchWeights:
        if not self.single_path:
            arch = self.base()
            return ArchWeights(self.project(arch.weights), index=arch.index, host_index=arch.host_index,
                               host_active=arch.host_active, edge_weights=arch.edge_weights,
                               active=arch.active)
        if self.evaluating:
            # deterministic argmax path of the projected probabilities
            probs = self.probabilities()
            index = {k: p.argmax(dim=-1) for k, p in probs.items()}
            host = {k: v for k, v in zip(index, torch.stack(list(index.values())).tolist())}
            weights = {k: F.one_hot(index[k], p.shape[-1]).to(p.dtype) for k, p in probs.items()}
            active = {k: self._host_active(None, k, p.shape[0]) for k, p in probs.items()}
            return ArchWeights(weights, index=index, host_index=host, host_active=active,
                               active=self._device_active(active, probs))
        arch = self.base()
        weights, index, host = dict(arch.weights), dict(arch.index or {}), {}
        for kind, w in arch.weights.items():
            keep, fixed = self._keep_fixed(kind, w)
            weights[kind] = w * keep + fixed
            h = list(arch.host_index[kind])
            for e, k in self.decided[kind].items():
                h[e] = k
            host[kind] = h
            if kind in index:
                index[kind] = torch.tensor(h, device=w.device)
        active = {k: self._host_active(arch.host_active, k, w.shape[0]) for k, w in arch.weights.items()}
        return ArchWeights(weights, index=index or None, host_index=host, host_active=active,
                           edge_weights=arch.edge_weights, active=self._device_active(active, arch.weights))

    @staticmethod
    def _device_active(active: dict[str, list[bool]], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The host ``active`` lists on the device too: a single-path cell on its fast path masks edges with
        them (it never reads the host lists), so both must say the same."""
        return {k: torch.tensor(v, device=like[k].device) for k, v in active.items()}


# ---------------------------------------------------------------------------------------------
# Selector

_AUTO = ("auto", "on", "off")


@dataclass(frozen=True)
class PTConfig:
    tune_epochs_per_decision: int = 5  # proj_intv in the reference scripts
    tune_steps: int | None = None  # if set: a tuning epoch is exactly this many optimizer steps
    tune_lr: float | None = 0.0025  # weight lr while fine-tuning (0.025 / 10); None keeps the run's lr
    tune_lr_min: float = 0.001
    tune_lr_schedule: str = "constant"  # the reference (both code bases); "cosine": decay to tune_lr_min
    reset_momentum: bool = True
    max_val_batches: int | None = None  # None: the whole validation split per measurement
    criterion: str = "acc"  # "acc" | "loss"
    topology: str = "auto"  # auto: on for spaces keeping 2 inputs per node (DARTS family)
    select_none: str = "auto"  # auto: `none` is a candidate wherever the searched op set has it
    final_epoch: str = "auto"  # auto: tune_epochs = proj_intv*(P-1) + 1 on DARTS spaces, + 0 on NB201

    def __post_init__(self):
        for name in ("topology", "select_none", "final_epoch"):
            if getattr(self, name) not in _AUTO:
                raise ValueError(f"{name} must be one of {', '.join(_AUTO)}, not {getattr(self, name)!r}")
        if self.criterion not in ("acc", "loss"):
            raise ValueError(f"criterion must be 'acc' or 'loss', not {self.criterion!r}")
        if self.tune_lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"tune_lr_schedule must be 'cosine' or 'constant', not {self.tune_lr_schedule!r}")


def _cycle(make):
    while True:
        empty = True
        for b in make():
            empty = False
            yield b
        if empty:
            raise HarnessError("selector 'pt': the data split used for fine-tuning is empty")


class PerturbationSelector:
    """DARTS-PT's perturbation-based selection with fine-tuning between decisions.

    What it needs of the run's optimizer beyond the contract, declared in ``requires`` (checked before a
    run starts): fine-tuning steps go through ``ctx.optimizer.step``; the tuning lr (``tune_lr``, its
    schedule) and the momentum reset reach the weights through the optimizer's ``w_opt`` (a ``torch.optim``
    optimizer, as ``harness.blocks``'s bilevel optimizers have). With ``tune_lr=None`` fine-tuning runs at
    the optimizer's own lr, and any optimizer will do."""

    def __init__(self, config: PTConfig):
        self.config = config
        self.decisions: list[tuple] = []  # ("op", kind, edge, op) / ("drop", kind, edge), in order
        self.decision_epochs: list[int] = []  # the tuning epoch at whose start each point was taken
        self.tuned_epochs = 0

    @property
    def requires(self) -> dict:
        return {"optimizer": ("w_opt",)} if self.config.tune_lr is not None else {}

    # -- measuring ------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, net, ctx: SelectionContext) -> float:
        """Validation accuracy (or minus the loss) of the projected supernet, BN in train mode."""
        device = next(net.parameters()).device
        net.train()
        correct = torch.zeros((), device=device)
        loss = torch.zeros((), device=device)
        n = 0
        batches = ctx.val_batches()
        if self.config.max_val_batches is not None:
            batches = itertools.islice(batches, self.config.max_val_batches)
        for b in batches:
            x, y = b.x.to(device, non_blocking=True), b.y.to(device, non_blocking=True)
            logits = net(x)
            correct += (logits.argmax(dim=1) == y).sum()
            loss += F.cross_entropy(logits, y, reduction="sum")
            n += y.shape[0]
        if n == 0:
            raise HarnessError("selector 'pt' needs validation data, but ctx.val_batches() yielded none")
        return float(correct) / n if self.config.criterion == "acc" else -float(loss) / n

    # -- fine-tuning ----------------------------------------------------------------------------

    def _weight_groups(self, optimizer):
        w_opt = getattr(optimizer, "w_opt", None)
        return w_opt, (w_opt.param_groups if w_opt is not None else [])

    def tune_epoch(self, net, ctx: SelectionContext, epoch: int, total: int):
        """One fine-tuning epoch (or ``tune_steps`` steps) at the tuning lr for ``epoch`` of ``total``."""
        c = self.config
        if c.tune_steps == 0:
            return
        opt = ctx.optimizer
        _, groups = self._weight_groups(opt)
        if c.tune_lr is not None:
            lr = c.tune_lr
            if c.tune_lr_schedule == "cosine":
                lr = c.tune_lr_min + 0.5 * (c.tune_lr - c.tune_lr_min) * (
                    1 + math.cos(math.pi * epoch / max(1, total)))
            for g in groups:
                g["lr"] = lr
        net.train()
        val_stream = _cycle(ctx.val_batches) if opt.needs_val_batch else None
        if c.tune_steps is not None:
            train_iter = itertools.islice(_cycle(ctx.train_batches), c.tune_steps)
        else:
            train_iter = ctx.train_batches()
        for b in train_iter:
            check_stop("DARTS-PT fine-tuning")  # SIGTERM/SIGINT: stop here (the run resumes from the selection's
            opt.step(net, b, next(val_stream) if val_stream is not None else None)  # last checkpoint)
        self.tuned_epochs += 1

    # -- the algorithm --------------------------------------------------------------------------

    def select(self, net, ctx: SelectionContext):
        c = self.config
        space = ctx.space
        base = net.sampler
        resume = ctx.resume
        # resumed: not probed again (a sampling sampler's probe draws from the global generator)
        single_path = resume["single_path"] if resume is not None else base().host_index is not None
        wrapper = ProjectedSampler(base, space, single_path)
        was_training = net.training
        opt = ctx.optimizer
        w_opt, groups = self._weight_groups(opt)
        # the lrs to put back afterwards are the search's, also after a resume (the optimizer's state, restored
        # before, holds the tuning lr)
        saved_lr = list(resume["saved_lr"]) if resume is not None else [g["lr"] for g in groups]
        if resume is None and c.reset_momentum and w_opt is not None and c.tune_lr is not None:
            w_opt.state.clear()
        net.sampler = wrapper
        try:
            return self._select(net, ctx, wrapper, saved_lr)
        finally:
            net.sampler = base
            for g, lr in zip(groups, saved_lr):
                g["lr"] = lr
            net.train(was_training)

    def _select(self, net, ctx, wrapper: ProjectedSampler, saved_lr: list[float]):
        c = self.config
        space = ctx.space
        kinds = tuple(space.cell_kinds)
        derive_keeps_two = space.family == "darts"
        topology = c.topology == "on" or (c.topology == "auto" and derive_keeps_two)
        select_none = c.select_none != "off"  # auto: wherever the searched op set lists `none`
        final_epoch = c.final_epoch == "on" or (c.final_epoch == "auto" and derive_keeps_two)
        multi_input = {k: [n for n in range(space.n_inputs, space.n_inputs + space.n_nodes)
                           if sum(1 for _, d in space.edges if d == n) > 2] for k in kinds}
        n_points = len(space.edges) + (max(len(v) for v in multi_input.values()) if topology else 0)
        intv = c.tune_epochs_per_decision
        total = max(0, intv * (n_points - 1) + (1 if final_epoch else 0)) if intv > 0 else 0
        rng = random.Random(ctx.seed)
        # what is left to decide: the undecided edges per kind, then (drawn when the topology step begins)
        # the multi-input nodes per kind in the order they are pruned
        todo = {"undecided": {k: list(range(len(space.edges))) for k in kinds}, "order": None}
        epoch, point_taken = 0, False  # the next tuning epoch; whether its projection point is taken
        self.decisions, self.decision_epochs, self.tuned_epochs = [], [], 0
        if ctx.resume is not None:  # where the last checkpoint left the selection
            r = ctx.resume
            version, internal, gauss = r["rng"]
            rng.setstate((version, tuple(internal), gauss))
            todo = {"undecided": {k: list(v) for k, v in r["undecided"].items()},
                    "order": None if r["order"] is None else {k: list(v) for k, v in r["order"].items()}}
            wrapper.decided = {k: {int(e): int(o) for e, o in v.items()} for k, v in r["decided"].items()}
            wrapper.dropped = {k: set(v) for k, v in r["dropped"].items()}
            wrapper.changed()
            self.decisions = [tuple(d) for d in r["decisions"]]
            self.decision_epochs, self.tuned_epochs = list(r["decision_epochs"]), r["tuned_epochs"]
            epoch, point_taken = r["epoch"], r["point_taken"]

        def save() -> None:
            """The selection's state offered to the run's checkpoint (``ctx.checkpoint``), after each projection
            point and each tuning epoch."""
            if ctx.checkpoint is None:
                return
            where = (f"DARTS-PT {len(self.decision_epochs)}/{n_points} projection points taken, "
                     f"{epoch}/{total} tuning epochs done")
            own = {"where": where, "single_path": wrapper.single_path, "saved_lr": saved_lr,
                   "rng": list(rng.getstate()), "undecided": todo["undecided"], "order": todo["order"],
                   "decided": wrapper.decided, "dropped": {k: sorted(v) for k, v in wrapper.dropped.items()},
                   "decisions": [list(d) for d in self.decisions], "decision_epochs": self.decision_epochs,
                   "tuned_epochs": self.tuned_epochs, "epoch": epoch, "point_taken": point_taken}
            net.sampler = wrapper.base  # the network's state as the search built it (its keys, no wrapper)
            try:
                ctx.checkpoint(own)
            finally:
                net.sampler = wrapper

        take = functools.partial(self._take_point, net, ctx, wrapper, rng, todo, multi_input, topology, select_none)
        while epoch < total:  # the reference's pt_project loop
            if not point_taken and (epoch % intv == 0 or epoch == total - 1):
                point_taken = True
                if take():
                    self.decision_epochs.append(epoch)
                    save()
            progress.update(epoch=epoch + 1, epochs=total)  # `harness status`: "select epoch 5/81"
            self.tune_epoch(net, ctx, epoch, total)
            epoch, point_taken = epoch + 1, False
            save()
        while take():  # points the schedule left (proj_intv <= 0: decisions back to back)
            self.decision_epochs.append(total)
            save()
        wrapper.changed()
        return space.derive(wrapper.probabilities())

    def _take_point(self, net, ctx, wrapper: ProjectedSampler, rng, todo, multi_input, topology,
                    select_none) -> bool:
        """Takes one projection point's decisions for every cell kind (False when none is left): an edge's op
        while edges are undecided, then, with ``topology``, one node's inputs pruned to 2."""
        space = ctx.space
        kinds = tuple(space.cell_kinds)
        undecided = todo["undecided"]
        if any(undecided.values()):  # operation selection
            for kind in kinds:
                if not undecided[kind]:
                    continue
                e = rng.choice(undecided[kind])
                undecided[kind].remove(e)
                names = space.edge_ops(kind)[e]
                candidates = [k for k, name in enumerate(names) if select_none or name != "none"]
                if not candidates:
                    raise HarnessError(f"selector 'pt': edge {e} of the {kind} cell has no candidate op")
                if len(candidates) == 1:
                    best = candidates[0]
                else:
                    scores = {}
                    for k in candidates:
                        wrapper.mask_op = (kind, e, k)
                        wrapper.changed()
                        scores[k] = self._measure(net, ctx, wrapper)
                    wrapper.mask_op = None
                    best = min(candidates, key=lambda k: scores[k])  # removal hurts most
                wrapper.decided[kind][e] = best
                wrapper.changed()
                self.decisions.append(("op", kind, e, best))
            return True
        if not topology:
            return False
        if todo["order"] is None:  # topology selection: the nodes in random order, drawn once
            todo["order"] = {k: rng.sample(multi_input[k], len(multi_input[k])) for k in kinds}
        order = todo["order"]
        if not any(order.values()):
            return False
        for kind in kinds:
            if not order[kind]:
                continue
            node = order[kind].pop(0)
            edges = [e for e, (_, d) in enumerate(space.edges) if d == node]
            while len(edges) > 2:
                scores = {}
                for e in edges:
                    wrapper.mask_edge = (kind, e)
                    wrapper.changed()
                    scores[e] = self._measure(net, ctx, wrapper)
                wrapper.mask_edge = None
                drop = max(edges, key=lambda e: scores[e])  # removal leaves the best supernet
                edges.remove(drop)
                wrapper.dropped[kind].add(drop)
                wrapper.changed()
                self.decisions.append(("drop", kind, drop))
        return True

    def _measure(self, net, ctx, wrapper) -> float:
        check_stop("DARTS-PT selection")
        wrapper.evaluating = True
        try:
            return self.score(net, ctx)
        finally:
            wrapper.evaluating = False
