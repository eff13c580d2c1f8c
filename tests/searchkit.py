"""Small real search setups for tests: a method's components built at its paper settings on a space,
and batches of random data. Shared by the step-level tests (fused cell, graphs, DARTS steps)."""

import torch

from harness.api import Batch
from harness.config import resolve
from harness.plugins import load_registry
from harness.spaces import NetShape

REGISTRY = load_registry()
SHAPE = NetShape(3, 10, 16)


def method_parts(method, space_name, *, channels=4, layers=3, steps_per_epoch=6, epochs=1, optimizer_cls=None,
                 sets=()):
    """(net, sampler, cell type, optimizer) of ``method`` on ``space_name``, seeded 0, in train mode.
    ``optimizer_cls`` replaces the method's optimizer class (same config); ``sets``: (component, key, value)
    settings, as ``--set component.key=value``."""
    space = REGISTRY.space(space_name)
    spec = resolve(REGISTRY, REGISTRY.methods[method], space_name, "digits", 0, "paper", {}, list(sets))
    comp = {k: REGISTRY.component(k, n) for k, n in spec.components.items()}
    torch.manual_seed(0)
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    cell = comp["cell"].factory(spec.hparams["cell"])
    net = space.build_search_network(sampler, cell, channels, layers, SHAPE)
    make = comp["optimizer"].factory if optimizer_cls is None else optimizer_cls
    opt = make(spec.hparams["optimizer"], net=net, steps_per_epoch=steps_per_epoch, epochs=epochs)
    net.train()
    return net, sampler, cell, opt


def random_batches(n, size=8, seed=5, resolution=None):
    """``n`` (train, val) pairs of normal-noise images with random labels, shaped for SHAPE (or at
    ``resolution``: the networks pool globally before their classifier)."""
    gen = torch.Generator().manual_seed(seed)

    def one():
        res = resolution or SHAPE.resolution
        return Batch(torch.randn(size, SHAPE.in_channels, res, res, generator=gen),
                     torch.randint(0, SHAPE.num_classes, (size,), generator=gen))

    return [(one(), one()) for _ in range(n)]


def eager_and_fast_in_float64(method, space_name, *, sets=(), channels=4, epochs=2, steps=3):
    """``method`` on ``space_name`` in float64 for ``epochs`` epochs of ``steps`` steps, once on the eager cells
    and once on the fast path, from the same start and random stream, each epoch begun as the search loop begins
    it (``set_progress`` of the sampler, the optimizer and every cell body that has one):
    ``((eager losses, eager net), (fast losses, fast net))``."""
    from harness.nn.cells import set_fast

    torch.set_default_dtype(torch.float64)
    try:
        data = random_batches(steps)

        def trajectory(fast):
            net, sampler, _, opt = method_parts(method, space_name, channels=channels, steps_per_epoch=steps,
                                                epochs=epochs, sets=sets)
            assert set_fast(net, fast)
            # (harness.search.run_search's rule for what it schedules each epoch)
            bodies = [m for m in net.modules() if m is not sampler and callable(getattr(m, "set_progress", None))]
            torch.manual_seed(7)  # S4's noise and any sampler's draws, in the same order
            losses = []
            for epoch in range(epochs):
                sampler.set_progress(epoch, epochs)
                opt.set_progress(epoch, epochs)
                for body in bodies:
                    body.set_progress(epoch, epochs)
                for train, val in data:
                    losses.append(float(opt.step(net, train, val).train_loss))
            return losses, net

        return trajectory(False), trajectory(True)
    finally:
        torch.set_default_dtype(torch.float32)


def captured_step_matches_eager(tol=1e-9, method="darts", channels=2, sets=()):
    """One step of ``method`` (DARTS: an architecture step, then a weight step) on a normal and a reduction cell, in
    float64, from the same start and random stream: on the eager cells, and on the fast path in the form a CUDA
    graph captures (``groups.as_captured``, where the Triton forms run). Asserts the loss, alpha, every weight and
    every running statistic after it agree to ``tol`` (relative); the tests of the Triton forms switch theirs on
    first."""
    import contextlib

    from harness.nn import groups
    from harness.nn.cells import set_fast

    torch.set_default_dtype(torch.float64)
    try:
        train, val = random_batches(1, size=2, resolution=8)[0]

        def step(fast):
            net, sampler, _, opt = method_parts(method, "darts", channels=channels, layers=1, steps_per_epoch=12,
                                                sets=sets)
            opt.set_progress(0, 1)
            torch.manual_seed(1)
            set_fast(net, fast)
            with groups.as_captured() if fast else contextlib.nullcontext():
                loss = float(opt.step(net, train, val).train_loss)
            return loss, [a.detach().clone() for a in sampler.arch_parameters()], net.state_dict()

        (le, ae, we), (lf, af, wf) = step(False), step(True)
    finally:
        torch.set_default_dtype(torch.float32)
    assert abs(le - lf) / abs(le) < tol
    assert max(float((b - a).abs().max() / a.abs().max()) for a, b in zip(ae, af)) < tol
    assert we.keys() == wf.keys()
    worst = max(float((wf[k] - v).abs().max() / v.abs().max().clamp_min(1e-30)) for k, v in we.items()
                if v.is_floating_point())
    assert worst < tol, worst


def uncaptured_fast_step() -> torch.Tensor:
    """One DARTS step on the fast path, not captured (a CPU step): its training loss. The Triton forms' tests
    make their form fail if called, to show an uncaptured step keeps torch's kernels."""
    from harness.nn.cells import set_fast

    net, _, _, opt = method_parts("darts", "darts", channels=2, layers=2)
    set_fast(net, True)
    train, val = random_batches(1, size=2, resolution=8)[0]
    opt.set_progress(0, 1)
    return opt.step(net, train, val).train_loss


# A smoke run's retraining cut to one epoch: for the tests of a method's search, selection and record, whose
# retraining is the shared loop (tests/test_cli.py and the grid tests cover it); the suite's time (issue 12)
SHORT_RETRAIN = ["--set", "eval.epochs=1"]


def compiled_forms(tmp_path, *args) -> dict:
    """``benchmarks/dwconv_compile.py`` (a DARTS step's Triton kernel forms compiled for sm_90 by Triton's own
    compiler and ptxas, no GPU) run with ``args`` at toy sizes: its JSON record. A subprocess: Triton must be
    imported without TRITON_INTERPRET, which the tests' conftest sets. Skips where Triton has no ptxas."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest
    import triton

    if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists():
        pytest.skip("this Triton has no bundled ptxas")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "compile.json"
    result = subprocess.run([sys.executable, "benchmarks/dwconv_compile.py", "--method", "darts", "--channels", "2",
                             "--layers", "1", "--resolution", "8", *args, "--json", str(out)],
                            cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(out.read_text())
