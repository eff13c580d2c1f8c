"""``harness run --track tensorboard``: each run's lifecycle events as TensorBoard event files, one folder per
run (``<track_dir>/tensorboard/<method>-<space>-<dataset>-seed<seed>-run<id>``), written with torch's
``SummaryWriter``. View them with ``tensorboard --logdir harness-runs/tracking/tensorboard``. What is logged
and under which keys: ``harness.tracking``. The configuration is a text entry (``config``, one
``key = value`` line each); the genotypes are text entries too."""

from __future__ import annotations

from pathlib import Path

from harness.tracking import LifecycleTracker, TrackerRun, run_name


class _Run(TrackerRun):
    def __init__(self, directory: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory))

    def params(self, values):
        self.writer.add_text("config", "\n\n".join(f"`{k}` = {v}" for k, v in sorted(values.items())), 0)

    def scalars(self, step, values):
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def text(self, key, value, step):
        self.writer.add_text(key, value, step)

    def close(self, status, error):
        self.writer.add_text("status", status + (f": {error.splitlines()[0]}" if error else ""), 0)
        self.writer.close()


class TensorBoardTracker(LifecycleTracker):
    name = "tensorboard"
    requires = extra = "tensorboard"
    doc = "TensorBoard event files per run (torch.utils.tensorboard), under <track_dir>/tensorboard"

    def open(self, spec, record, directory):
        return _Run(directory / run_name(spec, record))


PLUGIN = TensorBoardTracker()
