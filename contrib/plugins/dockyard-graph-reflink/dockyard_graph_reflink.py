"""``reflink``: a dockyard graph driver whose layers are reflink copies of their parents.

    {"storage-driver": "reflink"}          # /etc/dockyard/daemon.json, data-root on btrfs or XFS

Every layer is a directory ``<home>/layers/<id>``; a child is made with ``cp -a
--reflink=always`` of its parent, so it shares every data block with it until one side writes
(the file system's copy-on-write, per extent): creating a layer costs metadata only, however big
the files, and nothing is mounted. The driver refuses (DriverNotSupported) a home whose file
system cannot clone file data (``FICLONE``: btrfs, XFS made with ``reflink=1``, bcachefs...),
instead of silently making full copies as ``vfs`` would.

The contract's ``DirectoryLayers`` does the rest, as for dockyard's own vfs and btrfs drivers:
layers appear whole or not at all, are reference counted, removed atomically, and leftovers of a
crash go when the driver starts; the diff side is ``NaiveDiff``.

A third-party driver: it imports ``dockyard.hookspecs`` (the contract and its toolkit) only.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile

from dockyard.hookspecs import DirectoryLayers, DockyardError, DriverNotSupported, host

#: linux/fs.h: ``ioctl(dest_fd, FICLONE, src_fd)`` shares all of src's data with dest
FICLONE = 0x40049409


def can_reflink(directory: str) -> str | None:
    """``None`` if files in ``directory`` can share data (FICLONE works), else why not."""
    with tempfile.TemporaryFile(dir=directory) as src, tempfile.TemporaryFile(dir=directory) as dst:
        src.write(b"reflink probe")
        src.flush()
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError as e:
            return (f"the file system of {directory} ({host.fs_name(directory)}) cannot clone "
                    f"file data: FICLONE: {e.strerror}")
    return None


class ReflinkDriver(DirectoryLayers):
    name = "reflink"
    priority = 0  # chosen only when configured
    required_fs = "btrfs"  # where the conformance suite puts its homes (XFS with reflink works too)
    subdir = "layers"

    def __init__(self, home: str, options: dict[str, str] | None = None, id_map=None) -> None:
        super().__init__(home, options, id_map)
        self._cp = shutil.which("cp")
        if self._cp is None:
            raise DriverNotSupported("reflink: cp (GNU coreutils) not found in PATH")
        os.makedirs(home, mode=0o700, exist_ok=True)
        why = can_reflink(home)
        if why:
            raise DriverNotSupported(f"reflink: {why}")
        self._open_store()

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

    def status(self) -> list[tuple[str, str]]:
        return [("Root Dir", self._dir), ("Backing Filesystem", host.fs_name(self._dir))]
