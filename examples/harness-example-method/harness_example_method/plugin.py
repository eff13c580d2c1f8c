"""Everything a method plugin needs: components (here one sampler) and a recipe naming components,
some of them from other plugins."""

from dataclasses import dataclass

import pluggy

hookimpl = pluggy.HookimplMarker("harness")


@dataclass(frozen=True)
class TemperedConfig:
    temperature: float = 2.0
    init_scale: float = 1e-3


def make_sampler(config: TemperedConfig, space):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from harness.api import ArchWeights

    class TemperedSoftmax(nn.Module):
        """softmax(alpha / T) on every edge."""

        def __init__(self):
            super().__init__()
            self.alphas = nn.ParameterDict({
                kind: nn.Parameter(config.init_scale * torch.randn(len(space.edges), space.n_ops))
                for kind in space.cell_kinds
            })

        def forward(self):
            return ArchWeights({k: F.softmax(a / config.temperature, -1) for k, a in self.alphas.items()})

        def probabilities(self):
            return {k: F.softmax(a.detach() / config.temperature, -1) for k, a in self.alphas.items()}

        def arch_parameters(self):
            return list(self.alphas.values())

        def set_progress(self, epoch, total_epochs):
            pass

        def regularization(self):
            return None

    return TemperedSoftmax()


@hookimpl
def harness_register_samplers(register):
    register("tempered-softmax", make_sampler, TemperedConfig, doc="softmax(alpha / T), fixed T")


@hookimpl
def harness_register_methods(register):
    from harness.api import MethodInfo

    register(MethodInfo(name="tempered-darts", sampler="tempered-softmax", optimizer="first-order",
                        selector="argmax", cell="mixed", doc="DARTS with a tempered softmax (example plugin)"))
