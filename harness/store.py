"""The results store: one SQLite file, one row per run attempt, history never rewritten.

Why SQLite: it is in the standard library, one file is easy to copy and publish, and in WAL mode
several processes (a grid split over GPUs, a Ray cluster sharing a disk) can write the same file at
once. Every write is one short ``BEGIN IMMEDIATE`` transaction, and a writer that finds the file
locked waits (``busy_timeout``) instead of failing, so no concurrent writer loses a row. WAL needs a
local file system; on NFS give each machine its own store.

Rows are only ever inserted, or moved once from 'running' to 'completed'/'failed'. Nothing is
deleted: an identical configuration run again with ``--force`` is a new row with the next attempt
number. Each 'running' row has a lease (the writing process's host and pid, and a heartbeat the
runner renews every HEARTBEAT_S): a row left 'running' by a killed process is recognised as stale
(``Lease.stale``) and marked failed, with the reason, by the next run of its grid, which then runs
it again as a new attempt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.api import RunRecord
from harness.errors import HarnessError

DEFAULT_STORE = Path("harness-runs") / "results.sqlite"
# 2: status 'interrupted' (a run stopped by SIGTERM/SIGINT); 3: leases.progress (where a running run
# stands). Older stores migrate in place, keeping every row and id.
SCHEMA_VERSION = 3
STATUSES = ("running", "completed", "failed", "interrupted")
BUSY_TIMEOUT_S = 30.0

_JSON_FIELDS = ("config", "search", "metrics", "costs", "plugins")
# every RunRecord field but ``id`` (the row id), in table order
_COLUMNS = tuple(f.name for f in dataclasses.fields(RunRecord) if f.name != "id")
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM runs"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL, space TEXT NOT NULL, dataset TEXT NOT NULL, seed INTEGER NOT NULL,
    preset TEXT NOT NULL, config TEXT NOT NULL, config_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({', '.join(repr(s) for s in STATUSES)})),
    genotype TEXT, search TEXT NOT NULL, metrics TEXT NOT NULL, costs TEXT NOT NULL,
    plugins TEXT NOT NULL, torch_version TEXT NOT NULL, device TEXT NOT NULL, command TEXT NOT NULL,
    error TEXT, attempt INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    UNIQUE (config_key, attempt)
);
CREATE INDEX IF NOT EXISTS runs_method ON runs (method);
CREATE INDEX IF NOT EXISTS runs_space ON runs (space);
CREATE INDEX IF NOT EXISTS runs_dataset ON runs (dataset);
CREATE INDEX IF NOT EXISTS runs_seed ON runs (seed);
CREATE INDEX IF NOT EXISTS runs_preset ON runs (preset);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS leases (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id),
    host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat REAL NOT NULL, progress TEXT
);
"""  # config_key is indexed by its UNIQUE constraint; leases: who runs a 'running' row (added in place:
# a store written before it simply has no leases, and its 'running' rows count as stale by age)

# a 'running' row whose owner is on another host counts as stale when its heartbeat is this old (the
# owner heartbeats every HEARTBEAT_S); on this host, as soon as the owning process is gone
HEARTBEAT_S = 5.0  # also how fresh `harness status` sees each run's progress: one small UPDATE per beat
STALE_AFTER_S = 600.0


@dataclasses.dataclass(frozen=True)
class Lease:
    """Who runs a 'running' row: the process that wrote it (``host``, ``pid``) and when it last said so."""

    run_id: int
    host: str
    pid: int
    heartbeat: float  # time.time()
    progress: dict | None = None  # the run's latest progress (harness.progress), as of the heartbeat

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat

    def stale(self, now: float | None = None) -> str | None:
        """Why the row's owner is gone, or None while it may still be running."""
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return f"its process {self.pid} on {self.host} no longer exists"
        if self.age(now) > STALE_AFTER_S:
            return f"no heartbeat from process {self.pid} on {self.host} for {self.age(now):.0f} s"
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def config_key(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved configuration: a run's identity in the store."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """JSON fallback for what plugins tend to leave in metrics: numpy/torch scalars and arrays, paths.

    Anything else becomes its ``str``: a finished run must never be lost to a value json rejects.
    """
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_plain)


class ResultStore:
    """Run records in the SQLite file ``path`` (created, with its folders, if absent).

    One connection per instance. An instance inherited through ``fork`` reconnects on first use in
    the child, since a SQLite connection must not cross processes.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._pid = -1
        try:
            if self.path.is_dir():
                raise OSError("it is a directory")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connect()
            self._ensure_schema()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise self._unusable(exc) from None
        except HarnessError:
            self.close()
            raise

    def _unusable(self, exc: BaseException) -> HarnessError:
        return HarnessError(f"cannot use results store {str(self.path)!r} ({exc}); pass --store PATH with a "
                            f"writable SQLite file")

    def _connect(self) -> None:
        # isolation_level=None: no implicit transactions; every write opens its own BEGIN IMMEDIATE
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._pid = os.getpid()
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # switching a new file to WAL can answer "database is locked" at once, without consulting the
        # busy handler, while another process is creating the same file: retry within the timeout
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _ensure_schema(self) -> None:
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None:  # check before touching anything a newer harness may have changed
                try:
                    version = int(row[0])
                except ValueError:
                    raise HarnessError(f"results store {str(self.path)!r} has an unreadable schema version "
                                       f"{row[0]!r}; pass --store PATH to use another file") from None
                if version > SCHEMA_VERSION:
                    raise HarnessError(f"results store {str(self.path)!r} has schema version {version}, newer than "
                                       f"this harness understands ({SCHEMA_VERSION}); upgrade nas-harness or pass "
                                       f"--store PATH to use another file")
            if row is not None and int(row[0]) < 2:
                _migrate_to_2(db)
            # one statement at a time: executescript would COMMIT the open transaction first
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if "progress" not in {r[1] for r in db.execute("PRAGMA table_info(leases)")}:  # schema < 3
                db.execute("ALTER TABLE leases ADD COLUMN progress TEXT")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise HarnessError(f"results store {str(self.path)!r} is closed")
        if self._pid != os.getpid():
            self._connect()
        return self._db

    def _transaction(self):
        return _Immediate(self.db)

    # ------------------------------------------------------------------------------------------
    # writes

    def start(self, record: RunRecord, *, unless_taken: bool = False) -> RunRecord | None:
        """Insert ``record`` as a 'running' row; sets its ``id``, ``attempt``, ``created``, ``updated``.

        ``attempt`` is 1 + the number of rows already holding the same ``config_key`` (any status),
        counted inside the inserting transaction so that concurrent writers never share a number. The
        row's lease names this process (host, pid) with a heartbeat of now (``heartbeat()`` renews it).

        ``unless_taken``: insert nothing and return None when, inside the same transaction, the
        configuration is found completed, or running in a live process (a lease that is not stale). Two
        grids sharing a store thus never run one configuration twice, even when the second planned its
        runs before the first started that one (``taken`` says by which row).
        """
        with self._transaction() as db:
            if unless_taken and self.taken(record.config_key) is not None:
                return None
            record.status = "running"
            record.created = record.updated = _now()
            (earlier,) = db.execute("SELECT COUNT(*) FROM runs WHERE config_key = ?", (record.config_key,)).fetchone()
            record.attempt = earlier + 1
            cur = db.execute(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                             self._values(record))
            db.execute("INSERT INTO leases (run_id, host, pid, heartbeat) VALUES (?, ?, ?, ?)",
                       (cur.lastrowid, socket.gethostname(), os.getpid(), time.time()))
        record.id = cur.lastrowid
        return record

    def taken(self, config_key: str) -> RunRecord | None:
        """The row that has the configuration done or in hand: its latest completed attempt, else a
        'running' row whose lease is live (not ``Lease.stale``); None if neither."""
        done = self.completed(config_key)
        if done is not None:
            return done
        for rec, lease in self.running(config_key):
            if lease is not None and lease.stale() is None:
                return rec
        return None

    def heartbeat(self, run_ids, progress: dict[int, dict] | None = None) -> None:
        """This process still runs these rows; ``progress``: where each stands (run id -> snapshot)."""
        ids = list(run_ids)
        if ids:
            now, progress = time.time(), progress or {}
            with self._transaction() as db:
                for run_id in ids:
                    snap = progress.get(run_id)
                    if snap:
                        db.execute("UPDATE leases SET heartbeat = ?, progress = ? WHERE run_id = ?",
                                   (now, _dumps(snap), run_id))
                    else:
                        db.execute("UPDATE leases SET heartbeat = ? WHERE run_id = ?", (now, run_id))

    def lease(self, run_id: int) -> Lease | None:
        row = self.db.execute("SELECT run_id, host, pid, heartbeat, progress FROM leases WHERE run_id = ?",
                              (run_id,)).fetchone()
        if not row:
            return None
        try:
            progress = json.loads(row[4]) if row[4] else None
        except ValueError:  # a damaged snapshot only loses what status shows
            progress = None
        return Lease(*row[:4], progress=progress)

    def running(self, config_key: str | None = None) -> list[tuple[RunRecord, Lease | None]]:
        """The 'running' rows (of one configuration, or all), each with its lease (None: none recorded)."""
        where, args = ("WHERE status = 'running'", ()) if config_key is None else \
            ("WHERE status = 'running' AND config_key = ?", (config_key,))
        rows = self.db.execute(f"{_SELECT} {where} ORDER BY id", args).fetchall()
        return [(rec, self.lease(rec.id)) for rec in map(self._record, rows)]

    def finish(self, record: RunRecord) -> None:
        """Mark the started row completed, with the record's genotype, search, metrics and costs."""
        record.status, record.updated = "completed", _now()
        self._settle(record)

    def interrupt(self, record: RunRecord, why: str) -> None:
        """Mark the started row interrupted (stopped on request, e.g. SIGTERM before a preemption; its
        checkpoint lets the next run of the grid go on from where it stopped)."""
        record.status, record.error, record.updated = "interrupted", why, _now()
        self._settle(record)

    def fail(self, record: RunRecord, error: str) -> None:
        """Mark the started row failed, keeping ``error`` (and whatever the run had filled in)."""
        record.status, record.error, record.updated = "failed", error, _now()
        self._settle(record)

    def _settle(self, record: RunRecord) -> None:
        if record.id is None:
            raise HarnessError(f"run of {record.method} on {record.space}/{record.dataset} seed {record.seed} was "
                               f"never started in {str(self.path)!r}; call start() first")
        cols = ("status", "genotype", *_JSON_FIELDS, "error", "updated")
        values = dict(zip(_COLUMNS, self._values(record)))
        with self._transaction() as db:
            cur = db.execute(f"UPDATE runs SET {', '.join(c + ' = ?' for c in cols)} "
                             f"WHERE id = ? AND status = 'running'", (*(values[c] for c in cols), record.id))
        if cur.rowcount != 1:
            raise HarnessError(f"run {record.id} in {str(self.path)!r} is not running (absent, or already "
                               f"completed or failed); refusing to overwrite it")

    @staticmethod
    def _values(record: RunRecord) -> tuple:
        return tuple(_dumps(getattr(record, c)) if c in _JSON_FIELDS else getattr(record, c) for c in _COLUMNS)

    # ------------------------------------------------------------------------------------------
    # reads

    @staticmethod
    def _record(row: tuple) -> RunRecord:
        data = dict(zip(("id", *_COLUMNS), row))
        for col in _JSON_FIELDS:
            data[col] = json.loads(data[col])
        return RunRecord(**data)

    def completed(self, config_key: str) -> RunRecord | None:
        """The latest completed attempt of the configuration ``config_key``, or None."""
        row = self.db.execute(f"{_SELECT} WHERE config_key = ? AND status = 'completed' ORDER BY attempt DESC LIMIT 1",
                              (config_key,)).fetchone()
        return self._record(row) if row else None

    def records(self, status: str | None = "completed") -> list[RunRecord]:
        """Every row with ``status`` (None: every row), oldest first."""
        if status is None:
            rows = self.db.execute(f"{_SELECT} ORDER BY id")
        elif status in STATUSES:
            rows = self.db.execute(f"{_SELECT} WHERE status = ? ORDER BY id", (status,))
        else:
            raise HarnessError(f"unknown run status {status!r}; valid choices: {', '.join(STATUSES)}")
        return [self._record(r) for r in rows.fetchall()]

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"


class _Immediate:
    """``with _Immediate(db) as db:`` one write transaction, taken with the write lock up front.

    BEGIN IMMEDIATE (not DEFERRED) so two writers never both read, then both try to upgrade to a
    write lock; that deadlock is answered with SQLITE_BUSY at once, bypassing the busy timeout.
    """

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
            self.db.execute("ROLLBACK")


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2 inside the caller's transaction: the runs table again with 'interrupted' allowed by
    its status CHECK (SQLite cannot alter a CHECK in place), every row copied with its id."""
    db.execute("PRAGMA legacy_alter_table = ON")  # leases keep referencing "runs", not the renamed table
    db.execute("ALTER TABLE runs RENAME TO runs_v1")
    db.execute("PRAGMA legacy_alter_table = OFF")
    for name in ("runs_method", "runs_space", "runs_dataset", "runs_seed", "runs_preset", "runs_status"):
        db.execute(f"DROP INDEX IF EXISTS {name}")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    cols = ", ".join(("id", *_COLUMNS))
    db.execute(f"INSERT INTO runs ({cols}) SELECT {cols} FROM runs_v1")
    db.execute("DROP TABLE runs_v1")
