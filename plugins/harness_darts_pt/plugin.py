"""Hook implementations of the DARTS-PT plugin.

Supernet phase: unchanged first-order DARTS with DARTS's settings on every space (darts-pt's own NB201
code uses the same optimisers, not xautodl's). The paper trains the supernet 50 epochs on DARTS spaces
and 100 on NB201 (``space_budgets``).
"""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness.blocks import BilevelConfig
from harness_darts_pt.components import (
    FixedUniformConfig, FixedUniformSampler, FrozenArchFirstOrder, PerturbationSelector, PTConfig,
)
from harness_darts_pt.reported import REPORTED

PAPER = "Wang, Cheng, Chen, Tang, Hsieh. Rethinking Architecture Selection in Differentiable NAS. ICLR 2021"
NB201_BUDGETS = {"paper": {"search": {"epochs": 100}}}
BUDGETS = {"paper": {"search": {"epochs": 50, "batch_size": 64}}}
# the selector's own smoke settings (with darts-pt and wherever `--selector pt` swaps it in): a one-step
# tuning epoch per decision interval and one measurement batch, so every part of the selection (op
# decisions, topology, fine-tuning) runs, in seconds
PT_PRESETS = {"smoke": {"tune_epochs_per_decision": 1, "tune_steps": 1, "max_val_batches": 1}}
# darts-pt's DARTS space ("s5" in sota/cnn/spaces.py) has the 7 ops without `none` (SPEC-FACTS §1.3;
# paper appendix A.1.1: "we omit none op when applying the proposed selection method on DARTS")
OP_SETS = {"darts": "no-none"}


@hookimpl
def harness_register_samplers(register):
    register("fixed-uniform", lambda config, space: FixedUniformSampler(config, space), FixedUniformConfig,
             doc="uniform softmax of a never-trained alpha (DARTS-PT fixed-alpha / 'blank' supernet)")


@hookimpl
def harness_register_optimizers(register):
    register("frozen-arch", lambda config, **kw: FrozenArchFirstOrder(config, **kw), BilevelConfig,
             doc="first-order DARTS that skips the arch step (and draws no val batch) for a frozen sampler")


@hookimpl
def harness_register_selectors(register):
    register("pt", lambda config: PerturbationSelector(config), PTConfig, presets=PT_PRESETS,
             doc="perturbation-based selection: per edge keep the op whose removal hurts validation "
                 "accuracy most, fine-tuning between decisions; then prune to 2 inputs per node (DARTS-PT)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="darts-pt", sampler="softmax", optimizer="first-order", selector="pt", cell="mixed",
        space_budgets={"nb201": NB201_BUDGETS}, op_sets=OP_SETS,
        budgets=BUDGETS,
        paper=PAPER, reported=REPORTED["darts-pt"],
        doc="DARTS (first order) supernet, then perturbation-based architecture selection (DARTS+PT)",
    ))
    register(MethodInfo(
        name="darts-pt-fixed-alpha", sampler="fixed-uniform", optimizer="frozen-arch", selector="pt",
        cell="mixed", space_budgets={"nb201": NB201_BUDGETS}, op_sets=OP_SETS,
        budgets=BUDGETS,
        paper=PAPER, reported=REPORTED["darts-pt-fixed-alpha"],
        doc="DARTS+PT (fixed alpha): supernet trained with uniform, never-updated alpha, then PT selection",
    ))
