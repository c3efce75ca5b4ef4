"""Network routes, as the Docker Engine API groups them under ``/networks``."""
from __future__ import annotations

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ... import listing
from .. import params
from ..app import route
from ...schema import NetworkConnect, NetworkCreate, NetworkDisconnect
from ..body import json_body


def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].networks




async def list_(request: web.Request) -> web.Response:
    svc = _svc(request)
    chosen = listing.networks(svc, params.filters(request))
    return web.json_response([svc.public(n) for n in chosen])


async def inspect(request: web.Request) -> web.Response:
    svc = _svc(request)
    return web.json_response(svc.public(svc.get(request.match_info["id"])))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, NetworkCreate)
    if body is None:
        raise InvalidParameter("network config missing from request body")
    net = await _svc(request).create(body)
    return web.json_response({"Id": net["Id"], "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    await _svc(request).remove(request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    body = await json_body(request, NetworkConnect, {})
    if not body.get("Container"):
        raise InvalidParameter("Container must be given")
    await _svc(request).connect(request.match_info["id"], body["Container"],
                                body.get("EndpointConfig") or {})
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await json_body(request, NetworkDisconnect, {})
    if not body.get("Container"):
        raise InvalidParameter("Container must be given")
    await _svc(request).disconnect(request.match_info["id"], body["Container"], bool(body.get("Force")))
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    removed = await _svc(request).prune(params.filters(request))
    return web.json_response({"NetworksDeleted": removed})


def setup(app: web.Application) -> None:
    route(app, "GET", "/networks", list_)
    route(app, "POST", "/networks/create", create)
    route(app, "POST", "/networks/prune", prune)
    route(app, "GET", "/networks/{id}", inspect)
    route(app, "DELETE", "/networks/{id}", remove)
    route(app, "POST", "/networks/{id}/connect", connect)
    route(app, "POST", "/networks/{id}/disconnect", disconnect)
