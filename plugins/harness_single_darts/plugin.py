"""Hook implementations of the Single-DARTS plugin."""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness.blocks import SingleLevel

from harness_single_darts.components import SigmoidConfig, SigmoidSampler, SingleDartsConfig
from harness_single_darts.reported import REPORTED

# Single-DARTS on NAS-Bench-201 (paper §4.1): SGD lr 0.005 cosine, wd 3e-4, momentum 0.9, batch 64, 50 epochs
NB201_DEFAULTS = {"optimizer": {"lr": 0.005}}


@hookimpl
def harness_register_samplers(register):
    register("sigmoid", lambda config, space: SigmoidSampler(config, space), SigmoidConfig,
             doc="independent sigmoid(alpha) per op, alpha initialised to -ln 7 (weight 0.125) (Single-DARTS)")


@hookimpl
def harness_register_optimizers(register):
    register("single-level", lambda config, **kw: SingleLevel(config, **kw), SingleDartsConfig,
             doc="one training batch, one forward/backward; weights (SGD) and alpha (Adam) both step on it "
                 "(Single-DARTS Eq. 16)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="single-darts", sampler="sigmoid", optimizer="single-level", selector="argmax", cell="mixed",
        space_defaults={"nb201": NB201_DEFAULTS},
        # the paper keeps zero ops in its DARTS-space search (alpha wd 0 "to avoid extra gradients on
        # zero operations"): the 8 ops
        op_sets={"darts": "all"},
        budgets={"paper": {"search": {"epochs": 50, "batch_size": 64}}},
        paper="Hou, Jin, Chen. Single-DARTS: Towards Stable Architecture Search",
        reported=REPORTED["single-darts"],
        doc="Single-DARTS: single-level optimisation of weights and sigmoid architecture weights on the same batch",
    ))
