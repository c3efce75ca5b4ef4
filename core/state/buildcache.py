"""The classic builder's step cache (key -> image) and the RUN --mount=type=cache directories."""
from __future__ import annotations

import dataclasses
import time
from typing import Iterable

from .db import Db


@dataclasses.dataclass(frozen=True)
class CacheMountRow:
    id: str
    cache_id: str
    description: str
    created: float
    last_used: float
    usage: int


class BuildCacheRepo(Db):
    def put_build_step(self, key: str, image_id: str) -> None:
        self._x("INSERT OR REPLACE INTO build_cache(key, image_id) VALUES(?,?)", key, image_id)

    def build_step(self, key: str) -> str | None:
        """The image cached for a step's key."""
        rows = self._q("SELECT image_id FROM build_cache WHERE key=?", key)
        return rows[0]["image_id"] if rows else None

    def build_steps(self) -> list[tuple[str, str]]:
        """Every (key, image id) entry."""
        return [(r["key"], r["image_id"]) for r in self._q("SELECT key, image_id FROM build_cache")]

    def drop_build_steps(self, keys: Iterable[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM build_cache WHERE key=?", [(k,) for k in keys])

    # -- cache mounts ----------------------------------------------------------------------------
    def cache_mount_ids(self) -> set[str]:
        return {r["id"] for r in self._q("SELECT id FROM build_cache_mounts")}

    def cache_mounts(self) -> list[CacheMountRow]:
        """Every cache mount, least recently used first."""
        return [CacheMountRow(r["id"], r["cache_id"], r["description"], r["created"],
                              r["last_used"], r["usage"])
                for r in self._q("SELECT * FROM build_cache_mounts ORDER BY last_used")]

    def cache_mounts_for(self, cache_id: str) -> list[str]:
        """The directories of one cache id, most recently used first."""
        return [r["id"] for r in self._q("SELECT id FROM build_cache_mounts WHERE cache_id=? "
                                        "ORDER BY last_used DESC", cache_id)]

    def add_cache_mount(self, rid: str, cache_id: str, description: str) -> None:
        now = time.time()
        self._x("INSERT INTO build_cache_mounts(id, cache_id, description, created, last_used, "
               "usage) VALUES(?,?,?,?,?,0)", rid, cache_id, description, now, now)

    def cache_mount_used(self, rid: str) -> None:
        self._x("UPDATE build_cache_mounts SET last_used=?, usage=usage+1 WHERE id=?", time.time(), rid)

    def delete_cache_mount(self, rid: str) -> None:
        self._x("DELETE FROM build_cache_mounts WHERE id=?", rid)
