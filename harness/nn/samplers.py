"""A base for samplers that keep one architecture matrix alpha (edges x ops) per cell kind.

Subclasses say how alpha becomes the weights the cells use (:meth:`AlphaSampler.transform`) and, when
it is not ``init_scale * randn`` (DARTS's init), how alpha starts (:meth:`AlphaSampler.initial_alpha`).
Everything else the sampler contract asks for (``forward``, ``probabilities``, ``arch_parameters``,
``set_progress``, ``regularization``) has the plain behaviour here and can be overridden. Alphas are
created in ``space.cell_kinds`` order, one ``randn`` draw per kind, so a run's random stream does not
depend on which sampler class built them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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


# ---------------------------------------------------------------------------------------------
# DARTS's softmax relaxation (moved from the darts plugin: several methods build on it)


@dataclass(frozen=True)
class SoftmaxConfig:
    init_scale: float = 1e-3  # alpha = init_scale * randn, per cell kind, (edges, ops)


class SoftmaxSampler(AlphaSampler):
    """Continuous relaxation: every op of an edge weighted by softmax(alpha_e)."""

    graph_capturable = True  # pure tensor ops, no host-side decisions (harness.graphs)

    def transform(self, alpha):
        return F.softmax(alpha, dim=-1)


# ---------------------------------------------------------------------------------------------
# GDAS's Gumbel machinery (moved from the gdas plugin: ROME builds on it)


@dataclass(frozen=True)
class GumbelConfig:
    tau_max: float = 10.0
    tau_min: float = 0.1
    init_scale: float = 1e-3


def exponential_like(x: torch.Tensor, shape: tuple[int, ...] | torch.Size | None = None) -> torch.Tensor:
    """E ~ Exp(1) of ``x``'s shape (or ``shape``) and dtype, clamped away from 0 (the draw behind Gumbel
    noise -log E)."""
    e = torch.empty_like(x) if shape is None else x.new_empty(shape)
    return e.exponential_().clamp_min_(torch.finfo(x.dtype).tiny)


def gumbel_hard(logits: torch.Tensor, tau: float, e: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through Gumbel-max per row: (hard one-hot with soft gradients, argmax index).

    Gumbel noise g = -log(E), E ~ Exp(1), clamped away from 0 so no row can become inf/NaN (xautodl
    resamples such rows instead; clamping avoids the host sync that checking would need). ``e``: the
    draw E, when the caller made it (several samples drawn in a fixed order, then sampled at once)."""
    if e is None:
        e = exponential_like(logits)
    probs = F.softmax((F.log_softmax(logits, dim=-1) - e.log()) / tau, dim=-1)
    index = probs.argmax(dim=-1)
    one_hot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
    return one_hot - probs.detach() + probs, index


class HostLists(Mapping):
    """One field of a forward's host-side decisions (``ArchWeights.host_index``/``host_active``), copied
    from the device on first access only: ``load()`` (memoised, shared by the fields of one forward) makes
    the one device->host copy. A cell that chooses on the device never reads it, so its step never waits
    for the device (and can be captured in a CUDA graph)."""

    def __init__(self, load: Callable[[], tuple[dict, ...]], part: int):
        self._load, self._part = load, part

    def _data(self) -> dict:
        return self._load()[self._part]

    def __getitem__(self, key):
        return self._data()[key]

    def __iter__(self) -> Iterator:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def deferred(load: Callable[[], tuple[dict, ...]], parts: int) -> list[HostLists]:
    """``parts`` HostLists views of one memoised ``load``."""
    once = functools.cache(load)
    return [HostLists(once, i) for i in range(parts)]


class GumbelSampler(AlphaSampler):
    """One Gumbel sample per cell kind per forward, shared by all cells of that kind. ``sample(k)`` draws
    ``k`` independent architectures at once (weights with a leading sample dimension), drawing the noise in
    the order ``k`` successive forwards would, so the random stream is the same."""

    single_path = True  # names one op per edge (ArchWeights.host_index): cells run only that op
    graph_capturable = True  # pure tensor ops; the host lists are copied only if a cell reads them

    def __init__(self, config: GumbelConfig, space):
        super().__init__(config, space)
        self.tau = config.tau_max

    def set_progress(self, epoch, total_epochs):
        c = self.config
        self.tau = c.tau_max - (c.tau_max - c.tau_min) * epoch / max(1, total_epochs - 1)

    def forward(self) -> ArchWeights:
        return self.sample(1)

    @staticmethod
    def _per_sample(draws: list[torch.Tensor]) -> torch.Tensor:
        """One draw per sample -> the draw itself (one sample) or stacked on a leading sample dimension."""
        return draws[0] if len(draws) == 1 else torch.stack(draws)

    def sample(self, samples: int) -> ArchWeights:
        """``samples`` architectures; with more than one, every tensor has a leading sample dimension."""
        draws = [{kind: exponential_like(a) for kind, a in self.alphas.items()} for _ in range(samples)]
        weights, index = {}, {}
        for kind, a in self.alphas.items():
            e = self._per_sample([d[kind] for d in draws])
            weights[kind], index[kind] = gumbel_hard(a.expand(e.shape), self.tau, e)
        kinds = list(index)

        def load():  # the one device->host copy, made only if a cell reads the host lists
            return (dict(zip(kinds, torch.stack([index[k] for k in kinds]).tolist())),)

        (host_index,) = deferred(load, 1)
        return ArchWeights(weights, index=index, host_index=host_index, samples=samples)

    def transform(self, alpha):  # what probabilities() reports: the un-noised softmax
        return F.softmax(alpha, dim=-1)
