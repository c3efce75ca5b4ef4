"""``POST /build`` (the classic builder) and ``POST /build/prune``."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from typing import Any

from aiohttp import web

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import InvalidParameter

from ... import builder as builder_mod
from ... import listing, reference
from .. import params
from ..app import route
from ..clientwork import ClientWork, client_work
from ..jsonstream import JsonStream
from .images import _spool


async def build(request: web.Request) -> web.StreamResponse:
    """``POST /build``: the context as a tar body (maybe compressed), a JSON-lines stream."""
    d = request.app["daemon"]
    q = request.query
    if q.get("remote"):
        raise InvalidParameter("building from a remote context (git or URL) is not supported")
    tags = []
    for t in q.getall("t", []):
        tags.append(str(reference.parse(t)))

    opts = builder_mod.Options(
        tags=tags, dockerfile=q.get("dockerfile") or "Dockerfile",
        buildargs=params.json_object(request, "buildargs"),
        labels=params.json_object(request, "labels"), nocache=params.flag(request, "nocache"),
        rm=q.get("rm", "1").lower() not in ("0", "false"), forcerm=params.flag(request, "forcerm"),
        quiet=params.flag(request, "q"))
    if q.get("target"):
        raise InvalidParameter("--target (multi-stage builds) is not supported by this builder")
    tmp = d.tmp_dir
    path = await _spool(request, tmp)
    ctx = tempfile.mkdtemp(dir=tmp, prefix="build-")
    try:
        async with client_work(request) as cw:
            text = await _unpack_context(path, ctx, opts.dockerfile, cw)
            return await _run(request, d, opts, ctx, text)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        await asyncio.to_thread(shutil.rmtree, ctx, True)


async def _unpack_context(path: str, ctx: str, dockerfile: str, cw: ClientWork) -> str:
    """Unpack the context into the private directory ``ctx``; return the Dockerfile's text."""
    def unpack() -> None:
        if os.path.getsize(path):
            # the context directory is discarded whatever happens: no need to check first
            tarsafe.extract_file(path, ctx, tarsafe.BUILD_CONTEXT, check_first=False)
    await cw.run(unpack)
    df_path = os.path.join(ctx, os.path.normpath("/" + dockerfile).lstrip("/"))
    if not os.path.isfile(df_path) and dockerfile == "Dockerfile" and \
            os.path.isfile(os.path.join(ctx, "dockerfile")):
        df_path = os.path.join(ctx, "dockerfile")
    # a link may point anywhere: only a file of the context itself is read
    if not os.path.isfile(df_path) or os.path.realpath(df_path) != os.path.abspath(df_path):
        raise InvalidParameter(f"Cannot locate specified Dockerfile: {dockerfile}")
    with open(df_path, encoding="utf-8", errors="replace") as f:
        return f.read()


async def _run(request: web.Request, d: Any, opts: Any, ctx: str, text: str) -> web.StreamResponse:
    out = JsonStream(request)
    b = builder_mod.Builder(d, ctx, opts, out.write)
    try:
        image_id = await b.build(text)
    except builder_mod.StepFailed as exc:
        await out.write({"errorDetail": {"code": exc.code, "message": exc.message},
                         "error": exc.message})
        return await out.finish()
    except Exception as exc:  # noqa: BLE001 - reported to the client in the stream
        return await out.fail(exc)
    await out.write({"aux": {"ID": image_id}})
    if opts.quiet:
        await out.write({"stream": image_id + "\n"})
    else:
        await out.write({"stream": f"Successfully built {image_id[7:19]}\n"})
    for t in opts.tags:
        d.images.tag(image_id, t)
        if not opts.quiet:
            await out.write({"stream": f"Successfully tagged {reference.familiar(t)}\n"})
        d.event("image", "tag", image_id, {"name": t})
    d.emit("dockyard_image_built", image_id=image_id, tags=opts.tags)
    return await out.finish()


async def build_prune(request: web.Request) -> web.Response:
    """``docker builder prune`` (and the last step of ``docker system prune``): forget the
    classic builder's cache entries. The step images stay until ``image prune`` (as dockerd's
    classic builder, whose cache is its images)."""
    gone = listing.build_cache_prune(request.app["daemon"], params.filters(request))
    return web.json_response({"CachesDeleted": gone or None, "SpaceReclaimed": 0})


def setup(app: web.Application) -> None:
    route(app, "POST", "/build", build)
    route(app, "POST", "/build/prune", build_prune)
