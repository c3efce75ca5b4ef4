"""The ``aufs`` graph driver: layers as aufs branches (the seeds' UnionFS).

Learned from moby's (removed) ``daemon/graphdriver/aufs``; written from scratch::

    <home>/diff/<id>/     the layer's own files (aufs keeps OCI-style ``.wh.`` whiteouts here)
    <home>/layers/<id>    the ids of its parents, nearest first, one a line
    <home>/mnt/<id>/      where it is mounted while referenced

``get`` mounts ``br:<diff/id>=rw:<diff/parent>=ro+wh:...`` with mount(2); branches that do not fit
in the first page of options are added with ``remount,append:...`` one at a time, so deep images
mount. The diff side is the naive one. Mainline kernels have no aufs: the constructor then
raises ``DriverNotSupported("aufs is not in /proc/filesystems")`` before touching anything.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import uuid

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import Conflict, DriverNotSupported, InvalidParameter, NotFound
from dockyard.hookspecs.graphdriver import GraphDriver
from dockyard.hookspecs.host import RefCounter
from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.naivediff import NaiveDiff

from .dirlayers import check_id

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE")


class AufsDriver(NaiveDiff, GraphDriver):
    name = "aufs"

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        if "aufs" not in host.filesystems():
            raise DriverNotSupported("aufs is not in /proc/filesystems")
        super().__init__(home, options, id_map)
        if self.options:
            raise InvalidParameter("aufs: unknown storage option(s): " + ", ".join(sorted(self.options)))
        backing = host.fs_name(os.path.dirname(home.rstrip("/")) or "/")
        if backing in ("aufs", "btrfs", "overlayfs"):
            raise DriverNotSupported(f"aufs: {home} is on {backing}, which aufs cannot use as a branch")
        for sub in ("diff", "layers", "mnt"):
            os.makedirs(os.path.join(home, sub), mode=0o700, exist_ok=True)
        if not self.id_map.is_identity:  # root of the user namespace must reach mnt/<id>
            for d in (home, os.path.join(home, "mnt")):
                os.chown(d, 0, self.id_map.root[1])
                os.chmod(d, 0o710)
        self._lock = threading.RLock()
        self._refs = RefCounter(self._lock, "aufs")
        self._mounted: set[str] = set()
        mnt = os.path.realpath(os.path.join(home, "mnt")) + "/"
        for mp, fstype, _ in host.mountinfo():
            if fstype == "aufs" and mp.startswith(mnt):
                self._mounted.add(mp[len(mnt):])

    def _p(self, sub: str, id: str) -> str:
        return os.path.join(self.home, sub, check_id(id))

    def _parents(self, id: str) -> list[str]:
        try:
            with open(self._p("layers", id)) as f:
                return [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def create(self, id: str, parent: str | None) -> None:
        with self._lock:
            if os.path.lexists(self._p("diff", id)):
                raise Conflict(f"aufs: layer {id} already exists")
            if parent is not None and not os.path.isdir(self._p("diff", parent)):
                raise NotFound(f"aufs: parent layer {parent} not found")
            parents = [parent] + self._parents(parent) if parent is not None else []
            tmp = os.path.join(self.home, "diff", f".tmp-{id}-{uuid.uuid4().hex[:12]}")
            os.mkdir(tmp, 0o755)
            if not self.id_map.is_identity:  # userns-remap: the layer's root is the container root's
                os.chown(tmp, *self.id_map.root)
            with open(self._p("layers", id), "w") as f:
                f.write("".join(p + "\n" for p in parents))
            os.makedirs(self._p("mnt", id), mode=0o755, exist_ok=True)
            os.rename(tmp, self._p("diff", id))

    def remove(self, id: str) -> None:
        with self._lock:
            if not os.path.isdir(self._p("diff", id)):
                raise NotFound(f"aufs: layer {id} not found")
            self._refs.refuse_if_held(id, f"aufs: layer {id}")
            if id in self._mounted:
                self._unmount(id)
            doomed = os.path.join(self.home, "diff", f".rm-{id}-{uuid.uuid4().hex[:12]}")
            os.rename(self._p("diff", id), doomed)
            for sub in ("layers", "mnt"):
                p = self._p(sub, id)
                if os.path.isdir(p):
                    os.rmdir(p)
                elif os.path.exists(p):
                    os.unlink(p)
        shutil.rmtree(doomed)

    def _mount(self, id: str) -> None:
        branches = [f"{self._p('diff', id)}=rw"] + [f"{self._p('diff', p)}=ro+wh"
                                                   for p in self._parents(id)]
        target = self._p("mnt", id)
        data, rest = "br:" + branches[0], branches[1:]
        while rest and len(data) + len(rest[0]) + 1 + len(",dio,xino=/dev/shm/aufs.xino") < _PAGE:
            data += ":" + rest.pop(0)
        host.mount("none", target, "aufs", 0, data + ",dio,xino=/dev/shm/aufs.xino")
        try:
            for b in rest:
                host.mount("none", target, None, host.MS_REMOUNT, f"append:{b}")
        except OSError:
            host.umount2(target, host.MNT_DETACH)
            raise

    def _unmount(self, id: str) -> None:
        try:
            host.umount2(self._p("mnt", id), 0)
        except OSError as e:
            if e.errno == errno.EBUSY:
                host.umount2(self._p("mnt", id), host.MNT_DETACH)
            elif e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
        self._mounted.discard(id)

    def get(self, id: str) -> str:
        with self._lock:
            if not os.path.isdir(self._p("diff", id)):
                raise NotFound(f"aufs: layer {id} not found")

            def mount() -> None:
                if id not in self._mounted:
                    self._mount(id)
                    self._mounted.add(id)
            self._refs.acquire(id, first=mount)
            return self._p("mnt", id)

    def put(self, id: str) -> None:
        def unmount() -> None:
            if id in self._mounted:
                self._unmount(id)
        self._refs.release(id, last=unmount)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._p("diff", id))

    def ids(self) -> list[str]:
        diff = os.path.join(self.home, "diff")
        return sorted(n for n in os.listdir(diff)
                      if not n.startswith(".") and os.path.isdir(os.path.join(diff, n)))

    def status(self) -> list[tuple[str, str]]:
        return [("Root Dir", self.home), ("Backing Filesystem", host.fs_name(self.home)),
                ("Dirs", str(len(os.listdir(os.path.join(self.home, "diff")))))]

    def metadata(self, id: str) -> dict[str, str]:
        if not self.exists(id):
            raise NotFound(f"aufs: layer {id} not found")
        return {"Dir": self._p("diff", id), "MountPoint": self._p("mnt", id)}

    def cleanup(self) -> None:
        with self._lock:
            for id in sorted(self._mounted):
                self._unmount(id)
            self._refs.clear()
