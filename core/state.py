"""The daemon's metadata, in SQLite (WAL): images, tags, layers, containers, networks.

Blobs are not here: they are content-addressed files (``dockyard.core.blobs``). Every method is
short and runs on the daemon's event-loop thread; writes that must go together share one
transaction (``with state.tx():``).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from typing import Any, Iterator

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT REFERENCES layers(chain_id),
    cache_id TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    top_layer TEXT REFERENCES layers(chain_id),
    created TEXT NOT NULL,
    size INTEGER NOT NULL,
    config TEXT NOT NULL
);
-- the image a build step was made on (dockerd's "parent": intermediate images are hidden from
-- ``docker images`` and removed with the image built on them)
CREATE TABLE IF NOT EXISTS image_parents (
    id TEXT PRIMARY KEY,
    parent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_parents_parent ON image_parents(parent);
-- the classic builder's cache: a step's key (parent image, instruction, content) -> its image
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
-- RUN --mount=type=cache directories (<data-root>/builder/mounts/<id>): one row each
CREATE TABLE IF NOT EXISTS build_cache_mounts (
    id TEXT PRIMARY KEY,
    cache_id TEXT NOT NULL,
    description TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    usage INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS build_cache_mounts_by_id ON build_cache_mounts(cache_id);
CREATE TABLE IF NOT EXISTS tags (
    ref TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
-- the compressed (or plain) blobs a layer was pulled, loaded or imported as: pushed and saved
-- as they are, so a re-pushed image keeps its digests
CREATE TABLE IF NOT EXISTS layer_blobs (
    digest TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS layer_blobs_by_diff ON layer_blobs(diff_id);
-- ``name@digest`` of the manifests an image was pulled or pushed as (Docker's RepoDigests);
-- the manifest bytes are blobs
CREATE TABLE IF NOT EXISTS repo_digests (
    ref TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id),
    media_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS repo_digests_by_image ON repo_digests(image_id);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    created REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_by_image ON containers(image_id);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    data TEXT NOT NULL
);
-- IPAM: one row per address in use; the primary key is what makes "never handed out twice" true
CREATE TABLE IF NOT EXISTS ipam (
    network_id TEXT NOT NULL,
    address TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (network_id, address)
);
CREATE INDEX IF NOT EXISTS ipam_by_owner ON ipam(owner);
"""


class State:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        if self.get_meta("schema") is None:
            self.set_meta("schema", str(SCHEMA_VERSION))

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

    # meta
    def get_meta(self, key: str) -> str | None:
        rows = self.q("SELECT value FROM meta WHERE key=?", key)
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.x("INSERT INTO meta(key, value) VALUES(?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", key, value)

    # containers
    def put_container(self, c: dict[str, Any]) -> None:
        self.x("INSERT INTO containers(id, name, image_id, created, data) VALUES(?,?,?,?,?) "
               "ON CONFLICT(id) DO UPDATE SET name=excluded.name, data=excluded.data",
               c["Id"], c["Name"], c["Image"], c["_created"], json.dumps(c))

    def containers(self) -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in self.q("SELECT data FROM containers ORDER BY created DESC")]

    def delete_container(self, cid: str) -> None:
        self.x("DELETE FROM containers WHERE id=?", cid)
