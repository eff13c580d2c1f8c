"""The first-order DARTS step computes only the gradients each half uses (backward(inputs=...)); that
must not change a single bit of the trajectory against full backward passes."""

import torch
import torch.nn.functional as F

from harness.nn.bilevel import FirstOrderBilevel, _accuracy_count
from tests.searchkit import method_parts, random_batches


class FullBackward(FirstOrderBilevel):
    """The step as quark0/darts writes it: every backward fills every leaf's gradient."""

    def arch_step(self, net, val):
        self.a_opt.zero_grad(set_to_none=True)
        loss = self.arch_loss(net, val)
        loss.backward()
        self.a_opt.step()
        return loss.detach()

    def weight_step(self, net, train):
        self.w_opt.zero_grad(set_to_none=True)
        logits = net(train.x)
        loss = F.cross_entropy(logits, train.y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.w_params, self.config.grad_clip)
        self.w_opt.step()
        return loss.detach(), _accuracy_count(logits.detach(), train.y)


def test_restricted_backward_is_bit_identical_to_full_backward():
    data = random_batches(3, seed=3)

    def trajectory(cls):
        net, sampler, _, opt = method_parts("darts", "s2", optimizer_cls=cls)
        opt.set_progress(0, 1)
        losses = [float(opt.step(net, *data[i % 3]).train_loss) for i in range(6)]
        return (losses, [a.detach().clone() for a in sampler.arch_parameters()],
                [p.detach().clone() for p in net.weight_parameters()])

    (l1, a1, w1), (l2, a2, w2) = trajectory(FirstOrderBilevel), trajectory(FullBackward)
    assert l1 == l2
    assert all(torch.equal(x, y) for x, y in zip(a1, a2))
    assert all(torch.equal(x, y) for x, y in zip(w1, w2))
