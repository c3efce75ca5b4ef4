"""What dockerd keeps in a container's *init layer*, and ``docker diff`` never shows.

dockerd puts a thin layer between the image and the container's writable layer, with the mount
points every container needs (``/dev/pts``, ``/proc``, ``/sys``, ``/etc/hosts``...), and diffs the
container against it; an image without them (a ``FROM scratch`` one) so shows no ``A /proc``,
``A /etc/hosts``. Here the runtime makes them in the writable layer itself, so they are taken out
of the changes instead. A user's own mount points (``-v /data``) stay, as dockerd shows them.
"""
from __future__ import annotations

from typing import Any

#: dockerd's init layer (daemon/initlayer): files, and directories with their parents
INIT_FILES = frozenset({"/.dockerenv", "/etc/resolv.conf", "/etc/hosts", "/etc/hostname",
                        "/dev/console", "/etc/mtab"})
INIT_DIRS = frozenset({"/dev", "/dev/pts", "/dev/shm", "/proc", "/sys", "/etc"})

CHANGE_MODIFY = 0


def hide_init_layer(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``changes`` (``{"Path", "Kind"}``, against the image) as against the image plus the init
    layer: its files never show, its directories only as changed, when something in them did."""
    shown = [ch for ch in changes if ch["Path"] not in INIT_FILES]
    out = []
    for ch in shown:
        path = ch["Path"]
        if path in INIT_DIRS:
            below = path + "/"
            if not any(o["Path"].startswith(below) and o["Path"] not in INIT_DIRS for o in shown):
                continue
            ch = {**ch, "Kind": CHANGE_MODIFY}
        out.append(ch)
    return out
