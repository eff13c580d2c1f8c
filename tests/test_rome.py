"""ROME plugin: topology parameter counts, sampled cells, Gumbel-top2 inclusion probabilities
(appendix A), gradient accumulation (Eqs. 20-21) and the most-probable selector, on toy networks."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from harness.api import Batch, SelectionContext
from harness.plugins import load_registry
from harness.spaces import NetShape

REGISTRY = load_registry()
SHAPE = NetShape(in_channels=1, num_classes=4, resolution=8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny tensors: intra-op threads only add overhead (and stall badly on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sampler(name, space_name="darts", **overrides):
    info = REGISTRY.component("sampler", name)
    return info.factory(info.config(**overrides), space=REGISTRY.space(space_name))


def build(space_name="s2", name="rome-v2", channels=4, layers=3, **opt_overrides):
    space = REGISTRY.space(space_name)
    torch.manual_seed(0)
    cell = REGISTRY.component("cell", "single-path")
    net = space.build_search_network(sampler(name, space_name), cell.factory(cell.config()), channels, layers, SHAPE)
    o = REGISTRY.component("optimizer", "rome-accumulate")
    opt = o.factory(o.config(**opt_overrides), net=net, steps_per_epoch=1, epochs=2)
    return space, net, opt


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


def test_methods_registered_with_paper_settings():
    for version in ("v1", "v2"):
        m = REGISTRY.method(f"rome-{version}")
        assert m.components() == {"sampler": f"rome-{version}", "optimizer": "rome-accumulate",
                                  "selector": "rome-most-probable", "cell": "single-path"}
        assert m.budgets["paper"]["search"]["epochs"] == 50
    cfg = REGISTRY.component("optimizer", "rome-accumulate").config()
    assert (cfg.samples, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.grad_clip) == (7, 0.05, 0.9, 3e-4, 5.0)
    assert (cfg.arch_lr, cfg.arch_beta1, cfg.arch_weight_decay) == (3e-4, 0.5, 1e-3)


@pytest.mark.parametrize("name,count", [("rome-v1", 40), ("rome-v2", 28)])
def test_topology_parameter_counts_on_darts(name, count):
    s = sampler(name)
    assert sum(b.numel() for b in s.betas.values()) == count
    assert sum(a.numel() for a in s.alphas.values()) == 2 * 14 * 8


def test_tau_schedule_linear_10_to_01():
    s = sampler("rome-v2")
    s.set_progress(0, 50)
    assert s.tau == pytest.approx(10.0)
    s.set_progress(49, 50)
    assert s.tau == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["rome-v1", "rome-v2"])
def test_every_sample_keeps_two_inputs_per_node(name):
    s = sampler(name)
    torch.manual_seed(1)
    for beta in s.betas.values():  # uneven topology parameters, so the samples vary
        beta.data = 2 * torch.randn_like(beta)
    seen = set()
    for _ in range(100):
        arch = s()
        for kind in ("normal", "reduce"):
            active = arch.host_active[kind]
            assert active == arch.active[kind].tolist()
            assert arch.host_index[kind] == arch.index[kind].tolist()
            assert sum(active) == 8
            for node in range(4):
                assert sum(active[e] for e, (_, d) in enumerate(REGISTRY.space("darts").edges) if d == 2 + node) == 2
            w = arch.edge_weights[kind].detach()
            torch.testing.assert_close(w, torch.tensor(active, dtype=w.dtype), atol=1e-5, rtol=0)
            assert torch.equal(arch.weights[kind].detach().argmax(1), arch.index[kind])
            seen.add(tuple(active))
    assert len(seen) > 10


@pytest.mark.parametrize("name", ["rome-v1", "rome-v2"])
def test_only_the_sampled_op_of_each_kept_edge_runs(name):
    space, net, _ = build("darts", name)
    ran = {}
    for c, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.body.ops):
            for k, op in enumerate(edge):
                op.register_forward_hook(lambda m, i, o, key=(c, e, k): ran.setdefault(key[:2], []).append(key[2]))
    x = batch().x
    for _ in range(3):
        ran.clear()
        arch = net.sampler()
        net(x, arch)
        for c, cell in enumerate(net.cells):
            kind = cell.body.kind
            edges = {e: ks for (cc, e), ks in ran.items() if cc == c}
            assert sorted(edges) == [e for e, a in enumerate(arch.host_active[kind]) if a]
            assert len(edges) == 8
            for e, ks in edges.items():
                assert ks == [arch.host_index[kind][e]]


def test_nb201_topology():
    for name in ("rome-v1", "rome-v2"):
        s = sampler(name, "nb201")
        for _ in range(50):
            active = s().host_active["normal"]
            assert active[:3] == [True, True, True] and sum(active[3:]) == 2  # node 3 keeps 2 of 3
        s = sampler(name, "nb201", max_inputs=3)
        assert s().host_active["normal"] == [True] * 6


def test_gumbel_top2_inclusion_matches_appendix_a():
    s = sampler("rome-v2", "s2")
    beta = torch.tensor([0.3, -0.2, 1.0, 0.0, 0.5, -1.0, 0.2, 0.0, 1.5, -0.5, 0.7, 0.1, 0.0, -0.8])
    torch.manual_seed(0)
    n = 20000
    with torch.no_grad():  # n independent draws at once (leading dim), each as the sampler makes one
        e = torch.empty(n, *s.slot.shape).exponential_()
        freq = s._sample_topology(beta, e)[1].float().mean(0)
    expected = torch.zeros(14)
    for inc in s.incoming:
        p = F.softmax(beta[list(inc)].double(), 0)
        for a, e in enumerate(inc):
            expected[e] = p[a] + sum(p[b] * p[a] / (1 - p[b]) for b in range(len(inc)) if b != a)
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
    s.betas["normal"].data = beta.clone()
    torch.testing.assert_close(s.topology_probabilities()["normal"], expected, atol=1e-5, rtol=0)


def test_v1_pair_marginals():
    s = sampler("rome-v1", "s2")
    torch.manual_seed(2)
    beta = torch.randn(20)
    s.betas["normal"].data = beta.clone()
    n = 20000
    with torch.no_grad():
        active = s._sample_topology(beta, torch.empty(n, *s.slot.shape).exponential_())[1]
    assert (active.view(n, 14).sum(1) == 8).all()
    torch.testing.assert_close(active.float().mean(0), s.topology_probabilities()["normal"], atol=0.01, rtol=0)


def _replaying(net, seeds):
    """Make every sampler call draw with the next seed, so a run can be repeated sample by sample."""
    original = net.sampler.forward
    it = iter(seeds)

    def forward():
        torch.manual_seed(next(it))
        return original()

    net.sampler.forward = forward
    return original


def _grads(loss, params):
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


@pytest.mark.parametrize("name", ["rome-v1", "rome-v2"])
def test_accumulation_is_mean_for_arch_and_sum_for_weights(name):
    k = 3
    space, net, opt = build("s2", name, samples=k, grad_clip=1e9, momentum=0.0, weight_decay=0.0, lr=1.0)
    opt.set_progress(0, 2)
    net.train()
    train, val = batch(seed=1), batch(seed=2)
    a_params, w_params = net.sampler.arch_parameters(), net.weight_parameters()
    arch_seeds, weight_seeds = [10, 11, 12], [20, 21, 22]

    # references, one sample at a time with the same draws
    original = net.sampler.forward
    ref_a = [torch.zeros_like(a) for a in a_params]
    for seed in arch_seeds:
        torch.manual_seed(seed)
        for r, g in zip(ref_a, _grads(F.cross_entropy(net(val.x, original()), val.y), a_params)):
            r += g / k
    ref_w = [torch.zeros_like(p) for p in w_params]
    for seed in weight_seeds:
        torch.manual_seed(seed)
        for r, g in zip(ref_w, _grads(F.cross_entropy(net(train.x, original()), train.y), w_params)):
            r += g
    assert any(r.abs().sum() > 0 for r in ref_w) and all(r.abs().sum() > 0 for r in ref_a)

    _replaying(net, arch_seeds + weight_seeds)
    opt.a_opt.step = lambda: None  # read the arch gradient Adam would apply
    w_before = [p.detach().clone() for p in w_params]
    stats = opt.step(net, train, val)
    assert torch.isfinite(stats.train_loss) and torch.isfinite(stats.val_loss)
    for a, r in zip(a_params, ref_a):
        torch.testing.assert_close(a.grad, r, rtol=1e-4, atol=1e-6)
    # plain SGD, lr 1, no momentum / wd / clipping: w_after = w_before - sum_k grad_k
    for p, b, r in zip(w_params, w_before, ref_w):
        torch.testing.assert_close(p.detach(), b - r, rtol=1e-4, atol=1e-6)


def _select(net, space, opt):
    info = REGISTRY.component("selector", "rome-most-probable")
    ctx = SelectionContext(space=space, val_batches=lambda: iter([batch()]),
                           train_batches=lambda: iter([batch()]), optimizer=opt, seed=0)
    return info.factory(info.config()).select(net, ctx)


@pytest.mark.parametrize("name", ["rome-v1", "rome-v2"])
def test_selector_returns_the_most_probable_architecture(name):
    space = REGISTRY.space("darts")
    s = sampler(name)
    torch.manual_seed(3)
    for kind in space.cell_kinds:
        s.betas[kind].data = torch.randn_like(s.betas[kind])
        s.alphas[kind].data = torch.randn_like(s.alphas[kind])
        s.alphas[kind].data[:, 0] = 10.0  # `none` is the strongest op everywhere: must never be chosen
    net = type("Net", (), {"sampler": s})()
    g = _select(net, space, None)
    assert space.validate(g) is g and space.parse(g.to_string()) == g
    keep = s.most_probable_topology()
    probs = s.probabilities()
    ops = space.edge_ops("normal")[0]
    for kind in space.cell_kinds:
        cell = g.cell(kind)
        for node in range(4):
            (op_a, src_a), (op_b, src_b) = cell[2 * node: 2 * node + 2]
            assert src_a != src_b
            kept = sorted(src for e, (src, d) in enumerate(space.edges) if d == 2 + node and keep[kind][e])
            assert sorted((src_a, src_b)) == kept
            for op, src in ((op_a, src_a), (op_b, src_b)):
                e = space.edges.index((src, 2 + node))
                assert op != "none" and op == ops[1 + int(probs[kind][e, 1:].argmax())]
    # v2: kept edges are the top-2 betas; v1: the argmax pair
    for kind in space.cell_kinds:
        beta = s.betas[kind].detach()
        for node, inc in enumerate(s.incoming):
            kept = {e for e in inc if keep[kind][e]}
            if name == "rome-v2":
                assert kept == set(sorted(inc, key=lambda e: -float(beta[e]))[:2])
            else:
                offset = sum(len(x) for x in s.subsets[:node])
                best = int(beta[offset: offset + len(s.subsets[node])].argmax())
                assert kept == set(s.subsets[node][best])


def test_selector_on_nb201_writes_none_on_dropped_edges():
    space = REGISTRY.space("nb201")
    s = sampler("rome-v2", "nb201")
    s.betas["normal"].data = torch.tensor([0.0, 0.0, 0.0, 2.0, -3.0, 1.0])  # node 3 keeps 3<-0, 3<-2
    s.alphas["normal"].data = torch.randn(6, 5)
    s.alphas["normal"].data[:, 0] = 5.0
    g = _select(type("Net", (), {"sampler": s})(), space, None)
    assert space.validate(g) is g
    assert g.ops[4] == "none" and all(op != "none" for i, op in enumerate(g.ops) if i != 4)


def test_search_step_runs_end_to_end_on_darts():
    for name in ("rome-v1", "rome-v2"):
        space, net, opt = build("darts", name, samples=2)
        opt.set_progress(0, 2)
        a0 = [a.detach().clone() for a in net.sampler.arch_parameters()]
        stats = opt.step(net, batch(), batch(seed=3))
        assert torch.isfinite(stats.train_loss) and 0 <= float(stats.train_correct) <= 6
        assert all(not torch.equal(a, b) for a, b in zip(net.sampler.arch_parameters(), a0))
        g = _select(net, space, opt)
        assert space.validate(g) is g
        for kind in space.cell_kinds:
            for node in range(4):
                pair = g.cell(kind)[2 * node: 2 * node + 2]
                assert pair[0][1] != pair[1][1]


def test_pairs_per_node_v1():
    s = sampler("rome-v1")
    assert [len(x) for x in s.subsets] == [1, 3, 6, 10]
    for inc, subsets in zip(s.incoming, s.subsets):
        assert subsets == list(itertools.combinations(inc, 2))
