"""The SQLite results store: every field round-trips, history is kept, failures are recorded, the
schema is versioned, bad locations are explained, and concurrent writers lose nothing."""

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sqlite3
from pathlib import Path

import pytest

from harness.api import RunRecord
from harness.errors import HarnessError
from harness.store import DEFAULT_STORE, SCHEMA_VERSION, ResultStore, config_key


def record(method="darts", seed=0, **config) -> RunRecord:
    config = {"method": method, "space": "s2", "dataset": "digits", "seed": seed, "preset": "smoke", **config}
    return RunRecord(method=method, space="s2", dataset="digits", seed=seed, preset="smoke", config=config,
                     config_key=config_key(config))


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "runs.sqlite") as s:
        yield s


def test_round_trip_of_every_field(store):
    hparams = {"sampler": {"tau_max": 10.0, "hard": True, "sizes": [1, 2]}}
    store.fail(store.start(record(hparams=hparams)), "earlier attempt")
    r = record(hparams=hparams)
    r.plugins = {"nas-harness": "0.1.0", "harness-rome": "0.2.0"}
    r.torch_version, r.device, r.command = "2.11.0", "cuda:NVIDIA H100", "harness run --plugin darts --seeds 0"
    r = store.start(r)
    r.genotype = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"
    r.search = {"curve": [{"epoch": 0, "train_loss": 2.3}], "probabilities": {"normal": [[0.5, 0.5]]}}
    r.metrics = {"test_accuracy": 93.76, "valid_accuracy": 91.5, "source": "retrain", "µ": "ünïcode"}
    r.costs = {"wall_s": 12.5, "search_s": 10.0, "peak_mem_bytes": 3 * 2**30}
    store.fail(r, "Traceback (most recent call last):\n  ...\nRuntimeError: boom")
    (back,) = store.records("failed")[1:]
    assert back == r
    # the test exercises every field: each holds something other than its default
    for f in dataclasses.fields(RunRecord):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert getattr(back, f.name) != default, f.name
    assert back.id == 2 and back.attempt == 2 and back.created.endswith("+00:00")


def test_finish_marks_completed_and_keeps_non_json_values(store):
    import numpy as np  # here, not at the top: the concurrency test's spawned workers import this module

    r = store.start(record())
    assert (r.id, r.attempt, r.status) == (1, 1, "running")
    r.metrics = {"test_accuracy": np.float64(91.0), "params": np.int64(1_234_567), "curve": np.arange(3)}
    store.finish(r)
    (back,) = store.records()
    assert back.status == "completed" and back.error is None
    assert back.metrics == {"test_accuracy": 91.0, "params": 1_234_567, "curve": [0, 1, 2]}
    assert store.completed(r.config_key).id == r.id


def test_forced_reruns_add_attempts_and_keep_every_row(store):
    key = record().config_key
    accs = {1: 90.0, 2: 92.0}
    for attempt, acc in accs.items():
        r = store.start(record())
        assert r.attempt == attempt
        r.metrics = {"test_accuracy": acc}
        store.finish(r)
    store.fail(store.start(record()), "RuntimeError: attempt 3 crashed")
    store.start(record())  # attempt 4, still running (a killed process leaves it so)
    other = store.start(record(seed=1))
    assert other.attempt == 1  # attempts count per configuration
    rows = store.records(None)
    assert [(x.attempt, x.status) for x in rows if x.config_key == key] == [
        (1, "completed"), (2, "completed"), (3, "failed"), (4, "running")]
    latest = store.completed(key)
    assert latest.attempt == 2 and latest.metrics["test_accuracy"] == 92.0
    assert store.completed(config_key({"never": "run"})) is None
    assert [x.attempt for x in store.records()] == [1, 2]
    assert [x.attempt for x in store.records("running")] == [4, 1]


def test_a_settled_row_is_never_rewritten(store):
    r = store.start(record())
    r.metrics = {"test_accuracy": 90.0}
    store.finish(r)
    r.metrics = {"test_accuracy": 99.0}
    with pytest.raises(HarnessError, match="refusing to overwrite"):
        store.finish(r)
    with pytest.raises(HarnessError, match="refusing to overwrite"):
        store.fail(r, "late error")
    (back,) = store.records(None)
    assert back.status == "completed" and back.metrics == {"test_accuracy": 90.0} and back.error is None
    with pytest.raises(HarnessError, match="never started"):
        store.finish(record(seed=5))


def test_failed_runs_are_recorded_with_their_error(store):
    r = store.start(record())
    r.search = {"curve": [{"epoch": 0}]}  # what the run got through before failing is kept too
    store.fail(r, "RuntimeError: CUDA out of memory")
    (back,) = store.records("failed")
    assert back.error == "RuntimeError: CUDA out of memory" and back.search == {"curve": [{"epoch": 0}]}
    assert store.records() == [] and store.completed(r.config_key) is None


def test_running_rows_survive_a_killed_writer(tmp_path):
    path = tmp_path / "runs.sqlite"
    ResultStore(path).start(record())  # never finished, never closed
    with ResultStore(path) as again:
        (row,) = again.records(None)
        assert row.status == "running"
        assert again.start(record()).attempt == 2


def test_unknown_status_is_refused(store):
    with pytest.raises(HarnessError, match="unknown run status 'done'.*completed"):
        store.records("done")


def test_schema_version_wal_and_busy_timeout(tmp_path, store):
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert SCHEMA_VERSION == 3
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    indexed = {row[0] for row in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    for col in ("method", "space", "dataset", "seed", "preset", "status"):
        assert any(f"({col})" in sql for sql in indexed), col


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    ResultStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(HarnessError, match=f"schema version {SCHEMA_VERSION + 1}, newer") as err:
        ResultStore(path)
    assert str(path) in str(err.value) and "upgrade" in str(err.value)


def test_default_path_and_parent_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_STORE.as_posix() == "harness-runs/results.sqlite"
    ResultStore().close()
    assert (tmp_path / "harness-runs" / "results.sqlite").is_file()
    nested = tmp_path / "a" / "b" / "c.sqlite"
    ResultStore(nested).close()
    assert nested.is_file()


def _unusable_paths(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "notes.sqlite").write_text("this is not a SQLite database, " * 100)
    yield "a directory", tmp_path
    yield "under a regular file", tmp_path / "a-file" / "runs.sqlite"
    yield "not a database", tmp_path / "notes.sqlite"


def test_unusable_locations_name_the_path_and_the_option(tmp_path):
    for why, path in _unusable_paths(tmp_path):
        with pytest.raises(HarnessError, match="--store PATH") as err:
            ResultStore(path)
        assert str(path) in str(err.value), why


def _read_only_is_explained(folder) -> None:
    with pytest.raises(HarnessError, match="--store PATH") as err:
        ResultStore(folder / "runs.sqlite")
    assert str(folder / "runs.sqlite") in str(err.value)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_read_only_folder_is_explained(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        try:
            _read_only_is_explained(folder)
        finally:
            folder.chmod(0o700)
        return
    # root writes through read-only modes (CI runs as root): check as the unprivileged user 'nobody'
    # in a child process, on a folder it can reach but not write
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o755)
        folder = base / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        pid = os.fork()
        if pid == 0:  # the child must never return into pytest
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                assert not os.access(folder, os.W_OK)
                _read_only_is_explained(folder)
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported through the exit code
                print(f"child failed: {type(exc).__name__}: {exc}", flush=True)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the read-only check failed as user 'nobody'"
    finally:
        shutil.rmtree(base)


def test_config_key_is_canonical_sha256():
    a = {"method": "darts", "hparams": {"b": 1, "a": [1, 2]}, "seed": 0}
    b = {"seed": 0, "hparams": {"a": [1, 2], "b": 1}, "method": "darts"}
    assert config_key(a) == config_key(b)
    canonical = '{"hparams":{"a":[1,2],"b":1},"method":"darts","seed":0}'
    assert config_key(a) == hashlib.sha256(canonical.encode()).hexdigest()
    assert config_key({**a, "seed": 1}) != config_key(a)


# ----------------------------------------------------------------------------------------------
# several processes writing one file at once

WORKERS, PER_WORKER, SHARED = 3, 50, 5


def _writer(path: str, worker: int, barrier) -> None:
    barrier.wait()  # all open (and create) the store at the same moment
    store = ResultStore(path)
    for i in range(PER_WORKER):
        r = store.start(record(method=f"w{worker}", seed=i))
        r.genotype = f"w{worker}-{i}"
        r.metrics = {"test_accuracy": float(worker * 1000 + i)}
        r.costs = {"search_s": float(i)}
        store.finish(r)
        if i < SHARED:  # every worker also runs one identical configuration: attempts must not collide
            store.fail(store.start(record(method="shared")), f"w{worker}-{i}")
    store.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "fresh" / "runs.sqlite"  # not created beforehand: the schema is made concurrently too
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_writer, args=(str(path), w, barrier)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    with ResultStore(path) as store:
        done = store.records()
        failed = store.records("failed")
    assert len(done) == WORKERS * PER_WORKER and len({r.id for r in done}) == len(done)
    assert {(r.method, r.seed) for r in done} == {(f"w{w}", i) for w in range(WORKERS) for i in range(PER_WORKER)}
    for r in done:
        w = int(r.method[1:])
        assert r.genotype == f"w{w}-{r.seed}" and r.metrics == {"test_accuracy": float(w * 1000 + r.seed)}
        assert r.costs == {"search_s": float(r.seed)} and r.attempt == 1
    assert sorted(r.attempt for r in failed) == list(range(1, WORKERS * SHARED + 1))
    assert sorted(r.error for r in failed) == sorted(f"w{w}-{i}" for w in range(WORKERS) for i in range(SHARED))


def test_a_forked_child_reconnects(tmp_path):
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    store = ResultStore(tmp_path / "runs.sqlite")
    store.finish(store.start(record(seed=0)))
    child = mp.get_context("fork").Process(target=_finish_one, args=(store,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert [r.seed for r in store.records()] == [0, 1]
    assert json.loads(json.dumps([r.status for r in store.records(None)])) == ["completed", "completed"]


def _finish_one(store: ResultStore) -> None:
    store.finish(store.start(record(seed=1)))


# the runs table as schema version 1 wrote it (before 'interrupted'), copied from that version's store.py
V1_RUNS = """CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL, space TEXT NOT NULL, dataset TEXT NOT NULL, seed INTEGER NOT NULL,
    preset TEXT NOT NULL, config TEXT NOT NULL, config_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    genotype TEXT, search TEXT NOT NULL, metrics TEXT NOT NULL, costs TEXT NOT NULL,
    plugins TEXT NOT NULL, torch_version TEXT NOT NULL, device TEXT NOT NULL, command TEXT NOT NULL,
    error TEXT, attempt INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    UNIQUE (config_key, attempt)
)"""


def test_a_version_1_store_migrates_keeping_every_row(tmp_path):
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute(V1_RUNS)
    for i, status in enumerate(("completed", "failed", "running"), start=1):
        db.execute("INSERT INTO runs VALUES (?, 'darts', 's2', 'digits', ?, 'smoke', '{}', ?, ?, NULL, '{}', "
                   "'{\"test_accuracy\": 90.5}', '{}', '{}', '2', 'cpu', 'harness run', NULL, 1, 't', 't')",
                   (i * 10, i, f"key{i}", status))
    db.commit()
    with pytest.raises(sqlite3.IntegrityError):  # what version 1 could not hold
        db.execute("UPDATE runs SET status = 'interrupted' WHERE id = 30")
    db.close()
    with ResultStore(path) as results:
        rows = results.records(None)
        assert [(r.id, r.status, r.seed, r.metrics) for r in rows] == [
            (10, "completed", 1, {"test_accuracy": 90.5}), (20, "failed", 2, {"test_accuracy": 90.5}),
            (30, "running", 3, {"test_accuracy": 90.5})]
        results.interrupt(rows[2], "interrupted by SIGTERM")
        assert results.records("interrupted")[0].error == "interrupted by SIGTERM"
        assert results.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
        new = results.start(RunRecord("darts", "s2", "digits", 4, "smoke", {}, "key4"))
        assert new.id == 31  # AUTOINCREMENT goes on after the copied ids


# the leases table as schema version 2 wrote it (before progress), copied from that version's store.py
V2_LEASES = """CREATE TABLE leases (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id),
    host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat REAL NOT NULL
)"""


def test_a_version_2_store_gains_lease_progress_keeping_its_leases(tmp_path):
    path = tmp_path / "v2.sqlite"
    with ResultStore(path) as results:  # a current store, then its leases table as version 2 had it
        running = results.start(record(seed=5))
    db = sqlite3.connect(path)
    db.execute("DROP TABLE leases")
    db.execute(V2_LEASES)
    db.execute("INSERT INTO leases VALUES (?, 'gpu-node-3', 4242, 1700000000.0)", (running.id,))
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with ResultStore(path) as results:
        lease = results.lease(running.id)
        assert (lease.host, lease.pid, lease.heartbeat, lease.progress) == ("gpu-node-3", 4242, 1700000000.0, None)
        snap = {"phase": "retrain", "epoch": 7, "epochs": 600, "step": 12, "steps": 781, "loss": 0.5}
        results.heartbeat([running.id], {running.id: snap})
        assert results.lease(running.id).progress == snap
        assert results.lease(running.id).heartbeat > 1700000000.0
        assert results.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)


def test_heartbeat_without_progress_keeps_the_last_snapshot(store):
    run = store.start(record(seed=6))
    assert store.lease(run.id).progress is None
    store.heartbeat([run.id], {run.id: {"phase": "search", "epoch": 2, "epochs": 50}})
    store.heartbeat([run.id])  # a beat with nothing new says the run lives; where it stands stays
    assert store.lease(run.id).progress == {"phase": "search", "epoch": 2, "epochs": 50}
