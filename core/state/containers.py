"""Container records: the container's inspect document, as JSON."""
from __future__ import annotations

import json
from typing import Any

from .db import Db


class ContainerRepo(Db):
    def put_container(self, c: dict[str, Any]) -> None:
        self._x("INSERT INTO containers(id, name, image_id, created, data) VALUES(?,?,?,?,?) "
               "ON CONFLICT(id) DO UPDATE SET name=excluded.name, data=excluded.data",
               c["Id"], c["Name"], c["Image"], c["_created"], json.dumps(c))

    def containers(self) -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in self._q("SELECT data FROM containers ORDER BY created DESC")]

    def container_ids(self) -> set[str]:
        return {r["id"] for r in self._q("SELECT id FROM containers")}

    def delete_container(self, cid: str) -> None:
        self._x("DELETE FROM containers WHERE id=?", cid)
