"""SNAS: the concrete samples against the softmax they relax, the official temperature schedule
(SNAS-Series SNAS/utils.py Temp_Scheduler: 0.03 + 0.97 * (1 - (e + 1) / 150)), the single-level joint step
with alpha's gradient clip, and a real search through the CLI."""

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from harness.cli import cli
from harness_snas.plugin import concrete_sample
from tests.searchkit import SHORT_RETRAIN, method_parts, random_batches

LOG_ALPHA = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))


def test_samples_lie_on_the_simplex_and_their_argmax_is_drawn_with_the_softmax():
    """Gumbel-max: argmax(log_alpha + G) is distributed as softmax(log_alpha) at any temperature."""
    torch.manual_seed(0)
    rows = LOG_ALPHA.expand(40000, 4)
    s = concrete_sample(rows, tau=1.0)
    assert torch.allclose(s.sum(-1), torch.ones(40000), atol=1e-6) and (s >= 0).all()
    freq = torch.bincount(s.argmax(-1), minlength=4).float() / 40000
    # binomial standard error at n = 40000 is at most 0.0025: 4 of them
    assert freq.tolist() == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.01)


def test_at_the_final_temperature_the_mean_sample_is_the_softmax():
    torch.manual_seed(1)
    s = concrete_sample(LOG_ALPHA.expand(40000, 4), tau=0.03)
    assert s.mean(0).tolist() == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.01)
    assert (s.max(-1).values > 0.99).float().mean() > 0.9  # nearly one-hot


def test_a_hotter_sample_is_softer():
    torch.manual_seed(2)
    hot = concrete_sample(LOG_ALPHA.expand(4000, 4), tau=1.0).max(-1).values.mean()
    cold = concrete_sample(LOG_ALPHA.expand(4000, 4), tau=0.1).max(-1).values.mean()
    assert hot < cold


@pytest.mark.parametrize("epoch,tau", [(0, 0.03 + 0.97 * 149 / 150), (74, 0.03 + 0.97 * 75 / 150), (149, 0.03)])
def test_the_temperature_follows_the_official_scheduler(epoch, tau):
    _, sampler, _, _ = method_parts("snas", "s2")
    sampler.set_progress(epoch, 150)
    assert sampler.tau == pytest.approx(tau)


def test_alpha_starts_near_one_and_each_forward_draws_a_new_sample_per_cell_kind():
    _, sampler, _, _ = method_parts("snas", "s2")
    alpha = torch.cat([a.detach().flatten() for a in sampler.arch_parameters()])
    assert abs(alpha.mean().item() - 1.0) < 0.005 and 0.005 < alpha.std().item() < 0.015
    a, b = sampler(), sampler()
    assert not torch.equal(a.weights["normal"], b.weights["normal"])
    assert not torch.equal(a.weights["normal"], a.weights["reduce"])
    assert torch.allclose(sampler.probabilities()["normal"], F.softmax(sampler.alphas["normal"].detach(), -1))


def test_one_joint_step_moves_weights_and_alpha_on_both_halves_with_alpha_clipped():
    net, sampler, _, opt = method_parts("snas", "s2")
    assert opt.needs_val_batch and opt.config.data == "full" and opt.config.arch_grad_clip == 10.0
    opt.set_progress(0, 150)
    a0 = [a.detach().clone() for a in sampler.arch_parameters()]
    (train, val), = random_batches(1)
    stats = opt.step(net, train, val)
    assert stats.n == train.y.shape[0] + val.y.shape[0]
    assert all(not torch.equal(a, b) for a, b in zip(a0, sampler.arch_parameters()))
    # the clip acts on alpha's gradient: with a tiny bound, what is left after the step is that small
    net, sampler, _, opt = method_parts("snas", "s2")
    opt.config = type(opt.config)(**{**opt.config.__dict__, "arch_grad_clip": 1e-6})
    opt.step(net, train, val)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a.grad) for a in sampler.arch_parameters()]))
    assert norm.item() <= 1e-6 * 1.0001


def test_a_smoke_search_runs_on_a_darts_space_and_nb201(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "snas", "--space", "s3,nb201", "--store",
                                   str(tmp_path / "s.sqlite"), "--preset", "smoke", "--quiet",
                                   *SHORT_RETRAIN], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 2
