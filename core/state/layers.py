"""Layer records (chain id -> diff id, parent, the graph driver's cache id, size) and the blobs
layers were pulled, loaded or imported as."""
from __future__ import annotations

from typing import Optional, TypedDict

from .db import Db


class Layer(TypedDict):
    chain_id: str
    diff_id: str
    parent: Optional[str]
    cache_id: str
    size: int


class LayerBlob(TypedDict):
    digest: str
    diff_id: str
    media_type: str
    size: int


def _layer(r: object) -> Layer:
    return Layer(**dict(r))  # type: ignore[call-overload, typeddict-item]


class LayerRepo(Db):
    def layer(self, chain: str) -> Layer | None:
        rows = self._q("SELECT * FROM layers WHERE chain_id=?", chain)
        return _layer(rows[0]) if rows else None

    def layers(self) -> list[Layer]:
        return [_layer(r) for r in self._q("SELECT * FROM layers")]

    def leaf_layers(self) -> list[Layer]:
        """The layers no other layer is made on."""
        return [_layer(r) for r in self._q("SELECT * FROM layers l WHERE NOT EXISTS "
                                          "(SELECT 1 FROM layers c WHERE c.parent = l.chain_id)")]

    def has_layer(self, chain: str) -> bool:
        return self._exists("SELECT 1 FROM layers WHERE chain_id=?", chain)

    def add_layer(self, layer: Layer) -> bool:
        """Record ``layer`` unless its chain id is known (then False), in one transaction."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM layers WHERE chain_id=?", (layer["chain_id"],)).fetchone():
                return False
            db.execute("INSERT INTO layers(chain_id, diff_id, parent, cache_id, size) "
                       "VALUES(?,?,?,?,?)", (layer["chain_id"], layer["diff_id"], layer["parent"],
                                             layer["cache_id"], layer["size"]))
        return True

    def layer_in_use(self, chain: str) -> bool:
        """Whether an image ends in the layer or another layer is made on it."""
        return self._exists("SELECT 1 FROM images WHERE top_layer=?", chain) or \
            self._exists("SELECT 1 FROM layers WHERE parent=?", chain)

    def diff_id_in_use(self, diff_id: str) -> bool:
        return self._exists("SELECT 1 FROM layers WHERE diff_id=?", diff_id)

    def delete_layer(self, chain: str) -> None:
        self._x("DELETE FROM layers WHERE chain_id=?", chain)

    # -- layer blobs -----------------------------------------------------------------------------
    def record_layer_blob(self, blob: LayerBlob) -> None:
        self._x("INSERT OR IGNORE INTO layer_blobs(digest, diff_id, media_type, size) "
               "VALUES(?,?,?,?)", blob["digest"], blob["diff_id"], blob["media_type"], blob["size"])

    def layer_blobs(self, diff_id: str) -> list[LayerBlob]:
        return [LayerBlob(**dict(r))  # type: ignore[typeddict-item]
                for r in self._q("SELECT * FROM layer_blobs WHERE diff_id=?", diff_id)]

    def has_layer_blob(self, digest: str) -> bool:
        return self._exists("SELECT 1 FROM layer_blobs WHERE digest=?", digest)

    def layer_blob_digests(self) -> set[str]:
        return {r["digest"] for r in self._q("SELECT digest FROM layer_blobs")}

    def delete_layer_blobs(self, diff_id: str) -> None:
        self._x("DELETE FROM layer_blobs WHERE diff_id=?", diff_id)

    def delete_orphan_layer_blobs(self) -> None:
        """The records of the blobs of diff ids no layer has any more."""
        self._x("DELETE FROM layer_blobs WHERE diff_id NOT IN (SELECT diff_id FROM layers)")
