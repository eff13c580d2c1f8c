"""beta-DARTS: "beta-DARTS: Beta-Decay Regularization for Differentiable Architecture Search" (Ye, Li, Xu,
Xie, Li, Lin; CVPR 2022), built only on the public contract (``harness.blocks``).

What it is, as the official code does it (Sunshine-Ye/Beta-DARTS @874d00fb, ``optimizers/darts/architect.py``,
the file its README names for "the proposed loss"; read for facts, not copied):

* the architecture step minimises ``L_val + lambda_t * L_beta`` with ``L_beta = mean over the rows (edges) of
  logsumexp(alpha_row)`` (``mlc_loss``): the log of the softmax's normaliser, whose gradient is
  ``softmax(alpha_row) / n_rows``, so it pulls every op's alpha down in proportion to its own weight, the
  "beta decay";
* ``lambda_t = 50 * epoch / 100`` with the 0-based epoch (``_backward_step``: ``weights = 0 + 50*epoch/100``),
  the same constants whatever the search length: 0 to 49.5 over NAS-Bench-201's 100 epochs, to 24.5 over the
  DARTS spaces' 50. Here ``beta_max * epoch / beta_epochs`` with those defaults (``--set optimizer.beta_max=...``);
* everything else is first-order DARTS with quark0/darts settings (``nasbench201/train_search.py``: batch 64,
  lr 0.025 cosine to 0.001, momentum 0.9, weight decay 3e-4, Adam 3e-4 (0.5, 0.999) with 1e-3 decay on alpha,
  architecture step first, 100 epochs on NAS-Bench-201 with C=16, N=5; ``sota/cnn/train_search.py``: 50
  epochs, C=16, 8 cells on the DARTS spaces), and DARTS's argmax / top-2 derivation.

Choice written down: on the DARTS spaces the official ``mlc_loss`` is called on the list of the normal and
reduction alphas; here the mean runs over the rows of every cell kind together (28 edges), which is the same
as applying it to the two matrices stacked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.api import MethodInfo
from harness.blocks import BilevelConfig, FirstOrderBilevel
from harness.plugins import hookimpl

PAPER = ("Ye, Li, Xu, Xie, Li, Lin. beta-DARTS: Beta-Decay Regularization for Differentiable Architecture "
         "Search. CVPR 2022")


@dataclass(frozen=True)
class BetaDecayConfig(BilevelConfig):
    beta_max: float = 50.0  # lambda_t = beta_max * epoch / beta_epochs (official: 50 * epoch / 100)
    beta_epochs: int = 100

    def __post_init__(self):
        super().__post_init__()
        if self.beta_epochs <= 0:
            raise ValueError(f"beta_epochs must be positive, not {self.beta_epochs}")


def beta_decay_loss(alphas) -> torch.Tensor:
    """``L_beta``: the mean over every row (edge) of every alpha matrix of ``logsumexp(row)``."""
    rows = torch.cat([a.reshape(-1, a.shape[-1]) for a in alphas])
    return torch.logsumexp(rows, dim=-1).mean()


class BetaDecayBilevel(FirstOrderBilevel):
    """First-order DARTS whose architecture loss adds ``lambda_t * L_beta`` (see the module docstring)."""

    graph_capturable = True  # lambda_t lives in a device tensor, updated in place in set_progress

    def __init__(self, config: BetaDecayConfig, net, steps_per_epoch: int, epochs: int):
        super().__init__(config, net, steps_per_epoch, epochs)
        device = self.a_params[0].device
        self.beta_weight = torch.zeros((), device=device)

    def beta_weight_at(self, epoch: int) -> float:
        return self.config.beta_max * epoch / self.config.beta_epochs

    def set_progress(self, epoch, total_epochs):
        super().set_progress(epoch, total_epochs)
        self.beta_weight.fill_(self.beta_weight_at(epoch))

    def arch_loss(self, net, batch):
        return super().arch_loss(net, batch) + self.beta_weight * beta_decay_loss(self.a_params)


@hookimpl
def harness_register_optimizers(register):
    register("beta-decay", lambda config, **kw: BetaDecayBilevel(config, **kw), BetaDecayConfig,
             doc="first-order DARTS with beta-decay regularisation of alpha (beta-DARTS)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="beta-darts", sampler="softmax", optimizer="beta-decay", selector="argmax", cell="mixed",
        # the official search scripts: 50 epochs on the DARTS spaces, 100 on NAS-Bench-201, batch 64
        budgets={"paper": {"search": {"epochs": 50, "batch_size": 64}}},
        space_budgets={"nb201": {"paper": {"search": {"epochs": 100, "batch_size": 64}}}},
        # sota/cnn/spaces.py s5, "original DARTS space": PRIMITIVES with 'none' commented out (7 ops)
        op_sets={"darts": "no-none"},
        paper=PAPER,
        doc="beta-DARTS: DARTS (1st order) with the beta-decay regularisation of the architecture parameters",
    ))
