"""The one search loop, for every method.

Per step it hands a train batch (and, if the optimizer wants one, a validation batch) to
``BilevelOptimizer.step``. Step statistics stay on the device and are summed there; the loop
synchronises with the device once per epoch, when it reports the epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.api import Batch, SelectionContext


@dataclass
class SearchResult:
    genotype: Any
    curve: list[dict[str, float]] = field(default_factory=list)
    probabilities: dict[str, list[list[float]]] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0


def _cycle(loader) -> Iterator[Batch]:
    while True:
        for x, y in loader:
            yield Batch(x, y)


def run_search(*, net, sampler, optimizer, selector, space, train_loader, val_loader, epochs: int,
               seed: int, on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> SearchResult:
    start = time.perf_counter()
    val_stream = _cycle(val_loader) if optimizer.needs_val_batch else None
    result = SearchResult(genotype=None)
    device = next(net.parameters()).device
    for epoch in range(epochs):
        t0 = time.perf_counter()
        sampler.set_progress(epoch, epochs)
        optimizer.set_progress(epoch, epochs)
        net.train()
        zero = torch.zeros((), device=device)
        train_loss, val_loss, correct, n, n_val = zero.clone(), zero.clone(), zero.clone(), 0, 0
        for x, y in train_loader:
            val = next(val_stream) if val_stream is not None else None
            stats = optimizer.step(net, Batch(x, y), val)
            train_loss += stats.train_loss * stats.n
            if stats.train_correct is not None:
                correct += stats.train_correct
            if stats.val_loss is not None:
                val_loss += stats.val_loss
                n_val += 1
            n += stats.n
            result.steps += 1
        # the one sync per epoch
        summary = {
            "epoch": epoch,
            "train_loss": float(train_loss) / max(1, n),
            "train_acc": 100.0 * float(correct) / max(1, n),
            "val_loss": float(val_loss) / n_val if n_val else float("nan"),
            "lr": float(getattr(optimizer, "lr", float("nan"))),
            "seconds": time.perf_counter() - t0,
        }
        result.curve.append(summary)
        if on_epoch is not None:
            on_epoch(epoch, {**summary, "probabilities": _probs(sampler)})

    net.eval()
    ctx = SelectionContext(
        space=space,
        val_batches=lambda: (Batch(x, y) for x, y in val_loader),
        train_batches=lambda: (Batch(x, y) for x, y in train_loader),
        optimizer=optimizer,
        seed=seed,
    )
    result.genotype = selector.select(net, ctx)
    result.probabilities = _probs(sampler)
    result.seconds = time.perf_counter() - start
    return result


def _probs(sampler) -> dict[str, list[list[float]]]:
    return {k: [[round(float(v), 6) for v in row] for row in p.cpu().tolist()]
            for k, p in sampler.probabilities().items()}
