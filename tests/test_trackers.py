"""Experiment trackers (`harness run --track tensorboard,mlflow`): what a real run logged is read back with each
tool's own reader (TensorBoard's EventAccumulator, MLflow's client) and compared with the run's record in the
results store, which the trackers never see."""

import importlib.util

import pytest
from click.testing import CliRunner

from harness.api import RunRecord
from harness.cli import cli
from harness.config import resolve
from harness.plugins import load_registry
from harness.store import ResultStore
from harness.tracking import LifecycleTracker, TrackerRun

TINY = ["--preset", "smoke", "--set", "search.epochs=2", "--set", "eval.epochs=2", "--set", "runtime.test_every=1",
        "--set", "search.max_train_images=64", "--set", "eval.max_train_images=64", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    root = tmp_path_factory.mktemp("track")
    out = invoke("run", "--plugin", "darts", "--space", "nb201", "--dataset", "digits", "--store", root / "runs.sqlite",
                 "--track", "tensorboard,mlflow", *TINY)
    assert out.exit_code == 0, out.output
    with ResultStore(root / "runs.sqlite") as results:
        (record,) = results.records(None)
    assert record.status == "completed", record.error
    return root / "tracking", record


def test_tensorboard_event_files_hold_the_runs_curves(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    where, r = tracked
    (run_dir,) = (where / "tensorboard").iterdir()
    assert run_dir.name == f"darts-nb201-digits-seed0-run{r.id}"
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    curve = r.search["curve"]
    assert scalars["search/train_loss"] == [(e + 1, pytest.approx(c["train_loss"], rel=1e-6)) for e, c in enumerate(curve)]
    # op 0 ('none') on edge 0 (1<-0) of the NB201 cell, per epoch, as the record's curve keeps it
    assert [v for _, v in scalars["alpha/normal/1-from-0/none"]] == pytest.approx(
        [c["probabilities"]["normal"][0][0] for c in curve], abs=1e-6)
    retrain = r.metrics["curve"]
    assert scalars["retrain/test_acc"] == [(e + 1, pytest.approx(c["test_acc"], rel=1e-6)) for e, c in enumerate(retrain)]
    assert scalars["metrics/test_accuracy"][-1][1] == pytest.approx(r.metrics["test_accuracy"], rel=1e-6)
    genotype = acc.Tensors("genotype/text_summary")[0].tensor_proto.string_val[0].decode()
    assert genotype == r.genotype


def test_mlflow_store_holds_the_run_its_params_metrics_and_genotype(tracked, tmp_path):
    from mlflow.tracking import MlflowClient

    from harness_mlflow.plugin import tracking_uri

    where, r = tracked
    client = MlflowClient(tracking_uri=tracking_uri(where / "mlflow"))
    (run,) = client.search_runs([client.get_experiment_by_name("nas-harness").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["harness.run_id"] == str(r.id)
    assert run.data.params["method"] == "darts" and run.data.params["seed"] == "0"
    assert run.data.params["search.epochs"] == "2"
    history = client.get_metric_history(run.info.run_id, "search/train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (e + 1, pytest.approx(c["train_loss"], rel=1e-6)) for e, c in enumerate(r.search["curve"])]
    assert run.data.metrics["metrics/test_accuracy"] == pytest.approx(r.metrics["test_accuracy"], rel=1e-6)
    path = client.download_artifacts(run.info.run_id, "genotype.txt", str(tmp_path))
    assert open(path).read() == r.genotype


def test_unknown_tracker_names_the_installed_ones(tmp_path):
    out = invoke("run", "--plugin", "darts", "--track", "wandb", "--store", tmp_path / "s.sqlite")
    assert out.exit_code == 2 and "'wandb'" in out.output and "mlflow, tensorboard" in out.output
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything ran


class _Broken(TrackerRun):
    def params(self, values):
        self.seen = values

    def scalars(self, step, values):
        raise OSError("disk full")

    def text(self, key, value, step):
        pass

    def close(self, status, error):
        raise AssertionError("a run whose tracker failed is not closed again")


class _BrokenTracker(LifecycleTracker):
    name = "broken"

    def open(self, spec, record, directory):
        return _Broken()


def test_a_tracker_failing_mid_run_is_said_once_and_the_run_goes_on(capsys):
    registry = load_registry()
    spec = resolve(registry, registry.methods["darts"], "nb201", "digits", 0, "smoke", {}, [("runtime", "track", "broken")])
    record = RunRecord(method="darts", space="nb201", dataset="digits", seed=0, preset="smoke", config={},
                       config_key="k", id=7)
    tracker = _BrokenTracker()
    tracker.harness_run_start(spec=spec, record=record)
    tracker.harness_epoch_end(spec=spec, epoch=0, stats={"train_loss": 1.0})  # raises inside: caught
    tracker.harness_epoch_end(spec=spec, epoch=1, stats={"train_loss": 0.5})  # no longer tracked: silent
    tracker.harness_run_end(spec=spec, record=record)
    err = capsys.readouterr().err
    assert err.count("tracker 'broken' failed at search epoch 1 (OSError: disk full)") == 1
    # a run that does not name the tracker is not touched by it
    other = resolve(registry, registry.methods["darts"], "nb201", "digits", 0, "smoke", {}, [])
    tracker.harness_run_start(spec=other, record=record)
    assert tracker._runs == {}


def test_trackers_are_registered_through_harness_register_trackers():
    registry = load_registry()
    assert {"tensorboard", "mlflow"} <= set(registry.trackers)
    assert registry.trackers["mlflow"].plugin == "mlflow"
    if importlib.util.find_spec("tensorboard") is None:  # without the extra: registered, says how to get it
        assert "pip install 'nas-harness[tensorboard]'" in registry.trackers["tensorboard"].why_not()
    else:
        assert registry.trackers["tensorboard"].why_not() is None
    assert registry.plugins["tensorboard"].registers == {"tracker": ["tensorboard"]}
