"""DrNAS: "DrNAS: Dirichlet Neural Architecture Search" (Chen, Wang, Cheng, Tang, Hsieh; ICLR 2021), built
only on the public contract (``harness.blocks``).

What it is, as the official code does it (xiangning-chen/DrNAS @f2caa4d, ``DARTS-space/model_search.py``,
``DARTS-space/train_search.py``, ``201-space/train_search.py``, ``utils.py``, ``net2wider.py``; read for facts,
not copied):

* the op weights of every edge are a sample of a Dirichlet distribution with concentration
  ``beta = elu(alpha) + 1``, drawn with the pathwise (implicit reparameterisation) gradient
  (``process_step_vector``: ``Dirichlet(F.elu(x) + 1).rsample()``); one sample per cell kind per forward;
  alpha starts at 1e-3 * randn;
* the regulariser on the concentrations: ``l2`` (the scripts' default: Adam weight decay ``reg_scale = 1e-3``
  on alpha) or ``kl``: ``reg_scale * sum_rows KL(Dir(beta) || Dir(1))`` added to the validation loss
  (``_get_kl_reg``, anchor ``Dirichlet(ones)``). Here both live in the sampler's ``regularization()``:
  ``l2`` as ``reg_scale / 2 * ||alpha||^2``, whose gradient is exactly Adam's weight-decay term, so the
  optimizer's own alpha weight decay is 0;
* derivation: DARTS's rule on ``softmax(alpha)`` restricted to the ops still in the search (``genotype``:
  ``process_step_matrix(alpha, 'softmax', mask)``); 7 ops, no ``none`` (``DARTS-space/genotypes.py``);
* the progressive search on the DARTS space (``DARTS-space/train_search.py``): two stages of 25 epochs; the
  first with partial channels ``K = 6`` and all 7 ops, the second with ``K = 4`` and the 4 ops of largest
  alpha per edge (``prune``: the others masked out of the sample, which is renormalised, and the kept alphas
  keep their values, the rest set to 0); between them the ops are widened from C/6 to C/4 channels by
  copying random existing channels (``net2wider.py``) and a new SGD takes over the cosine schedule; the
  architecture is not updated in the first 10 epochs of each stage (``if epoch >= 10`` on the stage's epoch).
  SGD lr 0.1 cosine to 0, momentum 0.9, weight decay 3e-4, Adam lr 6e-4 betas (0.5, 0.999), batch 64, and the
  search runs at the evaluation size, C=36 with 20 cells (the script's defaults);
* on NAS-Bench-201 (``201-space/train_search.py``, the README's default search): no stages, no partial
  channels (``--k 1``), 100 epochs, batch 64, lr 0.025 cosine to 0.001, Adam lr 3e-4, no warm-up.

Choices written down:

* stages split the search evenly (25 + 25 of 50) and the warm-up is counted on a 25-epoch stage
  (``warmup_epochs * stage_length // 25``), so a short search still updates alpha;
* ``K`` must divide every cell's channel count (the channel shuffle needs it, as in the official code):
  C=36 at the paper's size; the ``smoke`` and ``quick`` presets, whose supernets are 4 and 16 channels wide,
  use ``K = 2 -> 1`` and ``4 -> 2``;
* widening copies random existing channels as net2wider does, one draw per op and width so a conv's copied
  output channels and the BatchNorm after it agree; the new SGD carries every tensor's momentum over, a
  widened tensor's widened with the same channel copies (net2wider's ``configure_optimizer``);
* pruned ops are skipped, as the official MixedOp does (``if not w == 0``), but decided on the host once per
  stage from the masks rather than by reading every weight per forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.api import ArchWeights, MethodInfo, Reported
from harness.blocks import AlphaSampler, BilevelConfig, FirstOrderBilevel, PartialMixedBody
from harness.plugins import hookimpl

PAPER = "Chen, Wang, Cheng, Tang, Hsieh. DrNAS: Dirichlet Neural Architecture Search. ICLR 2021"
REGS = ("l2", "kl")


@dataclass(frozen=True)
class DirichletConfig:
    init_scale: float = 1e-3
    reg: str = "l2"  # --reg_type
    reg_scale: float = 1e-3  # --reg_scale

    def __post_init__(self):
        if self.reg not in REGS:
            raise ValueError(f"reg must be one of {', '.join(REGS)}, not {self.reg!r}")


def dirichlet_kl_to_uniform(concentration: torch.Tensor) -> torch.Tensor:
    """sum over rows of KL(Dir(c_row) || Dir(1, ..., 1)). Unvalidated (``concentration`` is elu + 1 > 0): torch's
    check reads the device on the host (a sync; refused in a CUDA graph capture)."""
    anchor = torch.distributions.Dirichlet(torch.ones_like(concentration), validate_args=False)
    return torch.distributions.kl_divergence(torch.distributions.Dirichlet(concentration, validate_args=False),
                                             anchor).sum()


class DirichletSampler(AlphaSampler):
    """Op weights ~ Dirichlet(elu(alpha) + 1) per edge (pathwise gradient), optionally masked to the ops
    a progressive stage keeps (``mask[kind]``, a persistent buffer: a checkpoint carries it)."""

    # the Dirichlet draw from the device's random stream; the masks change only at a stage boundary, in the
    # optimizer's set_progress (the host flag ``_pruned`` is read back only after a checkpoint load, in an
    # uncaptured warm-up step)
    graph_capturable = True

    def __init__(self, config: DirichletConfig, space):
        super().__init__(config, space)
        for kind, a in self.alphas.items():
            self.register_buffer(f"mask_{kind}", torch.ones_like(a, dtype=torch.bool))
        self._pruned: bool | None = False  # host copy of "some op is masked" (None: read the masks once)

    def mask(self, kind: str) -> torch.Tensor:
        return getattr(self, f"mask_{kind}")

    def concentration(self, alpha):
        return F.elu(alpha) + 1

    def _masked(self, kind, weights):
        if self._pruned is None:  # after a checkpoint was loaded: one read of the masks, not one per forward
            self._pruned = not all(bool(self.mask(k).all()) for k in self.alphas)
        if not self._pruned:
            return weights
        weights = weights * self.mask(kind)
        return weights / weights.sum(-1, keepdim=True)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._pruned = None

    def forward(self) -> ArchWeights:
        # validate_args=False: torch's check that the concentration is positive (elu + 1 is, by construction)
        # reads the device on the host, a sync per forward on a GPU and what a CUDA graph capture refuses
        return ArchWeights({kind: self._masked(kind, torch.distributions.Dirichlet(
            self.concentration(a), validate_args=False).rsample()) for kind, a in self.alphas.items()})

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {kind: self._masked(kind, F.softmax(a.detach(), -1)) for kind, a in self.alphas.items()}

    def transform(self, alpha):
        return F.softmax(alpha, -1)

    def regularization(self):
        c = self.config
        if c.reg == "kl":
            return c.reg_scale * sum(dirichlet_kl_to_uniform(self.concentration(a)) for a in self.alphas.values())
        return c.reg_scale / 2 * sum((a * a).sum() for a in self.alphas.values())

    @torch.no_grad()
    def prune(self, keep: int) -> None:
        """Keep the ``keep`` ops of largest alpha among those still kept, per edge (official ``prune``)."""
        for kind, a in self.alphas.items():
            m = self.mask(kind)
            ranked = a.masked_fill(~m, float("-inf"))
            top = ranked.topk(min(keep, a.shape[-1]), dim=-1)
            a.copy_(torch.zeros_like(a).scatter(-1, top.indices, top.values))
            m.copy_(torch.zeros_like(m).scatter(-1, top.indices, True))
        self._pruned = None


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, not {text!r}") from None
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must hold positive integers, not {text!r}")
    return values


@dataclass(frozen=True)
class ProgressiveConfig(BilevelConfig):
    lr: float = 0.1
    lr_min: float = 0.0
    arch_lr: float = 6e-4
    arch_weight_decay: float = 0.0  # the l2 regulariser is the sampler's (see the module docstring)
    k_schedule: str = "6,4"  # partial channel K per stage (the number of stages)
    keep_ops: str = "4"  # ops kept per edge at the start of each later stage
    warmup_epochs: int = 10  # per stage
    warmup_reference: int = 25  # warmup_epochs is counted on a stage this long (0: as is)

    def __post_init__(self):
        super().__post_init__()
        ks, keep = _ints(self.k_schedule, "k_schedule"), _ints(self.keep_ops, "keep_ops")
        if not ks:
            raise ValueError("k_schedule needs at least one stage")
        if len(keep) != len(ks) - 1:
            raise ValueError(f"keep_ops needs one entry per stage after the first ({len(ks) - 1}), "
                             f"not {self.keep_ops!r}")

    @property
    def stages(self) -> tuple[int, ...]:
        return _ints(self.k_schedule, "k_schedule")

    @property
    def keeps(self) -> tuple[int, ...]:
        return _ints(self.keep_ops, "keep_ops")


class ProgressiveBilevel(FirstOrderBilevel):
    """First-order DARTS run in stages: at each stage boundary the sampler prunes to the stage's ops and
    every partial-channel cell widens to the stage's K; the weight optimizer is rebuilt over the new
    tensors. The architecture waits a warm-up at the start of every stage."""

    # the network's tensors, the op set and the weight optimizer change only at a stage boundary, in set_progress,
    # where GraphedStep drops its graph: the next capture takes the new tensors and the new SGD
    graph_capturable = True

    def __init__(self, config: ProgressiveConfig, net, steps_per_epoch: int, epochs: int):
        super().__init__(config, net, steps_per_epoch, epochs)
        self.stage = -1  # the stage whose K and op set the network has now (-1: not yet set)

    def stage_at(self, epoch: int, total_epochs: int) -> tuple[int, int, int]:
        """(stage, its first epoch, its length) of ``epoch``: the search split evenly into the stages."""
        n = len(self.config.stages)
        stage = min(n - 1, epoch * n // max(1, total_epochs))
        first = -(-stage * total_epochs // n)  # the first epoch e with e * n // total == stage
        following = -(-(stage + 1) * total_epochs // n) if stage + 1 < n else total_epochs
        return stage, first, following - first

    def _enter(self, stage: int) -> None:
        c = self.config
        if stage > 0:
            self.net.sampler.prune(c.keeps[stage - 1])
        k = c.stages[stage]
        carried: dict[int, tuple] = {}
        for module in list(self.net.modules()):
            if isinstance(module, PartialMixedBody) and module.k != k:
                carried.update(module.set_partial(k))
        if carried:
            self._rebuild_weight_optimizer(carried)
        self._run_only_kept_ops()
        self.stage = stage

    def _run_only_kept_ops(self) -> None:
        """Pruned ops have weight 0: the cells skip them (official MixedOp: ``if not w == 0``), decided on
        the host once per stage from the sampler's masks."""
        sampler = self.net.sampler
        if not hasattr(sampler, "mask"):
            return
        for module in self.net.modules():
            if isinstance(module, PartialMixedBody):
                mask = sampler.mask(module.kind)
                module.set_active_ops(None if bool(mask.all()) else mask.tolist())

    def _rebuild_weight_optimizer(self, carried: dict[int, tuple] | None = None) -> None:
        """A new SGD over the network's weights now; each tensor keeps its momentum, a widened one gets its
        old tensor's momentum widened the same way (net2wider.py ``configure_optimizer``)."""
        old, lr = self.w_opt, self.lr
        self.w_params = self.net.weight_parameters()
        c = self.config
        self.w_opt = torch.optim.SGD(self.w_params, lr=lr, momentum=c.momentum, weight_decay=c.weight_decay,
                                     nesterov=c.nesterov)
        for p in self.w_params:
            if p in old.state:
                self.w_opt.state[p] = old.state[p]
            elif carried and id(p) in carried:
                before, widen = carried[id(p)]
                buf = old.state.get(before, {}).get("momentum_buffer")
                if buf is not None:
                    self.w_opt.state[p] = {"momentum_buffer": widen(buf)}

    def set_progress(self, epoch, total_epochs):
        stage, first, length = self.stage_at(epoch, total_epochs)
        for s in range(self.stage + 1, stage + 1):
            self._enter(s)
        super().set_progress(epoch, total_epochs)
        c = self.config
        warmup = c.warmup_epochs * length // c.warmup_reference if c.warmup_reference else c.warmup_epochs
        self.arch_enabled = epoch - first >= warmup

    # a checkpoint: the net (with its K and masks) is loaded first, so the optimizer is rebuilt over its tensors
    def state_dict(self) -> dict:
        return {"stage": self.stage, "arch_enabled": self.arch_enabled, "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.stage = state["stage"]
        self._rebuild_weight_optimizer()
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.arch_enabled = state["arch_enabled"]
        self._run_only_kept_ops()


REPORTED = (
    Reported("darts", "cifar10", "test_error", 2.46,
             "DrNAS authors' README (xiangning-chen/DrNAS @f2caa4d README.MD, 'On DARTS Space (CIFAR-10)', "
             "row 'DrNAS (ours)')", std=0.03, aggregation="mean-std", note="4.1M params, 0.6 GPU-days"),
    *(Reported("nb201", ds, "test_accuracy", mean,
               "DrNAS authors' README (xiangning-chen/DrNAS @f2caa4d README.MD, 'On NAS-Bench-201', "
               "row 'DrNAS (ours)')", std=0.0, aggregation="mean-std")
      for ds, mean in (("cifar10", 94.36), ("cifar100", 73.51), ("imagenet16-120", 46.34))),
)

# 201-space/train_search.py: no stages, K=1, 100 epochs, lr 0.025 -> 0.001, Adam 3e-4, no warm-up
NB201 = {"optimizer": {"lr": 0.025, "lr_min": 0.001, "arch_lr": 3e-4, "k_schedule": "1", "keep_ops": "",
                       "warmup_epochs": 0},
         "cell": {"k": 1}}


@hookimpl
def harness_register_samplers(register):
    register("dirichlet", lambda config, space: DirichletSampler(config, space), DirichletConfig,
             doc="op weights ~ Dirichlet(elu(alpha) + 1), pathwise gradients, l2 or KL regulariser (DrNAS)")


@hookimpl
def harness_register_optimizers(register):
    register("progressive", lambda config, **kw: ProgressiveBilevel(config, **kw), ProgressiveConfig,
             doc="first-order DARTS in stages: prune ops and widen partial channels between them (DrNAS)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="drnas", sampler="dirichlet", optimizer="progressive", selector="argmax", cell="partial",
        defaults={"cell": {"k": 6}},
        space_defaults={"nb201": NB201},
        budgets={"paper": {"search": {"epochs": 50, "batch_size": 64, "channels": 36, "layers": 20}},
                 # the reduced presets' supernets are 4 and 16 channels wide: K must divide them
                 "smoke": {"cell": {"k": 2}, "optimizer": {"k_schedule": "2,1"}},
                 "quick": {"cell": {"k": 4}, "optimizer": {"k_schedule": "4,2"}}},
        space_budgets={"nb201": {"paper": {"search": {"epochs": 100, "batch_size": 64, "channels": 16,
                                                      "layers": 5}},
                                 "smoke": {"cell": {"k": 1}, "optimizer": {"k_schedule": "1", "keep_ops": ""}},
                                 "quick": {"cell": {"k": 1}, "optimizer": {"k_schedule": "1", "keep_ops": ""}}}},
        op_sets={"darts": "no-none"},  # DARTS-space/genotypes.py PRIMITIVES: 'none' commented out
        paper=PAPER,
        reported=REPORTED,
        doc="DrNAS: Dirichlet op weights (pathwise gradients) with progressive partial channels and op pruning",
    ))
