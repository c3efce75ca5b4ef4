"""Start-up reconcile: remove what a crash left behind that no record references.

Every write of the daemon is atomic — records in SQLite transactions, files renamed into place,
layers recorded only once whole — so a crash (SIGKILL, power loss, a stop that abandoned busy
threads) leaves only unreferenced leftovers, never half-written records. At start-up, before
networks and containers are brought back, the daemon removes:

* everything in ``<data-root>/tmp`` (spooled uploads, blobs being downloaded, build contexts,
  ``docker cp`` and ``save`` files) and ``.tmp-*`` files of atomic writes in container dirs;
* layer records no image uses (a pull, import or commit that never recorded its image), and
  images a missing layer made unusable;
* container records whose writable layer is gone (a ``rm`` cut between the two);
* the graph driver's layers no layer or container record references (through the driver's
  :meth:`~dockyard.hookspecs.graphdriver.GraphDriver.ids` and ``remove``, never behind its back);
* blobs no image, layer or manifest record references;
* container and volume directories without a record (a create or ``rm`` cut short).

Each kind is logged with its count and size. Nothing here names a driver.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any

from dockyard.hookspecs.errors import DockyardError

from . import localvolumes
from .blobs import TMP_PREFIX

log = logging.getLogger(__name__)


def tree_size(path: str) -> int:
    """Bytes allocated under ``path`` (not following links, not crossing mounts)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    total = st.st_blocks * 512
    if not os.path.isdir(path) or os.path.islink(path):
        return total
    for dirpath, dirs, files in os.walk(path, onerror=lambda e: None):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            try:
                s = os.lstat(p)
            except OSError:
                continue
            if name in dirs and s.st_dev != st.st_dev:
                dirs.remove(name)  # a mount point: not ours to count
                continue
            total += s.st_blocks * 512
    return total


def _remove_path(path: str) -> int:
    size = tree_size(path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return 0
    return size


class Reconciler:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.state = daemon.state
        self.graph = daemon.graph
        self.removed: dict[str, list[int]] = {}  # kind -> [count, bytes]

    def _count(self, kind: str, size: int = 0) -> None:
        n = self.removed.setdefault(kind, [0, 0])
        n[0] += 1
        n[1] += size

    def run(self) -> dict[str, list[int]]:
        for step in (self.temp_files, self.dangling_layers, self.broken_images,
                     self.stale_containers, self.orphan_layers, self.orphan_blobs, self.orphan_dirs):
            try:
                step()
            except Exception:  # noqa: BLE001 - a leftover that cannot go must not stop the daemon
                log.exception("start-up reconcile: %s failed", step.__name__)
        for kind, (count, size) in sorted(self.removed.items()):
            log.info("start-up reconcile: removed %d %s (%.1f MB)", count, kind, size / 1e6)
        return self.removed

    # -- temporary files -------------------------------------------------------------------------
    def temp_files(self) -> None:
        tmp = self.d.tmp_dir
        os.makedirs(tmp, exist_ok=True)
        for name in os.listdir(tmp):
            self._count("temporary files", _remove_path(os.path.join(tmp, name)))
        for cdir in self._subdirs(self.d.containers.root):
            for name in os.listdir(cdir):
                if name.startswith(TMP_PREFIX):
                    self._count("temporary files", _remove_path(os.path.join(cdir, name)))
        # blobs being written by versions that kept them next to the store
        blob_dir = os.path.join(self.d.blobs.root, "sha256")
        for name in os.listdir(blob_dir):
            if name.startswith(TMP_PREFIX):
                self._count("temporary files", _remove_path(os.path.join(blob_dir, name)))

    @staticmethod
    def _subdirs(root: str) -> list[str]:
        try:
            return [os.path.join(root, n) for n in os.listdir(root)
                    if os.path.isdir(os.path.join(root, n))]
        except FileNotFoundError:
            return []

    # -- records ---------------------------------------------------------------------------------
    def _used_layers(self) -> set[str]:
        used: set[str] = set()
        for top in self.state.top_layers():
            chain: str | None = top
            while chain and chain not in used:
                used.add(chain)
                layer = self.state.layer(chain)
                chain = layer["parent"] if layer else None
        return used

    def dangling_layers(self) -> None:
        """Layer records no image uses, children before parents; then the records of the blobs
        of diff ids no layer has any more."""
        used = self._used_layers()
        while True:
            doomed = [r for r in self.state.leaf_layers() if r["chain_id"] not in used]
            if not doomed:
                break
            for layer in doomed:
                self.state.delete_layer(layer["chain_id"])
                self._remove_layer(layer["cache_id"], "unused image layers", layer["size"])
        self.state.delete_orphan_layer_blobs()

    def _remove_layer(self, cache_id: str, kind: str, size: int = 0) -> None:
        try:
            if self.graph.exists(cache_id):
                self.graph.remove(cache_id)
            self._count(kind, size)
        except (DockyardError, OSError) as exc:
            log.warning("start-up reconcile: cannot remove layer %s: %s", cache_id[:12], exc)

    def broken_images(self) -> None:
        """Images with a layer the graph driver no longer has: unusable, so not listed."""
        for row in self.state.images():
            chain = self.d.images.layer_chain(row["top_layer"]) if row["top_layer"] else []
            missing = [layer["cache_id"] for layer in chain if not self.graph.exists(layer["cache_id"])]
            if missing:
                log.warning("start-up reconcile: image %s lost its layer %s in %s; removing it",
                            row["id"][7:19], missing[0][:12], self.graph.name)
                self.d.images.forget(row["id"])
                self._count("images with missing layers")

    def stale_containers(self) -> None:
        """Stopped containers whose writable layer is gone (a ``rm`` cut short)."""
        cs = self.d.containers
        for c in list(cs.all()):
            if c["State"]["Running"] or self.graph.exists(c["Id"]):
                continue
            log.info("start-up reconcile: container %s has no writable layer; removing its record",
                     c["Id"][:12])
            cs.forget(c)
            self._count("container records without a layer")

    # -- unreferenced storage --------------------------------------------------------------------
    def orphan_layers(self) -> None:
        try:
            held = self.graph.ids()
        except NotImplementedError:
            log.info("start-up reconcile: the %s storage driver cannot list its layers; orphan "
                     "layers are not looked for", self.graph.name)
            return
        known = {r["cache_id"] for r in self.state.layers()}
        known |= self.state.container_ids()
        for lid in held:
            if lid not in known:
                self._remove_layer(lid, "orphan layers", self._layer_size(lid))

    def _layer_size(self, lid: str) -> int:
        """The size of the directory a driver reports for a layer (for the log only)."""
        try:
            meta = self.graph.metadata(lid)
        except (DockyardError, OSError):  # e.g. its parent went first
            return 0
        return sum(tree_size(v) for k, v in meta.items() if k in ("UpperDir", "Dir"))

    def _referenced_blobs(self) -> set[str]:
        refs = self.state.image_ids()
        refs |= self.state.layer_blob_digests()
        manifests = {ref.split("@", 1)[1] for ref in self.state.repo_digest_refs()}
        refs |= manifests
        for digest in manifests:  # an index names the platform manifest kept with it
            try:
                with open(self.d.blobs.path(digest), "rb") as f:
                    doc = json.loads(f.read(4 << 20))
            except (OSError, ValueError, DockyardError):
                continue
            if isinstance(doc, dict):
                refs |= {m.get("digest") for m in doc.get("manifests") or [] if isinstance(m, dict)}
        return refs

    def orphan_blobs(self) -> None:
        refs = self._referenced_blobs()
        blob_dir = os.path.join(self.d.blobs.root, "sha256")
        for name in os.listdir(blob_dir):
            if not name.startswith(".") and "sha256:" + name not in refs:
                self._count("unreferenced blobs", _remove_path(os.path.join(blob_dir, name)))

    def orphan_dirs(self) -> None:
        records = self.state.container_ids()
        for path in self._subdirs(self.d.containers.root):
            if os.path.basename(path) not in records:
                self._count("container directories without a record", _remove_path(path))
        volumes = self.state.volume_names()
        for path in self._subdirs(self.d.volumes.root):
            if os.path.basename(path) not in volumes:
                try:  # never through a mount: a bind volume's files are the host's
                    localvolumes.unmount(path)
                except DockyardError as exc:
                    log.warning("start-up reconcile: volume directory %s kept: %s", path, exc)
                    continue
                self._count("half-made or half-removed volumes", _remove_path(path))
