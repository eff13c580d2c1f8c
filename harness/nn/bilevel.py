"""Bilevel optimizers several methods share (moved from the darts plugin, issue 14): DARTS's alternating
first-order step and its unrolled second-order step, with the quark0/darts settings as defaults (SPEC-FACTS
§2.5). A plugin's own optimizer subclasses these from here (``harness.blocks``), never from another plugin."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import Batch, StepStats


@dataclass(frozen=True)
class BilevelConfig:
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = False
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    order: str = "arch-first"  # quark0/darts: arch step, then weight step; xautodl: "weight-first"
    warmup_epochs: int = 0  # epochs with no arch update (PC-DARTS uses 15)

    def __post_init__(self):
        if self.order not in ("arch-first", "weight-first"):
            raise ValueError(f"order must be 'arch-first' or 'weight-first', not {self.order!r}")


def fill_unused_grads(params) -> None:
    """Give every weight no path of this step used a zero gradient (None after ``zero_grad``), so that SGD's
    weight decay and momentum apply to every weight of the supernet at every step, as in the reference
    code: ``optimizer.zero_grad()`` there (PyTorch 1.x) leaves zeros, not None, so xautodl's GDAS decays
    and moves an op's weights on steps that did not sample it (issue 17). It also makes a single-path
    cell's eager path (unchosen ops are not in the graph) and its fast path (every op runs, the unchosen
    ones weighted by exact zeros) the same optimizer step. A host-side check of ``.grad is None``: no sync.

    Each weight's zero gradient is made once (views of one buffer) and kept on the parameter; a step zeroes
    the ones it hands out in one multi-tensor call (the optimizer may have scaled them in place since) and
    assigns them: no allocation and no operator call per weight, where a DARTS-space single-path step
    leaves about 1,200 weights without a gradient and a launch-bound GPU step pays for every host call."""
    missing = [p for p in params if p.grad is None]
    if not missing:
        return
    fresh: dict[tuple, list] = {}
    kept = []
    for p in missing:
        z = p.__dict__.get(_ZERO_GRAD)
        if z is None or z.shape != p.shape:
            fresh.setdefault((p.device, p.dtype), []).append(p)
        else:
            kept.append(z)
    if kept:
        torch._foreach_zero_(kept)
    for (device, dtype), ps in fresh.items():  # first use (or a reshaped weight): one buffer, one fill
        sizes = [p.numel() for p in ps]
        for p, piece in zip(ps, torch.zeros(sum(sizes), device=device, dtype=dtype).split(sizes)):
            p.__dict__[_ZERO_GRAD] = piece.view(p.shape)
    for p in missing:
        try:
            p.grad = p.__dict__[_ZERO_GRAD]
        except RuntimeError:  # the weight moved to another device or dtype since: a zero of its own
            p.__dict__[_ZERO_GRAD] = torch.zeros_like(p)
            p.grad = p.__dict__[_ZERO_GRAD]


_ZERO_GRAD = "_harness_zero_grad"  # a parameter's zero gradient, kept by fill_unused_grads


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` (the 2-norm over every gradient, each scaled by
    min(max_norm / (norm + 1e-6), 1)), the same operations on the multi-tensor path, without the host call
    per gradient that torch's makes (``norm.to(first_device)`` for each of a supernet's ~1,400 gradients,
    torch 2.x's ``get_total_norm``). Gradients on several devices go to torch's function (nothing is changed
    before that: the in-place scaling comes last)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    try:
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    except RuntimeError:  # not one device (checking each gradient first would cost what this saves)
        return nn.utils.clip_grad_norm_(params, max_norm)
    torch._foreach_mul_(grads, torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))
    return total


def _accuracy_count(logits, y):
    return (logits.argmax(dim=1) == y).sum()


class FirstOrderBilevel:
    """Alternating first-order DARTS: the arch gradient is d L_val(w, alpha) / d alpha at the current w.

    The weight lr follows a cosine from ``lr`` to ``lr_min`` over the search epochs (set per epoch)."""

    needs_val_batch = True
    # host-side state (lr, arch_enabled) changes only in set_progress; no syncs in the step
    graph_capturable = True

    def __init__(self, config: BilevelConfig, net, steps_per_epoch: int, epochs: int):
        self.config = config
        self.net = net
        self.epochs = epochs
        self.w_params = net.weight_parameters()
        self.a_params = net.sampler.arch_parameters()
        self.w_opt = torch.optim.SGD(self.w_params, lr=config.lr, momentum=config.momentum,
                                     weight_decay=config.weight_decay, nesterov=config.nesterov)
        self.a_opt = torch.optim.Adam(self.a_params, lr=config.arch_lr,
                                      betas=(config.arch_beta1, config.arch_beta2),
                                      weight_decay=config.arch_weight_decay)
        self.arch_enabled = True

    def lr_at(self, epoch: int) -> float:
        c = self.config
        return c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + math.cos(math.pi * epoch / max(1, self.epochs)))

    def set_progress(self, epoch, total_epochs):
        for group in self.w_opt.param_groups:
            group["lr"] = self.lr_at(epoch)
        self.arch_enabled = epoch >= self.config.warmup_epochs

    @property
    def lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    def arch_loss(self, net, batch: Batch):
        loss = F.cross_entropy(net(batch.x), batch.y)
        reg = net.sampler.regularization()
        return loss if reg is None else loss + reg

    def arch_step(self, net, val: Batch):
        self.a_opt.zero_grad(set_to_none=True)
        loss = self.arch_loss(net, val)
        # only alpha's gradient is used: no weight-gradient kernels (the conv grad-weight passes)
        loss.backward(inputs=self.a_params)
        self.a_opt.step()
        return loss.detach()

    def weight_step(self, net, train: Batch):
        self.w_opt.zero_grad(set_to_none=True)
        logits = net(train.x)
        loss = F.cross_entropy(logits, train.y)
        loss.backward(inputs=self.w_params)  # alpha's gradient here would be discarded
        fill_unused_grads(self.w_params)
        clip_grad_norm(self.w_params, self.config.grad_clip)
        self.w_opt.step()
        return loss.detach(), _accuracy_count(logits.detach(), train.y)

    def step(self, net, train: Batch, val: Batch | None) -> StepStats:
        val_loss = None
        if self.config.order == "arch-first" and self.arch_enabled:
            val_loss = self.arch_step(net, val)
        train_loss, correct = self.weight_step(net, train)
        if self.config.order == "weight-first" and self.arch_enabled:
            val_loss = self.arch_step(net, val)
        # the weight step must not leave arch grads behind for the next arch step
        return StepStats(train_loss, val_loss, correct, n=train.y.shape[0])


class SecondOrderBilevel(FirstOrderBilevel):
    """Unrolled DARTS (quark0/darts architect.py): one virtual SGD step w' = w - lr (m*buf + g + wd*w)
    on the train batch, then dalpha = grad_alpha L_val(w') - lr * H, where the Hessian-vector
    product H = (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2 eps), w+- = w +- eps dw',
    eps = 0.01 / ||dw'|| (finite differences)."""

    graph_capturable = True  # eps and every scale stay on the device; lr changes only in set_progress

    def _loss(self, net, batch: Batch):
        return F.cross_entropy(net(batch.x), batch.y)

    @torch.no_grad()
    def _add_(self, vectors, scale: torch.Tensor):
        """w += scale * v with a device-tensor scale (no host sync)."""
        torch._foreach_add_(self.w_params, torch._foreach_mul(vectors, scale))

    def arch_step(self, net, val: Batch):
        c = self.config
        eta = self.lr
        train = self._pending_train
        # virtual step
        loss = self._loss(net, train)
        grads = torch.autograd.grad(loss, self.w_params, allow_unused=True)
        grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, self.w_params)]
        with torch.no_grad():
            moment = []
            for p in self.w_params:
                buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
                moment.append(buf * c.momentum if buf is not None else torch.zeros_like(p))
            step = [m + g + c.weight_decay * p for m, g, p in zip(moment, grads, self.w_params)]
            backup = [p.detach().clone() for p in self.w_params]
            torch._foreach_add_(self.w_params, step, alpha=-eta)
        # gradients at w'
        val_loss = self.arch_loss(net, val)
        dalpha = torch.autograd.grad(val_loss, self.a_params, retain_graph=True, allow_unused=True)
        dw = torch.autograd.grad(val_loss, self.w_params, allow_unused=True)
        dw = [g if g is not None else torch.zeros_like(p) for g, p in zip(dw, self.w_params)]
        with torch.no_grad():
            for p, b in zip(self.w_params, backup):
                p.copy_(b)
            eps = 0.01 / torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in dw]))
            self._add_(dw, eps)
        g_pos = torch.autograd.grad(self._loss(net, train), self.a_params, allow_unused=True)
        with torch.no_grad():
            self._add_(dw, -2 * eps)
        g_neg = torch.autograd.grad(self._loss(net, train), self.a_params, allow_unused=True)
        with torch.no_grad():
            self._add_(dw, eps)
        self.a_opt.zero_grad(set_to_none=True)
        for a, da, gp, gn in zip(self.a_params, dalpha, g_pos, g_neg):
            da = torch.zeros_like(a) if da is None else da
            hvp = (gp - gn) / (2 * eps) if gp is not None else torch.zeros_like(a)
            a.grad = da - eta * hvp
        self.a_opt.step()
        return val_loss.detach()

    def step(self, net, train: Batch, val: Batch | None) -> StepStats:
        self._pending_train = train
        try:
            return super().step(net, train, val)
        finally:
            self._pending_train = None


@dataclass(frozen=True)
class SingleLevelConfig(BilevelConfig):
    """:class:`BilevelConfig` for :class:`SingleLevel` (``order`` has no meaning there: one loss, one backward)."""

    data: str = "half"  # "half": the weight half of the search split; "full": both halves (see SingleLevel)
    arch_grad_clip: float | None = None  # clip alpha's gradient norm too (SNAS: 10); None: no clip

    def __post_init__(self):
        super().__post_init__()
        if self.data not in ("half", "full"):
            raise ValueError(f"data must be 'half' or 'full', not {self.data!r}")


class SingleLevel(FirstOrderBilevel):
    """w and alpha descend the gradient of one training loss, computed once per step (Single-DARTS Eq. 16;
    SNAS's joint update): one forward and one backward of cross-entropy (plus the sampler's
    regularization, if any), then the weight optimizer (SGD, cosine lr, grad-norm clip on the weights)
    and the architecture optimizer (Adam; its own clip if ``arch_grad_clip``) both step on those gradients.

    ``data="half"`` steps on the weight half of the search split only (the images DARTS trains its weights
    on); ``data="full"`` also takes a step on a batch of the other half after each, so an epoch covers the
    whole training set once (SNAS trains on all of it)."""

    needs_val_batch = False
    graph_capturable = True  # as FirstOrderBilevel: host-side state changes only in set_progress

    def __init__(self, config: SingleLevelConfig, net, steps_per_epoch: int, epochs: int):
        super().__init__(config, net=net, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self.needs_val_batch = config.data == "full"  # the other half's batches, stepped on the same way

    def step(self, net, train: Batch, val: Batch | None = None) -> StepStats:
        stats = self._single_step(net, train)
        if self.config.data == "full" and val is not None:
            other = self._single_step(net, val)
            return StepStats((stats.train_loss * stats.n + other.train_loss * other.n) / (stats.n + other.n),
                             None, stats.train_correct + other.train_correct, n=stats.n + other.n)
        return stats

    def _single_step(self, net, train: Batch) -> StepStats:
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        logits = net(train.x)
        loss = F.cross_entropy(logits, train.y)
        reg = net.sampler.regularization()
        total = loss if reg is None else loss + reg
        total.backward()
        clip_grad_norm(self.w_params, self.config.grad_clip)
        self.w_opt.step()
        if self.arch_enabled:
            if self.config.arch_grad_clip is not None:
                clip_grad_norm(self.a_params, self.config.arch_grad_clip)
            self.a_opt.step()
        return StepStats(loss.detach(), None, _accuracy_count(logits.detach(), train.y), n=train.y.shape[0])
