"""Container routes, as the Docker Engine API groups them under ``/containers``."""
from __future__ import annotations

import asyncio
import json
import os
from typing import AsyncIterator

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.streams import frame

from ...containers import ContainerService
from .. import params
from ..app import route
from ...schema import CommitConfig, ContainerCreate, ContainerUpdate
from ..body import json_body
from ..clients import race, race_iter
from ..errors import json_bytes
from ..hijack import parse_detach_keys, serve_hijacked


def _svc(request: web.Request) -> ContainerService:
    svc: ContainerService = request.app["daemon"].containers
    return svc


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, ContainerCreate)
    if body is None:
        raise InvalidParameter("container config missing from request body")
    result = await _svc(request).create(body, request.query.get("name") or None,
                                        request.query.get("platform"))
    return web.json_response(result, status=201)


async def list_(request: web.Request) -> web.Response:
    limit = params.integer(request, "limit", -1) or -1
    return web.json_response(await _svc(request).list_summaries(
        params.filters(request), params.flag(request, "all"), limit, params.flag(request, "size")))


async def inspect(request: web.Request) -> web.Response:
    # docker inspect -s / docker container inspect --size
    return web.json_response(await _svc(request).inspect(request.match_info["id"],
                                                         params.flag(request, "size")))


async def start(request: web.Request) -> web.Response:
    await _svc(request).start(request.match_info["id"])
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    await _svc(request).stop(request.match_info["id"], params.integer(request, "t"), request.query.get("signal"))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    await _svc(request).restart(request.match_info["id"], params.integer(request, "t"),
                                request.query.get("signal"))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await _svc(request).kill(request.match_info["id"], request.query.get("signal") or "SIGKILL")
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    fut = svc.wait_future(request.match_info["id"], request.query.get("condition", "not-running"))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    code = await race(request, fut)  # `run -d` hangs up once the container started
    await resp.write(json_bytes({"StatusCode": code, "Error": None}))
    await resp.write_eof()
    return resp


async def remove(request: web.Request) -> web.Response:
    if params.flag(request, "link"):  # docker rm --link: the name is /parent/alias
        await _svc(request).remove_link(request.match_info["id"])
        return web.Response(status=204)
    await _svc(request).remove(request.match_info["id"], force=params.flag(request, "force"),
                               volumes=params.flag(request, "v"))
    return web.Response(status=204)


async def attach(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    stream = params.flag(request, "stream")
    logs = params.flag(request, "logs")
    if not stream and not logs:
        raise InvalidParameter("either logs or stream must be set")
    keys = parse_detach_keys(request.query.get("detachKeys"))
    stdout, stderr = params.flag(request, "stdout"), params.flag(request, "stderr")
    # as dockerd, the session is attached before the log is replayed (logs=1)
    c, streams = await svc.attach(request.match_info["id"], params.flag(request, "stdin"),
                                  stdout, stderr, stream=stream, logs=logs)
    tty = c["Config"]["Tty"]
    replay = _frames(svc.logs(c["Id"], stdout=stdout, stderr=stderr, follow=False, tail="all",
                              since=0.0, until=0.0, timestamps=False), tty) if logs else None
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp" or \
        "upgrade" in request.headers.get("Connection", "").lower()
    # as dockerd, detach keys are looked for only on a TTY
    return await serve_hijacked(request, streams, tty, upgrade=upgrade,
                                detach_keys=keys if tty else b"", replay=replay)


async def _frames(items: AsyncIterator[tuple[int, bytes]], tty: bool) -> AsyncIterator[bytes]:
    """Log records as the attach and logs streams carry them: raw on a TTY, else multiplexed."""
    try:
        async for stream, data in items:
            yield data if tty else frame(stream, data)
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


async def resize(request: web.Request) -> web.Response:
    h, w = params.integer(request, "h", 0), params.integer(request, "w", 0)
    await _svc(request).resize(request.match_info["id"], h or 0, w or 0)
    return web.Response(status=200)


def _time_param(request: web.Request, name: str) -> float:
    return params.timestamp(request, name) or 0.0


async def logs(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    stdout, stderr = params.flag(request, "stdout"), params.flag(request, "stderr")
    if not stdout and not stderr:
        raise InvalidParameter("you must choose at least one stream")
    # checked by the service before the 200 goes out
    items = svc.logs(c["Id"], stdout=stdout, stderr=stderr, follow=params.flag(request, "follow"),
                     tail=request.query.get("tail", "all"), since=_time_param(request, "since"),
                     until=_time_param(request, "until"),
                     timestamps=params.flag(request, "timestamps"))
    tty = c["Config"]["Tty"]
    ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    resp = web.StreamResponse(status=200, headers={"Content-Type": ctype})
    await resp.prepare(request)
    async for chunk in race_iter(request, _frames(items, tty)):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def top(request: web.Request) -> web.Response:
    return web.json_response(await _svc(request).top(request.match_info["id"],
                                                     request.query.get("ps_args") or ""))


async def pause(request: web.Request) -> web.Response:
    await _svc(request).pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await _svc(request).unpause(request.match_info["id"])
    return web.Response(status=204)


async def stats(request: web.Request) -> web.StreamResponse:
    samples = _svc(request).stats(request.match_info["id"], stream=params.flag(request, "stream", True),
                                  one_shot=params.flag(request, "one-shot"))
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    async for body in samples:
        if not resp.prepared:
            await resp.prepare(request)
        await resp.write(json.dumps(body).encode() + b"\n")
    await resp.write_eof()
    return resp


async def export(request: web.Request) -> web.StreamResponse:
    """``docker export``: the container's whole file system as one tar."""
    tar = await _svc(request).export(request.match_info["id"])
    try:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        async for chunk in tar.chunks():
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        await tar.close()


async def changes(request: web.Request) -> web.Response:
    return web.json_response(await _svc(request).changes(request.match_info["id"]) or None)


async def commit(request: web.Request) -> web.Response:
    q = request.query
    if not q.get("container"):
        raise InvalidParameter("container must be given")
    body = await json_body(request, CommitConfig)
    image_id = await _svc(request).commit(
        q["container"], repo=q.get("repo", ""), tag=q.get("tag", ""), comment=q.get("comment", ""),
        author=q.get("author", ""), changes=q.getall("changes", []), config=body,
        pause=params.flag(request, "pause", True))
    return web.json_response({"Id": image_id}, status=201)


async def update(request: web.Request) -> web.Response:
    body = await json_body(request, ContainerUpdate, {})
    return web.json_response(await _svc(request).update(request.match_info["id"], body))


async def rename(request: web.Request) -> web.Response:
    await _svc(request).rename(request.match_info["id"], request.query.get("name", ""))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    deleted, reclaimed = await _svc(request).prune(params.filters(request))
    return web.json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def _archive_path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("path must be given")
    return path


async def archive_head(request: web.Request) -> web.Response:
    header = await _svc(request).archive_stat(request.match_info["id"], _archive_path(request))
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": header,
                                             "Content-Type": "application/json"})


async def archive_get(request: web.Request) -> web.StreamResponse:
    header, stream = await _svc(request).archive_get(request.match_info["id"], _archive_path(request))
    resp = web.StreamResponse(headers={"X-Docker-Container-Path-Stat": header,
                                       "Content-Type": "application/x-tar"})
    try:
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(stream.read, 1 << 20):
            await resp.write(chunk)
        await resp.write_eof()
    finally:
        await asyncio.to_thread(stream.close)
    return resp


async def archive_put(request: web.Request) -> web.Response:
    from ..clientwork import client_work
    from .images import _spool

    d = request.app["daemon"]
    target = _archive_path(request)
    no_overwrite = params.flag(request, "noOverwriteDirNonDir")
    copy_ids = params.flag(request, "copyUIDGID")
    tar_path = await _spool(request, d.tmp_dir)
    try:
        async with client_work(request):
            await _svc(request).archive_put(request.match_info["id"], target, tar_path,
                                            no_overwrite, copy_ids)
    finally:
        os.unlink(tar_path)
    return web.Response(status=200)


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
    route(app, "POST", "/containers/{id}/pause", pause)
    route(app, "POST", "/containers/{id}/unpause", unpause)
    route(app, "GET", "/containers/{id}/stats", stats)
    route(app, "GET", "/containers/{id}/changes", changes)
    route(app, "POST", "/commit", commit)
    route(app, "POST", "/containers/{id}/rename", rename)
    route(app, "POST", "/containers/{id}/update", update)
    route(app, "POST", "/containers/prune", prune)
    route(app, "HEAD", "/containers/{id}/archive", archive_head)
    route(app, "GET", "/containers/{id}/archive", archive_get)
    route(app, "PUT", "/containers/{id}/archive", archive_put)
    route(app, "DELETE", "/containers/{id:.+}", remove)  # a link's name has a slash
