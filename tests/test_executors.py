"""Executors (issue 13): --workers N runs a grid in N worker processes, the driver alone writes the store,
a worker that dies costs only its run (retried, then recorded failed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import ResultStore
from tests.runtable import run_rows

GRID = ["--plugin", "darts,gdas", "--space", "s1,s2", "--preset", "smoke", "--set", "search.epochs=1",
        "--set", "eval.epochs=1", "--set", "search.max_train_images=64", "--set", "eval.max_train_images=128"]
HARNESS = [sys.executable, "-m", "harness.cli", "run"]


def _records(store):
    with ResultStore(store) as results:
        return {(r.method, r.space): r for r in results.records(None)}


def test_two_workers_give_exactly_the_records_of_one_process(tmp_path):
    serial, parallel = tmp_path / "serial.sqlite", tmp_path / "parallel.sqlite"
    # one process: this one (a subprocess's start-up is most of a smoke run's time)
    one = CliRunner().invoke(cli, ["run"] + GRID + ["--store", str(serial), "--quiet"])
    assert one.exit_code == 0, one.output
    two = subprocess.run(HARNESS + GRID + ["--store", str(parallel), "--workers", "2"], capture_output=True,
                         text=True)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("worker pid") == 4
    # each worker's epochs reach the driver's plain log, each line naming its run (stderr is not a terminal:
    # --progress auto is plain, no terminal escapes)
    assert "\x1b[" not in two.stderr
    for i in range(1, 5):
        assert len(re.findall(rf"^\[{i}/4\] .* search epoch 1/1: train loss", two.stderr, re.M)) == 1, two.stderr
        assert len(re.findall(rf"^\[{i}/4\] .* retrain epoch 1/1: loss", two.stderr, re.M)) == 1
    a, b = _records(serial), _records(parallel)
    assert set(a) == set(b) == {("darts", "s1"), ("darts", "s2"), ("gdas", "s1"), ("gdas", "s2")}
    for key in a:
        assert b[key].status == "completed"
        # each run in its own process, same seed, one thread: the same result to the bit
        assert b[key].genotype == a[key].genotype
        assert b[key].metrics["test_accuracy"] == a[key].metrics["test_accuracy"]
        assert b[key].search["curve"] == [{**c, "seconds": b[key].search["curve"][i]["seconds"]}
                                          for i, c in enumerate(a[key].search["curve"])]
        assert b[key].search["probabilities"] == a[key].search["probabilities"]
    # printed in grid order, as the serial run prints them
    assert [r[2:4] for r in run_rows(two.stdout)] == [r[2:4] for r in run_rows(one.output)]


def _kill_first_worker(cmd):
    """Start the grid, kill -9 the first worker it reports, return (exit code, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, killed = [], None
    for line in proc.stderr:
        lines.append(line)
        if killed is None and "worker pid" in line:
            killed = int(line.split("worker pid ")[1].split()[0])
            os.kill(killed, signal.SIGKILL)
    proc.wait(timeout=300)
    assert killed is not None, "".join(lines)
    return proc.returncode, "".join(lines), proc.stdout.read()


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_costs_only_its_run(tmp_path, retries):
    store = tmp_path / "runs.sqlite"
    code, err, _ = _kill_first_worker(HARNESS + GRID[:4] + ["--space", "s2"] + GRID[6:] +
                                      ["--store", str(store), "--workers", "2", "--retries", str(retries)])
    records = _records(store)
    assert set(records) == {("darts", "s2"), ("gdas", "s2")}
    if retries:
        assert code == 0, err
        assert "[1/2] darts on s2/digits seed 0 (smoke): worker killed by SIGKILL; starting the run again" in err
        assert all(r.status == "completed" for r in records.values())
        assert err.count("[1/2] darts on s2/digits seed 0 (smoke): worker pid") == 2
    else:
        assert code == 1, err
        assert records[("darts", "s2")].status == "failed"
        assert records[("darts", "s2")].error.startswith("worker killed by SIGKILL (attempt 1 of 1)")
        assert records[("gdas", "s2")].status == "completed"  # the rest of the grid went on


@pytest.mark.parametrize("args, fragment", [
    (["--workers", "0"], "--workers must be at least 1, not 0"),
    (["--runs-per-gpu", "0"], "--runs-per-gpu must be at least 1, not 0"),
    (["--executor", "slurm"], "unknown executor 'slurm'; valid choices: local, ray"),
])
def test_bad_executor_options_are_one_line(tmp_path, args, fragment):
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--store", str(tmp_path / "s.sqlite"), *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output


def test_a_plugin_executor_gets_the_runs_and_the_driver_writes_the_store(tmp_path):
    """harness_register_executors: a third party's executor (here the runs in reverse order, in this
    process) is found by name, calls begin/settle, and the records come back in grid order."""
    import torch

    from harness.config import parse_sets
    from harness.executors import ExecutorOptions
    from harness.plugins import Registry, get_plugin_manager, hookimpl
    from harness.runner import execute, perform_run, plan

    began = []

    class Reversed:
        def run(self, tasks, begin, settle, *, registry, plan, device, log):
            for task in reversed(tasks):
                begin(task)
                began.append((task.spec.space, task.record.id))
                settle(task, perform_run(registry, task.spec, plan.datasets[task.spec.dataset], None, device,
                                         task.record, log))

    class ExecutorPlugin:
        @hookimpl
        def harness_register_executors(self, register):
            register("reversed", lambda options: Reversed(), doc="the runs in reverse order")

    pm = get_plugin_manager()
    pm.register(ExecutorPlugin(), name="executor-fixture")
    registry = Registry(pm)
    info = registry.executor("reversed")
    assert info.plugin == "executor-fixture" and set(registry.executors) == {"local", "ray", "reversed"}
    sets = parse_sets(GRID[GRID.index("--set") + 1::2])
    the_plan = plan(registry, methods=["darts"], spaces=["s1", "s2"], datasets=["digits"], seeds=[0],
                    preset="smoke", swaps={}, sets=sets)
    with ResultStore(tmp_path / "runs.sqlite") as store:
        records = execute(registry, the_plan, store, torch.device("cpu"), log=lambda m: None,
                          executor=info.factory(ExecutorOptions()))
        stored = {r.id: r for r in store.records(None)}
    assert began == [("s2", 1), ("s1", 2)]  # a row is written when its run begins
    assert [r.space for r in records] == ["s1", "s2"] and all(r.status == "completed" for r in records)
    assert {i: r.status for i, r in stored.items()} == {1: "completed", 2: "completed"}
