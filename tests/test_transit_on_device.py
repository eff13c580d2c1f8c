"""Issue 17: EnTranNAS's transit cells derived on the device (``cell.transit_on_device``): every op through
the fused cell, masked by the derived one-hot, so the fast step reads nothing on the host and can be
captured in a CUDA graph. References: the eager cells (float64 trajectories) and the spaces' own host-side
derivation rules (``DartsFamilySpace.derive``, ``NB201Space.derive``, through ``derive_selection``)."""

import pytest
import torch

from harness.api import ArchWeights, Batch
from harness.config import parse_sets, resolve
from harness.errors import HarnessError
from harness.graphs import why_not_graphed
from harness.nn.cells import set_fast
from harness.spaces import NetShape
from harness_entrannas.components import DeviceDerivation, derive_selection
from tests.searchkit import REGISTRY, SHAPE, random_batches

ON = ["cell.transit_on_device=true"]


def _parts(method, space_name, sets=(), device="cpu", shape=SHAPE):
    space = REGISTRY.space(space_name)
    spec = resolve(REGISTRY, REGISTRY.methods[method], space_name, "digits", 0, "paper", {}, parse_sets(list(sets)))
    comp = {k: REGISTRY.component(k, n) for k, n in spec.components.items()}
    torch.manual_seed(0)
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    cell = comp["cell"].factory(spec.hparams["cell"])
    net = space.build_search_network(sampler, cell, 4, 3, shape).to(device)
    opt = comp["optimizer"].factory(spec.hparams["optimizer"], net=net, steps_per_epoch=6, epochs=2)
    opt.set_progress(0, 2)
    sampler.set_progress(0, 2)
    net.train()
    return net, sampler, cell, opt


def _trajectory(method, space_name, fast, sets=(), steps=4):
    net, _, _, opt = _parts(method, space_name, sets)
    set_fast(net, fast)
    data = random_batches(3)
    torch.manual_seed(7)
    losses = [float(opt.step(net, *data[i % 3]).train_loss) for i in range(steps)]
    return losses, {k: v.detach().clone() for k, v in net.named_parameters()}


@pytest.mark.parametrize("method, space_name", [("entrannas", "darts"), ("entrannas", "s1"),
                                                ("entrannas-dst", "darts"), ("entrannas-dst", "s3")])
def test_device_derived_transit_cells_match_the_eager_cells_in_float64(method, space_name):
    torch.set_default_dtype(torch.float64)
    try:
        le, pe = _trajectory(method, space_name, False)
        ld, pd = _trajectory(method, space_name, True, ON)
    finally:
        torch.set_default_dtype(torch.float32)
    assert max(abs(a - b) / abs(a) for a, b in zip(le, ld)) < 1e-12
    for k in pe:
        assert float((pe[k] - pd[k]).abs().max() / pe[k].abs().max().clamp_min(1e-30)) < 1e-12, k


@pytest.mark.parametrize("space_name", ["darts", "s1", "s3", "nb201"])
def test_the_device_rule_is_the_spaces_own_derivation(space_name):
    """200 random weight matrices per cell kind, a quarter of them rounded to one decimal so that edges
    and ops tie: the device mask selects exactly the ops the space's host rule derives."""
    space = REGISTRY.space(space_name)
    gen = torch.Generator().manual_seed(0)
    rules = {}
    for trial in range(200):
        weights = {}
        for kind in space.cell_kinds:
            ops = space.edge_ops(kind)
            w = torch.rand(len(ops), len(ops[0]), generator=gen).softmax(-1)
            weights[kind] = (w * 10).round() / 10 if trial % 4 == 0 else w
        expected = derive_selection(ArchWeights(weights), space)
        for kind in space.cell_kinds:
            rule = rules.setdefault(kind, DeviceDerivation(_spec(space, kind)))
            mask = rule.mask(weights[kind], sparse=False)
            got = [sorted(torch.nonzero(row).flatten().tolist()) for row in mask]
            assert got == [sorted(s) for s in expected[kind]], (trial, kind, weights[kind])


def _spec(space, kind):
    from harness.api import CellSpec

    return CellSpec(kind=kind, n_inputs=space.n_inputs, n_nodes=space.n_nodes, edges=tuple(space.edges),
                    ops=space.edge_ops(kind), channels=4, strides=(1,) * len(space.edges),
                    op_factory=None, space=space)


def test_dst_transit_mask_is_the_alive_ops():
    spec = _spec(REGISTRY.space("darts"), "normal")
    w = torch.tensor([[0.0, 0.5, 0.5, 0, 0, 0, 0, 0]] * len(spec.edges))
    assert DeviceDerivation(spec).mask(w, sparse=True).sum(1).tolist() == [2.0] * len(spec.edges)


def _meta_step(method, sets):
    net, _, cell, opt = _parts(method, "darts", sets, device="meta", shape=NetShape(3, 10, 16))
    set_fast(net, True)

    def batch():
        return Batch(torch.empty(2, 3, 16, 16, device="meta"), torch.empty(2, dtype=torch.long, device="meta"))

    opt.step(net, batch(), batch())
    return net, cell


@pytest.mark.parametrize("method", ["entrannas", "entrannas-dst"])
def test_the_device_derived_step_reads_nothing_on_the_host(method):
    """On the meta device any host read fails: the fast step with host-derived transit cells does read,
    the one derived on the device does not."""
    with pytest.raises(NotImplementedError, match="meta"):
        _meta_step(method, [])
    _meta_step(method, ON)


def test_cuda_graphs_are_refused_by_name_unless_transit_cells_derive_on_the_device():
    cuda = torch.device("cuda")  # a device object: no GPU needed to ask
    off = ["cell.transit_on_device=false"]
    for sets, fast, reason in ((off, True, "transit_on_device=true or auto derives on the device"),
                               (ON, False, "capturable only on the fast cell path"), (ON, True, None),
                               ([], True, None)):  # the default, auto: on the device while captured
        _, sampler, cell, opt = _parts("entrannas-dst", "s2", sets)
        why = why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt, fast=fast)
        assert (why is None) if reason is None else (reason in why), why


def test_an_unknown_space_is_named():
    spec = _spec(REGISTRY.space("darts"), "normal")
    with pytest.raises(HarnessError, match="not space 'mine'.*transit_on_device=false"):
        DeviceDerivation(type(spec)(**{**spec.__dict__, "space": type("S", (), {"name": "mine"})()}))


def test_auto_derives_on_the_device_only_while_captured():
    """transit_on_device=auto (the default): the host path uncaptured, the device path in the form a CUDA graph
    capture takes (harness.nn.groups.as_captured, which GraphedStep's warm-up steps use too); the same
    outputs either way (float64), and a bad value is named."""
    from harness.nn import groups
    from harness_entrannas.components import EngineTransitConfig

    torch.set_default_dtype(torch.float64)
    try:
        net, sampler, cell, _ = _parts("entrannas", "s2")
        assert cell.config.transit_on_device == "auto"
        set_fast(net, True)
        x = random_batches(1)[0][0].x
        transit = [m for m in net.modules() if hasattr(m, "is_engine") and not m.is_engine]
        assert transit
        torch.manual_seed(3)
        host = net(x)
        assert all(m._derivation is None for m in transit)  # uncaptured: derived on the host
        torch.manual_seed(3)
        with groups.as_captured():
            device = net(x)
        assert all(m._derivation is not None for m in transit)
        torch.testing.assert_close(device, host, rtol=1e-12, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)
    for good, value in (("true", True), ("False", False), ("auto", "auto"), (True, True)):
        assert EngineTransitConfig(transit_on_device=good).transit_on_device == value
    with pytest.raises(ValueError, match="transit_on_device must be true, false or auto, not 'sometimes'"):
        EngineTransitConfig(transit_on_device="sometimes")
