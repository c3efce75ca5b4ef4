"""Disk usage: ``GET /system/df`` (``docker system df``) and container sizes (``ps -s``).

Sizes come from what the store already records (each layer's unpacked size) and from the graph
driver's ``diff_size`` for a container's writable layer; a volume is walked (its files' sizes,
each inode once, as dockerd). Runs in a worker thread: walking can take a while.
"""
from __future__ import annotations

import collections
from typing import Any, Iterable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter

from . import listing
from .containers import summary as container_summary
from .filters import Args
from .volumes import directory_size

DF_TYPES = ("container", "image", "volume", "build-cache")


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


def disk_usage(d: Any, types: Iterable[str] = ()) -> dict[str, Any]:
    types = list(types) or list(DF_TYPES)
    for t in types:
        if t not in DF_TYPES:
            raise InvalidParameter(f"unknown object type: {t}")
    out: dict[str, Any] = {}
    containers = d.containers.all()
    if "image" in types:
        out["Images"], out["LayersSize"] = image_usage(d, containers)
    if "container" in types:
        listed = []
        for c in containers:
            s = container_summary(c, None)
            s["SizeRw"], s["SizeRootFs"] = container_sizes(d, c)
            listed.append(s)
        out["Containers"] = listed
    if "volume" in types:
        vols = []
        for v in d.volumes.list(plugins=False):  # local sizes only, as dockerd's
            v = dict(v)
            v["UsageData"] = {"Size": directory_size(v["Mountpoint"]),
                              "RefCount": len(d.volumes.users(v["Name"]))}
            vols.append(v)
        out["Volumes"] = vols
    if "build-cache" in types:
        from .builder.cache import records
        out["BuildCache"] = [r.df() for r in records(d)]
    return out


def image_usage(d: Any, containers: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """``(Images, LayersSize)`` as dockerd counts them: the images ``docker images`` lists (no
    build steps) with ``Containers`` (how many containers use each) and ``SharedSize`` (its
    layers some other image, build steps included, also uses); ``LayersSize`` the layers those
    images hold, each once. The docker CLI derives what is reclaimable from these: the layers
    no container's image holds alone."""
    chains = {row["id"]: d.images.layer_chain(row["top_layer"]) for row in d.images.all()}
    refs = collections.Counter(layer["chain_id"] for layers in chains.values() for layer in layers)
    using = collections.Counter(c["Image"] for c in containers)
    images, held = [], {}
    for r in listing.image_rows(d, Args()):
        s = d.images.summary(r.view.record)
        s["RepoTags"], s["RepoDigests"] = r.repo_tags, r.repo_digests
        layers = chains[r.view.id]
        s["SharedSize"] = sum(layer["size"] for layer in layers if refs[layer["chain_id"]] > 1)
        s["Containers"] = using[r.view.id]
        held.update((layer["chain_id"], layer["size"]) for layer in layers)
        images.append(s)
    return images, sum(held.values())
