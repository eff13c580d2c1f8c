"""--executor ray (issue 13) on a real local Ray runtime: the records of a grid equal those of one process,
and a Ray worker killed mid-run costs only that run (Ray retries it). Ray is the optional extra
`nas-harness[ray]`, which .ci/run installs; without it these tests skip, and the error naming the extra
is tested either way."""

from __future__ import annotations

import os
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
    a, b = _records(tmp_path / "one.sqlite"), _records(tmp_path / "ray.sqlite")
    assert set(a) == set(b) == {"s1", "s2"}
    for space in a:
        assert b[space].status == "completed"
        assert (b[space].genotype, b[space].metrics["test_accuracy"]) == (a[space].genotype,
                                                                          a[space].metrics["test_accuracy"])


def _ray_task_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::run_task"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
