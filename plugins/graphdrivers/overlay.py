"""The ``overlay`` graph driver: the kernel's overlayfs over the overlay2 layout.

The layout, reference counting and the native diff live in
:mod:`dockyard.plugins.graphdrivers.overlay_layout` (shared with ``fuse-overlayfs``); this module
checks the host and mounts.

Host checks (``DriverNotSupported`` names what is missing): ``overlay`` in ``/proc/filesystems``;
a home whose file system can hold an upper directory (not overlayfs/fuse/nfs..., with d_type);
and a trial mount in home, which also settles which options the kernel takes. Mounts use
``index=off`` (a layer's diff dir is the upper of its own mount and a lower of its children's),
and ``redirect_dir=off,metacopy=off`` where the kernel knows them, so an upper directory always
holds whole files and real directories: that is what makes reading it as a layer diff correct.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import uuid

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import DockyardError, DriverNotSupported
from dockyard.hookspecs.host import projquota
from dockyard.hookspecs.idmap import IDMap

from .overlay_layout import PAGE_SIZE, OverlayLayout, check_backing

log = logging.getLogger(__name__)

_OPTION_SETS = (("index=off", "redirect_dir=off", "metacopy=off"), ("index=off",), ())


class OverlayDriver(OverlayLayout):
    name = "overlay"
    priority = 50
    _mount_types = ("overlay",)

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        if "overlay" not in host.filesystems():
            raise DriverNotSupported("overlay is not in /proc/filesystems (no overlayfs in this kernel)")
        self._backing = check_backing(self.name, home)
        self._extra = self._probe(home)
        self._quota: projquota.ProjectQuota | None = None
        super().__init__(home, options, id_map)

    def _probe(self, home: str) -> tuple[str, ...]:
        """Mount a throw-away overlay in home; return the option set the kernel accepted."""
        probe = os.path.join(home, f".tmp-probe-{uuid.uuid4().hex[:12]}")
        for d in ("l1", "l2", "u", "w", "m"):
            os.makedirs(os.path.join(probe, d))
        last: OSError | None = None
        try:
            for extra in _OPTION_SETS:
                data = ",".join(("lowerdir=l1:l2", "upperdir=u", "workdir=w") + extra)
                try:
                    host.call_in_dir(probe, functools.partial(host.mount, "overlay", "m", "overlay",
                                                              0, data))
                except OSError as e:
                    last = e
                    if e.errno == errno.EINVAL:
                        continue
                    break
                host.umount2(os.path.join(probe, "m"), host.MNT_DETACH)
                return extra
        finally:
            shutil.rmtree(probe, ignore_errors=True)
        raise DriverNotSupported(f"overlay: a trial overlay mount on {self._backing} at {home} "
                                 f"failed: {last.strerror if last else 'unknown error'}")

    def _mount(self, id: str, lowers: list[str]) -> None:
        data = ",".join((f"lowerdir={':'.join(lowers)}", f"upperdir={id}/diff",
                         f"workdir={id}/work") + self._extra)
        if len(data) >= PAGE_SIZE:
            raise DockyardError(f"overlay: mount options for layer {id} ({len(lowers)} lower "
                                f"layers) exceed a page ({len(data)} bytes)")
        host.call_in_dir(self.home, lambda: host.mount("overlay", f"{id}/merged", "overlay", 0, data))

    # -- --storage-opt size: a project quota on the layer's upper dir (as dockerd's overlay2) ---
    size_limit_fs = ("xfs", (), "prjquota")

    def size_limit_unsupported(self) -> str:
        if self._quota is None:
            try:
                self._quota = projquota.ProjectQuota.open(self.home)
            except (projquota.QuotaUnavailable, OSError) as e:
                # dockerd's words, then why
                return ("--storage-opt is supported only for overlay over xfs with 'pquota' "
                        f"mount option ({e})")
        return ""

    def limit_size(self, id: str, size: int) -> None:
        if self.size_limit_unsupported() or self._quota is None:
            raise DockyardError(self.size_limit_unsupported())
        self._quota.limit(self._dir(id), size)  # diff, work (copy-up renames from it): one project

    def status(self) -> list[tuple[str, str]]:
        return self._backing_status() + [
            ("Using metacopy", "false"), ("Mount Options", ",".join(self._extra) or "(defaults)")]
