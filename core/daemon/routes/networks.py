"""Network routes, as the Docker Engine API groups them under ``/networks``."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ...labels import labels_match
from .. import params
from ..app import route
from ...schema import NetworkConnect, NetworkCreate, NetworkDisconnect
from ..body import json_body


def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].networks




def _match(net: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in net["Name"] for v in values):
            return False
        if key == "id" and not any(net["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and net["Driver"] not in values:
            return False
        if key == "type":
            kind = "builtin" if net.get("_predefined") else "custom"
            if kind not in values:
                return False
        if key == "label" and not labels_match(net.get("Labels"), values):
            return False
    return True


async def list_(request: web.Request) -> web.Response:
    svc = _svc(request)
    filters = params.filters(request)
    return web.json_response([svc.public(n) for n in svc.networks.values() if _match(n, filters)])


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
    removed = await _svc(request).prune()
    return web.json_response({"NetworksDeleted": removed})


def setup(app: web.Application) -> None:
    route(app, "GET", "/networks", list_)
    route(app, "POST", "/networks/create", create)
    route(app, "POST", "/networks/prune", prune)
    route(app, "GET", "/networks/{id}", inspect)
    route(app, "DELETE", "/networks/{id}", remove)
    route(app, "POST", "/networks/{id}/connect", connect)
    route(app, "POST", "/networks/{id}/disconnect", disconnect)
