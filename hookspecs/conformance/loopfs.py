"""A file system of a given type on a loop device, made for a test run and removed after it.

Used by the graph-driver suite for drivers that need their home on a given file system
(:attr:`GraphDriver.required_fs`, e.g. ``btrfs``), by integration tests that put a daemon's
data-root on one, and by the storage benchmark (a fresh ext4 per run). Everything it makes has a
unique name (``mkdtemp``; ``losetup --find`` picks a free loop device atomically) and
:meth:`LoopFilesystem.close` always unmounts, detaches the loop device and deletes the image,
also after a failure half-way through ``open``.

Needs root, ``losetup``, ``mount`` and ``mkfs.<type>``; :class:`LoopUnavailable` says what is
missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable, Hashable

_MKFS_ARGS = {"btrfs": ["-q", "-f"], "ext4": ["-q", "-F", "-O", "^has_journal"],
              "xfs": ["-q", "-f"]}


class LoopUnavailable(Exception):
    """A loop-mounted file system cannot be made here; the message says why."""


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise LoopUnavailable(f"{' '.join(argv)} failed: "
                              f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


class LoopFilesystem:
    """``with LoopFilesystem("btrfs", 1 << 30) as fs: fs.path`` is the mounted root."""

    def __init__(self, fstype: str, size: int = 1 << 30, dir: str | None = None,
                 mkfs_args: list[str] | None = None, mount_opts: str = "") -> None:
        self.fstype, self.size, self.dir, self.mount_opts = fstype, size, dir, mount_opts
        self.mkfs_args = mkfs_args if mkfs_args is not None else _MKFS_ARGS.get(fstype, [])
        self.top: str | None = None
        self.device: str | None = None
        self.path = ""
        self._mounted = False

    def open(self) -> "LoopFilesystem":
        if os.geteuid() != 0:
            raise LoopUnavailable("loop-mounted file systems need root")
        for tool in ("losetup", "mount", "umount", f"mkfs.{self.fstype}"):
            if shutil.which(tool) is None:
                raise LoopUnavailable(f"{tool} not found in PATH")
        self.top = tempfile.mkdtemp(prefix=f"dockyard-loop-{self.fstype}-", dir=self.dir)
        try:
            image = os.path.join(self.top, "image")
            self.path = os.path.join(self.top, "mnt")
            os.mkdir(self.path)
            with open(image, "wb") as f:
                f.truncate(self.size)
            _run([f"mkfs.{self.fstype}", *self.mkfs_args, image])
            self.device = _run(["losetup", "--find", "--show", image])
            opts = ["-o", self.mount_opts] if self.mount_opts else []
            _run(["mount", "-t", self.fstype, *opts, self.device, self.path])
            self._mounted = True
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._mounted:
            for _ in range(50):
                if subprocess.run(["umount", self.path], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", self.path], capture_output=True)
            self._mounted = False
        if self.device:
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
            self.device = None
        if self.top:
            shutil.rmtree(self.top, ignore_errors=True)
            self.top = None

    def __enter__(self) -> "LoopFilesystem":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def session_loopfs(config: Any, key: Hashable, make: Callable[[], LoopFilesystem]
                   ) -> LoopFilesystem | LoopUnavailable:
    """The loop-mounted file system ``make()`` gives, opened once per pytest session (``config``)
    for ``key`` and closed when the session ends; or why this host cannot have it."""
    cache = getattr(config, "_dockyard_loopfs", None)
    if cache is None:
        cache = config._dockyard_loopfs = {}
    if key not in cache:
        lfs = make()
        try:
            lfs.open()
        except LoopUnavailable as e:
            cache[key] = e
        else:
            cache[key] = lfs
            config.add_cleanup(lfs.close)
    got: LoopFilesystem | LoopUnavailable = cache[key]
    return got
