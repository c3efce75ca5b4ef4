"""Volume routes, as the Docker Engine API groups them under ``/volumes``."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ...labels import labels_match
from .. import params
from ..app import route
from ...schema import VolumeCreate
from ..body import json_body


def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].volumes


def _match(vol: dict[str, Any], filters: dict[str, list[str]], svc: Any) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in vol["Name"] for v in values):
            return False
        if key == "driver" and vol["Driver"] not in values:
            return False
        if key == "dangling":
            dangling = not svc.users(vol["Name"])
            if (values[0].lower() in ("1", "true")) != dangling:
                return False
        if key == "label" and not labels_match(vol.get("Labels"), values):
            return False
    return True


async def list_(request: web.Request) -> web.Response:
    svc = _svc(request)
    flt = params.filters(request)
    return web.json_response({"Volumes": [v for v in svc.list() if _match(v, flt, svc)],
                              "Warnings": []})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, VolumeCreate, {})
    vol = _svc(request).create(body.get("Name") or None, body.get("Driver") or "local",
                               body.get("Labels"), body.get("DriverOpts"))
    return web.json_response(vol, status=201)


async def inspect(request: web.Request) -> web.Response:
    return web.json_response(_svc(request).get(request.match_info["name"]))


async def remove(request: web.Request) -> web.Response:
    _svc(request).remove(request.match_info["name"], force=params.flag(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    deleted, reclaimed = _svc(request).prune(params.filters(request))
    return web.json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def setup(app: web.Application) -> None:
    route(app, "GET", "/volumes", list_)
    route(app, "POST", "/volumes/create", create)
    route(app, "POST", "/volumes/prune", prune)
    route(app, "GET", "/volumes/{name}", inspect)
    route(app, "DELETE", "/volumes/{name}", remove)
