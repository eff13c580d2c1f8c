"""Hook implementations of the ROME plugin."""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness_rome.components import (
    AccumulateBilevel, AccumulateConfig, MostProbableConfig, MostProbableSelector, RomeSamplerConfig,
    RomeV1Sampler, RomeV2Sampler,
)
from harness_rome.reported import REPORTED

PAPER = ("Wang, Chu, Fan, Zhang, Wei, Yan, Yang. ROME: Robustifying Memory-Efficient NAS via "
         "Topology Disentanglement and Gradients Accumulation")

# ROME's search setting (SPEC-FACTS §4.6): 50 epochs, batch 64 on the space's own supernet (8 cells,
# C=16 on the DARTS spaces; NB201's N=5 there: the paper does not change it); eval as DARTS.
PAPER_BUDGET = {"search": {"epochs": 50, "batch_size": 64}, "eval": {}}
# ROME's S0 is the DARTS space without `none`: "candidate operations {maxpool, avgpool, skip_connect,
# sep_conv 3x3 and 5x5, dil_conv 3x3 and 5x5}" (paper Sec. 4.1, search spaces), 7 ops
OP_SETS = {"darts": "no-none"}


@hookimpl
def harness_register_samplers(register):
    register("rome-v1", lambda config, space: RomeV1Sampler(config, space), RomeSamplerConfig,
             doc="ROME-v1: Gumbel-Max over input pairs per node (topology) + Gumbel-Max op per kept edge")
    register("rome-v2", lambda config, space: RomeV2Sampler(config, space), RomeSamplerConfig,
             doc="ROME-v2: Gumbel-top2 over per-edge betas per node (topology) + Gumbel-Max op per kept edge")


@hookimpl
def harness_register_optimizers(register):
    register("rome-accumulate", lambda config, **kw: AccumulateBilevel(config, **kw), AccumulateConfig,
             doc="K sampled architectures per step: arch update with the mean, weight update with the "
                 "sum of the K gradients (ROME Eqs. 20-21)")


@hookimpl
def harness_register_selectors(register):
    register("rome-most-probable", lambda config: MostProbableSelector(config), MostProbableConfig,
             doc="the most probable architecture argmax p(z; alpha, beta) (ROME)")


@hookimpl
def harness_register_methods(register):
    for version in ("v1", "v2"):
        register(MethodInfo(
            name=f"rome-{version}", sampler=f"rome-{version}", optimizer="rome-accumulate",
            selector="rome-most-probable", cell="single-path",
            defaults={"sampler": {"tau_max": 10.0, "tau_min": 0.1},
                      "optimizer": {"samples": 7, "lr": 0.05}},
            budgets={"paper": PAPER_BUDGET}, op_sets=OP_SETS,
            paper=PAPER, reported=REPORTED[f"rome-{version}"],
            doc=f"ROME-{version}: disentangled topology sampling and K=7 gradient accumulation",
        ))
