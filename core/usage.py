"""Disk usage: ``GET /system/df`` (``docker system df``) and container sizes (``ps -s``).

Sizes come from what the store already records (each layer's unpacked size) and from the graph
driver's ``diff_size`` for a container's writable layer; a volume is walked (``du``-like, each
inode once). Runs in a worker thread: walking can take a while.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter

from .containers import summary as container_summary

DF_TYPES = ("container", "image", "volume", "build-cache")


def tree_size(root: str) -> int:
    """Bytes allocated under ``root`` (hard links once), without following symlinks."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
    return total


def container_sizes(d: Any, c: dict[str, Any]) -> tuple[int, int]:
    """``(SizeRw, SizeRootFs)``: the writable layer's changes, and those plus the image."""
    try:
        _, top_cache = d.containers._image_top(c)
        rw = int(d.graph.diff_size(c["Id"], top_cache))
    except (DockyardError, OSError):
        rw = 0
    try:
        image_size = int(d.images.get(c["Image"])["size"])
    except DockyardError:
        image_size = 0
    return rw, rw + image_size


def _chain(d: Any, top: str | None) -> list[dict[str, Any]]:
    out = []
    while top:
        layer = d.images.layer(top)
        out.append(layer)
        top = layer["parent"]
    return out


def disk_usage(d: Any, types: Iterable[str] = ()) -> dict[str, Any]:
    types = list(types) or list(DF_TYPES)
    for t in types:
        if t not in DF_TYPES:
            raise InvalidParameter(f"invalid type {t!r}: one of {', '.join(DF_TYPES)}")
    out: dict[str, Any] = {}
    containers = d.containers.all()
    if "image" in types:
        rows = d.images.all()
        chains = {row["id"]: _chain(d, row["top_layer"]) for row in rows}
        users: dict[str, int] = {}
        for layers in chains.values():
            for layer in layers:
                users[layer["chain_id"]] = users.get(layer["chain_id"], 0) + 1
        images = []
        for row in rows:
            s = d.images.summary(row)
            s["SharedSize"] = sum(layer["size"] for layer in chains[row["id"]]
                                  if users[layer["chain_id"]] > 1)
            s["Containers"] = sum(1 for c in containers if c["Image"] == row["id"])
            images.append(s)
        out["Images"] = images
        out["LayersSize"] = sum(r["size"] for r in d.state.q("SELECT size FROM layers"))
    if "container" in types:
        listed = []
        for c in containers:
            s = container_summary(c, None)
            s["SizeRw"], s["SizeRootFs"] = container_sizes(d, c)
            listed.append(s)
        out["Containers"] = listed
    if "volume" in types:
        vols = []
        for v in d.volumes.list():
            v = dict(v)
            v["UsageData"] = {"Size": tree_size(v["Mountpoint"]) if os.path.isdir(v["Mountpoint"]) else -1,
                              "RefCount": len(d.volumes.users(v["Name"]))}
            vols.append(v)
        out["Volumes"] = vols
    if "build-cache" in types:
        out["BuildCache"] = []
    return out
