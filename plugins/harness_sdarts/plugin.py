"""SDARTS: "Stabilizing Differentiable Architecture Search via Perturbation-based Regularization" (Chen, Hsieh;
ICML 2020), built only on the public contract (``harness.blocks``).

What it is, as the official code does it (xiangning-chen/SmoothDARTS @HEAD: ``sota/cnn/train_search.py``,
``sota/cnn/model_search.py``, ``attacker/perturb.py``, ``attacker/linf_sgd.py``; read for facts, not copied):

* the architecture step is DARTS's, on the unperturbed alpha (``architect.step`` runs first);
* the weight step then runs on perturbed weights: alpha is replaced by softmax(alpha)
  (``softmax_arch_parameters``), perturbed, passed to the network as the op weights directly
  (``updateType='weight'``: no second softmax), and restored afterwards;
* every perturbation ends with ``clip``: each row clamped to [0, 1], a row that became all zeros gets 1 at its
  largest entry (taken before the clamp), then the row is divided by its sum (back on the simplex);
* SDARTS-RS (``Random_alpha``): add U(-eps, eps) to every entry, then clip;
* SDARTS-ADV (``Linf_PGD_alpha``): with the network in eval mode, a random start as RS, then 7 steps of
  ``w += (2 eps / 7) * sign(grad of the training loss)`` (``Linf_SGD`` on the negated loss), each projected
  back into the eps-box around softmax(alpha) and clipped; if the training loss with the result is lower than
  without perturbation, the perturbation is dropped (``loss_before > loss_after``: restore);
* eps grows linearly over the search: ``0.03 + (eps_max - 0.03) * epoch / epochs``, eps_max 0.3;
* the rest is first-order DARTS (``--unrolled`` off by default): batch 64, lr 0.025 cosine to 0.001, 50 epochs
  on the DARTS spaces, 100 on NAS-Bench-201 (``nasbench201/train_search.py``).

The base weights are the sampler's deterministic probabilities (``probabilities()``: softmax(alpha) for the
softmax sampler SDARTS uses); the perturbed ones reach the network as an explicit ``ArchWeights``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.api import ArchWeights, Batch, MethodInfo, Reported
from harness.blocks import BilevelConfig, FirstOrderBilevel, clip_grad_norm
from harness.plugins import hookimpl

PAPER = ("Chen, Hsieh. Stabilizing Differentiable Architecture Search via Perturbation-based Regularization. "
         "ICML 2020")
PERTURBATIONS = ("random", "adversarial")


@dataclass(frozen=True)
class SmoothConfig(BilevelConfig):
    perturb: str = "random"  # random (SDARTS-RS) | adversarial (SDARTS-ADV)
    epsilon: float = 0.3  # eps_max (official --epsilon_alpha)
    epsilon_min: float = 0.03  # eps at the first epoch
    pgd_steps: int = 7

    def __post_init__(self):
        super().__post_init__()
        if self.perturb not in PERTURBATIONS:
            raise ValueError(f"perturb must be one of {', '.join(PERTURBATIONS)}, not {self.perturb!r}")
        if self.pgd_steps < 1:
            raise ValueError(f"pgd_steps must be at least 1, not {self.pgd_steps}")


def clip_rows(w: torch.Tensor) -> torch.Tensor:
    """SDARTS's ``clip``: rows clamped to [0, 1]; an all-zero row becomes one-hot at its pre-clamp argmax;
    then each row divided by its sum. Pure tensor ops, no host read on any device (``F.one_hot`` checks its
    indices' range on the host everywhere but on CUDA: a scatter does not)."""
    top = torch.zeros_like(w).scatter_(-1, w.argmax(dim=-1, keepdim=True), 1.0)
    c = w.clamp(0.0, 1.0)
    c = torch.where((c.sum(dim=-1, keepdim=True) == 0), top, c)
    return c / c.sum(dim=-1, keepdim=True)


class SmoothBilevel(FirstOrderBilevel):
    """First-order DARTS whose weight step sees perturbed weights (see the module docstring)."""

    # RS: uniform noise from the device's random stream; ADV: its PGD steps, the loss comparison and the
    # restore are device tensors (torch.where, no host read); epsilon is a device tensor filled in set_progress.
    # Checked by harness.testing.replay_checked (tests/test_graphs.py): every replay dispatches the capture's
    # operators and host values, and reads nothing on the host
    graph_capturable = True

    def __init__(self, config: SmoothConfig, net, steps_per_epoch: int, epochs: int):
        super().__init__(config, net, steps_per_epoch, epochs)
        self.epsilon = torch.tensor(config.epsilon_min, device=self.a_params[0].device)

    def epsilon_at(self, epoch: int) -> float:
        c = self.config
        return c.epsilon_min + (c.epsilon - c.epsilon_min) * epoch / max(1, self.epochs)

    def set_progress(self, epoch, total_epochs):
        super().set_progress(epoch, total_epochs)
        self.epsilon.fill_(self.epsilon_at(epoch))

    def _random(self, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: clip_rows(w + (torch.rand_like(w) * 2 - 1) * self.epsilon) for k, w in base.items()}

    @torch.no_grad()
    def _loss(self, net, batch: Batch, weights) -> torch.Tensor:
        return F.cross_entropy(net(batch.x, arch=ArchWeights(weights=weights)), batch.y)

    def _adversarial(self, net, batch: Batch, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        was_training = net.training
        net.eval()
        eps, step = self.epsilon, 2 * self.epsilon / self.config.pgd_steps
        before = self._loss(net, batch, base)
        w = self._random(base)
        for _ in range(self.config.pgd_steps):
            w = {k: v.detach().requires_grad_(True) for k, v in w.items()}
            loss = F.cross_entropy(net(batch.x, arch=ArchWeights(weights=w)), batch.y)
            grads = torch.autograd.grad(loss, list(w.values()))
            with torch.no_grad():
                w = {k: clip_rows(base[k] + (v + step * g.sign() - base[k]).clamp(-eps, eps))
                     for (k, v), g in zip(w.items(), grads)}
        after = self._loss(net, batch, w)
        keep = after >= before  # official: restore when loss_before > loss_after
        w = {k: torch.where(keep, v, base[k]) for k, v in w.items()}
        net.train(was_training)
        return w

    def perturbed(self, net, batch: Batch) -> dict[str, torch.Tensor]:
        """The weights the weight step uses for ``batch``."""
        base = {k: p.detach() for k, p in net.sampler.probabilities().items()}
        if self.config.perturb == "adversarial":
            return self._adversarial(net, batch, base)
        with torch.no_grad():
            return self._random(base)

    def weight_step(self, net, train: Batch):
        weights = self.perturbed(net, train)
        self.w_opt.zero_grad(set_to_none=True)
        logits = net(train.x, arch=ArchWeights(weights=weights))
        loss = F.cross_entropy(logits, train.y)
        loss.backward(inputs=self.w_params)
        clip_grad_norm(self.w_params, self.config.grad_clip)
        self.w_opt.step()
        return loss.detach(), (logits.detach().argmax(dim=1) == train.y).sum()


@hookimpl
def harness_register_optimizers(register):
    register("smooth", lambda config, **kw: SmoothBilevel(config, **kw), SmoothConfig,
             doc="first-order DARTS whose weight step sees randomly or adversarially perturbed weights (SDARTS)")


REPORTED = {
    "sdarts-rs": (),
    "sdarts-adv": (
        Reported("darts", "cifar10", "test_error", 2.61,
                 "as quoted in ROME (seed 000) Table 4, second block, row 'SDARTS-ADV [6]'", std=0.02,
                 aggregation="mean-std", note="ROME Table 4: the second block averages independent searches; "
                 "3.3M params, 1.3 GPU-days"),
    ),
}


@hookimpl
def harness_register_methods(register):
    for name, perturb, doc in (("sdarts-rs", "random", "SDARTS-RS: random smoothing of the weights in the weight step"),
                               ("sdarts-adv", "adversarial", "SDARTS-ADV: PGD-perturbed weights in the weight step")):
        register(MethodInfo(
            name=name, sampler="softmax", optimizer="smooth", selector="argmax", cell="mixed",
            defaults={"optimizer": {"perturb": perturb}},
            budgets={"paper": {"search": {"epochs": 50, "batch_size": 64}}},
            space_budgets={"nb201": {"paper": {"search": {"epochs": 100, "batch_size": 64}}}},
            # sota/cnn/spaces.py s5, "original DARTS space": PRIMITIVES with 'none' commented out (7 ops)
            op_sets={"darts": "no-none"},
            paper=PAPER, doc=doc, reported=REPORTED[name],
        ))
