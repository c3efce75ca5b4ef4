"""The list and prune endpoints' side of filtering: the daemon's records as the views of
:mod:`dockyard.core.filtersets`, and what is listed or pruned once they are chosen."""
from __future__ import annotations

import json
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter, NotFound

from .containers import ZERO_TIME
from .filters import Args, parse_time
from .filtersets import (ContainerView, ImageRow, ImageView, NetworkView,
                         VolumeView, network_matcher, select_containers,
                         select_images, volume_matcher)
from .networks import NetworkService


def rfc3339_seconds(ts: str | None) -> float:
    """Unix seconds of a stored RFC 3339 time (0 when absent or unreadable)."""
    if not ts or ts == ZERO_TIME:
        return 0.0
    try:
        return parse_time(ts)
    except InvalidParameter:
        return 0.0


# -- containers ------------------------------------------------------------------------------------
def container_view(d: Any, c: dict[str, Any]) -> ContainerView:
    st = c["State"]
    nets = NetworkService.container_networks(c)
    return ContainerView(
        id=c["Id"], name=c["Name"], running=bool(st["Running"]), state=st["Status"],
        exit_code=int(st.get("ExitCode") or 0),
        started=st.get("StartedAt") not in (None, "", ZERO_TIME),
        labels=c["Config"].get("Labels") or {},
        health=(st.get("Health") or {}).get("Status") or "none", image_id=c["Image"],
        mounts=list(c.get("Mounts") or []),
        networks={n: (d.networks.networks.get(n) or {}).get("Id", "") for n in nets},
        ports=NetworkService.port_summary(c), record=c)


def image_family(d: Any, ref: str) -> set[str] | None:
    """The id of the image ``ref`` names and of every image built on it (``ancestor``)."""
    try:
        first = d.images.resolve(ref)
    except (NotFound, InvalidParameter):
        return None
    found: set[str] = set()
    todo = [first]
    while todo:
        image_id = todo.pop()
        if image_id not in found:
            found.add(image_id)
            todo += d.images.children_of(image_id)
    return found


def containers(d: Any, args: Args, all_: bool, limit: int) -> list[dict[str, Any]]:
    """The records ``GET /containers/json`` answers with, newest first."""
    views = [container_view(d, c) for c in d.containers.all()]
    chosen = select_containers(args, views, all_=all_, limit=limit,
                               resolve=lambda ref: d.containers.get(ref)["Id"],
                               family=lambda ref: image_family(d, ref))
    return [v.record for v in chosen]


# -- images ----------------------------------------------------------------------------------------
def image_view(d: Any, row: dict[str, Any]) -> ImageView:
    cfg = json.loads(row["config"])
    config = cfg.get("config")
    return ImageView(id=row["id"], created=rfc3339_seconds(cfg.get("created")),
                     labels=None if config is None else (config.get("Labels") or {}),
                     tags=d.images.tags_of(row["id"]),
                     digests=[r["ref"] for r in d.images.repo_digests(row["id"])],
                     has_children=d.images.has_children(row["id"]), record=row)


def image_rows(d: Any, args: Args, all_: bool = False) -> list[ImageRow]:
    """The images ``GET /images/json`` lists (newest first), tags narrowed to ``reference``."""
    views = [image_view(d, row) for row in d.images.all()]

    def created_of(ref: str) -> float:
        return image_view(d, d.images.get(d.images.resolve(ref))).created
    return select_images(args, views, all_=all_, created_of=created_of)


def images(d: Any, args: Args, all_: bool) -> list[dict[str, Any]]:
    out = []
    for r in image_rows(d, args, all_):
        s = d.images.summary(r.view.record)
        s["RepoTags"], s["RepoDigests"] = r.repo_tags, r.repo_digests
        s["ParentId"] = d.images.parent_of(r.view.id) or ""
        out.append(s)
    return out


# -- networks --------------------------------------------------------------------------------------
def network_view(svc: Any, net: dict[str, Any]) -> NetworkView:
    return NetworkView(id=net["Id"], name=net["Name"], driver=net["Driver"],
                       created=rfc3339_seconds(net.get("Created")), labels=net.get("Labels") or {},
                       scope=net.get("Scope") or "local", predefined=bool(net.get("_predefined")),
                       in_use=bool(svc.users(net, running_only=False)), record=net)


def networks(svc: Any, args: Args, prune: bool = False) -> list[dict[str, Any]]:
    """The network records ``GET /networks`` lists (``prune``: those ``POST /networks/prune``
    removes: unused, not predefined)."""
    ok = network_matcher(args, prune=prune)
    return [v.record for v in (network_view(svc, n) for n in list(svc.networks.values())) if ok(v)]


# -- volumes ---------------------------------------------------------------------------------------
def volumes(svc: Any, args: Args, prune: bool = False,
            warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The volumes ``GET /volumes`` lists (``prune``: those ``POST /volumes/prune`` removes);
    volume plugins that cannot answer add to ``warnings``."""
    ok = volume_matcher(args, prune=prune)
    out = []
    for vol in svc.list(warnings, plugins=not prune):  # prune: the daemon's own volumes only
        view = VolumeView(name=vol["Name"], driver=vol.get("Driver") or "local",
                          labels=vol.get("Labels") or {}, in_use=bool(svc.users(vol["Name"])),
                          options=vol.get("Options") or None, record=vol)
        if ok(view):
            out.append(vol)
    return out
