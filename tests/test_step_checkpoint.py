"""A stop request (SIGTERM/SIGINT) inside an epoch writes a checkpoint at that step boundary (issue 13): the
rerun draws the epoch's batches of the steps already done again (same random crops, same validation
batches), trains on from the next step, and ends exactly as the run left uninterrupted. In process: the
stop is requested from the progress tracker after a chosen step, the way the signal handler requests it."""

from __future__ import annotations

import pytest

from harness import interrupts, progress
from harness.checkpoint import load_checkpoint
from harness.plugins import load_registry
from harness.runner import Checkpoints, execute, plan, resolve_device
from harness.store import ResultStore


def _grid(method, tmp_path, name, lines):
    registry = load_registry()
    the_plan = plan(registry, methods=[method], spaces=["s2"], datasets=["digits"], seeds=[0], preset="smoke",
                    swaps={}, sets={})
    folder = tmp_path / name
    with ResultStore(folder / "runs.sqlite") as store:
        (rec,) = execute(registry, the_plan, store, resolve_device("cpu"), log=lines.append,
                         checkpoints=Checkpoints(str(folder / "checkpoints")))
    return rec


_REFERENCE: dict[str, tuple] = {}  # method -> the uninterrupted run's result, once per test process


def _reference(method, tmp_path):
    if method not in _REFERENCE:
        rec = _grid(method, tmp_path, "plain", [])
        assert rec.status == "completed", rec.error
        _REFERENCE[method] = _result(rec)
    return _REFERENCE[method]


def _result(rec):
    curve = [{k: v for k, v in c.items() if k != "seconds"} for c in rec.search["curve"]]
    return rec.genotype, curve, rec.search["probabilities"], rec.search["steps"], rec.metrics


def _stop_and_resume(tmp_path, monkeypatch, method, phase, epoch, step):
    """Stop ``method``'s smoke run after step ``step`` of ``phase`` epoch ``epoch`` (0-based), check the
    checkpoint and the record, resume, and return the resumed run's result."""
    real_step = progress.Phase.step

    def step_then_stop(self, images):
        real_step(self, images)
        if (self.name, self.epoch, self.step_no) == (phase, epoch, step):
            interrupts.request("SIGTERM")  # what the SIGTERM handler does

    name = f"stopped-{phase}"
    monkeypatch.setattr(progress.Phase, "step", step_then_stop)
    stopped = _grid(method, tmp_path, name, [])
    assert stopped.status == "interrupted" and stopped.error == f"interrupted by SIGTERM during {phase} epoch {epoch + 1}"
    (ckpt,) = (tmp_path / name / "checkpoints").glob("*.pt")
    state = load_checkpoint(ckpt)
    assert (state["phase"], state["epoch"], state["step"]) == (phase, epoch, step)

    monkeypatch.setattr(progress.Phase, "step", real_step)
    second: list[str] = []
    resumed = _grid(method, tmp_path, name, second)
    assert resumed.status == "completed", resumed.error
    assert any(f"({phase} epoch {epoch + 1}, after its step {step})" in line for line in second), second
    assert not list((tmp_path / name / "checkpoints").glob("*.pt"))
    return _result(resumed)


def test_a_stop_inside_a_search_and_a_retrain_epoch_resumes_at_that_step_exactly(tmp_path, monkeypatch):
    reference = _reference("darts", tmp_path)
    # search epoch 2 of 2 steps (the first-order step also draws a validation batch), then retrain epoch 2
    # of 10 steps
    assert _stop_and_resume(tmp_path, monkeypatch, "darts", "search", 1, 1) == reference
    assert _stop_and_resume(tmp_path, monkeypatch, "darts", "retrain", 1, 4) == reference


@pytest.mark.slow  # Gumbel samples from torch's global generator (with -m slow: the suite's time)
def test_a_stop_inside_a_gdas_search_epoch_resumes_exactly(tmp_path, monkeypatch):
    assert _stop_and_resume(tmp_path, monkeypatch, "gdas", "search", 0, 1) == _reference("gdas", tmp_path)


def test_a_stop_after_drnas_widened_its_cells_resumes_exactly(tmp_path, monkeypatch):
    """DrNAS's smoke search has two stages of one epoch: the second prunes the ops and widens every
    partial-channel cell (K 2 -> 1), so the checkpoint holds wider tensors than a fresh supernet and a
    rebuilt weight optimizer; the resumed run must take them back and end as the uninterrupted one."""
    assert _stop_and_resume(tmp_path, monkeypatch, "drnas", "search", 1, 1) == _reference("drnas", tmp_path)
