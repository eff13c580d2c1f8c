"""SDARTS-RS and -ADV: the official clip on hand-made rows, the epsilon schedule, the perturbation bound, that
the architecture step sees the unperturbed weights, and that the adversarial weights never lower the training
loss (xiangning-chen/SmoothDARTS attacker/perturb.py, sota/cnn/model_search.py)."""

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from harness.api import ArchWeights
from harness.cli import cli
from harness_sdarts.plugin import clip_rows
from tests.searchkit import SHORT_RETRAIN, method_parts, random_batches


def test_clip_rows_as_the_official_clip():
    # [1.2, -0.1, 0.3] -> clamp [1, 0, 0.3] -> / 1.3; an all-negative row -> one-hot at its argmax (index 1)
    got = clip_rows(torch.tensor([[1.2, -0.1, 0.3], [-0.2, -0.1, -0.3]]))
    assert got[0].tolist() == pytest.approx([1 / 1.3, 0.0, 0.3 / 1.3])
    assert got[1].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("epoch,eps", [(0, 0.03), (25, 0.165), (49, 0.03 + 0.27 * 49 / 50)])
def test_epsilon_grows_from_0_03_to_0_3(epoch, eps):
    _, _, _, opt = method_parts("sdarts-rs", "s2", epochs=50)
    opt.set_progress(epoch, 50)
    assert opt.epsilon.item() == pytest.approx(eps)


def test_random_smoothing_stays_within_epsilon_and_on_the_simplex():
    net, sampler, _, opt = method_parts("sdarts-rs", "s2", epochs=50)
    opt.set_progress(10, 50)  # eps = 0.03 + 0.27 * 10 / 50 = 0.084
    (train, _), = random_batches(1)
    base = {k: p.detach() for k, p in sampler.probabilities().items()}  # all near 1/8 at init: no clamping
    for _ in range(5):
        w = opt.perturbed(net, train)
        for k, v in w.items():
            assert torch.allclose(v.sum(dim=-1), torch.ones(v.shape[0]))
            # before the row renormalisation each entry moved by at most eps (no clamping: all near 1/8);
            # after it, w = (b + u) / (1 + sum u), so |w - b| <= (eps + b * 8 eps) / (1 - 8 eps) for 8 ops
            bound = (0.084 + base[k].max().item() * 8 * 0.084) / (1 - 8 * 0.084)
            assert (v - base[k]).abs().max().item() <= bound + 1e-6
            assert (v - base[k]).abs().max().item() > 0  # it did perturb


def test_the_arch_step_sees_unperturbed_weights_and_the_weight_step_perturbed_ones(monkeypatch):
    net, sampler, _, opt = method_parts("sdarts-rs", "s2", epochs=50)
    opt.set_progress(49, 50)
    seen = []
    forward = type(net).forward

    def spy(self, x, arch=None):
        seen.append(arch)
        return forward(self, x, arch)

    monkeypatch.setattr(type(net), "forward", spy)
    (train, val), = random_batches(1)
    opt.step(net, train, val)
    # quark0/darts order: the arch step first, through the sampler (no weights handed in), then the weight step
    assert seen[0] is None and isinstance(seen[1], ArchWeights)
    soft = {k: F.softmax(a.detach(), dim=-1) for k, a in sampler.alphas.items()}
    assert any(not torch.allclose(seen[1].weights[k], soft[k], atol=1e-3) for k in soft)


def test_adversarial_weights_never_lower_the_training_loss():
    net, sampler, _, opt = method_parts("sdarts-adv", "s2", epochs=50)
    opt.set_progress(49, 50)
    for train, _ in random_batches(3):
        base = {k: p.detach() for k, p in sampler.probabilities().items()}
        w = opt.perturbed(net, train)
        net.eval()
        with torch.no_grad():
            before = F.cross_entropy(net(train.x, arch=ArchWeights(weights=base)), train.y)
            after = F.cross_entropy(net(train.x, arch=ArchWeights(weights=w)), train.y)
        net.train()
        assert after.item() >= before.item() - 1e-6
        assert all(torch.allclose(v.sum(-1), torch.ones(v.shape[0])) for v in w.values())


def test_smoke_searches_run(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "sdarts-rs,sdarts-adv", "--space", "s2,nb201", "--store",
                                   str(tmp_path / "s.sqlite"), "--preset", "smoke", "--quiet",
                                   *SHORT_RETRAIN], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 4
