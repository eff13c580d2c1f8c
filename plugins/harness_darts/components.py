"""DARTS components. Settings from quark0/darts (SPEC-FACTS §2.5); on NB201 the method recipe
switches to xautodl's settings (§3.5). The softmax sampler, the mixed cell and the first- and second-order
bilevel optimizers are core building blocks (``harness.blocks``), re-exported here under their old names."""

from __future__ import annotations

from dataclasses import dataclass

from harness.api import SelectionContext
from harness.blocks import (  # noqa: F401 - re-exported
    BilevelConfig,
    FirstOrderBilevel,
    MixedBody,
    MixedCell,
    MixedConfig,
    SecondOrderBilevel,
    SoftmaxConfig,
    SoftmaxSampler,
)


# ---------------------------------------------------------------------------------------------
# Selector


@dataclass(frozen=True)
class ArgmaxConfig:
    pass


class ArgmaxSelector:
    """Magnitude-based selection with the space's own rule (DARTS: top-2 edges per node by the
    strongest non-none op, argmax non-none op; NB201: argmax per edge, none included)."""

    cheap = True  # reads only the probabilities: the host also records what it would derive every epoch

    def __init__(self, config: ArgmaxConfig):
        self.config = config

    def select(self, net, ctx: SelectionContext):
        return ctx.space.derive(net.sampler.probabilities())
