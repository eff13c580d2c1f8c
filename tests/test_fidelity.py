"""Each method searches the network, ops and schedule of its paper and reference code (issue 10).

Every expected value here comes from outside the harness: the reference code (read and, where
stated, run; figures and sources in docs/reference-facts.md), the papers, or arithmetic done by hand.
"""

import json
import math

import pytest
import torch
from click.testing import CliRunner

from harness.cli import cli
from harness.config import resolve
from harness.plugins import load_registry
from harness.spaces import NetShape

REGISTRY = load_registry()
NB201_METHODS = sorted(m.name for m in REGISTRY.methods.values() if m.spaces is None or "nb201" in m.spaces)

# weight parameters of the NAS-Bench-201 search supernet at C=16, N=5, 10 classes, counted by
# instantiating the reference classes (docs/reference-facts.md §1):
DARTS_PT_NB201_SUPERNET = 1_686_106  # ruocwang/darts-pt nasbench201 TinyNetworkDarts (convs without bias)
XAUTODL_NB201_SUPERNET = 1_692_826  # xautodl TinyNetworkDarts/GDAS: + a bias on each of the 5*3*6*2 convs
XAUTODL_CONV_BIASES = 5 * 6 * 2 * (16 + 32 + 64)


def dry_run(*args):
    result = CliRunner().invoke(cli, ["run", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def build_supernet(spec, shape=NetShape(3, 10, 32)):
    space = REGISTRY.space(spec.space, spec.budget.search.op_set)
    s = REGISTRY.component("sampler", spec.components["sampler"])
    c = REGISTRY.component("cell", spec.components["cell"])
    torch.manual_seed(0)
    return space, space.build_search_network(s.factory(spec.hparams["sampler"], space=space),
                                             c.factory(spec.hparams["cell"]), spec.budget.search.channels,
                                             spec.budget.search.layers, shape)


# ---------------------------------------------------------------------------------------------
# 1. the NAS-Bench-201 supernet: C=16, N=5 for every method in every preset


@pytest.mark.parametrize("preset", ["paper", "quick"])
def test_every_nb201_method_searches_c16_n5(preset):
    rows = dry_run("--plugin", ",".join(NB201_METHODS), "--space", "nb201", "--preset", preset)
    assert sorted(r["method"] for r in rows) == NB201_METHODS
    for r in rows:
        assert (r["search"]["channels"], r["search"]["layers"]) == (16, 5), r["method"]


# methods whose supernet runs its ops on 1/k of the channels (PC-DARTS): the reference count holds at k=1
PARTIAL_CHANNEL = {"pc-darts": ("cell", "k", "1")}


@pytest.mark.parametrize("method", NB201_METHODS)
def test_nb201_supernet_has_the_reference_weight_count(method):
    sets = [PARTIAL_CHANNEL[method]] if method in PARTIAL_CHANNEL else []
    spec = resolve(REGISTRY, REGISTRY.methods[method], "nb201", "cifar10", 0, "paper", {}, sets)
    _, net = build_supernet(spec)
    assert sum(p.numel() for p in net.weight_parameters()) == DARTS_PT_NB201_SUPERNET


def test_xautodl_conv_biases_are_inert_before_an_affine_free_batchnorm():
    """The only difference to xautodl's supernet (1,692,826 = 1,686,106 + 6,720 conv biases): a bias
    added before BatchNorm without affine is removed by the mean subtraction. With batch statistics
    (every search forward) the outputs are the same and the bias's gradient is zero, so it never moves;
    with running statistics the running mean carries the bias and removes it again."""
    assert XAUTODL_NB201_SUPERNET - DARTS_PT_NB201_SUPERNET == XAUTODL_CONV_BIASES
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, bias=True)
    # momentum=None: the running statistics are exact averages of the batches seen
    bn_a = torch.nn.BatchNorm2d(8, affine=False, momentum=None)
    bn_b = torch.nn.BatchNorm2d(8, affine=False, momentum=None)
    x = torch.randn(4, 8, 6, 6)
    without = torch.nn.functional.conv2d(x, conv.weight, None, padding=1)
    out = bn_a(conv(x))
    torch.testing.assert_close(out, bn_b(without), rtol=1e-5, atol=1e-5)
    (out * torch.randn(out.shape)).sum().backward()
    assert float(conv.bias.grad.abs().max()) < 1e-5 < float(conv.weight.grad.abs().max())
    bn_a.eval(), bn_b.eval()
    torch.testing.assert_close(bn_a(conv(x)), bn_b(without), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# 2. the op set each paper searches on the DARTS space

# DARTS (quark0 PRIMITIVES, 8 ops with none), GDAS (xautodl DARTS_SPACE, none first), Single-DARTS (its
# DARTS-space search keeps zero ops: "to avoid extra gradients on zero operations"); darts-pt's S5,
# ROME's S0 and EnTranNAS's standard space have the 7 ops without none. The baselines' s5 ("original DARTS
# space"): beta-DARTS and SDARTS sota/cnn/spaces.py comment 'none' out (7), DARTS- src/spaces.py keeps it (8).
PAPER_OPS_ON_DARTS = {"darts": 8, "darts-2nd": 8, "gdas": 8, "single-darts": 8, "darts-pt": 7,
                      "darts-pt-fixed-alpha": 7, "rome-v1": 7, "rome-v2": 7, "entrannas": 7, "entrannas-dst": 7,
                      "beta-darts": 7, "sdarts-rs": 7, "sdarts-adv": 7, "darts-minus": 8,
                      "pc-darts": 8, "fairdarts": 7, "snas": 8, "drnas": 7}


def test_every_recipe_declares_its_op_set_on_the_darts_space():
    on_darts = {m.name for m in REGISTRY.methods.values() if m.spaces is None or "darts" in m.spaces}
    assert on_darts == set(PAPER_OPS_ON_DARTS)
    for name in on_darts:
        assert "darts" in REGISTRY.methods[name].op_sets, name


@pytest.mark.parametrize("method", sorted(PAPER_OPS_ON_DARTS))
def test_op_set_in_the_dry_run_and_in_the_arch_parameters(method):
    (row,) = dry_run("--plugin", method, "--space", "darts", "--preset", "paper")
    n = PAPER_OPS_ON_DARTS[method]
    assert row["search"]["op_set"] == ("all" if n == 8 else "no-none")
    assert len(row["search_ops"]["normal"]) == n and ("none" in row["search_ops"]["normal"]) == (n == 8)
    spec = resolve(REGISTRY, REGISTRY.methods[method], "darts", "cifar10", 0, "paper", {}, [])
    space, net = build_supernet(spec, NetShape(3, 10, 8))
    # the architecture parameters that weight ops have one column per searched op
    alphas = [a for a in net.sampler.arch_parameters() if a.dim() == 2]
    assert alphas and all(a.shape == (14, n) for a in alphas)
    assert all(len(ops) == n for kind in space.cell_kinds for ops in space.edge_ops(kind))


def test_op_set_is_an_option_and_a_bad_one_is_named():
    (row,) = dry_run("--plugin", "rome-v2", "--space", "darts", "--set", "search.op_set=all")
    assert row["search"]["op_set"] == "all" and "none" in row["search_ops"]["normal"]
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--set", "search.op_set=no-none",
                                      "--dry-run"])
    assert result.exit_code == 2 and "'no-none'" in result.output and "all" in result.output


# ---------------------------------------------------------------------------------------------
# 3. GDAS on the DARTS space: xautodl's GDAS-NASNet-CIFAR configs and derivation


def test_gdas_paper_config_on_the_darts_space():
    (row,) = dry_run("--plugin", "gdas", "--space", "darts", "--preset", "paper")
    s, o = row["search"], row["hparams"]["optimizer"]
    assert (s["batch_size"], s["epochs"], s["channels"], s["layers"]) == (256, 250, 16, 6)
    assert (o["lr"], o["lr_min"], o["momentum"], o["weight_decay"], o["nesterov"], o["grad_clip"]) == (
        0.025, 0.001, 0.9, 5e-4, True, 5.0)
    assert (o["arch_lr"], o["arch_weight_decay"]) == (3e-4, 1e-3)
    assert row["components"]["selector"] == "pair-top2"
    # NASNet supernet with N=2: 3N = 6 cells, reductions at cells 2 and 4 (xautodl, instantiated)
    spec = resolve(REGISTRY, REGISTRY.methods["gdas"], "darts", "cifar10", 0, "paper", {}, [])
    _, net = build_supernet(spec, NetShape(3, 10, 8))
    assert [c.reduction for c in net.cells] == [False, False, True, False, True, False]
    (nb,) = dry_run("--plugin", "gdas", "--space", "nb201", "--preset", "paper")
    assert (nb["search"]["batch_size"], nb["search"]["layers"]) == (64, 5)


class _Probs:
    def __init__(self, probs):
        self._p = probs

    def probabilities(self):
        return self._p


def test_gdas_derivation_takes_the_top_two_pairs_of_a_node_even_from_one_input():
    space = REGISTRY.space("darts")
    ops = space.edge_ops("normal")[0]
    p = torch.full((14, 8), 0.01)
    p[0, ops.index("sep_conv_3x3")] = 0.40  # node 2: both best pairs come from input 0
    p[0, ops.index("skip_connect")] = 0.30
    p[1, ops.index("dil_conv_3x3")] = 0.20  # the best pair from input 1 is third: dropped
    p[1, ops.index("none")] = 0.90  # none never counts
    for e in range(2, 14):  # other nodes: input 0 strongest, then input 1
        src = space.edges[e][0]
        p[e, ops.index("avg_pool_3x3")] = 0.5 - 0.05 * src
    net = type("Net", (), {"sampler": _Probs({"normal": p, "reduce": p.clone()})})()
    sel = REGISTRY.component("selector", "pair-top2")
    ctx = type("Ctx", (), {"space": space})()
    g = sel.factory(sel.config()).select(net, ctx)
    assert g.nodes("normal")[0] == (("sep_conv_3x3", 0), ("skip_connect", 0))
    assert g.nodes("normal")[1] == (("avg_pool_3x3", 0), ("avg_pool_3x3", 1))
    assert space.validate(g) is g


# ---------------------------------------------------------------------------------------------
# 5. learning-rate schedules: epoch e trains at lr(e), T_max = search epochs


def test_search_lr_sequence_is_the_references():
    """quark0/darts on its PyTorch 0.3.1, RobustDARTS (``scheduler.step(epoch)``), darts-pt (step at the
    epoch's end) and xautodl (cosine of the epoch when warmup is 0) all train epoch e at
    0.001 + 0.012 (1 + cos(pi e / 50)); figures from running their schedulers (docs/reference-facts.md)."""
    reference = {0: 0.025, 25: 0.013, 49: 0.0010236792}
    for method, space in (("darts", "darts"), ("darts", "nb201"), ("gdas", "nb201"), ("darts-pt", "s2")):
        spec = resolve(REGISTRY, REGISTRY.methods[method], space, "cifar10", 0, "paper", {},
                       [("search", "epochs", "50")])
        _, net = build_supernet(spec, NetShape(3, 10, 8))
        info = REGISTRY.component("optimizer", spec.components["optimizer"])
        opt = info.factory(spec.hparams["optimizer"], net=net, steps_per_epoch=3, epochs=50)
        for epoch, lr in reference.items():
            opt.set_progress(epoch, 50)
            assert opt.lr == pytest.approx(lr, abs=1e-9), (method, space, epoch)


def test_gdas_tau_schedule_is_xautodls():
    spec = resolve(REGISTRY, REGISTRY.methods["gdas"], "nb201", "cifar10", 0, "paper", {}, [])
    sampler = REGISTRY.component("sampler", "gumbel").factory(spec.hparams["sampler"], space=REGISTRY.space("nb201"))
    for epoch, tau in ((0, 10.0), (1, 10 - 9.9 / 249), (249, 0.1)):  # 10 - 9.9 e / 249 (GDAS.py)
        sampler.set_progress(epoch, 250)
        assert sampler.tau == pytest.approx(tau)


# ---------------------------------------------------------------------------------------------
# 6. evaluation protocol per space and dataset


@pytest.mark.parametrize("space, dataset, channels, layers", [
    # RobustDARTS (ROME Table 6 caption): CIFAR-10 20 cells at C=36, S2 and S4 at C=16; CIFAR-100 and
    # SVHN 8 cells at C=16 (RobustDARTS src/evaluation/args.py defaults; darts-pt eval-c100/svhn.sh)
    ("s1", "cifar10", 36, 20), ("s2", "cifar10", 16, 20), ("s3", "cifar10", 36, 20), ("s4", "cifar10", 16, 20),
    ("s1", "cifar100", 16, 8), ("s4", "svhn", 16, 8), ("s2", "cifar100", 16, 8),
    ("darts", "cifar10", 36, 20),  # the DARTS protocol (quark0/darts train.py)
])
def test_eval_protocol_defaults(space, dataset, channels, layers):
    (row,) = dry_run("--plugin", "darts", "--space", space, "--dataset", dataset, "--preset", "paper")
    assert (row["eval"]["channels"], row["eval"]["layers"]) == (channels, layers)
    assert row["eval"]["protocol"] == ("darts" if space == "darts" else "robustdarts")


def test_sdarts_protocol_is_a_named_option():
    (row,) = dry_run("--plugin", "rome-v2", "--space", "s2", "--dataset", "svhn", "--preset", "paper",
                     "--set", "eval.protocol=darts")
    assert (row["eval"]["protocol"], row["eval"]["channels"], row["eval"]["layers"]) == ("darts", 36, 20)
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--set", "eval.protocol=nope",
                                      "--dry-run"])
    assert result.exit_code == 2 and "'nope'" in result.output and "robustdarts" in result.output


# ---------------------------------------------------------------------------------------------
# 7. EnTranNAS on S4: once the transit cells derive noise everywhere, no gradient reaches alpha


def test_noise_op_passes_no_gradient_to_its_input():
    """RobustDARTS src/operations.py NoiseOp draws from the detached input's shape: no gradient."""
    from harness.nn.ops import darts_op

    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    out = darts_op("noise", 4, 1, affine=False, search=True)(x)
    assert not out.requires_grad or torch.autograd.grad(out.sum(), x, allow_unused=True)[0] is None


@pytest.mark.parametrize("winner, reaches", [("sep_conv_3x3", True), ("noise", False)])
def test_entrannas_on_s4_arch_gradient_is_cut_when_transit_cells_derive_noise(winner, reaches):
    """The paper's transit cells run the derived ops unweighted (Eq. 6) and noise ignores its input, so
    when every transit cell derives noise the loss no longer depends on the engine cells: the method
    itself (not the harness) stops learning alpha; the collapse is absorbing. Pinned here."""
    spec = resolve(REGISTRY, REGISTRY.methods["entrannas"], "s4", "digits", 0, "smoke", {},
                   [("search", "channels", "4"), ("search", "layers", "5")])
    space, net = build_supernet(spec, NetShape(1, 4, 8))
    col = space.edge_ops("normal")[0].index(winner)
    with torch.no_grad():
        for a in net.sampler.arch_parameters():
            a.zero_()
            a[:, col] = 3.0
    net.sampler.set_progress(0, 1)
    net.train()
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    grads = [a.grad for a in net.sampler.arch_parameters()]
    got = any(g is not None and torch.count_nonzero(g) > 0 for g in grads)
    assert got is reaches


# ---------------------------------------------------------------------------------------------
# 8. the choices the papers leave open are options


@pytest.mark.parametrize("method, setting", [
    ("rome-v2", "sampler.tau_schedule=exponential"),
    ("rome-v1", "optimizer.weight_clip=per-sample"),
    ("entrannas-dst", "sampler.lam_kinds=mean"),
    ("single-darts", "optimizer.data=full"),
])
def test_open_choices_are_set_options(method, setting):
    (row,) = dry_run("--plugin", method, "--space", "s2", "--set", setting)
    kind, rest = setting.split(".", 1)
    key, value = rest.split("=")
    assert row["hparams"][kind][key] == value


def test_rome_exponential_tau_reaches_both_end_points():
    space = REGISTRY.space("s2")
    info = REGISTRY.component("sampler", "rome-v2")
    s = info.factory(info.config(tau_schedule="exponential"), space=space)
    for epoch, tau in ((0, 10.0), (5, 10 * (0.01 ** 0.5)), (10, 0.1)):
        s.set_progress(epoch, 11)
        assert s.tau == pytest.approx(tau)


def test_rome_per_sample_clip_bounds_each_sample():
    from harness_rome.components import AccumulateBilevel, AccumulateConfig

    spec = resolve(REGISTRY, REGISTRY.methods["rome-v2"], "s2", "digits", 0, "smoke", {}, [])
    _, net = build_supernet(spec, NetShape(1, 4, 8))
    opt = AccumulateBilevel(AccumulateConfig(samples=3, weight_clip="per-sample", grad_clip=1e-3), net=net,
                            steps_per_epoch=1, epochs=1)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 4, (6,))
    opt.w_opt.step = lambda: None  # inspect the gradient the optimizer would step on
    from harness.api import Batch

    opt.weight_step(net, Batch(x, y))
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in opt.w_params
                                                 if p.grad is not None]))
    assert float(norm) <= 3 * 1e-3 * (1 + 1e-5)  # each of the K=3 sample gradients clipped to 1e-3


def test_dst_lam_kinds_mean_halves_the_sum():
    space = REGISTRY.space("s2")
    info = REGISTRY.component("sampler", "dst")
    torch.manual_seed(0)
    a = info.factory(info.config(), space=space)
    torch.manual_seed(0)
    b = info.factory(info.config(lam_kinds="mean"), space=space)
    # two cell kinds: the mean is half the sum
    assert float(b.regularization().detach()) == pytest.approx(float(a.regularization().detach()) / 2)
    # beta = 0 -> t = 0.5 * (1 - 1e-4): each kind's term is -log t
    assert float(a.regularization().detach()) == pytest.approx(0.1 * 2 * -math.log(0.5 * (1 - 1e-4)))


def test_single_darts_full_data_steps_on_both_halves():
    spec = resolve(REGISTRY, REGISTRY.methods["single-darts"], "s2", "digits", 0, "smoke", {},
                   [("optimizer", "data", "full")])
    _, net = build_supernet(spec, NetShape(1, 4, 8))
    info = REGISTRY.component("optimizer", "single-level")
    opt = info.factory(spec.hparams["optimizer"], net=net, steps_per_epoch=1, epochs=1)
    assert opt.needs_val_batch
    from harness.api import Batch

    calls = []
    single = opt._single_step
    opt._single_step = lambda n, b: (calls.append(b.y.shape[0]), single(n, b))[1]
    stats = opt.step(net, Batch(torch.randn(6, 1, 8, 8), torch.randint(0, 4, (6,))),
                     Batch(torch.randn(5, 1, 8, 8), torch.randint(0, 4, (5,))))
    assert calls == [6, 5] and stats.n == 11


# ---------------------------------------------------------------------------------------------
# `harness methods --json`: op set and search network per space


def test_methods_json_shows_op_set_and_network_per_space():
    result = CliRunner().invoke(cli, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["rome-v2"]["per_space"]["darts"]["op_set"] == "no-none"
    assert len(rows["rome-v2"]["per_space"]["darts"]["ops"]["normal"]) == 7
    assert rows["darts"]["per_space"]["darts"]["op_set"] == "all"
    assert rows["darts"]["per_space"]["nb201"]["search_network"] == {"channels": 16, "layers": 5}
    assert rows["gdas"]["per_space"]["darts"]["search_network"] == {"channels": 16, "layers": 6}
    assert "nb201" not in rows["entrannas"]["per_space"]


def test_factory_signatures_agree_in_hookspec_docs_and_api():
    from pathlib import Path

    import harness.api as api
    import harness.hookspecs as hookspecs

    docs = (Path(__file__).resolve().parents[1] / "docs" / "hooks.md").read_text()
    for text in (hookspecs.harness_register_samplers.__doc__, docs, api.ComponentInfo.__doc__):
        flat = " ".join(text.split())
        assert "factory(config, space=)" in flat
        assert "cell_kinds=" not in flat and "**context" not in flat  # the old factory(config, cell_kinds=...)
