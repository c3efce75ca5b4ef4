"""Volume records: the volume's inspect document, as JSON, by name."""
from __future__ import annotations

import json
from typing import Any

from .db import Db


class VolumeRepo(Db):
    def volume(self, name: str) -> dict[str, Any] | None:
        rows = self._q("SELECT data FROM volumes WHERE name=?", name)
        return json.loads(rows[0]["data"]) if rows else None

    def volumes(self) -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in self._q("SELECT data FROM volumes ORDER BY name")]

    def volume_names(self) -> set[str]:
        return {r["name"] for r in self._q("SELECT name FROM volumes")}

    def add_volume(self, vol: dict[str, Any]) -> None:
        """Record a new volume (an existing name is an ``IntegrityError``)."""
        self._x("INSERT INTO volumes(name, data) VALUES(?, ?)", vol["Name"], json.dumps(vol))

    def delete_volume(self, name: str) -> None:
        self._x("DELETE FROM volumes WHERE name=?", name)
