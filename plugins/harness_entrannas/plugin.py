"""Hook implementations of the EnTranNAS plugin.

Registered: samplers ``entrannas-softmax`` (softmax(alpha/tau), tau 5.0 x 0.923 per epoch) and
``dst`` (differentiable sparsification); cell type ``engine-transit``; selector ``dst-keep-nonzero``;
methods ``entrannas`` (entrannas-softmax + first-order + argmax + engine-transit) and
``entrannas-dst`` (dst + first-order + dst-keep-nonzero + engine-transit). Both methods run on the
DARTS-family spaces (darts, s1-s4), the paper's setting; the components themselves also build on
NB201 (where only the first cell is an Engine cell).
"""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness_entrannas.components import (
    DSTConfig, DSTSampler, EngineTransitCell, EngineTransitConfig, KeepNonzeroConfig, KeepNonzeroSelector,
    TemperedSoftmaxConfig, TemperedSoftmaxSampler,
)
from harness_entrannas.reported import REPORTED

PAPER = ("Yang, Li, You, Liu, Li, Yao, Zeng, Xu. Towards Improving the Consistency, Efficiency, and "
         "Flexibility of Differentiable Neural Architecture Search. CVPR 2021")
SPACES = ("darts", "s1", "s2", "s3", "s4")

# CIFAR-10 search (paper Sec. 4.1; SPEC-FACTS §4.8): SGD lr 0.2 cosine -> 0, momentum 0.9, wd 3e-4;
# alpha (and beta) Adam lr 6e-4, betas (0.5, 0.999), wd 1e-3. Gradient clipping is not stated for
# search: DARTS's 5 is kept.
OPTIMIZER = {"lr": 0.2, "lr_min": 0.0, "momentum": 0.9, "weight_decay": 3e-4, "arch_lr": 6e-4,
             "arch_beta1": 0.5, "arch_beta2": 0.999, "arch_weight_decay": 1e-3}
# The supernet (8 cells, C=16) and the evaluation network's size (20 cells, C=36 on CIFAR-10: the
# DARTS protocol) come from the space and its evaluation protocol.
BUDGETS = {"paper": {
    "search": {"epochs": 50, "batch_size": 512},
    "eval": {"epochs": 600, "batch_size": 96, "lr": 0.025, "momentum": 0.9,
             "weight_decay": 3e-4, "grad_clip": 5.0, "cutout": 16, "drop_path": 0.2, "auxiliary_weight": 0.4},
}}
# "the standard search space with 7 operations" (no `none`; the 12-op extension adds convolutions)
OP_SETS = {"darts": "no-none"}


@hookimpl
def harness_register_samplers(register):
    register("entrannas-softmax", lambda config, space, **kw: TemperedSoftmaxSampler(config, space),
             TemperedSoftmaxConfig, doc="softmax(alpha / tau), tau = 5.0 * 0.923^epoch, no Gumbel noise (EnTranNAS)")
    register("dst", lambda config, space, **kw: DSTSampler(config, space), DSTConfig,
             doc="differentiable sparsification: per-node max-normalised p minus a sigmoid(beta) threshold, "
                 "ReLU, per-edge renormalisation; exact zeros (EnTranNAS-DST)")


@hookimpl
def harness_register_cell_types(register):
    register("engine-transit", lambda config: EngineTransitCell(config), EngineTransitConfig,
             doc="first normal/reduction cells are mixed Engine cells; the others run only the derived "
                 "sub-graph; feature sharing per source node and a 1x1 bottleneck (EnTranNAS)")


@hookimpl
def harness_register_selectors(register):
    register("dst-keep-nonzero", lambda config: KeepNonzeroSelector(config), KeepNonzeroConfig,
             doc="every connection with non-zero weight (any in-degree); returned as top-2 per node for "
                 "DARTS genotypes, full set in selector.last_sparse (EnTranNAS-DST)")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="entrannas", sampler="entrannas-softmax", optimizer="first-order", selector="argmax",
        cell="engine-transit", defaults={"optimizer": OPTIMIZER}, budgets=BUDGETS, spaces=SPACES, op_sets=OP_SETS,
        paper=PAPER, reported=REPORTED["entrannas"],
        doc="EnTranNAS: Engine/Transit cells, feature sharing, bottleneck 4, tempered softmax, DARTS rule",
    ))
    register(MethodInfo(
        name="entrannas-dst", sampler="dst", optimizer="first-order", selector="dst-keep-nonzero",
        cell="engine-transit", defaults={"optimizer": OPTIMIZER}, budgets=BUDGETS, spaces=SPACES, op_sets=OP_SETS,
        paper=PAPER, reported=REPORTED["entrannas-dst"],
        doc="EnTranNAS-DST: differentiable sparsification, derived architecture = non-zero connections",
    ))
