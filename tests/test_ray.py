"""--executor ray (issue 13) on a real local Ray runtime: the records of a grid equal those of one process,
a Ray worker killed mid-run costs only that run (Ray retries it), and SIGTERM stops the tasks at a step
boundary, resumable. Ray is the optional extra
`nas-harness[ray]`, which .ci/run installs; without it these tests skip, and the error naming the extra
is tested either way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import ResultStore
from tests.runtable import run_rows

GRID = ["run", "--plugin", "darts", "--space", "s1,s2", "--preset", "smoke", "--set", "search.epochs=1",
        "--set", "eval.epochs=1", "--set", "search.max_train_images=64", "--set", "eval.max_train_images=128"]
HARNESS = [sys.executable, "-m", "harness.cli"]


def _records(store):
    """The completed record of each space (the latest, where an interrupted attempt came first)."""
    with ResultStore(store) as results:
        return {r.space: r for r in results.records("completed")}


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray has: import fails
    result = CliRunner().invoke(cli, GRID + ["--executor", "ray", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2, result.output
    assert "--executor ray needs Ray, an optional extra: pip install 'nas-harness[ray]'" in result.output


def test_a_ray_grid_survives_a_killed_worker_and_a_sigterm_and_gives_the_records_of_one_process(tmp_path):
    """One Ray grid (a parallel test session never starts two local Ray runtimes at once): a Ray worker is
    killed mid-run (Ray retries its task), then the driver gets SIGTERM once a run is retraining (it
    cancels the tasks; each stops at a step boundary and comes back 'interrupted'); the grid run again
    (by the local executor: a checkpoint does not care where it was written) goes on from the checkpoints
    and ends with the records of one uninterrupted process."""
    pytest.importorskip("ray", reason="Ray is the optional extra nas-harness[ray]")
    grid = GRID + ["--set", "eval.epochs=4", "--set", "eval.max_train_images=384"]  # 4 retrain epochs of 6 steps
    serial = CliRunner().invoke(cli, grid + ["--store", str(tmp_path / "one.sqlite"), "--quiet"])  # in process
    assert serial.exit_code == 0, serial.output
    cmd = HARNESS + grid + ["--store", str(tmp_path / "ray.sqlite")]
    proc = subprocess.Popen(cmd + ["--executor", "ray", "--retries", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    searched = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "search epoch 1/1:" in line:
                searched.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        pids = _ray_task_pids()  # a Ray worker running a run is titled ray::run_task
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    assert killed is not None, "".join(lines)
    assert searched.wait(120), "".join(lines)  # a run's search is done: it is retraining
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read()  # stderr is the reader thread's alone (communicate() would take part of it)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    err = "".join(lines)
    assert proc.returncode in (130, 143), err
    assert err.count("submitted to Ray") == 2
    # the runs' epochs came back through their event files to the driver's plain log, naming their run
    assert re.search(r"^\[[12]/2\] darts on s[12]/.* search epoch 1/1: train loss", err, re.M), err
    statuses = [r[1] for r in run_rows(out)]  # (Ray prints to stdout too)
    assert len(statuses) == 2 and "interrupted" in statuses and set(statuses) <= {"interrupted", "completed"}, \
        out + err
    assert "the grid stopped; run the same command again to go on" in err

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from checkpoint" in again.stderr
    a, b = _records(tmp_path / "one.sqlite"), _records(tmp_path / "ray.sqlite")
    assert set(a) == set(b) == {"s1", "s2"}
    for space in a:
        assert b[space].status == "completed"
        assert (b[space].genotype, b[space].metrics["test_accuracy"]) == (a[space].genotype,
                                                                          a[space].metrics["test_accuracy"])


def _ray_task_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::run_task"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
