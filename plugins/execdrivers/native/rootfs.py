"""The container's root: entering it and pivoting into it with the mount propagation the spec
asks for (``linux.rootfsPropagation``), as runc does; run by the container's init, in its own
mount namespace, between fork and exec."""
from __future__ import annotations

import os
from typing import Any

from dockyard.hookspecs import host


def enter(spec: dict[str, Any]) -> int:
    """Set the propagation of every mount (private unless a bind is shared or a slave), bind
    the rootfs on itself and chdir there; return the propagation flags for :func:`pivot`. The
    rootfs's own mount is private either way: pivot_root refuses a shared parent."""
    prop = host.PROPAGATION_OPTIONS.get((spec.get("linux") or {}).get("rootfsPropagation")
                                        or "rprivate", host.MS_REC | host.MS_PRIVATE)
    host.mount(None, "/", None, prop | host.MS_REC)
    rootfs = os.path.realpath(spec["root"]["path"])
    if not prop & host.MS_PRIVATE:
        host.mount(None, host.mount_of(rootfs)[0], None, host.MS_PRIVATE)
    host.mount(rootfs, rootfs, None, host.MS_BIND | host.MS_REC)
    os.chdir(rootfs)  # on the bind mount: every path below is relative to it
    return prop


def pivot(prop: int) -> None:
    """pivot_root into the current directory; the old root, stacked on "/" after it (reached
    through its fd, as runc), becomes a slave before it is detached, so that no unmount
    reaches the host's mounts through a shared peer group; then the new root gets ``prop``."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    host.pivot_root(".", ".")
    os.fchdir(old_root)
    os.close(old_root)
    host.mount(None, ".", None, host.MS_SLAVE | host.MS_REC)
    host.umount2(".", host.MNT_DETACH)
    os.chdir("/")
    if not prop & host.MS_PRIVATE:
        host.mount(None, "/", None, prop | host.MS_REC)


def remount_readonly(paths: list[str]) -> None:
    """Each tmpfs that held mount points (the /sys/fs/cgroup view): read-only now they are in."""
    for dest in paths:
        host.mount(None, dest, None, host.MS_REMOUNT | host.MS_RDONLY | host.mount_flags(dest))


def set_uts_names(spec: dict[str, Any]) -> None:
    """The spec's ``hostname`` and ``domainname`` (in a UTS namespace of the container's own)."""
    if spec.get("hostname"):
        host.sethostname(spec["hostname"])
    if spec.get("domainname"):
        host.setdomainname(spec["domainname"])
