"""Hook implementations of the DARTS plugin."""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness_darts.components import (
    ArgmaxConfig, ArgmaxSelector, BilevelConfig, FirstOrderBilevel, MixedCell, MixedConfig,
    SecondOrderBilevel, SoftmaxConfig, SoftmaxSampler,
)
from harness_darts.reported import REPORTED

# xautodl's NB201 search settings (SPEC-FACTS §3.5): weight-first, wd 5e-4 with nesterov, lr -> 0.001
NB201_DEFAULTS = {"optimizer": {"order": "weight-first", "weight_decay": 5e-4, "nesterov": True}}


@hookimpl
def harness_register_samplers(register):
    register("softmax", lambda config, space: SoftmaxSampler(config, space), SoftmaxConfig,
             doc="softmax(alpha) over each edge's ops (DARTS)")


@hookimpl
def harness_register_cell_types(register):
    register("mixed", lambda config: MixedCell(config), MixedConfig,
             doc="every op runs, weighted by the sampler (DARTS mixed op)")


@hookimpl
def harness_register_optimizers(register):
    register("first-order", lambda config, **kw: FirstOrderBilevel(config, **kw), BilevelConfig,
             doc="alternating first-order bilevel step (DARTS 1st order)")
    register("second-order", lambda config, **kw: SecondOrderBilevel(config, **kw), BilevelConfig,
             doc="unrolled second-order step with a finite-difference Hessian-vector product (DARTS 2nd order)")


@hookimpl
def harness_register_selectors(register):
    register("argmax", lambda config: ArgmaxSelector(config), ArgmaxConfig,
             doc="the space's magnitude rule (DARTS top-2 edges / NB201 argmax)")


@hookimpl
def harness_register_methods(register):
    for name, optimizer, doc in (
        ("darts", "first-order", "DARTS, first order (DARTS-V1)"),
        ("darts-2nd", "second-order", "DARTS, second order (DARTS-V2, unrolled)"),
    ):
        register(MethodInfo(
            name=name, sampler="softmax", optimizer=optimizer, selector="argmax", cell="mixed",
            space_defaults={"nb201": NB201_DEFAULTS},
            # quark0/darts PRIMITIVES: the 8 ops, `none` included (used only to rank edges)
            op_sets={"darts": "all"},
            paper="Liu, Simonyan, Yang. DARTS: Differentiable Architecture Search. ICLR 2019",
            reported=REPORTED[name],  # as the seed papers quote it (harness_darts/reported.py)
            doc=doc,
        ))
