"""The SQLite store: round trip, attempts kept, failures recorded, schema version, concurrent writers."""

import multiprocessing as mp
import sqlite3

import pytest

from harness.api import RunRecord
from harness.errors import HarnessError
from harness.store import SCHEMA_VERSION, ResultStore, config_key


def make(seed=0, method="darts", **config):
    config = {"method": method, "seed": seed, **config}
    return RunRecord(method=method, space="s2", dataset="digits", seed=seed, preset="smoke", config=config,
                     config_key=config_key(config), plugins={"nas-harness": "0.1.0"}, torch_version="2.x",
                     device="cpu")


def test_round_trip_of_every_field(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    r = store.start(make())
    assert r.id == 1 and r.attempt == 1 and r.status == "running" and r.created
    r.status, r.genotype = "completed", "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    r.search, r.metrics, r.costs = {"curve": [{"epoch": 0}]}, {"test_accuracy": 91.5}, {"wall_s": 3.0}
    store.finish(r)
    (back,) = store.records()
    assert back == r


def test_rerun_adds_an_attempt_and_keeps_both(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    for acc in (90.0, 92.0):
        r = store.start(make())
        r.status, r.metrics = "completed", {"test_accuracy": acc}
        store.finish(r)
    rows = store.records(None)
    assert [x.attempt for x in rows] == [1, 2]
    assert store.completed(make().config_key).metrics["test_accuracy"] == 92.0


def test_completed_row_is_never_overwritten(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    r = store.start(make())
    r.status = "completed"
    store.finish(r)
    with pytest.raises(HarnessError, match="refusing to overwrite"):
        store.fail(r, "late error")
    assert store.records()[0].status == "completed"


def test_failed_runs_keep_their_error(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    r = store.start(make())
    store.fail(r, "RuntimeError: boom")
    (back,) = store.records("failed")
    assert back.error == "RuntimeError: boom" and store.completed(r.config_key) is None


def test_schema_version_and_newer_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("select value from meta where key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    db.execute("update meta set value=? where key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    with pytest.raises(HarnessError, match="newer than this"):
        ResultStore(path)


def test_unwritable_store_names_the_path(tmp_path):
    with pytest.raises(HarnessError, match="--store PATH") as err:
        ResultStore(tmp_path)  # a directory
    assert str(tmp_path) in str(err.value)


def _writer(path, worker, n):
    store = ResultStore(path)
    for i in range(n):
        r = store.start(make(seed=i, method=f"w{worker}"))
        r.status, r.metrics = "completed", {"test_accuracy": float(worker * 1000 + i)}
        store.finish(r)
    store.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = ResultStore(path).records()
    assert len(rows) == 160
    assert {(r.method, r.seed) for r in rows} == {(f"w{w}", i) for w in range(4) for i in range(40)}
    assert all(r.metrics["test_accuracy"] == int(r.method[1:]) * 1000 + r.seed for r in rows)
