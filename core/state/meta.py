"""The ``meta`` table: small facts about the data-root (schema version, storage driver)."""
from __future__ import annotations

from .db import Db


class MetaRepo(Db):
    def get_meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key=?", key)
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._x("INSERT INTO meta(key, value) VALUES(?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", key, value)

    def holds_data(self) -> bool:
        """Whether any layer or container is recorded (a data-root in use)."""
        return self._exists("SELECT 1 FROM layers LIMIT 1") or \
            self._exists("SELECT 1 FROM containers LIMIT 1")
