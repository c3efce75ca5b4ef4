"""Image routes, as the Docker Engine API groups them under ``/images``."""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import tempfile
import threading
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import Conflict, InvalidParameter, NotFound, Unauthorized

from ... import filtersets, imagelife, listing, reference, transfer
from .. import params
from ..app import route
from ...schema import AuthConfig, loads
from ..body import iter_body, json_body
from ..clientwork import client_work
from ..jsonstream import JsonStream
from .pull import pull

log = logging.getLogger(__name__)


def registry_auth(request: web.Request) -> dict[str, Any]:
    """The credentials of ``X-Registry-Auth`` (base64url JSON), or {}."""
    raw = request.headers.get("X-Registry-Auth", "").strip()
    if not raw:
        return {}
    try:
        data = loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), "X-Registry-Auth")
    except (InvalidParameter, ValueError, binascii.Error):
        raise InvalidParameter("invalid X-Registry-Auth header") from None
    return transfer.clean_auth(data)


def _d(request: web.Request):  # noqa: ANN202
    return request.app["daemon"]


async def _spool(request: web.Request, tmpdir: str) -> str:
    """Copy the request body to a temporary file (the layer is applied from a worker thread)."""
    os.makedirs(tmpdir, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=tmpdir, prefix="import-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in iter_body(request):
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
        path = await _spool(request, d.tmp_dir)
        try:
            def work() -> str:
                with open(path, "rb") as f:
                    return d.images.import_image(f, changes, q.get("message", ""))
            async with client_work(request) as cw:
                image_id = await cw.run(work)
        finally:
            os.unlink(path)
        imagelife.imported(d, image_id, ref)
        return web.Response(text=json.dumps({"status": image_id}) + "\r\n",
                            content_type="application/json")
    if q.get("fromImage"):
        image = q["fromImage"]
        tag = q.get("tag")
        if tag and tag.startswith("sha256:") and "@" not in image:
            image = f"{image}@{tag}"
        elif tag and "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            image = f"{image}:{tag}"
        if q.get("platform") and q["platform"] not in ("linux/amd64", "linux", "amd64"):
            raise InvalidParameter(f"platform {q['platform']!r} is not supported here (linux/amd64)")
        # no tag at all: every tag (``docker pull -a``), as dockerd
        return await pull(request, reference.parse(image, default_tag=False), registry_auth(request))
    raise InvalidParameter("fromImage or fromSrc must be given")


async def push(request: web.Request) -> web.StreamResponse:
    d = _d(request)
    name = request.match_info["name"]
    tag = request.query.get("tag") or ""
    base = reference.parse(name, default_tag=False)
    if base.digest:
        raise InvalidParameter("cannot push a digest reference")
    if tag or base.tag:
        refs = [base.with_tag(tag or base.tag)]  # type: ignore[arg-type]
    else:
        prefix = base.name + ":"
        refs = [reference.parse(r) for r in d.images.state.tags_with_prefix(prefix)]
    if not refs:
        raise NotFound(f"An image does not exist locally with the tag: {base.familiar_name}")
    ids = [d.images.resolve(str(r)) for r in refs]
    backend = d.remote(base.domain, registry_auth(request))
    out = JsonStream(request)
    await out.write({"status": f"The push refers to repository [{base.name}]"})
    for r, image_id in zip(refs, ids):
        others = sorted({reference.parse(x["ref"].split("@")[0], default_tag=False).path
                         for x in d.images.repo_digests(image_id)
                         if x["ref"].startswith(base.domain + "/")} |
                        {reference.parse(t).path for t in d.images.tags_of(image_id)
                         if t.startswith(base.domain + "/")})

        def work(progress: Any, cancel: threading.Event, r: Any = r, image_id: str = image_id,
                 others: list[str] = others) -> tuple[str, int]:
            return transfer.Pusher(d.images, backend, progress).push(image_id, r.path, r.tag, others)

        try:
            digest, size = await out.run(work)
        except Exception as exc:  # noqa: BLE001 - reported to the client in the stream
            return await out.fail(exc)
        imagelife.pushed(d, r, image_id, digest)
        await out.write({"status": f"{r.tag}: digest: {digest} size: {size}", "progressDetail": {}})
        await out.write({"progressDetail": {}, "aux": {"Tag": r.tag, "Digest": digest, "Size": size}})
    return await out.finish()


async def auth(request: web.Request) -> web.Response:
    d = _d(request)
    body = await json_body(request, AuthConfig, {})
    server = (body.get("serveraddress") or "docker.io").split("://", 1)[-1].rstrip("/")
    if server.endswith("/v1") or server.endswith("/v2"):
        server = server[:-3]
    if server in ("index.docker.io", "registry-1.docker.io"):
        server = "docker.io"
    creds = {k: body[k] for k in ("username", "password", "identitytoken") if body.get(k)}
    backend = d.remote(server, creds)
    try:
        await asyncio.to_thread(backend.ping)
    except Unauthorized:  # dockerd's answer and words; the docker CLI says so and exits 1
        raise Unauthorized(f"login attempt to {server} failed with status: 401 Unauthorized") from None
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})


async def save(request: web.Request) -> web.StreamResponse:
    """``docker save``: the named images as one ``docker-archive`` tar."""
    d = _d(request)
    names = request.query.getall("names", [])
    if not names:
        raise InvalidParameter("no image names given")
    tmpdir = d.tmp_dir
    os.makedirs(tmpdir, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=tmpdir, prefix="save-", suffix=".tar")
    os.close(fd)
    try:
        jobs = []
        for name in names:
            image_id = d.images.resolve(name)
            ref = None
            with contextlib.suppress(InvalidParameter):
                r = reference.parse(name)
                if str(r) in d.images.tags_of(image_id):
                    ref = r
            jobs.append((image_id, ref))

        def work() -> None:
            backend = d.backend("docker-archive", path, {"mode": "w"})
            try:
                for image_id, ref in jobs:
                    p = transfer.Pusher(d.images, backend, lambda m: None)
                    if ref is None:
                        p.push(image_id, "", None)
                    else:
                        p.push(image_id, ref.name, ref.tag)
            except BaseException:
                with contextlib.suppress(Exception):
                    backend.close()
                raise
            backend.close()

        await asyncio.to_thread(work)
        for image_id, _ref in jobs:
            d.event("image", "save", image_id, {"name": image_id})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await resp.prepare(request)
        with open(path, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, 1 << 20):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def load(request: web.Request) -> web.StreamResponse:
    """``docker load``: every image of a ``docker save`` tar (classic or Docker 25 layout).
    As dockerd, a body that is no such tar is answered 200 with an ``error`` message in the
    stream (docker-py raises ImageLoadError from it)."""
    d = _d(request)
    quiet = params.flag(request, "quiet")
    path = await _spool(request, d.tmp_dir)
    out = JsonStream(request)
    try:
        async with client_work(request):
            await _load_images(d, out, path, quiet)
    except Exception as exc:  # noqa: BLE001 - reported to the client in the stream
        return await out.fail(exc)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return await out.finish()


async def _load_images(d: Any, out: JsonStream, path: str, quiet: bool) -> None:
    backend = await asyncio.to_thread(d.backend, "docker-archive", path, {"mode": "r"})
    try:
        for repo, ref in backend.images():
            def work(progress: Any, cancel: threading.Event, repo: str = repo, ref: str = ref) -> Any:
                return transfer.Puller(d.images, backend, (lambda m: None) if quiet else progress,
                                       cancel).pull(repo, ref)
            result = await out.run(work)
            image_id = result["image_id"]
            tags = backend.tags_of(result["digest"]) if hasattr(backend, "tags_of") else []
            if repo and not ref.startswith("sha256:"):
                tags = sorted(set(tags) | {reference.normalize(f"{repo}:{ref}")})
            for t in tags:
                d.images.tag(image_id, t)
                await out.write({"stream": f"Loaded image: {reference.familiar(t)}\n"})
            if not tags:
                await out.write({"stream": f"Loaded image ID: {image_id}\n"})
            d.event("image", "load", image_id, {"name": image_id})
    finally:
        backend.close()


async def history(request: web.Request) -> web.Response:
    d = _d(request)
    image_id = d.images.resolve(request.match_info["name"])
    cfg = d.images.config(image_id)
    layers = d.images.layer_chain(d.images.get(image_id)["top_layer"])
    sizes = [layer["size"] for layer in layers]
    out = []
    hist = cfg.get("history") or [{"created": cfg.get("created", ""), "created_by": ""}]
    from ...images import _unix
    for h in hist:
        size = 0
        if not h.get("empty_layer") and sizes:
            size = sizes.pop(0)
        out.append({"Id": "<missing>", "Created": _unix(h.get("created")),
                    "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                    "Comment": h.get("comment", "")})
    out.reverse()
    if out:
        out[0]["Id"] = image_id
        out[0]["Tags"] = [reference.familiar(t) for t in d.images.tags_of(image_id)] or None
    return web.json_response(out)




async def list_(request: web.Request) -> web.Response:
    args = params.filters(request)
    old = request.query.get("filter")  # API < 1.25 (docker-py's images(name=...) then): a glob
    if old and not args.contains("reference"):
        args.add("reference", old)
    return web.json_response(listing.images(_d(request), args, params.flag(request, "all")))


async def prune(request: web.Request) -> web.Response:
    """``docker image prune``: unused dangling images (``dangling=false``: every unused one),
    as the ``until``/``label``/``label!`` filters select; the space reclaimed is that of the
    layers that went (a layer another image still uses stays, and is not counted)."""
    d = _d(request)
    dangling_only, ok = filtersets.image_prune_matcher(params.filters(request))
    sizes = {r["chain_id"]: r["size"] for r in d.state.layers()}
    deleted: list[dict[str, str]] = []
    for row in d.images.all():
        if d.containers.using_image(row["id"]):
            continue
        if dangling_only and d.images.tags_of(row["id"]):
            continue
        if d.images.has_children(row["id"]):
            continue  # a build step under another image: goes with it (below)
        view = listing.image_view(d, row)
        if not ok(view.created, view.labels):
            continue
        parent = d.images.parent_of(row["id"])
        try:
            res = await asyncio.to_thread(d.images.delete, row["id"], True, [])
        except (NotFound, Conflict):
            continue
        deleted += res
        imagelife.removed(d, row["id"], res)
        if parent:
            deleted += await _remove_parents(d, row["id"], parent)
    reclaimed = sum(sizes.get(item.get("Deleted", ""), 0) for item in deleted)
    return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


async def _remove_parents(d: Any, image_id: str, parent: str | None) -> list[dict[str, str]]:
    """As dockerd's rmi: the untagged build steps ``image_id`` (deleted) was made on, no longer
    under any other image nor used by a container, go with it."""
    out: list[dict[str, str]] = []
    while parent:
        try:
            d.images.get(parent)
        except NotFound:
            break
        if d.images.tags_of(parent) or d.images.has_children(parent) or \
                d.containers.using_image(parent) or d.images.repo_digests(parent):
            break
        nxt = d.images.parent_of(parent)
        try:
            res = await asyncio.to_thread(d.images.delete, parent, False, [])
        except (NotFound, Conflict):
            break
        out += [r for r in res if "Deleted" in r]
        imagelife.removed(d, parent, res)
        parent = nxt
    return out


async def inspect(request: web.Request) -> web.Response:
    d = _d(request)
    image_id = d.images.resolve(request.match_info["name"])
    return web.json_response(d.images.inspect(image_id, d.graph.name))


async def remove(request: web.Request) -> web.Response:
    d = _d(request)
    name = request.match_info["name"]
    force = params.flag(request, "force")
    image_id = d.images.resolve(name)
    parent = d.images.parent_of(image_id)
    result = await asyncio.to_thread(d.images.delete, name, force, d.containers.using_image(image_id))
    imagelife.removed(d, image_id, result)
    if parent and not params.flag(request, "noprune") and {"Deleted": image_id} in result:
        result += await _remove_parents(d, image_id, parent)
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
    route(app, "GET", "/images/get", save)
    route(app, "POST", "/images/load", load)
    route(app, "POST", "/images/prune", prune)
    route(app, "POST", "/auth", auth)
    route(app, "GET", "/images/{name:.+}/get", save_one)
    route(app, "GET", "/images/{name:.+}/history", history)
    route(app, "POST", "/images/{name:.+}/push", push)
    route(app, "GET", "/images/{name:.+}/json", inspect)
    route(app, "POST", "/images/{name:.+}/tag", tag)
    route(app, "DELETE", "/images/{name:.+}", remove)


async def save_one(request: web.Request) -> web.StreamResponse:
    request = request.clone(rel_url=request.rel_url.with_query({"names": request.match_info["name"]}))
    return await save(request)
