"""The results store: one SQLite file (WAL), one row per run attempt, never overwritten.

Every write is one short ``BEGIN IMMEDIATE`` transaction, so several processes can write the same
file at once without losing a row. A completed row is never updated or deleted: running an identical
configuration again with ``--force`` adds a row with the next attempt number.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.api import RunRecord
from harness.errors import HarnessError

DEFAULT_STORE = Path("harness-runs") / "results.sqlite"
SCHEMA_VERSION = 1

_JSON_FIELDS = ("config", "search", "metrics", "costs", "plugins")
_COLUMNS = ("method", "space", "dataset", "seed", "preset", "config_key", "attempt", "status", "genotype",
            *_JSON_FIELDS, "torch_version", "device", "command", "error", "created", "updated")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL, space TEXT NOT NULL, dataset TEXT NOT NULL, seed INTEGER NOT NULL,
    preset TEXT NOT NULL, config_key TEXT NOT NULL, attempt INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    genotype TEXT, config TEXT NOT NULL, search TEXT NOT NULL, metrics TEXT NOT NULL,
    costs TEXT NOT NULL, plugins TEXT NOT NULL, torch_version TEXT NOT NULL, device TEXT NOT NULL,
    command TEXT NOT NULL DEFAULT '', error TEXT, created TEXT NOT NULL, updated TEXT NOT NULL,
    UNIQUE (config_key, attempt)
);
CREATE INDEX IF NOT EXISTS runs_key ON runs (config_key, status);
CREATE INDEX IF NOT EXISTS runs_cell ON runs (method, space, dataset, preset, seed);
"""


def config_key(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved configuration: a run's identity."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultStore:
    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        try:
            if self.path.is_dir():
                raise OSError("it is a directory")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            raise HarnessError(f"cannot use results store {str(self.path)!r} ({exc}); pass --store PATH "
                               f"to a writable SQLite file") from None
        version = int(self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise HarnessError(f"results store {str(self.path)!r} has schema version {version}, newer than this "
                               f"harness understands ({SCHEMA_VERSION}); upgrade nas-harness")

    def _write(self, sql: str, params: tuple) -> sqlite3.Cursor:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(sql, params)
            self._db.execute("COMMIT")
            return cur
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def start(self, record: RunRecord) -> RunRecord:
        """Insert a 'running' row; sets ``id``, ``attempt``, ``created`` and ``updated``."""
        record.created = record.updated = _now()
        record.status = "running"
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (n,) = self._db.execute("SELECT COUNT(*) FROM runs WHERE config_key = ?", (record.config_key,)).fetchone()
            record.attempt = n + 1
            values = self._values(record)
            cur = self._db.execute(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                                   values)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        record.id = cur.lastrowid
        return record

    def finish(self, record: RunRecord) -> None:
        record.updated = _now()
        self._update(record)

    def fail(self, record: RunRecord, error: str) -> None:
        record.status, record.error, record.updated = "failed", error, _now()
        self._update(record)

    def _update(self, record: RunRecord) -> None:
        if record.id is None:
            raise ValueError("record was never started")
        cols = ("status", "genotype", *_JSON_FIELDS, "error", "updated")
        values = dict(zip(_COLUMNS, self._values(record)))
        cur = self._write(f"UPDATE runs SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ? AND status = 'running'",
                          (*(values[c] for c in cols), record.id))
        if cur.rowcount != 1:
            raise HarnessError(f"run {record.id} in {str(self.path)!r} is no longer running; refusing to overwrite it")

    @staticmethod
    def _values(record: RunRecord) -> tuple:
        out = []
        for col in _COLUMNS:
            value = getattr(record, col)
            out.append(json.dumps(value, sort_keys=True) if col in _JSON_FIELDS else value)
        return tuple(out)

    def _row(self, row: sqlite3.Row | tuple) -> RunRecord:
        data = dict(zip(("id", *_COLUMNS), row))
        for col in _JSON_FIELDS:
            data[col] = json.loads(data[col])
        return RunRecord(**data)

    def completed(self, key: str) -> RunRecord | None:
        row = self._db.execute(f"SELECT id, {', '.join(_COLUMNS)} FROM runs WHERE config_key = ? AND "
                               f"status = 'completed' ORDER BY attempt DESC LIMIT 1", (key,)).fetchone()
        return self._row(row) if row else None

    def records(self, status: str | None = "completed") -> list[RunRecord]:
        sql = f"SELECT id, {', '.join(_COLUMNS)} FROM runs"
        rows = (self._db.execute(sql + " WHERE status = ? ORDER BY id", (status,)) if status
                else self._db.execute(sql + " ORDER BY id"))
        return [self._row(r) for r in rows.fetchall()]

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
