"""Hook implementations of the GDAS plugin.

The ``gdas`` recipe follows xautodl (D-X-Y/AutoDL-Projects @f46486e2), whose one search script
``exps/NAS-Bench-201-algos/GDAS.py`` runs both spaces:
* NB201 (configs/nas-benchmark/algos/GDAS.config): 250 epochs, batch 64, SGD 0.025 cosine -> 0.001,
  nesterov, momentum 0.9, wd 5e-4, clip 5; alpha Adam 3e-4 (0.5, 0.999) wd 1e-3; tau 10 -> 0.1;
  C=16, N=5 (the space's supernet); argmax per edge, ``none`` included.
* The DARTS space and S1-S4 (scripts-search/NASNet-space-search-by-GDAS.sh with
  configs/search-opts/GDAS-NASNet-CIFAR.config and configs/search-archs/GDAS-NASNet-CIFAR.config):
  the same optimisers and schedule with **batch 256**; the NASNet supernet C=16, N=2, i.e. 3N = **6
  cells** (reductions at cells 2 and 4, which the harness's DARTS network puts at layers//3 and
  2*layers//3 for 6 layers too), stem multiplier 3, 8 ops including ``none``; derivation = top-2
  (op, input) pairs per node over all inputs (``pair-top2``).
Not reproduced (the harness has one op table per space): xautodl's search ops on the DARTS space
have a bias in their pointwise convs before an affine-free BN (inert: BN removes it) and no BN after
pooling (DARTS's supernet has one). The lr is per epoch, lr(e) with T_max = epochs: xautodl's
scheduler is called every iteration but its cosine reads only the epoch when warmup is 0
(xautodl/procedures/optimizers.py).
"""

from harness.api import MethodInfo
from harness.plugins import hookimpl

from harness_gdas.components import (
    GumbelConfig, GumbelSampler, PairTop2Config, PairTop2Selector, SinglePathCell, SinglePathConfig,
)
from harness_gdas.reported import REPORTED

XAUTODL = {"optimizer": {"order": "weight-first", "weight_decay": 5e-4, "nesterov": True,
                         "lr": 0.025, "lr_min": 0.001}}
# GDAS-NASNet-CIFAR: batch 256 and the 6-cell NASNet supernet on every DARTS-like space
NASNET = {"paper": {"search": {"batch_size": 256, "layers": 6}}}


@hookimpl
def harness_register_samplers(register):
    register("gumbel", lambda config, space: GumbelSampler(config, space), GumbelConfig,
             doc="Gumbel-max hard one-hot per edge with straight-through gradients, tau annealed (GDAS)")


@hookimpl
def harness_register_cell_types(register):
    register("single-path", lambda config: SinglePathCell(config), SinglePathConfig,
             doc="only the sampled op of each edge runs")


@hookimpl
def harness_register_selectors(register):
    register("pair-top2", lambda config: PairTop2Selector(config), PairTop2Config,
             doc="per node the two strongest (op, input) pairs over all inputs, none excluded (GDAS, "
                 "xautodl NASNet space); argmax per edge on NB201")


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(
        name="gdas", sampler="gumbel", optimizer="first-order", selector="pair-top2", cell="single-path",
        defaults=XAUTODL,
        budgets={"paper": {"search": {"epochs": 250}}},
        space_budgets={space: NASNET for space in ("darts", "s1", "s2", "s3", "s4")},
        op_sets={"darts": "all"},  # xautodl DARTS_SPACE: 8 ops, `none` first
        paper="Dong, Yang. Searching for a Robust Neural Architecture in Four GPU Hours. CVPR 2019",
        reported=REPORTED["gdas"],  # as the seed papers quote it (harness_gdas/reported.py)
        doc="GDAS: differentiable sampling of one op per edge",
    ))
