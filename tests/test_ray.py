"""--executor ray (issue 13) on a real local Ray runtime: the records of a grid equal those of one process,
and a Ray worker killed mid-run costs only that run (Ray retries it). Ray is the optional extra
`nas-harness[ray]`, which .ci/run installs; without it these tests skip, and the error naming the extra
is tested either way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import ResultStore

GRID = ["run", "--plugin", "darts", "--space", "s1,s2", "--preset", "smoke", "--set", "search.epochs=1",
        "--set", "eval.epochs=1", "--set", "search.max_train_images=64", "--set", "eval.max_train_images=128"]
HARNESS = [sys.executable, "-m", "harness.cli"]


def _records(store):
    with ResultStore(store) as results:
        return {r.space: r for r in results.records(None)}


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray has: import fails
    result = CliRunner().invoke(cli, GRID + ["--executor", "ray", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2, result.output
    assert "--executor ray needs Ray, an optional extra: pip install 'nas-harness[ray]'" in result.output


def test_a_ray_grid_survives_a_killed_worker_and_gives_the_records_of_one_process(tmp_path):
    # one Ray run (a parallel test session never starts two local Ray runtimes at once): a Ray worker is
    # killed mid-run, Ray retries its task, and the records still equal those of one process
    pytest.importorskip("ray", reason="Ray is the optional extra nas-harness[ray]")
    serial = subprocess.run(HARNESS + GRID + ["--store", str(tmp_path / "one.sqlite"), "--quiet"],
                            capture_output=True, text=True)
    assert serial.returncode == 0, serial.stderr
    proc = subprocess.Popen(HARNESS + GRID + ["--store", str(tmp_path / "ray.sqlite"), "--executor", "ray",
                                              "--retries", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        pids = _ray_task_pids()  # a Ray worker running a run is titled ray::run_task
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, err
    assert proc.returncode == 0, err
    assert err.count("submitted to Ray") == 2
    # the runs' epochs came back through the Ray queue to the driver's plain log, each naming its run
    assert re.search(r"^\[1/2\] darts on s1/.* search epoch 1/1: train loss", err, re.M), err
    assert re.search(r"^\[2/2\] darts on s2/.* retrain epoch 1/1: loss", err, re.M), err
    a, b = _records(tmp_path / "one.sqlite"), _records(tmp_path / "ray.sqlite")
    assert set(a) == set(b) == {"s1", "s2"}
    for space in a:
        assert b[space].status == "completed"
        assert (b[space].genotype, b[space].metrics["test_accuracy"]) == (a[space].genotype,
                                                                          a[space].metrics["test_accuracy"])


    _sigterm_stops_the_ray_tasks_and_the_rerun_goes_on(tmp_path)


def _sigterm_stops_the_ray_tasks_and_the_rerun_goes_on(tmp_path):
    """In the same test (one local Ray runtime at a time): SIGTERM to the driver cancels the Ray tasks,
    which stop at a step boundary and come back 'interrupted'; the grid run again (here by the local
    executor: a checkpoint does not care where it was written) completes them, going on from their
    checkpoints."""
    store = str(tmp_path / "sigterm.sqlite")
    cmd = HARNESS + GRID + ["--set", "eval.epochs=4", "--set", "eval.max_train_images=384", "--store", store]
    proc = subprocess.Popen(cmd + ["--executor", "ray"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # the first run's search is done: it is retraining (4 epochs of 6 steps)
        seen.append(line)
        if "search epoch 1/1:" in line:
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode in (130, 143), err
    assert [l.split("\t")[1] for l in out.splitlines()] == ["interrupted", "interrupted"], out + err
    assert "the grid stopped; run the same command again to go on" in err
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from checkpoint" in again.stderr
    with ResultStore(store) as results:
        statuses = sorted((r.space, r.status) for r in results.records(None))
    assert statuses == [("s1", "completed"), ("s1", "interrupted"), ("s2", "completed"), ("s2", "interrupted")]


def _ray_task_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::run_task"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
