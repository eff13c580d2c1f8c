"""``harness run --track mlflow``: each run as an MLflow run in a local store under ``<track_dir>/mlflow``: the
tracking data in the SQLite file ``mlflow.db``, artifacts in ``artifacts/`` (experiment ``nas-harness``), written
with ``MlflowClient`` (no global MLflow state, no server). MLflow 3 refuses its old plain-file backend ("in
maintenance mode"; MlflowException unless ``MLFLOW_ALLOW_FILE_STORE``) and recommends SQLite for a local store,
so that is what is used. View it with ``mlflow ui --backend-store-uri sqlite:///harness-runs/tracking/mlflow/mlflow.db``. What is logged and under
which keys: ``harness.tracking``; the configuration becomes parameters (values cut to MLflow's length limit),
the genotypes text artifacts (``genotype.txt``, ``search/genotype-epoch<N>.txt``), the store's run id and
the (method, space, dataset, seed) tags."""

from __future__ import annotations

import time
from pathlib import Path

from harness.tracking import LifecycleTracker, TrackerRun, run_name

EXPERIMENT = "nas-harness"
PARAM_MAX = 500  # MLflow's limit on a parameter value in older releases (6000 in newer): the smaller one


def tracking_uri(directory: Path) -> str:
    """The local store's URI (what ``MlflowClient(tracking_uri=...)`` and ``mlflow ui`` take)."""
    return f"sqlite:///{(directory / 'mlflow.db').resolve()}"


def _client(directory: Path):
    from mlflow.tracking import MlflowClient

    directory.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri(directory))


class _Run(TrackerRun):
    def __init__(self, directory: Path, name: str, tags: dict[str, str]):
        self.client = _client(directory)
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            EXPERIMENT, artifact_location=(directory / "artifacts").resolve().as_uri())
        self.run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def params(self, values):
        from mlflow.entities import Param

        params = [Param(k, v[:PARAM_MAX]) for k, v in sorted(values.items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def scalars(self, step, values):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def text(self, key, value, step):
        name = "genotype.txt" if key == "genotype" else f"{key}-epoch{step}.txt"
        self.client.log_text(self.run_id, value, name)

    def close(self, status, error):
        if error:
            self.client.set_tag(self.run_id, "error", error.splitlines()[0][:PARAM_MAX])
        self.client.set_terminated(self.run_id, {"completed": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED"))


class MlflowTracker(LifecycleTracker):
    name = "mlflow"
    requires = extra = "mlflow"
    doc = "MLflow runs in a local SQLite store (MlflowClient), under <track_dir>/mlflow"

    def open(self, spec, record, directory):
        tags = {"harness.run_id": str(record.id), "harness.method": spec.method, "harness.space": spec.space,
                "harness.dataset": spec.dataset, "harness.seed": str(spec.seed), "harness.preset": spec.preset}
        return _Run(directory, run_name(spec, record), tags)


PLUGIN = MlflowTracker()
