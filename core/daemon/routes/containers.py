"""Container routes, as the Docker Engine API groups them under ``/containers``."""
from __future__ import annotations

import asyncio
import json
import os
import struct
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ...containers import summary
from ..app import route
from ..errors import json_body
from ..hijack import serve_hijacked


def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].containers


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.lower() in ("1", "true", "yes", "on")


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {v!r}") from None


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    if body is None:
        raise InvalidParameter("container config missing from request body")
    result = await _svc(request).create(body, request.query.get("name") or None)
    return web.json_response(result, status=201)


def _filters(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        f = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidParameter(f"invalid filters: {raw!r}") from None
    if not isinstance(f, dict):
        raise InvalidParameter("filters must be a JSON object")
    out = {}
    for k, v in f.items():
        out[k] = list(v.keys()) if isinstance(v, dict) else list(v)
    return out


def _match(c: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "status" and c["State"]["Status"] not in values:
            return False
        if key == "name" and not any(v.lstrip("/") in c["Name"] for v in values):
            return False
        if key == "id" and not any(c["Id"].startswith(v) for v in values):
            return False
        if key == "label":
            labels = c["Config"].get("Labels") or {}
            for v in values:
                k, sep, val = v.partition("=")
                if k not in labels or (sep and labels[k] != val):
                    return False
        if key == "exited" and (c["State"]["Status"] != "exited"
                                or str(c["State"]["ExitCode"]) not in values):
            return False
        if key == "ancestor" and not any(v in (c["Config"]["Image"], c["Image"]) for v in values):
            return False
    return True


async def list_(request: web.Request) -> web.Response:
    svc = _svc(request)
    all_ = _flag(request, "all")
    limit = _int(request, "limit", -1) or -1
    filters = _filters(request)
    out = []
    for c in svc.all():
        if not all_ and not c["State"]["Running"] and "status" not in filters:
            continue
        if not _match(c, filters):
            continue
        out.append(summary(c, None))
    if limit > 0:
        out = out[:limit]
    return web.json_response(out)


async def inspect(request: web.Request) -> web.Response:
    svc = _svc(request)
    return web.json_response(svc.public(svc.get(request.match_info["id"])))


async def start(request: web.Request) -> web.Response:
    await _svc(request).start(request.match_info["id"])
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    await _svc(request).stop(request.match_info["id"], _int(request, "t"), request.query.get("signal"))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    if c["State"]["Running"]:
        await svc.stop(c["Id"], _int(request, "t"), request.query.get("signal"))
    await svc.start(c["Id"])
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await _svc(request).kill(request.match_info["id"], request.query.get("signal") or "SIGKILL")
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    fut = svc.wait_future(request.match_info["id"], request.query.get("condition", "not-running"))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        code = await fut
    except asyncio.CancelledError:
        fut.cancel()
        raise
    await resp.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await resp.write_eof()
    return resp


async def remove(request: web.Request) -> web.Response:
    await _svc(request).remove(request.match_info["id"], force=_flag(request, "force"))
    return web.Response(status=204)


async def attach(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    stream = _flag(request, "stream")
    logs = _flag(request, "logs")
    if not stream and not logs:
        raise InvalidParameter("either logs or stream must be set")
    c, streams = await svc.attach(request.match_info["id"], _flag(request, "stdin"),
                                  _flag(request, "stdout"), _flag(request, "stderr"))
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp" or \
        "upgrade" in request.headers.get("Connection", "").lower()
    return await serve_hijacked(request, streams, c["Config"]["Tty"], upgrade=upgrade)


async def resize(request: web.Request) -> web.Response:
    h, w = _int(request, "h", 0), _int(request, "w", 0)
    await _svc(request).resize(request.match_info["id"], h or 0, w or 0)
    return web.Response(status=200)


def _time_param(request: web.Request, name: str) -> float:
    v = request.query.get(name)
    if not v:
        return 0.0
    try:
        return float(v)
    except ValueError:
        raise InvalidParameter(f"invalid {name} value {v!r}") from None


async def logs(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    stdout, stderr = _flag(request, "stdout"), _flag(request, "stderr")
    if not stdout and not stderr:
        raise InvalidParameter("you must choose at least one stream")
    tty = c["Config"]["Tty"]
    ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    resp = web.StreamResponse(status=200, headers={"Content-Type": ctype})
    await resp.prepare(request)
    async for stream, data in svc.logs(c["Id"], stdout=stdout, stderr=stderr,
                                       follow=_flag(request, "follow"),
                                       tail=request.query.get("tail", "all"),
                                       since=_time_param(request, "since"),
                                       until=_time_param(request, "until"),
                                       timestamps=_flag(request, "timestamps")):
        if tty:
            await resp.write(data)
        else:
            await resp.write(struct.pack(">BxxxI", stream, len(data)) + data)
    await resp.write_eof()
    return resp


async def top(request: web.Request) -> web.Response:
    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    if not c["State"]["Running"]:
        raise InvalidParameter(f"Container {c['Id'][:12]} is not running")
    pids = await request.app["daemon"].execdriver.pids(c["Id"])
    procs = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            st = os.stat(f"/proc/{pid}")
        except OSError:
            continue
        procs.append([str(st.st_uid), str(pid), cmd])
    return web.json_response({"Titles": ["UID", "PID", "CMD"], "Processes": procs})


async def export(request: web.Request) -> web.StreamResponse:
    """``docker export``: the container's whole filesystem as one tar (through the graph
    driver's mount, so it works for any driver)."""
    from dockyard.hookspecs.naivediff import compute_changes, stream_from_writer, write_layer_tar
    d = request.app["daemon"]
    c = d.containers.get(request.match_info["id"])
    cid = c["Id"]
    root = await asyncio.to_thread(d.graph.get, cid)
    try:
        changes = await asyncio.to_thread(compute_changes, root, None)
        stream = stream_from_writer(lambda out: write_layer_tar(out, root, changes))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        try:
            while chunk := await asyncio.to_thread(stream.read, 1 << 20):
                await resp.write(chunk)
        finally:
            stream.close()
        await resp.write_eof()
        d.event("container", "export", cid, {})
        return resp
    finally:
        await asyncio.to_thread(d.graph.put, cid)


def setup(app: web.Application) -> None:
    route(app, "GET", "/containers/{id}/export", export)
    route(app, "POST", "/containers/create", create)
    route(app, "GET", "/containers/json", list_)
    route(app, "GET", "/containers/{id}/json", inspect)
    route(app, "POST", "/containers/{id}/start", start)
    route(app, "POST", "/containers/{id}/stop", stop)
    route(app, "POST", "/containers/{id}/restart", restart)
    route(app, "POST", "/containers/{id}/kill", kill)
    route(app, "POST", "/containers/{id}/wait", wait)
    route(app, "POST", "/containers/{id}/attach", attach)
    route(app, "POST", "/containers/{id}/resize", resize)
    route(app, "GET", "/containers/{id}/logs", logs)
    route(app, "GET", "/containers/{id}/top", top)
    route(app, "DELETE", "/containers/{id}", remove)
