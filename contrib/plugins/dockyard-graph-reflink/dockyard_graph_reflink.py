"""``reflink``: a dockyard graph driver whose layers are reflink copies of their parents.

    {"storage-driver": "reflink"}          # /etc/dockyard/daemon.json, data-root on btrfs or XFS

Every layer is a directory ``<home>/layers/<id>``; a child is made with ``cp -a
--reflink=always`` of its parent, so it shares every data block with it until one side writes
(the file system's copy-on-write, per extent): creating a layer costs metadata only, however big
the files, and nothing is mounted. The driver refuses (DriverNotSupported) a home whose file
system cannot clone file data (``FICLONE``: btrfs, XFS made with ``reflink=1``, bcachefs...),
instead of silently making full copies as ``vfs`` would. The diff side is the contract's
``NaiveDiff``.

A layer appears whole or not at all (made under ``.tmp-<id>`` and renamed); a removed one is
renamed away first; leftovers of a crash go when the driver starts.

A third-party driver: it imports ``dockyard.hookspecs`` (the contract and its toolkit) only.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

from dockyard.hookspecs import (Conflict, DockyardError, DriverNotSupported, GraphDriver,
                                InvalidParameter, NaiveDiff, NotFound, host)

#: linux/fs.h: ``ioctl(dest_fd, FICLONE, src_fd)`` shares all of src's data with dest
FICLONE = 0x40049409


def _check_id(id: object) -> str:
    if (not isinstance(id, str) or not id or "/" in id or "\0" in id or id.startswith(".")
            or len(id) > 255):
        raise InvalidParameter(f"reflink: invalid layer id {id!r}")
    return id


def can_reflink(directory: str) -> str | None:
    """``None`` if files in ``directory`` can share data (FICLONE works), else why not."""
    with tempfile.TemporaryFile(dir=directory) as src, tempfile.TemporaryFile(dir=directory) as dst:
        src.write(b"reflink probe")
        src.flush()
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError as e:
            return f"the file system of {directory} ({host.fs_name(directory)}) cannot clone " \
                   f"file data: FICLONE: {e.strerror}"
    return None


class ReflinkDriver(NaiveDiff, GraphDriver):
    name = "reflink"
    priority = 0  # chosen only when configured
    required_fs = "btrfs"  # where the conformance suite puts its homes (XFS with reflink works too)

    def __init__(self, home: str, options: dict[str, str] | None = None, id_map=None) -> None:
        super().__init__(home, options, id_map)
        if self.options:
            raise InvalidParameter("reflink: unknown storage option(s): "
                                   + ", ".join(sorted(self.options)))
        self._cp = shutil.which("cp")
        if self._cp is None:
            raise DriverNotSupported("reflink: cp (GNU coreutils) not found in PATH")
        self._dir = os.path.join(home, "layers")
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        why = can_reflink(self._dir)
        if why:
            raise DriverNotSupported(f"reflink: {why}")
        if not self.id_map.is_identity:  # root of the user namespace reaches its layers
            for d in (home, self._dir):
                os.chown(d, 0, self.id_map.root[1])
                os.chmod(d, 0o710)
        self._lock = threading.RLock()
        self._refs = host.RefCounter(self._lock, self.name)
        self._busy = host.RefCounter(self._lock, self.name)  # being made, or being copied from
        for name in os.listdir(self._dir):
            if name.startswith((".tmp-", ".rm-")):
                shutil.rmtree(os.path.join(self._dir, name), ignore_errors=True)

    def _path(self, id: str) -> str:
        return os.path.join(self._dir, _check_id(id))

    def create(self, id: str, parent: str | None) -> None:
        path = self._path(id)
        ppath = self._path(parent) if parent is not None else None
        with self._lock:
            if id in self._busy or os.path.lexists(path):
                raise Conflict(f"reflink: layer {id} already exists")
            if ppath is not None and not os.path.isdir(ppath):
                raise NotFound(f"reflink: parent layer {parent} not found")
            self._busy.acquire(id)
            if parent is not None:
                self._busy.acquire(parent)
        tmp = os.path.join(self._dir, f".tmp-{id}-{uuid.uuid4().hex[:12]}")
        try:
            self._make(tmp, ppath)
            if not self.id_map.is_identity:
                os.chown(tmp, *self.id_map.root)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self._busy.release(id)
            if parent is not None:
                self._busy.release(parent)

    def _make(self, path: str, parent_path: str | None) -> None:
        if parent_path is None:
            os.mkdir(path, 0o755)
            return
        proc = subprocess.run([self._cp, "-a", "--reflink=always", "--", parent_path, path],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise DockyardError("reflink: copying layer failed: "
                                + proc.stderr.decode(errors="replace").strip())

    def remove(self, id: str) -> None:
        path = self._path(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"reflink: layer {id} not found")
            self._refs.refuse_if_held(id, f"reflink: layer {id}")
            self._busy.refuse_if_held(id, f"reflink: layer {id}", "busy")
            doomed = os.path.join(self._dir, f".rm-{id}-{uuid.uuid4().hex[:12]}")
            os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def get(self, id: str) -> str:
        path = self._path(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"reflink: layer {id} not found")
            self._refs.acquire(id)
        return path

    def put(self, id: str) -> None:
        self._refs.release(_check_id(id))

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._path(id))

    def metadata(self, id: str) -> dict[str, str]:
        path = self._path(id)
        if not os.path.isdir(path):
            raise NotFound(f"reflink: layer {id} not found")
        return {"Dir": path}

    def status(self) -> list[tuple[str, str]]:
        return [("Root Dir", self._dir), ("Backing Filesystem", host.fs_name(self._dir))]

    def cleanup(self) -> None:
        self._refs.clear()  # nothing is mounted
