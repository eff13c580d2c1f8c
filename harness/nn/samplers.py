"""A base for samplers that keep one architecture matrix alpha (edges x ops) per cell kind.

Subclasses say how alpha becomes the weights the cells use (:meth:`AlphaSampler.transform`) and, when
it is not ``init_scale * randn`` (DARTS's init), how alpha starts (:meth:`AlphaSampler.initial_alpha`).
Everything else the sampler contract asks for (``forward``, ``probabilities``, ``arch_parameters``,
``set_progress``, ``regularization``) has the plain behaviour here and can be overridden. Alphas are
created in ``space.cell_kinds`` order, one ``randn`` draw per kind, so a run's random stream does not
depend on which sampler class built them.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.api import ArchWeights


class AlphaSampler(nn.Module):
    """``alphas[kind]`` of shape (edges, ops); weights = ``transform(alpha)`` for every cell kind."""

    def __init__(self, config, space):
        super().__init__()
        self.config = config
        self.alphas = nn.ParameterDict({
            kind: nn.Parameter(self.initial_alpha((len(space.edges), space.n_ops))) for kind in space.cell_kinds
        })

    def initial_alpha(self, shape: tuple[int, int]) -> torch.Tensor:
        return self.config.init_scale * torch.randn(shape)

    def transform(self, alpha: torch.Tensor) -> torch.Tensor:
        """alpha -> the weights of each edge's ops (differentiable)."""
        raise NotImplementedError

    def forward(self) -> ArchWeights:
        return ArchWeights({kind: self.transform(a) for kind, a in self.alphas.items()})

    def probabilities(self) -> dict[str, torch.Tensor]:
        """What selectors rank: the transform of the detached alphas."""
        return {kind: self.transform(a.detach()) for kind, a in self.alphas.items()}

    def arch_parameters(self) -> list[torch.Tensor]:
        return list(self.alphas.values())

    def set_progress(self, epoch: int, total_epochs: int) -> None:
        pass

    def regularization(self):
        return None
