"""Evaluation of a derived genotype: a benchmark query, or retraining with the DARTS protocol
(SGD with cosine lr, auxiliary head, cutout, linearly ramped drop path, gradient clipping; SPEC-FACTS
§2.6, §1.6), scaled by the preset. Also the architecture statistics (parameters, FLOPs)."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import EvalBudget
from harness.spaces import NetShape


def count_parameters(net: nn.Module) -> int:
    """Every parameter except the auxiliary head's (the DARTS convention)."""
    return sum(p.numel() for name, p in net.named_parameters() if "auxiliary" not in name)


def count_flops(net: nn.Module, shape: NetShape) -> int:
    """Multiply-accumulates of one inference forward pass of a single image (the "FLOPs" the NAS
    papers and NAS-Bench-201 report), by torch's FLOP counter / 2."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    x = torch.zeros(1, shape.in_channels, shape.resolution, shape.resolution,
                    device=next(net.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    net.train(was_training)
    return counter.get_total_flops() // 2


def arch_info(space, genotype, channels: int, layers: int, shape: NetShape) -> dict[str, Any]:
    net = space.build_eval_network(genotype, channels, layers, shape, auxiliary=False)
    return {
        "space": space.name,
        "genotype": genotype.to_string(),
        "channels": channels,
        "layers": layers,
        "classes": shape.num_classes,
        "params": count_parameters(net),
        "flops": count_flops(net, shape),
    }


@torch.no_grad()
def accuracy(net: nn.Module, loader) -> float:
    net.eval()
    correct = torch.zeros((), device=next(net.parameters()).device)
    total = 0
    for x, y in loader:
        logits, _ = net(x)
        correct += (logits.argmax(1) == y).sum()
        total += y.shape[0]
    return 100.0 * float(correct) / max(1, total)


def retrain(space, genotype, data, budget: EvalBudget, device: torch.device, seed: int,
            on_epoch=None, resume: dict[str, Any] | None = None, checkpoint=None,
            test_every: int = 0) -> dict[str, Any]:
    """Train the derived network from scratch on the training set and test it on the test set. Each
    epoch's record (``curve``) has its train loss and accuracy, and its test accuracy every ``test_every``
    epochs (0: only the final test; an observation only: the test pass draws no random numbers and
    leaves the training as it is). With
    ``checkpoint``, after every epoch the state to go on from (network, optimizer, the loader's generator,
    the global random state, the curve) is handed to it, and so it is (with the epoch's place: ``step``)
    at the step boundary where a stop request is heard, before RunInterrupted; ``resume`` is such a
    state."""
    from harness.checkpoint import rng_state, set_rng_state
    from harness.data import DeviceLoader
    from harness.interrupts import check as check_stop

    info = data.info
    shape = NetShape(info.channels, info.num_classes, info.resolution)
    torch.manual_seed(seed)
    net = space.build_eval_network(genotype, budget.channels, budget.layers, shape,
                                   auxiliary=budget.auxiliary_weight > 0).to(device)
    train_x, train_y = data.train_x, data.train_y
    if budget.max_train_images is not None:
        train_x, train_y = train_x[: budget.max_train_images], train_y[: budget.max_train_images]
    gen = torch.Generator(device=device).manual_seed(seed)
    train_loader = DeviceLoader(train_x, train_y, info, budget.batch_size, device, train=True,
                                cutout=budget.cutout, generator=gen, max_steps=budget.max_steps_per_epoch)
    test_loader = DeviceLoader(data.test_x, data.test_y, info, 256, device, train=False)
    opt = torch.optim.SGD(net.parameters(), lr=budget.lr, momentum=budget.momentum,
                          weight_decay=budget.weight_decay)
    t0 = time.perf_counter()
    curve, first, before, mid = [], 0, 0.0, None
    if resume is not None:
        net.load_state_dict(resume["net"])
        opt.load_state_dict(resume["optimizer"])
        curve, before = list(resume["curve"]), resume["seconds"]
        if resume.get("step") is not None:  # stopped inside an epoch: replayed below
            first, mid = resume["epoch"], resume
        else:
            gen.set_state(resume["generator"])
            set_rng_state(resume["rng"])
            first = resume["epoch"] + 1
    from harness import interrupts, progress

    def state(**place) -> dict[str, Any]:  # what a checkpoint holds besides the place in the data
        return {"phase": "retrain", "epoch": epoch, "net": net.state_dict(), "optimizer": opt.state_dict(),
                "rng": rng_state(), "curve": curve, "seconds": before + time.perf_counter() - t0, **place}

    tracker = progress.Phase("retrain", budget.epochs, len(train_loader))
    for epoch in range(first, budget.epochs):
        tracker.start(epoch)
        lr = 0.5 * budget.lr * (1 + math.cos(math.pi * epoch / budget.epochs))  # cosine to 0
        for group in opt.param_groups:
            group["lr"] = lr
        net.drop_path_prob = budget.drop_path * epoch / budget.epochs
        net.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        n = taken = 0
        at_start = gen.get_state()  # enough to draw this epoch's batches again after a stop inside it
        batches = iter(train_loader)  # a generator: draws nothing yet
        if mid is not None:  # the batches of the steps done before the stop, drawn again, not trained on
            at_start, taken = mid["epoch_start"], mid["step"]
            gen.set_state(at_start)
            for _ in range(taken):
                next(batches)
            set_rng_state(mid["rng"])
            loss_sum, n = mid["loss_sum"].to(device), mid["n"]
            correct = mid.get("correct", correct).to(device)
            tracker.step_no, mid = taken, None
        for x, y in batches:
            if interrupts.requested():  # SIGTERM/SIGINT: a checkpoint at this step boundary, then stop
                if checkpoint is not None:
                    checkpoint(state(step=taken, epoch_start=at_start, loss_sum=loss_sum, correct=correct, n=n))
                check_stop(f"retrain epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            logits, aux = net(x)
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + budget.auxiliary_weight * F.cross_entropy(aux, y)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), budget.grad_clip)
            opt.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            n += y.shape[0]
            taken += 1
            tracker.step(y.shape[0])
        curve.append({"epoch": epoch, "train_loss": float(loss_sum) / max(1, n),
                      "train_acc": 100.0 * float(correct) / max(1, n), "lr": lr})
        if test_every > 0 and (epoch + 1) % test_every == 0 and epoch + 1 < budget.epochs:
            curve[-1]["test_acc"] = accuracy(net, test_loader)
        tracker.end(curve[-1]["train_loss"])
        if epoch + 1 == budget.epochs:
            # the final test is taken with the last epoch, so that its checkpoint and on_epoch (the
            # harness_retrain_epoch_end hook) carry it too
            progress.enter("test")
            curve[-1]["test_acc"] = accuracy(net, test_loader)
        if checkpoint is not None:
            checkpoint(state(generator=gen.get_state()))
        if on_epoch is not None:
            on_epoch(epoch, curve[-1])
    if curve and "test_acc" in curve[-1]:  # taken with the last epoch (above, or before a resume)
        test_acc = curve[-1]["test_acc"]
    else:  # no retrain epoch at all, or resumed from a checkpoint written before the final test
        progress.enter("test")
        test_acc = accuracy(net, test_loader)
        if curve:
            curve[-1]["test_acc"] = test_acc
    return {
        "test_accuracy": test_acc,
        "source": "retrain",
        "params": count_parameters(net),
        "flops": count_flops(net, shape),
        "eval_channels": budget.channels,
        "eval_layers": budget.layers,
        "eval_epochs": budget.epochs,
        "final_train_loss": curve[-1]["train_loss"] if curve else None,
        "curve": curve,
        "eval_s": before + time.perf_counter() - t0,
    }
