"""The ``fuse-overlayfs`` graph driver: the overlay2 layout mounted by the ``fuse-overlayfs``
binary (a userspace overlay; works where the kernel's overlayfs cannot be used, e.g. rootless or on
a backing file system overlayfs refuses).

Layout, reference counting and the native diff are shared with ``overlay``
(:mod:`dockyard.plugins.graphdrivers.overlay_layout`). fuse-overlayfs understands the same
whiteouts (0/0 character devices, ``trusted.overlay.opaque``) and adds its own markers in opaque
directories (``.wh..wh..opq``), which the diff reads as the same thing. The binary runs with home
as its working directory so the short relative lower names work here too; it daemonizes once
the mount is up and exits when the mount is unmounted.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import DockyardError, DriverNotSupported
from dockyard.hookspecs.idmap import IDMap

from .overlay_layout import OverlayLayout, check_backing

log = logging.getLogger(__name__)


class FuseOverlayfsDriver(OverlayLayout):
    name = "fuse-overlayfs"
    priority = 30
    _mount_types = ("fuse.fuse-overlayfs",)
    limitations = frozenset({"hardlink-copy-up", "hardlinks-in-lower"})

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        self._bin = shutil.which("fuse-overlayfs")
        if self._bin is None:
            raise DriverNotSupported("fuse-overlayfs: the fuse-overlayfs binary is not in PATH "
                                     "(apt install fuse-overlayfs)")
        if not os.path.exists("/dev/fuse"):
            raise DriverNotSupported("fuse-overlayfs: /dev/fuse not found (no FUSE in this kernel "
                                     "or not available in this container)")
        if "fuse" not in host.filesystems():
            raise DriverNotSupported("fuse-overlayfs: fuse is not in /proc/filesystems")
        self._backing = check_backing(self.name, home)
        super().__init__(home, options, id_map)

    def _mount(self, id: str, lowers: list[str]) -> None:
        opts = f"lowerdir={':'.join(lowers)},upperdir={id}/diff,workdir={id}/work"
        proc = subprocess.run([self._bin, "-o", opts, f"{id}/merged"], cwd=self.home,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=60)
        if proc.returncode != 0:
            raise DockyardError(f"fuse-overlayfs: mounting layer {id} failed: "
                                f"{proc.stdout.decode(errors='replace').strip()}")

    def status(self) -> list[tuple[str, str]]:
        try:
            out = subprocess.run([self._bin, "--version"], capture_output=True, timeout=10)
            lines = out.stdout.decode(errors="replace").splitlines()
            version = next(line.strip() for line in lines if "fuse-overlayfs" in line)
        except (OSError, subprocess.SubprocessError, StopIteration):
            version = "unknown"
        return self._backing_status() + [("fuse-overlayfs", version)]
