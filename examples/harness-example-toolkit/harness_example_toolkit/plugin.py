"""One component of each kind, on the public contract only (docs/hooks.md, "The contract of each kind")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import ArchWeights, Batch, CellSpec, MethodInfo, StepStats
from harness.blocks import CellBody, Supernet
from harness.data import DatasetInfo
from harness.errors import HarnessError
from harness.plugins import hookimpl
from harness.spaces import NetShape, SearchSpace

# ---------------------------------------------------------------------------------------------------------
# The search space: ring3

OPS = ("none", "skip_connect", "conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2))


class _Zero(nn.Module):
    def forward(self, x):
        return x * 0.0


def _op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "conv_3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(channels))
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise HarnessError(f"unknown ring3 op {name!r}; valid: {', '.join(OPS)}")


@dataclass(frozen=True)
class RingGenotype:
    ops: tuple[str, str, str]  # the op of edges 0->1, 0->2, 1->2

    def to_string(self) -> str:
        return "ring3:" + ",".join(self.ops)


class _RingSupernet(Supernet):
    def __init__(self, sampler, cell_type, channels: int, layers: int, shape: NetShape, space):
        super().__init__()
        self.sampler = sampler
        self.stem = nn.Sequential(nn.Conv2d(shape.in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        self.cells = nn.ModuleList(
            cell_type.build(CellSpec(kind="normal", n_inputs=1, n_nodes=2, edges=EDGES, ops=(OPS,) * 3,
                                     strides=(1, 1, 1), channels=channels,
                                     op_factory=lambda name, c, stride: _op(name, c), position=i,
                                     first_of_kind=i == 0, space=space))
            for i in range(layers))
        self.head = nn.Linear(channels, shape.num_classes)

    def forward(self, x):
        arch = self.sampler()
        x = self.stem(x)
        for cell in self.cells:
            x = cell([x], arch)[-1]
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _RingNet(nn.Module):
    """The derived network: ``layers`` cells with the genotype's ops; ``forward`` -> (logits, None)."""

    drop_path_prob = 0.0  # read and set by the retraining; no drop path here

    def __init__(self, genotype: RingGenotype, channels: int, layers: int, shape: NetShape):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(shape.in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        self.cells = nn.ModuleList(nn.ModuleList(_op(op, channels) for op in genotype.ops) for _ in range(layers))
        self.head = nn.Linear(channels, shape.num_classes)

    def forward(self, x):
        x = self.stem(x)
        for e01, e02, e12 in self.cells:
            n1 = e01(x)
            x = e02(x) + e12(n1)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1)), None


class Ring3Space(SearchSpace):
    name = "ring3"
    description = "a 3-edge cell (0->1, 0->2, 1->2) of 4 ops, stacked; an example plugin's own space"
    family = "ring3"
    cell_kinds = ("normal",)
    edges = EDGES
    n_inputs = 1
    n_nodes = 2

    def edge_ops(self, kind: str):
        return (OPS,) * len(EDGES)

    def build_search_network(self, sampler, cell_type, channels, layers, shape):
        return _RingSupernet(sampler, cell_type, channels, layers, shape, self)

    def derive(self, probabilities) -> RingGenotype:
        p = probabilities["normal"]
        return RingGenotype(tuple(OPS[int(k)] for k in p.argmax(dim=-1)))

    def validate(self, genotype) -> RingGenotype:
        if not isinstance(genotype, RingGenotype) or len(genotype.ops) != len(EDGES) or \
                any(op not in OPS for op in genotype.ops):
            raise HarnessError(f"not a ring3 genotype: {genotype!r} (expected 3 ops of {', '.join(OPS)})")
        return genotype

    def parse(self, text: str) -> RingGenotype:
        body = text.strip()
        if not body.startswith("ring3:"):
            raise HarnessError(f"malformed ring3 genotype {text!r}: expected 'ring3:op01,op02,op12'")
        return self.validate(RingGenotype(tuple(body[len("ring3:"):].split(","))))

    def build_eval_network(self, genotype, channels, layers, shape, auxiliary=False):
        return _RingNet(self.validate(genotype), channels, layers, shape)

    def search_defaults(self) -> dict[str, Any]:
        return {"channels": 8, "layers": 2}

    def eval_defaults(self, dataset=None, protocol=None) -> dict[str, Any]:
        self.eval_protocol(protocol)
        return {"channels": 8, "layers": 2, "auxiliary_weight": 0.0, "drop_path": 0.0}

    def summarize(self, genotype) -> dict[str, Any]:
        return {"param_free": sum(op != "conv_3x3" for op in genotype.ops)}


# ---------------------------------------------------------------------------------------------------------
# The dataset: toy-bars


BARS = DatasetInfo("toy-bars", 1, 8, 4, mean=(0.3,), std=(0.4,), crop_padding=0, flip=False,
                   description="toy bars: 1x8x8, 4 classes, the row of the bright bar is the class (generated)")


def load_bars(data_dir, download):
    rng = np.random.RandomState(0)
    y = rng.randint(0, 4, size=640)
    x = (rng.rand(640, 1, 8, 8) * 80).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 2, :] = 255
    return x[:512], y[:512], x[512:], y[512:]


# ---------------------------------------------------------------------------------------------------------
# The bilevel optimizer: plain-sgd


@dataclass(frozen=True)
class PlainSGDConfig:
    lr: float = 0.05
    arch_lr: float = 0.01


class PlainSGD:
    """Alternating first-order steps: alpha by SGD on the validation batch, then the weights by SGD."""

    needs_val_batch = True

    def __init__(self, config: PlainSGDConfig, net, steps_per_epoch: int, epochs: int):
        self.config = config
        self.w_opt = torch.optim.SGD(net.weight_parameters(), lr=config.lr, momentum=0.9)
        self.a_opt = torch.optim.SGD(net.sampler.arch_parameters(), lr=config.arch_lr)

    @property
    def lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    def set_progress(self, epoch: int, total_epochs: int) -> None:
        pass

    def step(self, net, train: Batch, val: Batch | None) -> StepStats:
        self.a_opt.zero_grad(set_to_none=True)
        val_loss = F.cross_entropy(net(val.x), val.y)
        val_loss.backward()
        self.a_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        logits = net(train.x)
        loss = F.cross_entropy(logits, train.y)
        loss.backward()
        self.w_opt.step()
        return StepStats(loss.detach(), val_loss.detach(), (logits.argmax(1) == train.y).sum(), n=train.y.shape[0])


# ---------------------------------------------------------------------------------------------------------
# The selector: no-none-argmax


@dataclass(frozen=True)
class NoNoneConfig:
    pass


class NoNoneArgmax:
    """The strongest op other than ``none`` on every edge of a ring3 cell (elsewhere: the space's rule)."""

    cheap = True  # reads only the probabilities: the host also records what it would derive every epoch

    def __init__(self, config: NoNoneConfig):
        self.config = config

    def select(self, net, ctx):
        probs = net.sampler.probabilities()
        if ctx.space.family != "ring3":
            return ctx.space.derive(probs)
        p = probs["normal"].clone()
        p[:, OPS.index("none")] = -1.0
        return RingGenotype(tuple(OPS[int(k)] for k in p.argmax(dim=-1)))


# ---------------------------------------------------------------------------------------------------------
# The cell type: gated


@dataclass(frozen=True)
class GatedConfig:
    gate_init: float = 2.0  # sigmoid(2) = 0.88: edges start nearly open


class _GatedBody(CellBody):
    def __init__(self, spec: CellSpec, gate_init: float):
        super().__init__(spec)
        self.gates = nn.Parameter(torch.full((len(spec.edges),), gate_init))

    def edge_forward(self, e, x, arch: ArchWeights):
        w = arch.weights[self.kind][e]
        out = sum(w[k] * op(x) for k, op in enumerate(self.ops[e]))
        return out * torch.sigmoid(self.gates[e])


class GatedCell:
    """Every op runs, weighted by the sampler, times a learnable gate per edge (a network weight)."""

    def __init__(self, config: GatedConfig):
        self.config = config

    def build(self, spec: CellSpec) -> nn.Module:
        return _GatedBody(spec, self.config.gate_init)


# ---------------------------------------------------------------------------------------------------------
# Registration


@hookimpl
def harness_register_spaces(register):
    register(Ring3Space())


@hookimpl
def harness_register_datasets(register):
    register(BARS, load_bars)


@hookimpl
def harness_register_optimizers(register):
    register("plain-sgd", PlainSGD, PlainSGDConfig)


@hookimpl
def harness_register_selectors(register):
    register("no-none-argmax", NoNoneArgmax, NoNoneConfig)


@hookimpl
def harness_register_cell_types(register):
    register("gated", GatedCell, GatedConfig)


@hookimpl
def harness_register_methods(register):
    register(MethodInfo(name="toy-nas", sampler="softmax", optimizer="plain-sgd", selector="no-none-argmax",
                        cell="gated", doc="the toolkit example: softmax alpha, gated cells, plain SGD",
                        paper="(an example, no paper)"))
