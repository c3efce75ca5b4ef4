"""What the drivers that keep each layer as one directory share (``vfs``, ``btrfs``).

A layer is ``<home>/<subdir>/<id>``, made whole under ``.tmp-<id>-<random>`` and renamed into
place, so a crash leaves a whole layer or none; removal renames to ``.rm-<id>-<random>`` first so
the layer is gone at once for everybody while the delete takes its time. Leftovers of both are
deleted when the driver starts. Nothing is mounted: ``get`` returns the directory and counts
references in memory; ``remove`` of a referenced or busy layer is refused with Conflict. The
diff side is :class:`~dockyard.hookspecs.naivediff.NaiveDiff`.

With ``userns-remap`` (``id_map``) every layer's root directory is owned by ``id_map.root``
(a copy or snapshot of a parent is chowned before it appears), and home and the layer directory
are ``0710`` with group ``id_map.root``'s gid, so root of the user namespace can reach its
rootfs; the NaiveDiff side stores applied tars shifted and shifts diffs back.

A subclass makes and deletes layer directories (:meth:`_make`, :meth:`_delete`); everything
else is here.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid

from dockyard.hookspecs.errors import Conflict, InvalidParameter, NotFound
from dockyard.hookspecs.graphdriver import GraphDriver
from dockyard.hookspecs.host import RefCounter
from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.naivediff import NaiveDiff

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
RM_PREFIX = ".rm-"


def check_id(id: object, what: str = "layer id") -> str:
    """``id`` if it is a safe single path component, else InvalidParameter."""
    if (not isinstance(id, str) or not id or "/" in id or "\0" in id or ".." in id
            or id.startswith(".") or len(id) > 255):
        raise InvalidParameter(f"invalid {what} {id!r}")
    return id


class DirectoryLayers(NaiveDiff, GraphDriver):
    #: the directory under home that holds the layers
    subdir = "dir"

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        super().__init__(home, options, id_map)
        self._dir = os.path.join(home, self.subdir)

    def _open_store(self) -> None:
        """Refuse unknown options, create the layer directory and delete what a crash left.
        Subclasses call it once their host checks passed (DriverNotSupported comes first, and
        ``_delete`` may need what the checks set up)."""
        if self.options:
            raise InvalidParameter(f"{self.name}: unknown storage option(s): "
                                   + ", ".join(sorted(self.options)))
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        if not self.id_map.is_identity:
            for d in (self.home, self._dir):
                os.chown(d, 0, self.id_map.root[1])
                os.chmod(d, 0o710)
        self._lock = threading.RLock()
        self._refs = RefCounter(self._lock, self.name)
        self._busy = RefCounter(self._lock, self.name)  # ids being created, parents being copied
        for name in os.listdir(self._dir):
            if name.startswith((TMP_PREFIX, RM_PREFIX)):
                log.info("%s: removing leftover %s", self.name, name)
                self._delete(os.path.join(self._dir, name))

    # -- what a subclass provides ---------------------------------------------------------------
    def _make(self, path: str, parent_path: str | None) -> None:
        """Make layer directory ``path`` (which does not exist): empty, or a copy of
        ``parent_path``."""
        raise NotImplementedError

    def _delete(self, path: str) -> None:
        """Delete a layer directory made by :meth:`_make` (or a half-made one)."""
        shutil.rmtree(path, ignore_errors=True)

    # -- the core -------------------------------------------------------------------------------
    def _path(self, id: str) -> str:
        return os.path.join(self._dir, check_id(id))

    def create(self, id: str, parent: str | None) -> None:
        path = self._path(id)
        ppath = self._path(parent) if parent is not None else None
        with self._lock:
            if id in self._busy or os.path.lexists(path):
                raise Conflict(f"{self.name}: layer {id} already exists")
            if ppath is not None and not os.path.isdir(ppath):
                raise NotFound(f"{self.name}: parent layer {parent} not found")
            self._busy.acquire(id)
            if parent is not None:
                self._busy.acquire(parent)  # keep it from being removed while we copy
        tmp = os.path.join(self._dir, f"{TMP_PREFIX}{id}-{uuid.uuid4().hex[:12]}")
        try:
            self._make(tmp, ppath)
            if not self.id_map.is_identity:
                # a layer's root belongs to root of the user namespace (a container's too, so it
                # can create files in /)
                os.chown(tmp, *self.id_map.root)
            try:
                os.rename(tmp, path)
            except OSError as e:  # somebody made it behind our back
                raise Conflict(f"{self.name}: layer {id} already exists: {e}") from None
        except BaseException:
            if os.path.lexists(tmp):
                self._delete(tmp)
            raise
        finally:
            self._busy.release(id)
            if parent is not None:
                self._busy.release(parent)

    def remove(self, id: str) -> None:
        path = self._path(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"{self.name}: layer {id} not found")
            self._refs.refuse_if_held(id, f"{self.name}: layer {id}")
            self._busy.refuse_if_held(id, f"{self.name}: layer {id}", "busy")
            doomed = os.path.join(self._dir, f"{RM_PREFIX}{id}-{uuid.uuid4().hex[:12]}")
            os.rename(path, doomed)  # gone at once for everybody; the delete may take time
        self._delete(doomed)

    def get(self, id: str) -> str:
        path = self._path(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"{self.name}: layer {id} not found")
            self._refs.acquire(id)
        return path

    def put(self, id: str) -> None:
        self._refs.release(check_id(id))

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._path(id))

    def ids(self) -> list[str]:
        return sorted(n for n in os.listdir(self._dir)
                      if not n.startswith(".") and os.path.isdir(os.path.join(self._dir, n)))

    def metadata(self, id: str) -> dict[str, str]:
        path = self._path(id)
        if not os.path.isdir(path):
            raise NotFound(f"{self.name}: layer {id} not found")
        return {"Dir": path}

    def cleanup(self) -> None:
        self._refs.clear()  # nothing is mounted; forget the references
