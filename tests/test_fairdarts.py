"""Fair DARTS: the zero-one loss on known alphas, its place in the architecture loss, the official settings
and threshold_sparse derivation on hand-made weights (xiaomi-automl/FairDARTS fairdarts/separate_loss.py,
utils.py parse, train_search.py), and a real search through the CLI."""

import math

import pytest
import torch
from click.testing import CliRunner

from harness.api import SelectionContext
from harness.blocks import FirstOrderBilevel
from harness.cli import cli
from harness.spaces.darts import EDGES
from harness_fairdarts.plugin import ThresholdConfig, ThresholdSelector, zero_one_loss
from tests.searchkit import REGISTRY, SHORT_RETRAIN, method_parts, random_batches


def test_zero_one_loss_value_and_gradient_on_known_alphas():
    # sigmoid(ln 3) = 3/4, sigmoid(0) = 1/2, sigmoid(-ln 3) = 1/4: squared distances to 1/2 are 1/16, 0, 1/16
    normal = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)
    reduce = torch.tensor([[-math.log(3.0)]], requires_grad=True)
    loss = zero_one_loss([normal, reduce])
    assert loss.item() == pytest.approx(-(1 / 16 + 0 + 1 / 16) / 3)
    loss.backward()
    # d/da -(s - 1/2)^2 / 3 = -2 (s - 1/2) s (1 - s) / 3: s = 3/4 -> -1/32, s = 1/2 -> 0, s = 1/4 -> +1/32
    assert normal.grad[0].tolist() == pytest.approx([-1 / 32, 0.0])
    assert reduce.grad[0].tolist() == pytest.approx([1 / 32])


def test_weights_start_at_one_half_and_the_arch_loss_adds_ten_times_the_zero_one_loss():
    net, sampler, _, opt = method_parts("fairdarts", "s2")
    assert all(torch.equal(w, torch.full_like(w, 0.5)) for w in sampler().weights.values())
    with torch.no_grad():
        for a in sampler.arch_parameters():
            a.copy_(torch.linspace(-2, 2, a.numel()).view_as(a))
        sig = torch.cat([torch.sigmoid(a).flatten() for a in sampler.arch_parameters()])
        by_hand = -((sig - 0.5) ** 2).mean().item()
    (_, val), = random_batches(1)
    darts = FirstOrderBilevel.arch_loss(opt, net, val).item()
    assert opt.arch_loss(net, val).item() == pytest.approx(darts + 10.0 * by_hand, rel=1e-5)


def test_the_official_search_settings():
    _, _, _, opt = method_parts("fairdarts", "darts")
    c = opt.config
    assert (c.lr, c.lr_min, c.arch_lr, c.arch_beta1, c.arch_beta2, c.arch_weight_decay, c.zero_one_weight) == \
        (0.005, 0.001, 3e-3, 0.9, 0.999, 1e-3, 10.0)
    assert "none" not in REGISTRY.space("darts").with_op_set("no-none").edge_ops("normal")[0]


def _selected(weights: dict[tuple[int, int], tuple[str, float]], threshold=0.85):
    """A real Fair DARTS supernet whose sigmoid values are set by hand through alpha = logit(value): every op
    0.1 except the (op, value) given per edge (src, dst), in both cells."""
    net, sampler, _, _ = method_parts("fairdarts", "darts")
    space = REGISTRY.space("darts")
    ops = space.edge_ops("normal")
    with torch.no_grad():
        for kind, alpha in sampler.alphas.items():
            p = torch.full_like(alpha, 0.1)
            for (src, dst), (op, v) in weights.items():
                e = EDGES.index((src, dst))
                p[e, ops[e].index(op)] = v
            alpha.copy_(torch.log(p / (1 - p)))
    ctx = SelectionContext(space=space, val_batches=lambda: iter(()), train_batches=lambda: iter(()),
                           optimizer=None, seed=0)
    return ThresholdSelector(ThresholdConfig(threshold)).select(net, ctx)


def test_threshold_sparse_keeps_the_top_two_edges_only_above_the_threshold():
    g = _selected({
        (0, 2): ("sep_conv_3x3", 0.95), (1, 2): ("skip_connect", 0.90),  # node 2: both pass
        (0, 3): ("dil_conv_3x3", 0.92), (1, 3): ("max_pool_3x3", 0.60), (2, 3): ("sep_conv_5x5", 0.50),  # one
        # node 4: the top two are 4<-3 (0.97) and 4<-0 (0.88); 4<-1 (0.86) passes the threshold but is third
        (0, 4): ("avg_pool_3x3", 0.88), (1, 4): ("sep_conv_3x3", 0.86), (3, 4): ("skip_connect", 0.97),
        (2, 5): ("dil_conv_5x5", 0.40),  # node 5: nothing passes: its strongest edge is kept
    })
    nodes = g.nodes("normal")
    assert nodes[0] == (("sep_conv_3x3", 0), ("skip_connect", 1))
    assert nodes[1] == (("dil_conv_3x3", 0),)
    assert nodes[2] == (("skip_connect", 3), ("avg_pool_3x3", 0))
    assert nodes[3] == (("dil_conv_5x5", 2),)
    assert list(g.normal_concat) == [2, 3, 4, 5]
    # the variable in-degree survives the genotype text
    assert REGISTRY.space("darts").parse(g.to_string()) == g


def test_a_bad_threshold_is_named():
    with pytest.raises(ValueError, match="1.5"):
        ThresholdConfig(1.5)


def test_a_smoke_search_runs_on_a_darts_space_and_nb201(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "fairdarts", "--space", "s3,nb201", "--store",
                                   str(tmp_path / "s.sqlite"), "--preset", "smoke", "--quiet",
                                   *SHORT_RETRAIN], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 2
