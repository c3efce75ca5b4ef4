"""The connection every state repository shares: one SQLite database (WAL), one lock.

Every method is short and runs on the daemon's event-loop thread (or a worker thread under the
lock); writes that must go together share one transaction (``with self.tx():``).
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
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        rows = self.q("SELECT value FROM meta WHERE key='schema'")
        if not rows:
            self.x("INSERT INTO meta(key, value) VALUES('schema', ?)", str(SCHEMA_VERSION))

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def x(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self.db.execute(sql, args).rowcount

    def exists(self, sql: str, *args: Any) -> bool:
        return bool(self.q(sql, *args))
