"""beta-DARTS: the beta-decay loss and its weight schedule against hand computations and the official code's
constants (Sunshine-Ye/Beta-DARTS optimizers/darts/architect.py: ``mean(logsumexp(alpha, -1))`` weighted by
``50 * epoch / 100``), and a real search through the CLI."""

import math

import pytest
import torch
from click.testing import CliRunner

from harness.blocks import FirstOrderBilevel
from harness.cli import cli
from harness_beta_darts.plugin import beta_decay_loss
from tests.searchkit import SHORT_RETRAIN, method_parts, random_batches


def test_beta_decay_loss_and_gradient_on_known_alphas():
    # rows [0, ln 3] and [ln 2, ln 2]: logsumexp = ln(1 + 3) = ln 4 and ln(2 + 2) = ln 4
    normal = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    reduce = torch.tensor([[math.log(2.0), math.log(2.0)]], requires_grad=True)
    loss = beta_decay_loss([normal, reduce])
    assert loss.item() == pytest.approx(math.log(4.0))
    loss.backward()
    # d mean_r logsumexp(row_r) / d alpha = softmax(row) / (number of rows): [1/4, 3/4] / 2 and [1/2, 1/2] / 2
    assert normal.grad[0].tolist() == pytest.approx([0.125, 0.375])
    assert reduce.grad[0].tolist() == pytest.approx([0.25, 0.25])


@pytest.mark.parametrize("epoch,weight", [(0, 0.0), (10, 5.0), (49, 24.5), (99, 49.5)])
def test_the_weight_grows_as_the_official_code_50_epoch_over_100(epoch, weight):
    _, _, _, opt = method_parts("beta-darts", "nb201")
    opt.set_progress(epoch, 100)
    assert opt.beta_weight.item() == pytest.approx(weight)


def test_the_arch_loss_is_darts_plus_lambda_times_the_beta_loss():
    net, sampler, _, opt = method_parts("beta-darts", "s2")
    opt.set_progress(20, 50)  # lambda = 50 * 20 / 100 = 10
    with torch.no_grad():  # one row per edge of both cells; logsumexp by hand
        rows = [row for a in sampler.arch_parameters() for row in a.tolist()]
        by_hand = sum(math.log(sum(math.exp(v) for v in row)) for row in rows) / len(rows)
    (_, val), = random_batches(1)
    darts = FirstOrderBilevel.arch_loss(opt, net, val).item()
    assert opt.arch_loss(net, val).item() == pytest.approx(darts + 10.0 * by_hand, rel=1e-5)


def test_a_smoke_search_runs_on_a_darts_space_and_nb201(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "beta-darts", "--space", "s3,nb201", "--store",
                                   str(tmp_path / "s.sqlite"), "--preset", "smoke", "--quiet",
                                   *SHORT_RETRAIN], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 2
