"""Hook implementations of the GDAS plugin."""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness_gdas.components import GumbelConfig, GumbelSampler, SinglePathCell, SinglePathConfig

XAUTODL = {"optimizer": {"order": "weight-first", "weight_decay": 5e-4, "nesterov": True}}


@hookimpl
def harness_register_samplers(register):
    register("gumbel", lambda config, space: GumbelSampler(config, space), GumbelConfig,
             doc="Gumbel-max hard one-hot per edge with straight-through gradients, tau annealed (GDAS)")


@hookimpl
def harness_register_cell_types(register):
    register("single-path", lambda config: SinglePathCell(config), SinglePathConfig,
             doc="only the sampled op of each edge runs")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="gdas", sampler="gumbel", optimizer="first-order", selector="argmax", cell="single-path",
        defaults=XAUTODL,
        # xautodl: 250 epochs on NB201 (batch 64) and on the DARTS space (batch 256, lr 0.025)
        budgets={"paper": {"search": {"epochs": 250}}},
        paper="Dong, Yang. Searching for a Robust Neural Architecture in Four GPU Hours. CVPR 2019",
        doc="GDAS: differentiable sampling of one op per edge",
    ))
