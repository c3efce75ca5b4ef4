"""Volume routes, as the Docker Engine API groups them under ``/volumes``."""
from __future__ import annotations

import asyncio

from aiohttp import web


from ... import listing
from .. import params
from ..app import route
from ...schema import VolumeCreate
from ..body import json_body


def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].volumes


async def list_(request: web.Request) -> web.Response:
    warnings: list[str] = []
    chosen = await asyncio.to_thread(listing.volumes, _svc(request), params.filters(request),
                                     False, warnings)
    return web.json_response({"Volumes": chosen, "Warnings": warnings})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, VolumeCreate, {})
    # a volume plugin's answer may take time: off the event loop
    vol = await asyncio.to_thread(_svc(request).create, body.get("Name") or None,
                                  body.get("Driver") or "local", body.get("Labels"),
                                  body.get("DriverOpts"))
    return web.json_response(vol, status=201)


async def inspect(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_svc(request).get, request.match_info["name"]))


async def remove(request: web.Request) -> web.Response:
    await asyncio.to_thread(_svc(request).remove, request.match_info["name"],
                            params.flag(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    """API 1.42 prunes only anonymous volumes unless ``all=true``; older clients get all."""
    args = params.filters(request)
    if params.api_below(request, "1.42"):
        args.add("all", "true")
    deleted, reclaimed = await asyncio.to_thread(_svc(request).prune, args)
    return web.json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def setup(app: web.Application) -> None:
    route(app, "GET", "/volumes", list_)
    route(app, "POST", "/volumes/create", create)
    route(app, "POST", "/volumes/prune", prune)
    route(app, "GET", "/volumes/{name}", inspect)
    route(app, "DELETE", "/volumes/{name}", remove)
