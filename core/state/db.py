"""The connection every state repository shares: one SQLite database (WAL), one lock.

Every method is short and runs on the daemon's event-loop thread (or a worker thread under the
lock); writes that must go together share one transaction (``with self._tx():``).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from typing import Any, Iterator

from .schema import SCHEMA, SCHEMA_VERSION


class Db:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        rows = self._q("SELECT value FROM meta WHERE key='schema'")
        if not rows:
            self._x("INSERT INTO meta(key, value) VALUES('schema', ?)", str(SCHEMA_VERSION))

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _x(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def _exists(self, sql: str, *args: Any) -> bool:
        return bool(self._q(sql, *args))
