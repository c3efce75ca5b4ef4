"""Image routes, as the Docker Engine API groups them under ``/images``."""
from __future__ import annotations

import asyncio
import json
import os
import tempfile

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter, NotFound

from ... import reference
from ..app import route


def _d(request: web.Request):  # noqa: ANN202
    return request.app["daemon"]


async def _spool(request: web.Request, tmpdir: str) -> str:
    """Copy the request body to a temporary file (the layer is applied from a worker thread)."""
    os.makedirs(tmpdir, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=tmpdir, prefix="import-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                f.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


async def create(request: web.Request) -> web.StreamResponse:
    d = _d(request)
    q = request.query
    if q.get("fromSrc"):
        if q["fromSrc"] != "-":
            raise InvalidParameter("importing from a URL is not supported; send the tar as the body (fromSrc=-)")
        repo, tag = q.get("repo", ""), q.get("tag", "")
        ref = None
        if repo:
            ref = reference.parse(repo, default_tag=False)
            if tag:
                ref = ref.with_tag(tag)
            elif not ref.tag:
                ref = ref.with_tag("latest")
        changes = q.getall("changes", [])
        path = await _spool(request, os.path.join(d.data_root, "tmp"))
        try:
            def work() -> str:
                with open(path, "rb") as f:
                    return d.images.import_image(f, changes, q.get("message", ""))
            image_id = await asyncio.to_thread(work)
        finally:
            os.unlink(path)
        tags = [d.images.tag(image_id, str(ref))] if ref else []
        d.emit("dockyard_image_built", image_id=image_id, tags=tags)
        d.event("image", "import", image_id, {"name": str(ref) if ref else ""})
        return web.Response(text=json.dumps({"status": image_id}) + "\r\n",
                            content_type="application/json")
    if q.get("fromImage"):
        image = q["fromImage"]
        tag = q.get("tag")
        ref = reference.parse(image if not tag or "@" in image or ":" in image.rsplit("/", 1)[-1]
                              else f"{image}:{tag}")
        raise NotFound(f"pull access denied for {ref.familiar_name}: pulling from registries is "
                       "not supported by this daemon yet (import the image instead)")
    raise InvalidParameter("fromImage or fromSrc must be given")


async def list_(request: web.Request) -> web.Response:
    d = _d(request)
    out = [d.images.summary(row) for row in d.images.all()]
    return web.json_response(out)


async def inspect(request: web.Request) -> web.Response:
    d = _d(request)
    image_id = d.images.resolve(request.match_info["name"])
    return web.json_response(d.images.inspect(image_id, d.graph.name))


async def remove(request: web.Request) -> web.Response:
    d = _d(request)
    name = request.match_info["name"]
    force = request.query.get("force", "").lower() in ("1", "true")
    image_id = d.images.resolve(name)
    result = await asyncio.to_thread(d.images.delete, name, force, d.containers.using_image(image_id))
    for item in result:
        if "Deleted" in item:
            d.emit("dockyard_image_removed", image_id=item["Deleted"])
            d.event("image", "delete", item["Deleted"], {})
    return web.json_response(result)


async def tag(request: web.Request) -> web.Response:
    d = _d(request)
    image_id = d.images.resolve(request.match_info["name"])
    repo = request.query.get("repo")
    if not repo:
        raise InvalidParameter("repository name must be given")
    ref = reference.parse(repo, default_tag=False)
    ref = ref.with_tag(request.query.get("tag") or ref.tag or "latest")
    d.images.tag(image_id, str(ref))
    d.event("image", "tag", image_id, {"name": str(ref)})
    return web.Response(status=201)


def setup(app: web.Application) -> None:
    route(app, "POST", "/images/create", create)
    route(app, "GET", "/images/json", list_)
    route(app, "GET", "/images/{name:.+}/json", inspect)
    route(app, "POST", "/images/{name:.+}/tag", tag)
    route(app, "DELETE", "/images/{name:.+}", remove)
