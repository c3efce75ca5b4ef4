"""The ``vfs`` graph driver: every layer is a full copy of its parent in ``<home>/dir/<id>``.

No kernel feature needed, so it runs anywhere (and is the reference the conformance suite is
written against); it pays in disk space and in the time to copy a parent.

* ``create`` copies the parent with ``cp -a --reflink=auto --sparse=always`` (GNU coreutils):
  ownership, modes, nanosecond timestamps, all xattrs (security.capability included), hard links
  within the tree, symlinks, device nodes, fifos and sockets are kept; holes stay holes and
  zero runs become holes; on btrfs/xfs the data is shared by reflink. Measured against a Python
  walk it is faster and is coreutils' well-tested code rather than ours (numbers in the comment
  below).
* New layers appear atomically: the copy is made under ``dir/.tmp-<id>-<random>`` and renamed to
  ``dir/<id>`` when complete; a crash leaves a whole layer or none (leftover temporaries are
  removed when the driver starts). Removal renames to ``dir/.rm-<id>-<random>`` first.
* ``get`` returns the directory and counts references in memory; ``remove`` of a referenced
  layer is refused with Conflict.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import uuid

from dockyard.hookspecs.errors import (Conflict, DockyardError, DriverNotSupported,
                                       InvalidParameter, NotFound)
from dockyard.hookspecs.graphdriver import GraphDriver
from dockyard.hookspecs.naivediff import NaiveDiff

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_RM_PREFIX = ".rm-"

# Copy method, measured on this project's Debian 12 VM (ext4, warm cache, sync before each run)
# with a tree of 1 831 entries, 101 MB on disk / 157 MB apparent (/usr/lib/python3.11, python
# docs, 40 MB of random data, a 64 MB sparse file holding 4 MB):
#   cp -a --reflink=auto --sparse=always  1.6-1.9 s (nearly all kernel time)
#   cp -a --reflink=auto --sparse=auto    1.5-1.9 s
#   shutil.copytree + copy2               1.7-3.0 s, without owners, hard links or holes
# cp is as fast or faster and is coreutils' well-tested code; --sparse=always also turns zero
# runs into holes for free.
# Durability: the rename makes a layer appear whole after a crash of the daemon; like moby's vfs
# nothing is fsynced, so a power loss may leave a layer whose file data was not written back.

def check_id(id: object, what: str = "layer id") -> str:
    if (not isinstance(id, str) or not id or "/" in id or "\0" in id or ".." in id
            or id.startswith(".") or len(id) > 255):
        raise InvalidParameter(f"invalid {what} {id!r}")
    return id


class VfsDriver(NaiveDiff, GraphDriver):
    name = "vfs"

    def __init__(self, home: str, options: dict[str, str] | None = None) -> None:
        super().__init__(home, options)
        if self.options:
            raise InvalidParameter(
                "vfs: unknown storage option(s): " + ", ".join(sorted(self.options)))
        self._cp = shutil.which("cp")
        if self._cp is None:
            raise DriverNotSupported("vfs: cp (GNU coreutils) not found in PATH")
        self._dir = os.path.join(home, "dir")
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._refs: dict[str, int] = {}
        self._busy: set[str] = set()  # ids being created or removed
        for name in os.listdir(self._dir):
            if name.startswith((_TMP_PREFIX, _RM_PREFIX)):
                log.info("vfs: removing leftover %s", name)
                shutil.rmtree(os.path.join(self._dir, name), ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------------
    def _path(self, id: str) -> str:
        return os.path.join(self._dir, check_id(id))

    def _copy(self, src: str, dst: str) -> None:
        # dst does not exist: cp makes it a copy of src, root directory's metadata included
        proc = subprocess.run(
            [self._cp, "-a", "--reflink=auto", "--sparse=always", "--", src, dst],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise DockyardError(
                f"vfs: copying layer failed: {proc.stderr.decode(errors='replace').strip()}")

    # -- the core -------------------------------------------------------------------------------
    def create(self, id: str, parent: str | None) -> None:
        path = self._path(id)
        ppath = self._path(parent) if parent is not None else None
        with self._lock:
            if id in self._busy or os.path.lexists(path):
                raise Conflict(f"vfs: layer {id} already exists")
            if ppath is not None and not os.path.isdir(ppath):
                raise NotFound(f"vfs: parent layer {parent} not found")
            self._busy.add(id)
            if parent is not None:
                self._busy.add(parent)  # keep it from being removed while we copy
        tmp = os.path.join(self._dir, f"{_TMP_PREFIX}{id}-{uuid.uuid4().hex[:12]}")
        try:
            if ppath is None:
                os.mkdir(tmp, 0o755)
            else:
                self._copy(ppath, tmp)
            try:
                os.rename(tmp, path)
            except OSError as e:  # somebody made it behind our back
                raise Conflict(f"vfs: layer {id} already exists: {e}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            with self._lock:
                self._busy.discard(id)
                if parent is not None:
                    self._busy.discard(parent)

    def remove(self, id: str) -> None:
        path = self._path(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"vfs: layer {id} not found")
            if self._refs.get(id, 0) > 0:
                raise Conflict(f"vfs: layer {id} is in use ({self._refs[id]} reference(s))")
            if id in self._busy:
                raise Conflict(f"vfs: layer {id} is busy")
            doomed = os.path.join(self._dir, f"{_RM_PREFIX}{id}-{uuid.uuid4().hex[:12]}")
            os.rename(path, doomed)  # gone at once for everybody; the delete may take time
        shutil.rmtree(doomed)

    def get(self, id: str) -> str:
        path = self._path(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"vfs: layer {id} not found")
            self._refs[id] = self._refs.get(id, 0) + 1
        return path

    def put(self, id: str) -> None:
        check_id(id)
        with self._lock:
            n = self._refs.get(id, 0)
            if n <= 1:
                self._refs.pop(id, None)
                if n == 0:
                    log.debug("vfs: put of %s without get", id)
            else:
                self._refs[id] = n - 1

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._path(id))

    def status(self) -> list[tuple[str, str]]:
        return [("Root Dir", self._dir)]

    def metadata(self, id: str) -> dict[str, str]:
        path = self._path(id)
        if not os.path.isdir(path):
            raise NotFound(f"vfs: layer {id} not found")
        return {"Dir": path}

    def cleanup(self) -> None:
        # nothing is mounted; forget the references
        with self._lock:
            self._refs.clear()
