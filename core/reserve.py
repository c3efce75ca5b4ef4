"""Room to remove things on a full disk: a pre-allocated reserve file in the data-root.

Removing images, containers and volumes must work when the data-root's file system has no byte
left, and so must starting the daemon — yet both write: SQLite appends the changed pages of every
transaction to its write-ahead log (and makes its ``-wal``/``-shm`` files when the database is
opened), and start-up writes a few small files. The daemon therefore keeps
``<data-root>/disk-reserve``, :data:`SIZE` bytes allocated (``posix_fallocate``) while space
allows. Before start-up and before every removal request, when the file system has less than
:data:`LOW` free, the reserve is released so the writes succeed; after the removal (and once
started) it is allocated again when there is room for it and :data:`MARGIN` more. While the
disk stays that full the reserve stays released (and the daemon says so): a full disk can then
only be freed again from outside. CockroachDB's "emergency ballast" works the same way.
"""
from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)

NAME = "disk-reserve"
#: enough for the write-ahead log of any removal and for start-up's own files
SIZE = 8 << 20
#: below this much free space a removal (or start-up) releases the reserve first
LOW = 1 << 20
#: the reserve is allocated again once this much more than its size is free
MARGIN = 2 << 20


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskReserve:
    def __init__(self, data_root: str, size: int = SIZE) -> None:
        self.path = os.path.join(data_root, NAME)
        self.root = data_root
        self.size = size

    def held(self) -> bool:
        return os.path.exists(self.path)

    def make_room(self) -> bool:
        """Release the reserve if the file system is (nearly) full; return whether it was."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + ".new")  # a refill cut short
        if not self.held() or free_bytes(self.root) >= LOW:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
            log.warning("the data-root %s is full: released its %d MB reserve so that removals "
                        "and start-up can write", self.root, self.size >> 20)
        return True

    def refill(self) -> bool:
        """Allocate the reserve again if it is missing and there is room for it and more."""
        if self.held() or free_bytes(self.root) < self.size + MARGIN:
            return False
        tmp = self.path + ".new"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.warning("cannot allocate the data-root's %d MB reserve: %s", self.size >> 20, exc)
            return False
        return True


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the file system being full (ENOSPC, or SQLite's SQLITE_FULL)."""
    import errno
    import sqlite3
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)
