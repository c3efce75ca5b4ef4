"""``--mount type=volume,...,volume-subpath=DIR`` (``VolumeOptions.Subpath``, API 1.45): the
container mounts a directory inside the volume instead of all of it. The subpath is checked
when the container is made (relative, never leaving the volume) and again, resolved inside the
volume with no symbolic link leading out, each time the container starts (it must exist then,
as dockerd requires)."""
from __future__ import annotations

import os
import posixpath
import stat

from dockyard.hookspecs.errors import InvalidParameter, NotFound


def clean(subpath: str) -> str:
    """The normalized relative subpath; InvalidParameter when it is absolute or escapes."""
    norm = posixpath.normpath(subpath)
    if subpath.startswith("/") or norm == ".." or norm.startswith("../") or "\0" in subpath:
        raise InvalidParameter(f"invalid volume-subpath {subpath!r}: it must be a relative path "
                               f"inside the volume")
    return "" if norm == "." else norm


def source(mountpoint: str, subpath: str) -> str:
    """The host path a subpath mount binds (what inspect shows as its ``Source``)."""
    rel = clean(subpath)
    return os.path.join(mountpoint, rel) if rel else mountpoint


def check(mountpoint: str, src: str) -> None:
    """At start: ``src`` (from :func:`source`) exists in the volume and is reached without
    leaving it (no symbolic link on the way); InvalidParameter with dockerd's words otherwise."""
    from .archive import Resolved

    rel = os.path.relpath(src, mountpoint)
    if rel == ".":
        return
    try:
        with Resolved(mountpoint, rel) as r:
            st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
            real = os.path.join(os.readlink(f"/proc/self/fd/{r.dir_fd}"), r.name)
    except (NotFound, FileNotFoundError):
        raise InvalidParameter(f"cannot access path {src}: no such file or directory") from None
    except InvalidParameter as e:
        raise InvalidParameter(f"cannot access path {src}: {e}") from None
    if stat.S_ISLNK(st.st_mode) or real != os.path.realpath(src):
        raise InvalidParameter(f"cannot access path {src}: the volume-subpath leads out of the "
                               f"volume through a symbolic link")
