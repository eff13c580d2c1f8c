"""Single-DARTS: sigmoid sampler and the single-level optimizer (toy configs, CPU)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from harness.api import Batch
from harness.config import resolve
from harness.plugins import load_registry
from harness.search import run_search
from harness.spaces import NetShape

REGISTRY = load_registry()
SHAPE = NetShape(in_channels=1, num_classes=4, resolution=8)


def build(space_name="s2", sampler_cfg=None, opt_cfg=None):
    space = REGISTRY.space(space_name)
    s_info = REGISTRY.component("sampler", "sigmoid")
    c_info = REGISTRY.component("cell", "mixed")
    o_info = REGISTRY.component("optimizer", "single-level")
    torch.manual_seed(0)
    sampler = s_info.factory(sampler_cfg or s_info.config(), space=space)
    net = space.build_search_network(sampler, c_info.factory(c_info.config()), 4, 3, SHAPE)
    opt = o_info.factory(opt_cfg or o_info.config(), net=net, steps_per_epoch=2, epochs=2)
    opt.set_progress(0, 2)
    return space, net, opt


def batch(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


@pytest.mark.parametrize("space_name", ["s2", "nb201", "darts"])
def test_sigmoid_starts_at_one_eighth(space_name):
    space = REGISTRY.space(space_name)
    info = REGISTRY.component("sampler", "sigmoid")
    assert info.config().init == pytest.approx(-math.log(7))
    s = info.factory(info.config(), space=space)
    for kind in space.cell_kinds:
        w = s().weights[kind]
        assert w.shape == (len(space.edges), space.n_ops)
        torch.testing.assert_close(w, torch.full_like(w, 0.125))
        torch.testing.assert_close(s.probabilities()[kind], torch.full_like(w, 0.125))


def test_softmax_ablation_and_bad_activation():
    info = REGISTRY.component("sampler", "sigmoid")
    s = info.factory(info.config(activation="softmax"), space=REGISTRY.space("nb201"))
    torch.testing.assert_close(s().weights["normal"].sum(-1), torch.ones(6))
    with pytest.raises(ValueError, match="activation"):
        info.config(activation="tanh")


def test_one_forward_one_backward_feeds_both_optimizers():
    space, net, opt = build()
    train = batch()
    reference = copy.deepcopy(net)  # same state, for an independent autograd of the same loss
    forwards, backwards = [], []
    net.register_forward_hook(lambda m, i, o: forwards.append(1))
    net.classifier.register_full_backward_hook(lambda m, gi, go: backwards.append(1))
    seen = {}
    a_step, w_step = opt.a_opt.step, opt.w_opt.step

    def record_a(*args, **kw):
        seen["a"] = [a.grad.detach().clone() for a in net.sampler.arch_parameters()]
        seen["order"] = seen.get("order", []) + ["a"]
        return a_step(*args, **kw)

    def record_w(*args, **kw):
        seen["order"] = seen.get("order", []) + ["w"]
        return w_step(*args, **kw)

    opt.a_opt.step, opt.w_opt.step = record_a, record_w
    w0 = [p.detach().clone() for p in net.weight_parameters()]
    a0 = [a.detach().clone() for a in net.sampler.arch_parameters()]

    stats = opt.step(net, train, None)

    assert len(forwards) == 1 and len(backwards) == 1
    assert sorted(seen["order"]) == ["a", "w"]
    assert stats.val_loss is None and stats.n == 8 and torch.isfinite(stats.train_loss)
    assert any(not torch.equal(p, q) for p, q in zip(net.weight_parameters(), w0))
    assert all(not torch.equal(a, b) for a, b in zip(net.sampler.arch_parameters(), a0))
    # the arch gradient the optimizer applied is d(train loss)/d(alpha) of that very batch
    loss = F.cross_entropy(reference(train.x), train.y)
    expected = torch.autograd.grad(loss, reference.sampler.arch_parameters())
    torch.testing.assert_close(stats.train_loss, loss.detach())
    for got, exp in zip(seen["a"], expected):
        torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-7)


def test_adam_settings_and_no_alpha_weight_decay():
    _, _, opt = build("nb201")
    group = opt.a_opt.param_groups[0]
    assert group["lr"] == pytest.approx(3e-4) and group["betas"] == (0.5, 0.999)
    assert group["weight_decay"] == 0.0
    assert opt.w_opt.param_groups[0]["momentum"] == 0.9
    assert opt.w_opt.param_groups[0]["weight_decay"] == pytest.approx(3e-4)


def test_method_recipe_and_nb201_lr():
    method = REGISTRY.methods["single-darts"]
    assert method.components() == {"sampler": "sigmoid", "optimizer": "single-level", "selector": "argmax",
                                   "cell": "mixed"}
    spec = resolve(REGISTRY, method, "nb201", "digits", 0, "paper", {}, [])
    assert spec.hparams["optimizer"].lr == pytest.approx(0.005)
    assert spec.hparams["optimizer"].arch_weight_decay == 0.0
    spec = resolve(REGISTRY, method, "s2", "digits", 0, "paper", {}, [])
    assert spec.hparams["optimizer"].lr == pytest.approx(0.025)


class _NoData:
    def __iter__(self):
        raise AssertionError("the validation split must not be drawn")


def test_search_loop_draws_no_validation_batch():
    space, net, opt = build("nb201")
    assert opt.needs_val_batch is False
    train = [(b.x, b.y) for b in (batch(seed=s) for s in range(2))]
    selector = REGISTRY.component("selector", "argmax")
    result = run_search(net=net, sampler=net.sampler, optimizer=opt,
                        selector=selector.factory(selector.config()), space=space, train_loader=train,
                        val_loader=_NoData(), epochs=2, seed=0)
    assert result.steps == 4 and math.isnan(result.curve[0]["val_loss"])
    assert space.validate(result.genotype) is result.genotype
    # the lr follows the cosine of the run
    assert result.curve[0]["lr"] == pytest.approx(0.025)
