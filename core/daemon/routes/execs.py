"""``docker exec``: ``/containers/{id}/exec`` and the ``/exec`` group."""
from __future__ import annotations

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, InvalidParameter
from dockyard.hookspecs.execdriver import AttachStreams

from .. import params
from ...execs import FailedStreams
from ..app import route
from ...schema import ExecCreate, ExecStart
from ..body import json_body
from ..hijack import parse_detach_keys, serve_hijacked



def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].execs


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, ExecCreate)
    if body is None:
        raise InvalidParameter("exec config missing from request body")
    eid = _svc(request).create(request.match_info["id"], body)
    return web.json_response({"Id": eid}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    body = await json_body(request, ExecStart, {})
    svc = _svc(request)
    e = svc.get(request.match_info["id"])
    detach = bool(body.get("Detach"))
    tty_arg = bool(body["Tty"]) if body.get("Tty") is not None else None
    console = body.get("ConsoleSize")
    if detach:
        await svc.start(e["ID"], True, tty_arg, console)
        return web.Response(status=200)
    # what can be refused with a status is refused now; the process starts once the 101 is
    # on the wire (see serve_hijacked)
    svc.check_start(e["ID"])
    tty = bool(tty_arg) or e["ProcessConfig"]["tty"]
    keys = parse_detach_keys(e["DetachKeys"] or None) if tty else b""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp" or \
        "upgrade" in request.headers.get("Connection", "").lower()

    async def open_streams() -> AttachStreams:
        try:
            streams = await svc.start(e["ID"], False, tty_arg, console)
        except DockyardError as exc:  # it stopped meanwhile: too late for a status
            return FailedStreams(exc.message, tty)
        return streams if streams is not None else FailedStreams("exec failed", tty)

    return await serve_hijacked(request, open_streams, tty, upgrade=upgrade, detach_keys=keys)


async def inspect(request: web.Request) -> web.Response:
    svc = _svc(request)
    return web.json_response(svc.public(svc.get(request.match_info["id"])))


async def resize(request: web.Request) -> web.Response:
    await _svc(request).resize(request.match_info["id"], params.integer(request, "h", 0) or 0,
                               params.integer(request, "w", 0) or 0)
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    route(app, "POST", "/containers/{id}/exec", create)
    route(app, "POST", "/exec/{id}/start", start)
    route(app, "GET", "/exec/{id}/json", inspect)
    route(app, "POST", "/exec/{id}/resize", resize)
