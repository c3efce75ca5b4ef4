"""Bind-mount propagation (``-v /src:/dst:rshared``, ``--mount ...,bind-propagation=rslave``),
as dockerd applies it: the bind gets the mode asked for (default ``rprivate``); its source must
be on a shared mount (``shared``/``rshared``) or a shared or slave one (``slave``/``rslave``),
else the start is refused with dockerd's words; and the container's root propagation follows
(``rshared`` when any bind is shared, ``rslave`` when any is a slave), so that mounts made on
either side reach the other."""
from __future__ import annotations

import os
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.mounts import mount_of

MODES = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT = "rprivate"


def of(modes: set[str] | list[str]) -> str:
    """The propagation among ``-v`` modes (``ro,rshared``); ``rprivate`` when none is given;
    InvalidParameter when several are."""
    given = [m for m in modes if m in MODES]
    if len(given) > 1:
        raise InvalidParameter(f"invalid mode: {','.join(sorted(modes))}: more than one "
                               f"propagation mode")
    return given[0] if given else DEFAULT


def check_sources(mounts: list[dict[str, Any]]) -> None:
    """dockerd's check at start, for each bind of the container's ``Mounts``."""
    for m in mounts:
        mode = m.get("Propagation") or ""
        if m.get("Type") != "bind" or mode not in ("shared", "rshared", "slave", "rslave"):
            continue
        point, fields = mount_of(os.path.realpath(m["Source"]))
        shared = any(x.startswith("shared:") for x in fields)
        slave = any(x.startswith("master:") for x in fields)
        if mode.endswith("shared") and not shared:
            raise InvalidParameter(f"path {m['Source']} is mounted on {point} but it is not a "
                                   f"shared mount.")
        if mode.endswith("slave") and not (shared or slave):
            raise InvalidParameter(f"path {m['Source']} is mounted on {point} but it is not a "
                                   f"shared or slave mount.")


def rootfs(mounts: list[dict[str, Any]]) -> str:
    """OCI ``linux.rootfsPropagation`` for the container's ``Mounts`` ("" : private)."""
    modes = {m.get("Propagation") or "" for m in mounts if m.get("Type") == "bind"}
    if modes & {"shared", "rshared"}:
        return "rshared"
    if modes & {"slave", "rslave"}:
        return "rslave"
    return ""
