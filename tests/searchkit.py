"""Small real search setups for tests: a method's components built at its paper settings on a space,
and batches of random data. Shared by the step-level tests (fused cell, graphs, DARTS steps)."""

import torch

from harness.api import Batch
from harness.config import resolve
from harness.plugins import load_registry
from harness.spaces import NetShape

REGISTRY = load_registry()
SHAPE = NetShape(3, 10, 16)


def method_parts(method, space_name, *, channels=4, layers=3, steps_per_epoch=6, epochs=1, optimizer_cls=None,
                 sets=()):
    """(net, sampler, cell type, optimizer) of ``method`` on ``space_name``, seeded 0, in train mode.
    ``optimizer_cls`` replaces the method's optimizer class (same config); ``sets``: (component, key, value)
    settings, as ``--set component.key=value``."""
    space = REGISTRY.space(space_name)
    spec = resolve(REGISTRY, REGISTRY.methods[method], space_name, "digits", 0, "paper", {}, list(sets))
    comp = {k: REGISTRY.component(k, n) for k, n in spec.components.items()}
    torch.manual_seed(0)
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    cell = comp["cell"].factory(spec.hparams["cell"])
    net = space.build_search_network(sampler, cell, channels, layers, SHAPE)
    make = comp["optimizer"].factory if optimizer_cls is None else optimizer_cls
    opt = make(spec.hparams["optimizer"], net=net, steps_per_epoch=steps_per_epoch, epochs=epochs)
    net.train()
    return net, sampler, cell, opt


def random_batches(n, size=8, seed=5, resolution=None):
    """``n`` (train, val) pairs of normal-noise images with random labels, shaped for SHAPE (or at
    ``resolution``: the networks pool globally before their classifier)."""
    gen = torch.Generator().manual_seed(seed)

    def one():
        res = resolution or SHAPE.resolution
        return Batch(torch.randn(size, SHAPE.in_channels, res, res, generator=gen),
                     torch.randint(0, SHAPE.num_classes, (size,), generator=gen))

    return [(one(), one()) for _ in range(n)]
