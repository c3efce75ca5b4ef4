"""The tables of the daemon's SQLite database (unchanged since schema 1: no migration)."""
from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
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
