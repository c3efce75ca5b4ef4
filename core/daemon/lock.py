"""One daemon per data-root and exec-root.

``dockyardd`` takes an exclusive ``flock`` on ``<data-root>/dockyardd.lock`` (the real data-root,
after ``userns-remap``) and ``<exec-root>/dockyardd.lock`` before it touches anything else: its
socket, pidfile, state database, drivers, bridges and firewall rules. A second daemon given the
same roots (same flags, or another socket) stops at once, naming the first one's pid, which the
lock file holds, and leaves everything of the first one alone.

The lock belongs to the open file description, so it lasts exactly as long as the daemon
process (a SIGKILL releases it); the descriptor is close-on-exec, so no child (the exec driver's
supervisor, ``cp``, ``nft``) inherits it. The file is never unlinked: unlinking would let a
third daemon lock a new file while the second still holds the old one.
"""
from __future__ import annotations

import contextlib
import fcntl
import os

from dockyard.hookspecs.errors import DockyardError

LOCK_NAME = "dockyardd.lock"


class AlreadyRunning(DockyardError):
    """Another daemon holds the lock of a data-root or exec-root."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        data = os.pread(fd, 32, 0).decode().strip()
        if data:
            return f" (pid {int(data)})"
    return ""


class RootLock:
    """The exclusive locks of a set of directories, held until :meth:`release` or exit."""

    def __init__(self, roots: list[str]) -> None:
        self.paths = [os.path.join(r, LOCK_NAME) for r in dict.fromkeys(roots)]
        self._fds: list[int] = []

    def acquire(self) -> None:
        """Lock every root or none; raise :class:`AlreadyRunning` naming the holder."""
        try:
            for path in self.paths:
                os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _holder(fd)
                    os.close(fd)
                    raise AlreadyRunning(
                        f"another dockyardd{holder} is running on {os.path.dirname(path)} "
                        f"(it holds {path}): stop it first, or give this daemon its own "
                        f"--data-root and --exec-root") from None
                self._fds.append(fd)
        except BaseException:
            self.release()
            raise
        # a fixed width, written over the old pid: no new block is needed on a full disk
        pid = f"{os.getpid():>10}\n".encode()
        for fd in self._fds:
            with contextlib.suppress(OSError):  # ENOSPC on a new file: the lock holds anyway
                os.pwrite(fd, pid, 0)
                os.ftruncate(fd, len(pid))

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
