"""``docker exec``: ``/containers/{id}/exec`` and the ``/exec`` group."""
from __future__ import annotations

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, InvalidParameter
from dockyard.hookspecs.execdriver import AttachStreams

from .. import params
from ...execs import FailedStreams, reframe
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
    try:
        parse_detach_keys(body.get("DetachKeys"))
    except InvalidParameter:
        raise InvalidParameter(f"Invalid escape keys ({body['DetachKeys']}) provided") from None
    eid = _svc(request).create(request.match_info["id"], body)
    return web.json_response({"Id": eid}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    """As dockerd: the process has a TTY if the exec was *created* with one; the start's own
    ``Tty`` decides how its output is framed (raw, or multiplexed as docker-py's
    ``demux=True`` and socket readers expect) and whether its ``ConsoleSize`` counts."""
    body = await json_body(request, ExecStart, {})
    svc = _svc(request)
    e = svc.get(request.match_info["id"])
    raw = bool(body.get("Tty"))
    console = body.get("ConsoleSize") if raw else None
    if body.get("Detach"):
        await svc.start(e["ID"], True, console)
        return web.Response(status=200)
    # what can be refused with a status is refused now; the process starts once the 101 is
    # on the wire (see serve_hijacked)
    svc.check_start(e["ID"])
    process_tty = e["ProcessConfig"]["tty"]
    keys = parse_detach_keys(e["DetachKeys"]) if process_tty else b""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp" or \
        "upgrade" in request.headers.get("Connection", "").lower()

    async def open_streams() -> AttachStreams:
        try:
            streams = await svc.start(e["ID"], False, console)
        except DockyardError as exc:  # it stopped meanwhile: too late for a status
            return FailedStreams(exc.message, raw)
        if streams is None:
            return FailedStreams("exec failed", raw)
        return reframe(streams, process_tty, raw)

    return await serve_hijacked(request, open_streams, raw, upgrade=upgrade, detach_keys=keys)


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
