"""Image records (id -> top layer, created, size, config), tags, repo digests and the image a
build step was made on."""
from __future__ import annotations

from typing import Optional, TypedDict

from .db import Db


class ImageRow(TypedDict):
    id: str
    top_layer: Optional[str]
    created: str
    size: int
    config: str


class RepoDigest(TypedDict):
    ref: str
    media_type: str


def _image(r: object) -> ImageRow:
    return ImageRow(**dict(r))  # type: ignore[call-overload, typeddict-item]


class ImageRepo(Db):
    def add_image(self, row: ImageRow) -> None:
        """Record an image unless its id is known."""
        self._x("INSERT OR IGNORE INTO images(id, top_layer, created, size, config) "
               "VALUES(?,?,?,?,?)", row["id"], row["top_layer"], row["created"], row["size"],
               row["config"])

    def image(self, image_id: str) -> ImageRow | None:
        rows = self._q("SELECT * FROM images WHERE id=?", image_id)
        return _image(rows[0]) if rows else None

    def has_image(self, image_id: str) -> bool:
        return self._exists("SELECT 1 FROM images WHERE id=?", image_id)

    def images(self) -> list[ImageRow]:
        """Every image, newest first."""
        return [_image(r) for r in self._q("SELECT * FROM images ORDER BY created DESC")]

    def image_ids(self) -> set[str]:
        return {r["id"] for r in self._q("SELECT id FROM images")}

    def image_ids_with_prefix(self, prefix: str) -> list[str]:
        return [r["id"] for r in self._q("SELECT id FROM images WHERE id LIKE ?", prefix + "%")]

    def top_layers(self) -> list[str]:
        """The top layer of every image that has one."""
        return [r["top_layer"] for r in self._q("SELECT top_layer FROM images WHERE top_layer IS NOT NULL")]

    def forget_image(self, image_id: str) -> None:
        """Delete an image's record, tags, digests, parent and build cache entries, together."""
        with self._tx() as db:
            db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM images WHERE id=?", (image_id,))
            db.execute("DELETE FROM image_parents WHERE id=?", (image_id,))
            db.execute("DELETE FROM build_cache WHERE image_id=?", (image_id,))

    # -- tags ------------------------------------------------------------------------------------
    def put_tag(self, ref: str, image_id: str) -> None:
        self._x("INSERT INTO tags(ref, image_id) VALUES(?, ?) "
               "ON CONFLICT(ref) DO UPDATE SET image_id=excluded.image_id", ref, image_id)

    def tagged_image(self, ref: str) -> str | None:
        rows = self._q("SELECT image_id FROM tags WHERE ref=?", ref)
        return rows[0]["image_id"] if rows else None

    def tags_of(self, image_id: str) -> list[str]:
        return [r["ref"] for r in self._q("SELECT ref FROM tags WHERE image_id=? ORDER BY ref", image_id)]

    def tags_with_prefix(self, prefix: str) -> list[str]:
        return [r["ref"] for r in self._q("SELECT ref FROM tags WHERE substr(ref, 1, ?) = ? ORDER BY ref",
                                         len(prefix), prefix)]

    def tagged_image_ids(self) -> set[str]:
        return {r["image_id"] for r in self._q("SELECT image_id FROM tags")}

    def delete_tag(self, ref: str) -> None:
        self._x("DELETE FROM tags WHERE ref=?", ref)

    # -- repo digests ----------------------------------------------------------------------------
    def put_repo_digest(self, ref: str, image_id: str, media_type: str) -> None:
        self._x("INSERT INTO repo_digests(ref, image_id, media_type) VALUES(?,?,?) "
               "ON CONFLICT(ref) DO UPDATE SET image_id=excluded.image_id, "
               "media_type=excluded.media_type", ref, image_id, media_type)

    def repo_digests(self, image_id: str) -> list[RepoDigest]:
        return [RepoDigest(ref=r["ref"], media_type=r["media_type"]) for r in self._q(
            "SELECT ref, media_type FROM repo_digests WHERE image_id=? ORDER BY ref", image_id)]

    def repo_digest_image(self, ref: str) -> str | None:
        rows = self._q("SELECT image_id FROM repo_digests WHERE ref=?", ref)
        return rows[0]["image_id"] if rows else None

    def repo_digest_refs(self) -> list[str]:
        return [r["ref"] for r in self._q("SELECT ref FROM repo_digests")]

    def manifest_in_use(self, digest: str) -> bool:
        """Whether any ``name@digest`` names this manifest."""
        return self._exists("SELECT 1 FROM repo_digests WHERE ref LIKE ?", f"%@{digest}")

    # -- parents (build steps) -------------------------------------------------------------------
    def set_parent(self, image_id: str, parent: str) -> None:
        self._x("INSERT OR REPLACE INTO image_parents(id, parent) VALUES(?,?)", image_id, parent)

    def parent_of(self, image_id: str) -> str | None:
        rows = self._q("SELECT parent FROM image_parents WHERE id=?", image_id)
        return rows[0]["parent"] if rows else None

    def children_of(self, image_id: str) -> list[str]:
        return [r["id"] for r in self._q("SELECT p.id FROM image_parents p JOIN images i "
                                        "ON i.id = p.id WHERE p.parent=?", image_id)]

    def has_children(self, image_id: str) -> bool:
        return self._exists("SELECT 1 FROM image_parents p JOIN images i ON i.id = p.id "
                           "WHERE p.parent=? LIMIT 1", image_id)
