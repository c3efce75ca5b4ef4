"""A container's file system as the container sees it, for ``docker cp`` (moby's
``containerFSView``).

The rootfs the graph driver mounts has none of what the container sees at its mount points: a
copy into a volume path landed in the layer *under* the volume, invisible inside. A view is one
thread of the daemon that unshares its mount namespace (a copy of the host's, made a slave of it,
so nothing mounted in the view reaches the host) and mounts, at their places in the rootfs, every
volume and bind mount of the container, then its ``/etc/resolv.conf``, ``/etc/hostname`` and
``/etc/hosts``; for a running container also its tmpfs mounts, cloned from its own mount
namespace with ``open_tree(2)`` (dockerd leaves tmpfs mounts out of its view). Functions run with
:meth:`ContainerView.call` see the container's files where the container sees them; so do the
threads they start (a thread is born in its creator's mount namespace: one that must act on the
host's mounts, as releasing the rootfs does, must be started elsewhere). Descriptors opened in the
view lead into its mounts from any thread. The namespace and every mount in it end with the last
of the threads in it: nothing to unmount, even after a crash.

Mount points missing in the rootfs are made, as dockerd does (a start makes them anyway); the
walk to each one follows symlinks inside the rootfs only, and the mount is made on an ``O_PATH``
descriptor of what the walk found, so a symlink swapped in meanwhile cannot redirect it.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import posixpath
import queue
import stat
import threading
from typing import Any, Callable

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.tarsafe import SecureRoot


log = logging.getLogger(__name__)

#: the files the daemon writes for each container, bind-mounted over the image's
ETC_FILES = (("ResolvConfPath", "/etc/resolv.conf"), ("HostnamePath", "/etc/hostname"),
             ("HostsPath", "/etc/hosts"))
_MAX_LINKS = 40


@dataclasses.dataclass
class ViewMount:
    """One mount of a view: ``source`` a host path to bind, or ``""`` for the tmpfs at
    ``destination`` in the running container (cloned from its mount namespace)."""
    destination: str
    source: str = ""
    rw: bool = True


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def mounts_of(c: dict[str, Any], running: bool) -> list[ViewMount]:
    """What a view of container ``c`` mounts, parents before children: its volumes and bind
    mounts (and tmpfs mounts when ``running``), then the ``/etc`` files the daemon writes for it
    (those it has, unless a mount of its own is at the same place)."""
    own = []
    for m in c.get("Mounts") or []:
        if m.get("Type") == "tmpfs":
            if running:
                own.append(ViewMount(m["Destination"], "", bool(m.get("RW", True))))
        elif m.get("Source"):
            own.append(ViewMount(m["Destination"], m["Source"], bool(m.get("RW", True))))
    own.sort(key=lambda m: _depth(m.destination))
    taken = {m.destination for m in own}
    etc = [ViewMount(dest, c[key]) for key, dest in ETC_FILES
           if c.get(key) and dest not in taken and os.path.exists(c[key])]
    return own + etc


def covering_mount(c: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The deepest of ``c``'s mounts whose destination is ``path`` or one of its parents."""
    path = posixpath.normpath("/" + path.lstrip("/"))
    best = None
    for m in c.get("Mounts") or []:
        dest = m["Destination"]
        if path == dest or path.startswith(dest.rstrip("/") + "/"):
            if best is None or _depth(dest) > _depth(best["Destination"]):
                best = m
    return best


def check_writable(c: dict[str, Any], rootfs: str, path: str) -> None:
    """dockerd's rule for extracting into ``path`` (run in the view): where ``path`` really is
    (symlinks followed) must not be in a read-only mount, and outside any mount the rootfs must
    not be read-only. A ``path`` that cannot be resolved is left to the extraction to refuse."""
    try:
        with SecureRoot(rootfs) as sroot:
            fd = sroot.open_dir([p for p in path.split("/") if p])
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
                top = os.readlink(f"/proc/self/fd/{sroot.fd}")
            finally:
                os.close(fd)
    except (OSError, InvalidParameter):
        return
    rel = os.path.relpath(real, top)
    inside = "/" if rel == "." else "/" + rel
    m = covering_mount(c, inside)
    if m is not None:
        if not m.get("RW", True):
            raise InvalidParameter("mounted volume is marked read-only")
    elif c["HostConfig"].get("ReadonlyRootfs"):
        raise InvalidParameter("container rootfs is marked read-only")


def _mount_point(sroot: SecureRoot, dest: str, is_dir: bool) -> int:
    """An ``O_PATH`` fd of mount point ``dest`` below the root, made if missing (a directory,
    or an empty file for a file mount); symlinks on the way are followed inside the root."""
    parts = [p for p in posixpath.normpath("/" + dest).split("/") if p]
    for _ in range(_MAX_LINKS):
        dfd = sroot.open_dir(parts[:-1], create=True, what=dest)
        try:
            name = parts[-1]
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    if is_dir:
                        os.mkdir(name, 0o755, dir_fd=dfd)
                    else:
                        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                         | os.O_CLOEXEC, 0o755, dir_fd=dfd))
                except FileExistsError:
                    pass
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(name, dir_fd=dfd)
                base = [] if target.startswith("/") else parts[:-1]
                parts = [p for p in posixpath.normpath("/" + "/".join(base + [target])).split("/") if p]
                if not parts:  # a link to "/"
                    return os.open(".", os.O_PATH | os.O_CLOEXEC, dir_fd=sroot.fd)
                continue
            return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        finally:
            os.close(dfd)
    raise InvalidParameter(f"mount point {dest}: too many levels of symbolic links")


def _privatize(target_fd: int, rw: bool) -> None:
    """Make the mount just put on ``target_fd`` private (what happens to it stays in the view),
    and read-only unless ``rw``: through its path, as the kernel refuses remounts through
    ``/proc/self/fd``."""
    real = os.readlink(f"/proc/self/fd/{target_fd}")
    host.mount(None, real, None, host.MS_REC | host.MS_PRIVATE)
    if not rw:
        host.remount_bind(real, host.MS_RDONLY)


def _clone_tmpfs(pid: int, dest: str, own_ns: int) -> int | None:
    """A detached clone of the mount at ``dest`` in the mount namespace of process ``pid``
    (None if the process is gone); this thread goes there and comes back to ``own_ns``."""
    try:
        cfd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        host.setns(cfd, host.CLONE_NEWNS)
        try:
            return host.open_tree(dest)
        except FileNotFoundError:
            return None
        finally:
            host.setns(own_ns, host.CLONE_NEWNS)  # failing, the view dies with the error
    finally:
        os.close(cfd)


class ContainerView:
    """The view of one container: ``ContainerView(rootfs, mounts, pid).open()``, then
    :meth:`call` as often as needed, then :meth:`close` (which runs the ``on_close`` callbacks
    once the view's thread is gone)."""

    def __init__(self, rootfs: str, mounts: list[ViewMount], pid: int = 0,
                 fs_ids: tuple[int, int] | None = None) -> None:
        self.root = rootfs
        self.mounts = mounts
        self.pid = pid
        #: with a user namespace, the host IDs of the container's root: what the view creates
        #: is made as them (a tmpfs cloned from the container refuses owners it cannot map)
        self.fs_ids = fs_ids
        self._todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name="container-view", daemon=True)
        self._on_close: list[Callable[[], object]] = []
        self._closed = False
        self._lock = threading.Lock()

    def open(self) -> "ContainerView":
        """Make the view (blocking); its error if it could not be made."""
        self._thread.start()
        self._ready.result()
        return self

    def on_close(self, fn: Callable[[], object]) -> None:
        self._on_close.append(fn)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` run in the view (blocking): its result or its error."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._todo.put((fn, args, fut))
        return fut.result()

    def close(self) -> None:
        """End the view (idempotent; from any thread but the view's own). The ``on_close``
        callbacks run in the calling thread: it must be in the host's mount namespace."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._todo.put(None)
        self._thread.join()
        for fn in self._on_close:
            try:
                fn()
            except Exception:  # noqa: BLE001 - the others must still run
                log.exception("container view: closing failed")

    # -- the view's thread ---------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._setup()
        except BaseException as e:  # noqa: BLE001 - handed to open()
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        while True:
            item = self._todo.get()
            if item is None:
                return
            fn, args, fut = item
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def _setup(self) -> None:
        host.unshare(host.CLONE_NEWNS)  # this thread only (and those it starts)
        host.mount(None, "/", None, host.MS_REC | host.MS_SLAVE)
        if self.fs_ids is not None:
            host.set_fs_ids(*self.fs_ids)
        own_ns = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/mnt",
                         os.O_RDONLY | os.O_CLOEXEC)
        try:
            with SecureRoot(self.root) as sroot:
                for m in self.mounts:
                    self._mount(sroot, m, own_ns)
        finally:
            os.close(own_ns)

    def _mount(self, sroot: SecureRoot, m: ViewMount, own_ns: int) -> None:
        tree = None
        if not m.source:
            if not self.pid:
                return
            tree = _clone_tmpfs(self.pid, m.destination, own_ns)
            if tree is None:
                return
        try:
            is_dir = True if tree is not None else stat.S_ISDIR(os.stat(m.source).st_mode)
            target = _mount_point(sroot, m.destination, is_dir)
            try:
                if tree is not None:
                    host.move_mount(tree, target)
                else:
                    host.mount(m.source, f"/proc/self/fd/{target}", None,
                                host.MS_BIND | host.MS_REC)
                _privatize(target, m.rw if tree is None else True)
            finally:
                os.close(target)
        finally:
            if tree is not None:
                os.close(tree)
