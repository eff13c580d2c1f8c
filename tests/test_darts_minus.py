"""DARTS-: the auxiliary skip's weight per epoch against the official DecayScheduler's formulas (Meituan-AutoML/
DARTS- src/utils.py, the paper's runs: --skip_beta 1 --decay linear over 50 epochs), what an edge computes,
and that the search loop drives the schedule."""

import math

import pytest
import torch
from click.testing import CliRunner

from harness.blocks import MixedBody
from harness.cli import cli
from harness_darts_minus.plugin import AuxSkipBody, AuxSkipConfig, skip_weight
from tests.searchkit import method_parts


@pytest.mark.parametrize("epoch,beta", [(0, 1.0), (1, 0.98), (25, 0.5), (49, 0.02)])
def test_linear_decay_from_1_over_the_papers_50_epochs(epoch, beta):
    # official: 1 * (50 - epoch) / (50 - 0)
    assert skip_weight(AuxSkipConfig(), epoch, 50) == pytest.approx(beta)


def test_cosine_slow_cosine_start_and_stop():
    assert skip_weight(AuxSkipConfig(decay="cosine"), 25, 50) == pytest.approx(0.5)  # (1 + cos(pi/2)) / 2
    assert skip_weight(AuxSkipConfig(decay="slow_cosine"), 25, 50) == pytest.approx(math.cos(math.pi / 4))
    late = AuxSkipConfig(decay_start=10)
    assert skip_weight(late, 5, 50) == 1.0 and skip_weight(late, 30, 50) == pytest.approx((50 - 30) / 40)
    frozen = AuxSkipConfig(decay_stop=30)  # after T_stop the weight keeps its value at T_stop: 20/50
    assert skip_weight(frozen, 40, 50) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="decay must be one of linear, cosine, slow_cosine, none"):
        AuxSkipConfig(decay="step")


def test_each_edge_adds_beta_times_the_skip_identity_or_factorized_reduce():
    net, _, _, _ = method_parts("darts-minus", "s2")
    bodies = [m for m in net.modules() if isinstance(m, AuxSkipBody)]
    normal = next(b for b in bodies if b.kind == "normal")
    reduce = next(b for b in bodies if b.kind == "reduce")
    arch = net.sampler()
    for body in (normal, reduce):
        body.set_progress(25, 50)  # beta = 0.5
        c = body.spec.channels
        x = torch.randn(2, c, 8, 8)
        for e, stride in enumerate(body.spec.strides):
            got = body.edge_forward(e, x, arch)
            mixed = MixedBody.edge_forward(body, e, x, arch)
            skip = x if stride == 1 else body.aux[e](x)
            assert got.shape == (2, c, 8 // stride, 8 // stride)
            torch.testing.assert_close(got, mixed + 0.5 * skip)
    assert any(s == 2 for s in reduce.spec.strides)  # the FactorizedReduce path was exercised


def test_the_search_loop_sets_every_body_each_epoch(tmp_path, monkeypatch):
    calls = []
    original = AuxSkipBody.set_progress

    def record(self, epoch, epochs):
        calls.append((self.kind, epoch, epochs))
        original(self, epoch, epochs)

    monkeypatch.setattr(AuxSkipBody, "set_progress", record)
    out = CliRunner().invoke(cli, ["run", "--plugin", "darts-minus", "--space", "s3,nb201", "--preset", "smoke",
                                   "--set", "search.epochs=3", "--store", str(tmp_path / "s.sqlite"), "--quiet"],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 2
    # each run's bodies all get epoch 0, then all epoch 1, then all epoch 2 (s3's run, then nb201's)
    seq = [e for _, e, _ in calls]
    a = seq.index(1)  # bodies in the first run's supernet
    b = (len(seq) - 3 * a) // 3
    assert a > 0 and b > 0 and seq == [0] * a + [1] * a + [2] * a + [0] * b + [1] * b + [2] * b
    assert {n for *_, n in calls} == {3}


def test_the_fast_path_follows_the_eager_cell_in_float64():
    """The fused forward (the mixed node sum, then beta_t times each incoming edge's skip) against the eager
    edges on S4 (its noise drawn in order, the reduction cells' FactorizedReduce skips): two epochs of 3 steps
    (beta 1, then 0.5 of a 2-epoch decay), losses, alphas, weights and BatchNorm buffers to 1e-12 in float64."""
    from tests.searchkit import eager_and_fast_in_float64

    (le, eager), (lf, fast) = eager_and_fast_in_float64("darts-minus", "s4")
    bodies = [m for m in fast.modules() if isinstance(m, AuxSkipBody)]
    assert len(bodies) == 3 and all(b._fused is not None for b in bodies) and float(bodies[0].skip_beta) == 0.5
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lf)) < 1e-12
    for (name, a), (_, b) in zip(eager.state_dict().items(), fast.state_dict().items()):
        a, b = a.double(), b.double()
        assert float((a - b).abs().max()) <= 1e-12 * max(1.0, float(a.abs().max())), name
