"""Seeing where a grid stands (issue 13): each run's progress (phase, epoch, step, loss, throughput) reaches
the driver's view (a live table on a terminal, plain lines elsewhere) and the store's lease, which
`harness status` reads."""

from __future__ import annotations

import io
import json
import re

import pytest
from click.testing import CliRunner

from harness import progress
from harness.cli import cli
from harness.store import ResultStore
from tests.test_store import record
from tests.runtable import run_rows



class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_phase_reports_epochs_and_at_most_once_an_interval_between_them():
    items, clock = [], FakeClock()
    with progress.reporting(items.append):
        phase = progress.Phase("search", epochs=2, steps=5, interval=1.0, clock=clock)
        phase.start(0)
        for _ in range(5):  # 0.3 s a step of 32 images: a report after steps 4 (1.2 s in) only
            clock.now += 0.3
            phase.step(32)
        phase.end(1.5)
        progress.line("  search epoch 1/2: ...")
    snaps = [p for kind, p in items if kind == "progress"]
    assert [(s["epoch"], s["step"]) for s in snaps] == [(None, None), (1, 0), (1, 4), (1, 5)]
    assert snaps[2]["images_per_s"] == round(4 * 32 / 1.2, 1)  # 106.7
    assert snaps[3] == {"phase": "search", "epoch": 1, "epochs": 2, "step": 5, "steps": 5,
                        "images_per_s": round(5 * 32 / 1.5, 1), "loss": 1.5}
    assert items[-1] == ("line", "  search epoch 1/2: ...")
    # outside a reporting block nothing is sent and nothing breaks
    progress.update(phase="retrain")
    progress.line("x")
    assert len(items) == 5


def test_describe_words_a_snapshot():
    assert progress.describe({"phase": "search", "epoch": 3, "epochs": 50, "step": 120, "steps": 391,
                              "loss": 1.23449, "images_per_s": 811.6}) == \
        "search epoch 3/50, step 120/391, loss 1.234, 812 img/s"
    assert progress.describe({"phase": "select", "epoch": None, "step": None, "loss": 0.5}) == "select, loss 0.500"
    assert progress.describe(None) == "starting"


def test_an_unknown_progress_mode_names_the_choices(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--dataset", "digits",
                                      "--preset", "smoke", "--store", str(tmp_path / "s.sqlite"),
                                      "--progress", "fancy"])
    assert result.exit_code != 0
    assert "fancy" in result.output and "auto, live, plain, off" in result.output
    assert not (tmp_path / "s.sqlite").exists()


def test_a_serial_run_reports_every_phase_epoch_and_step(tmp_path):
    """What a smoke run says, in order: the preset's search (2 epochs of 2 steps: 128 images split in
    halves, batches of 32), selection, retraining (3 epochs of 10 steps: 640 images, batches of 64), test."""
    from harness.plugins import load_registry
    from harness.runner import execute, plan, resolve_device

    class Recorder(progress.GridView):
        def __init__(self):
            super().__init__("plain", log=lines.append)
            self.items = []

        def report(self, key, label, item):
            self.items.append(item)
            super().report(key, label, item)

    lines: list[str] = []
    registry = load_registry()
    the_plan = plan(registry, methods=["darts"], spaces=["s2"], datasets=["digits"], seeds=[0], preset="smoke",
                    swaps={}, sets={})
    view = Recorder()
    with ResultStore(tmp_path / "s.sqlite") as store:
        (rec,) = execute(registry, the_plan, store, resolve_device("cpu"), view=view)
    assert rec.status == "completed", rec.error
    snaps = [p for kind, p in view.items if kind == "progress"]
    # the last snapshot of each epoch (a loaded machine may add a rate-limited one at its last step)
    ends = {(s["phase"], s["epoch"]): s for s in snaps if s["phase"] in ("search", "retrain")
            and s.get("step") == s.get("steps")}
    assert [(p, e, s["step"], s["steps"]) for (p, e), s in ends.items()] == [
        ("search", 1, 2, 2), ("search", 2, 2, 2), ("retrain", 1, 10, 10), ("retrain", 2, 10, 10),
        ("retrain", 3, 10, 10)]
    phases = [s["phase"] for s in snaps]
    assert phases.index("select") > phases.index("search") and phases.index("retrain") > phases.index("select")
    assert phases[-1] == "test"
    # the loss shown is the record's curve, epoch by epoch
    assert [ends[("search", e)]["loss"] for e in (1, 2)] == [c["train_loss"] for c in rec.search["curve"]]
    assert ends[("retrain", 3)]["loss"] == rec.metrics["final_train_loss"]
    # plain lines: one per epoch (no label: one run at a time), between the run's other lines
    epoch_lines = [l for l in lines if re.match(r"  (search|retrain) epoch \d/\d", l)]
    assert [l.split(":")[0].strip() for l in epoch_lines] == [
        "search epoch 1/2", "search epoch 2/2", "retrain epoch 1/3", "retrain epoch 2/3", "retrain epoch 3/3"]
    assert lines[-1].startswith("grid: 1/1 runs settled")


def test_live_mode_draws_a_table_of_the_active_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--dataset", "digits",
                                                   "--preset", "smoke", "--set", "eval.epochs=2", "--set",
                                                   "eval.max_train_images=256", "--store", str(tmp_path / "s.sqlite"),
                                                   "--progress", "live"])
    assert out.exit_code == 0, out.output + out.stderr
    assert "\x1b[" in out.stderr  # drawn in place with terminal escapes
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.stderr)
    for column in ("run", "phase", "epoch", "step", "loss", "img/s", "elapsed"):
        assert column in plain
    assert re.search(r"darts s2/digits seed 0 +│ search +│ +[12]/2 │", plain), plain[-3000:]
    assert re.search(r"darts s2/digits seed 0 +│ retrain +│ +[12]/2 │", plain)
    assert "  genotype: " in plain and "grid: 1/1 runs settled" in plain
    assert "search epoch 1/2:" not in plain  # the table replaces the per-epoch lines
    assert [r[1] for r in run_rows(out.stdout)] == ["completed"]


def test_status_shows_where_each_running_run_stands(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as store:
        run = store.start(record(seed=3))
        store.heartbeat([run.id], {run.id: {"phase": "retrain", "epoch": 12, "epochs": 600, "step": 40,
                                            "steps": 781, "loss": 0.71234, "images_per_s": 2048.4}})
        quiet = store.start(record(seed=4))  # no progress yet: "starting"
    text = CliRunner().invoke(cli, ["status", "--store", str(path)])
    assert text.exit_code == 0, text.output
    (line,) = [l for l in text.output.splitlines() if f"run {run.id} " in l]
    assert "retrain epoch 12/600, step 40/781, loss 0.712, 2048 img/s;" in line and "heartbeat 0 s ago" in line
    assert any(f"run {quiet.id} " in l and "starting;" in l for l in text.output.splitlines())
    data = json.loads(CliRunner().invoke(cli, ["status", "--store", str(path), "--json"]).output)
    by_id = {r["id"]: r for r in data["running"]}
    assert by_id[run.id]["progress"]["epoch"] == 12 and by_id[quiet.id]["progress"] is None


def test_the_live_table_with_no_rows_is_only_the_grid_line():
    stream = io.StringIO()
    view = progress.GridView("live", stream=stream)
    with view:
        view.begin(1, "[1/1] darts on s2/digits seed 0 (smoke)", "darts s2/digits seed 0")
        view.report(1, "x", ("progress", {"phase": "search", "epoch": 1, "epochs": 2, "step": 1, "steps": 2}))
        assert view.snapshot() == {1: {"phase": "search", "epoch": 1, "epochs": 2, "step": 1, "steps": 2}}
        view.settle(1, "grid: 1/1 runs settled, done in 1s")
        assert view.snapshot() == {}
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stream.getvalue())
    assert "darts s2/digits seed 0" in text and "grid: 1/1 runs settled, done in 1s" in text


def test_grid_view_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="bogus"):
        progress.GridView("bogus")
