"""``POST /build`` (the classic build API), ``POST /build/prune`` and ``POST /build/cancel``."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ... import imagelife, reference
from ...builder import cache, context, options
from ...builder.build import Build
from ...builder.errors import StepFailed
from ...builder.output import Output
from .. import params
from ..app import route
from ..clientwork import ClientWork, client_work
from ..jsonstream import JsonStream
from .images import _spool


async def build(request: web.Request) -> web.StreamResponse:
    """``POST /build``: the context as a tar body (maybe compressed) or a ``remote`` URL; a
    JSON-lines stream. Errors found before the first step (options, Dockerfile) are a 400."""
    d = request.app["daemon"]
    opts = options.from_query(request.query, lambda k: request.query.getall(k, []), request.headers)
    opts.tags = [str(reference.parse(t)) for t in opts.tags]
    tmp = d.tmp_dir
    os.makedirs(tmp, exist_ok=True)
    path = None if opts.remote else await _spool(request, tmp)
    ctx_dir = tempfile.mkdtemp(dir=tmp, prefix="build-")
    try:
        async with client_work(request) as cw:
            if opts.remote:
                ctx = await context.fetch_remote(opts.remote, ctx_dir, opts.dockerfile, cw.run)
            else:
                await cw.run(context.unpack, path, ctx_dir)
                ctx = await asyncio.to_thread(context.read_dockerfile, ctx_dir, opts.dockerfile)
            out = JsonStream(request)
            b = Build(d, ctx, opts, Output(out.write, opts.quiet), limit=d.config.get("max-build-parallelism") or None)
            try:
                b.plan()
                return await _run(request, b, out, cw)
            finally:
                await asyncio.to_thread(b.close)
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        await asyncio.to_thread(shutil.rmtree, ctx_dir, True)


async def _run(request: web.Request, b: Build, out: JsonStream, cw: ClientWork) -> web.StreamResponse:
    d = request.app["daemon"]
    running: dict[str, asyncio.Task[Any]] = request.app.setdefault("builds", {})
    task = asyncio.ensure_future(b.run())
    if b.opts.build_id:
        running[b.opts.build_id] = task
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if cw.cancel.is_set() and not task.done():
                # the client went away: so does the build. Once: its clean-up (removing step
                # containers) takes its time, and a second cancel would cut it short
                task.cancel()
                await asyncio.wait({task})
    except asyncio.CancelledError:  # this handler itself (the daemon is stopping)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    finally:
        running.pop(b.opts.build_id, None)
    try:
        image_id = task.result()
    except asyncio.CancelledError:
        if cw.cancel.is_set():
            raise
        await b.out.release_held()  # POST /build/cancel
        await out.error("the build was cancelled")
        return await out.finish()
    except StepFailed as exc:
        await b.out.release_held()
        await out.write({"errorDetail": {"code": exc.code, "message": exc.message},
                         "error": exc.message})
        return await out.finish()
    except Exception as exc:  # noqa: BLE001 - reported to the client in the stream
        await b.out.release_held()
        return await out.fail(exc)
    await out.write({"aux": {"ID": image_id}})
    if b.opts.quiet:
        await out.write({"stream": image_id + "\n"})
    else:
        await out.write({"stream": f"Successfully built {image_id[7:19]}\n"})
    imagelife.built(d, image_id, b.opts.tags)
    for t in b.opts.tags:
        if not b.opts.quiet:
            await out.write({"stream": f"Successfully tagged {reference.familiar(t)}\n"})
    return await out.finish()


async def build_prune(request: web.Request) -> web.Response:
    """``docker builder prune`` (and the last step of ``docker system prune``): the cache no
    image uses (all of it with ``all``), as the filters select, keeping at most
    ``keep-storage`` bytes of the most recently used."""
    d = request.app["daemon"]
    for newer in ("reserved-space", "max-used-space", "min-free-space"):
        if newer in request.query:
            raise InvalidParameter(f"{newer} needs API 1.48; this daemon serves 1.45 (use keep-storage)")
    raw = request.query.get("keep-storage") or "0"
    try:
        keep = int(raw)
    except ValueError:
        raise InvalidParameter(f"keep-storage is in bytes and expects an integer, got {raw}") from None
    gone, freed = await asyncio.to_thread(cache.prune, d, params.filters(request),
                                          params.flag(request, "all"), keep)
    return web.json_response({"CachesDeleted": gone or None, "SpaceReclaimed": freed})


async def build_cancel(request: web.Request) -> web.Response:
    """``POST /build/cancel?id=``: stop the build started with that ``buildid``."""
    build_id = request.query.get("id", "")
    if not build_id:
        raise InvalidParameter("build ID not provided")
    task = request.app.setdefault("builds", {}).get(build_id)
    if task is not None:
        task.cancel()
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    route(app, "POST", "/build", build)
    route(app, "POST", "/build/prune", build_prune)
    route(app, "POST", "/build/cancel", build_cancel)
