"""A stop request (SIGTERM/SIGINT) inside an epoch writes a checkpoint at that step boundary (issue 13): the
rerun draws the epoch's batches of the steps already done again (same random crops, same validation
batches), trains on from the next step, and ends exactly as the run left uninterrupted. In process: the
stop is requested from the progress tracker after a chosen step, the way the signal handler requests it."""

from __future__ import annotations

import pytest

from harness import interrupts, progress
from harness.checkpoint import load_checkpoint
from harness.config import parse_sets
from harness.plugins import load_registry
from harness.runner import Checkpoints, execute, plan, resolve_device
from harness.store import ResultStore


def _grid(method, tmp_path, name, lines, swaps=None, sets=(), space="s2"):
    registry = load_registry()
    the_plan = plan(registry, methods=[method], spaces=[space], datasets=["digits"], seeds=[0], preset="smoke",
                    swaps=swaps or {}, sets=parse_sets(sets))
    folder = tmp_path / name
    with ResultStore(folder / "runs.sqlite") as store:
        (rec,) = execute(registry, the_plan, store, resolve_device("cpu"), log=lines.append,
                         checkpoints=Checkpoints(str(folder / "checkpoints")))
    return rec


# the selection tests' runs retrain one epoch: what they check ends with the genotype (issue 12: the suite's time)
SHORT = ("eval.epochs=1",)
_REFERENCE: dict[tuple, tuple] = {}  # (method, sets) -> the uninterrupted run's result, once per test process


def _reference(method, tmp_path, sets=()):
    if (method, sets) not in _REFERENCE:
        rec = _grid(method, tmp_path, "plain", [], sets=sets)
        assert rec.status == "completed", rec.error
        _REFERENCE[method, sets] = _result(rec)
    return _REFERENCE[method, sets]


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


def test_a_stop_inside_darts_pts_selection_resumes_from_its_last_decision_or_tuning_epoch(tmp_path, monkeypatch):
    """DARTS-PT's selection is a phase of its own (on the DARTS spaces 81 fine-tuning epochs and 17 projection
    points, more than the 50 search epochs): a stop inside it resumes from the selection's last checkpoint,
    not from the end of the search. Smoke on S2: 17 points, 17 one-step tuning epochs. The first run stops
    in tuning epoch 4 (after the point taken at its start); its resumption stops again inside a measurement
    of the point of epoch 9; the second resumption ends exactly as the run left uninterrupted."""
    from harness_darts_pt.components import PerturbationSelector

    monkeypatch.setattr("harness.search.SELECT_CHECKPOINT_MIN_S", 0.0)  # every checkpoint the selector offers
    reference = _reference("darts-pt", tmp_path, SHORT)
    real_tune, real_score = PerturbationSelector.tune_epoch, PerturbationSelector.score
    tuned: list[int] = []
    scored: list[int] = []  # the decision epoch of each measurement

    def tune(self, net, ctx, epoch, total):
        if epoch == stop_at[0]:
            interrupts.request("SIGTERM")  # heard at the epoch's first step
        tuned.append(epoch)
        return real_tune(self, net, ctx, epoch, total)

    def score(self, net, ctx):
        scored.append(len(self.decision_epochs))
        if len(self.decision_epochs) == stop_at[1] and scored.count(stop_at[1]) == 2:
            interrupts.request("SIGTERM")  # heard before the point's third measurement
        return real_score(self, net, ctx)

    monkeypatch.setattr(PerturbationSelector, "tune_epoch", tune)
    monkeypatch.setattr(PerturbationSelector, "score", score)
    name, ckpts = "stopped-select", tmp_path / "stopped-select" / "checkpoints"
    stop_at = [4, None]
    stopped = _grid("darts-pt", tmp_path, name, [], sets=SHORT)
    assert stopped.status == "interrupted", stopped.error
    assert stopped.error == "interrupted by SIGTERM during DARTS-PT fine-tuning"
    (ckpt,) = ckpts.glob("*.pt")
    own = load_checkpoint(ckpt)["selector"]
    assert load_checkpoint(ckpt)["phase"] == "select"
    assert (own["epoch"], own["point_taken"], len(own["decision_epochs"])) == (4, True, 5)

    tuned.clear()
    stop_at = [None, 9]  # the point of epoch 9 is the tenth: 9 taken before it
    lines: list[str] = []
    again = _grid("darts-pt", tmp_path, name, lines, sets=SHORT)
    assert again.status == "interrupted" and again.error == "interrupted by SIGTERM during DARTS-PT selection"
    assert any("(selection, DARTS-PT 5/17 projection points taken, 4/17 tuning epochs done)" in line
               for line in lines), lines
    assert tuned == [4, 5, 6, 7, 8]  # epoch 4 again, from its start; no search epoch again
    own = load_checkpoint(next(ckpts.glob("*.pt")))["selector"]
    assert (own["epoch"], own["point_taken"], len(own["decision_epochs"])) == (9, False, 9)

    tuned.clear()
    scored.clear()
    stop_at = [None, None]
    lines, said = [], []
    real_update = progress.update
    monkeypatch.setattr(progress, "update", lambda **fields: (said.append(fields), real_update(**fields)))
    resumed = _grid("darts-pt", tmp_path, name, lines, sets=SHORT)
    # where the selection stands, for `harness status` ("select epoch 10/17")
    assert [f for f in said if set(f) == {"epoch", "epochs"}] == [{"epoch": e, "epochs": 17} for e in range(10, 18)]
    assert resumed.status == "completed", resumed.error
    assert any("(selection, DARTS-PT 9/17 projection points taken, 9/17 tuning epochs done)" in line
               for line in lines), lines
    assert tuned == list(range(9, 17)) and scored[0] == 9  # the point of epoch 9 measured from its start
    assert not list(ckpts.glob("*.pt"))
    assert _result(resumed) == reference


def test_a_stop_inside_the_pt_selection_of_a_sampling_method_resumes_exactly(tmp_path, monkeypatch):
    """``--selector pt`` after GDAS: its Gumbel sampler draws from torch's global generator on every call, so
    the resumed selection must not call it once more than the uninterrupted one (the selector's first
    look at the sampler, which tells a single-path sampler, is not taken again on a resume). On NB201: 6
    projection points, 5 one-step tuning epochs, no retraining. And the harness lets go of a checkpoint the
    selector offers too soon after the last (here: within the hour, so only the first is written), so the
    run goes on from further back, as exactly."""
    from harness_darts_pt.components import PerturbationSelector

    monkeypatch.setattr("harness.search.SELECT_CHECKPOINT_MIN_S", 3600.0)

    swap = {"selector": "pt"}
    reference = _grid("gdas", tmp_path, "plain-gdas-pt", [], swap, space="nb201")
    assert reference.status == "completed", reference.error
    real_tune = PerturbationSelector.tune_epoch

    def tune(self, net, ctx, epoch, total):
        if epoch == 3 and not resuming:
            interrupts.request("SIGTERM")
        return real_tune(self, net, ctx, epoch, total)

    monkeypatch.setattr(PerturbationSelector, "tune_epoch", tune)
    resuming = False
    stopped = _grid("gdas", tmp_path, "stopped-gdas-pt", [], swap, space="nb201")
    assert stopped.status == "interrupted" and "DARTS-PT fine-tuning" in stopped.error
    resuming, lines = True, []
    resumed = _grid("gdas", tmp_path, "stopped-gdas-pt", lines, swap, space="nb201")
    assert resumed.status == "completed", resumed.error
    assert any("(selection, DARTS-PT 1/6 projection points taken, 0/5 tuning epochs done)" in line
               for line in lines), lines
    assert _result(resumed) == _result(reference)
