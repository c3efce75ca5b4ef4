"""``dockyard registry serve``: any registry backend exposed over the Distribution v2 HTTP API.

Pull, push (monolithic, chunked and streamed uploads, cross-repository mount), tags list, catalog
and manifest delete; optional htpasswd (bcrypt) basic auth and TLS. Upload sessions are files in
``uploads_dir``; a finished upload is handed to the backend, which verifies its digest before
keeping it.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import ssl
import uuid
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, InvalidParameter, NotFound
from dockyard.hookspecs.registry import RegistryBackend, check_digest

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 << 20
_NAME = r"(?P<name>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
ROUTES = [
    ("base", re.compile(r"^$")),
    ("catalog", re.compile(r"^_catalog$")),
    ("tags", re.compile(rf"^{_NAME}/tags/list$")),
    ("manifest", re.compile(rf"^{_NAME}/manifests/(?P<ref>[A-Za-z0-9_.:+-]+)$")),
    ("uploads", re.compile(rf"^{_NAME}/blobs/uploads/?$")),
    ("upload", re.compile(rf"^{_NAME}/blobs/uploads/(?P<uuid>[a-f0-9-]+)$")),
    ("blob", re.compile(rf"^{_NAME}/blobs/(?P<digest>[a-z0-9]+:[a-zA-Z0-9]+)$")),
]


def _err(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/json",
                        text=json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}))


class Htpasswd:
    """``user:bcrypt-hash`` lines (``htpasswd -B``); successful checks are cached in memory."""

    def __init__(self, path: str) -> None:
        self.users: dict[str, bytes] = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and ":" in line:
                    user, _, h = line.partition(":")
                    self.users[user] = h.encode()
        self._ok: set[tuple[str, str]] = set()

    def check(self, user: str, password: str) -> bool:
        import bcrypt
        h = self.users.get(user)
        if h is None or not h.startswith((b"$2a$", b"$2b$", b"$2y$")):
            return False
        if (user, password) in self._ok:
            return True
        if bcrypt.checkpw(password.encode(), h.replace(b"$2y$", b"$2b$", 1)):
            self._ok.add((user, password))
            return True
        return False


class RegistryServer:
    def __init__(self, backend: RegistryBackend, uploads_dir: str, htpasswd: str | None = None,
                 realm: str = "dockyard-registry") -> None:
        self.backend = backend
        self.uploads = uploads_dir
        os.makedirs(uploads_dir, exist_ok=True)
        self.auth = Htpasswd(htpasswd) if htpasswd else None
        self.realm = realm

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/v2", self.dispatch)
        app.router.add_route("*", "/v2/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.auth is not None and not self._authorized(request):
            return _err(401, "UNAUTHORIZED", "authentication required",
                        {"WWW-Authenticate": f'Basic realm="{self.realm}"',
                         "Docker-Distribution-API-Version": "registry/2.0"})
        tail = request.match_info.get("tail", "")
        for kind, rx in ROUTES:
            m = rx.match(tail)
            if m:
                handler = getattr(self, f"{kind}_{request.method.lower()}", None)
                if handler is None:
                    return _err(405, "UNSUPPORTED", f"{request.method} not supported here")
                try:
                    resp = await handler(request, **m.groupdict())
                except NotFound as exc:
                    code = ("MANIFEST_UNKNOWN" if kind == "manifest" else "NAME_UNKNOWN" if kind == "tags"
                            else "BLOB_UNKNOWN")
                    resp = _err(404, code, exc.message)
                except InvalidParameter as exc:
                    code = {"manifest": "MANIFEST_INVALID", "blob": "DIGEST_INVALID",
                            "upload": "DIGEST_INVALID", "uploads": "DIGEST_INVALID"}.get(kind, "UNSUPPORTED")
                    resp = _err(400, code, exc.message)
                except DockyardError as exc:
                    resp = _err(500, "UNKNOWN", exc.message)
                resp.headers["Docker-Distribution-API-Version"] = "registry/2.0"
                return resp
        return _err(404, "NAME_UNKNOWN", f"no route for /v2/{tail}")

    def _authorized(self, request: web.Request) -> bool:
        h = request.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(h[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        assert self.auth is not None
        return self.auth.check(user, password)

    # -- base, catalog, tags ---------------------------------------------------------------------
    async def base_get(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def catalog_get(self, request: web.Request) -> web.Response:
        repos = await asyncio.to_thread(self.backend.catalog)
        return web.json_response({"repositories": _page(repos, request)})

    async def tags_get(self, request: web.Request, name: str) -> web.Response:
        tags = await asyncio.to_thread(self.backend.tags, name)
        return web.json_response({"name": name, "tags": _page(tags, request)})

    # -- manifests ------------------------------------------------------------------------------
    async def manifest_head(self, request: web.Request, name: str, ref: str) -> web.Response:
        desc = await asyncio.to_thread(self.backend.resolve, name, ref)
        return web.Response(headers={"Content-Type": desc["mediaType"], "Docker-Content-Digest": desc["digest"],
                                     "Content-Length": str(desc["size"])})

    async def manifest_get(self, request: web.Request, name: str, ref: str) -> web.Response:
        media, raw = await asyncio.to_thread(self.backend.get_manifest, name, ref)
        from dockyard.hookspecs.registry import sha256_of
        return web.Response(body=raw, headers={"Content-Type": media, "Docker-Content-Digest": sha256_of(raw)})

    async def manifest_put(self, request: web.Request, name: str, ref: str) -> web.Response:
        raw = await request.content.read(MAX_MANIFEST + 1)
        if len(raw) > MAX_MANIFEST:
            return _err(400, "MANIFEST_INVALID", "manifest too large")
        media = (request.content_type or "").split(";")[0]
        if not media or media == "application/octet-stream":
            with contextlib.suppress(ValueError, AttributeError):
                media = json.loads(raw).get("mediaType") or media
        try:
            digest = await asyncio.to_thread(self.backend.put_manifest, name, ref, media, raw)
        except NotFound as exc:
            return _err(400, "MANIFEST_BLOB_UNKNOWN", exc.message)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/manifests/{digest}",
                                                 "Docker-Content-Digest": digest})

    async def manifest_delete(self, request: web.Request, name: str, ref: str) -> web.Response:
        await asyncio.to_thread(self.backend.delete, name, ref)
        return web.Response(status=202)

    # -- blobs ----------------------------------------------------------------------------------
    async def blob_head(self, request: web.Request, name: str, digest: str) -> web.Response:
        check_digest(digest)
        size = await asyncio.to_thread(self.backend.has_blob, name, digest)
        if size is None:
            raise NotFound(f"blob unknown to registry: {digest}")
        return web.Response(headers={"Content-Length": str(size), "Docker-Content-Digest": digest,
                                     "Content-Type": "application/octet-stream"})

    async def blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        check_digest(digest)
        size = await asyncio.to_thread(self.backend.has_blob, name, digest)
        f = await asyncio.to_thread(self.backend.get_blob, name, digest)
        try:
            resp = web.StreamResponse(headers={"Docker-Content-Digest": digest,
                                               "Content-Type": "application/octet-stream"})
            if size is not None:
                resp.content_length = size
            await resp.prepare(request)
            while chunk := await asyncio.to_thread(f.read, 1 << 20):
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        finally:
            f.close()

    # -- uploads --------------------------------------------------------------------------------
    def _upload_path(self, u: str) -> str:
        return os.path.join(self.uploads, u)

    def _upload_headers(self, name: str, u: str) -> dict[str, str]:
        size = os.path.getsize(self._upload_path(u))
        return {"Location": f"/v2/{name}/blobs/uploads/{u}", "Docker-Upload-UUID": u,
                "Range": f"0-{max(size - 1, 0)}", "Content-Length": "0"}

    async def _append(self, request: web.Request, path: str) -> None:
        with open(path, "ab") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(f.write, chunk)

    async def _finish(self, name: str, path: str, digest: str) -> web.Response:
        check_digest(digest)

        def put() -> None:
            with open(path, "rb") as f:
                self.backend.put_blob(name, digest, f, os.path.getsize(path))
        try:
            await asyncio.to_thread(put)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})

    async def uploads_post(self, request: web.Request, name: str) -> web.Response:
        mount, src = request.query.get("mount"), request.query.get("from")
        if mount and src:
            check_digest(mount)
            if await asyncio.to_thread(self.backend.mount_blob, name, mount, src):
                return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{mount}",
                                                         "Docker-Content-Digest": mount})
        u = str(uuid.uuid4())
        path = self._upload_path(u)
        open(path, "wb").close()
        digest = request.query.get("digest")
        if digest:  # monolithic: the whole blob in the POST
            await self._append(request, path)
            return await self._finish(name, path, digest)
        return web.Response(status=202, headers=self._upload_headers(name, u))

    async def upload_patch(self, request: web.Request, name: str, uuid: str) -> web.Response:
        path = self._upload_path(uuid)
        if not os.path.exists(path):
            return _err(404, "BLOB_UPLOAD_UNKNOWN", f"upload {uuid} unknown")
        cr = request.headers.get("Content-Range")
        if cr:
            start = int(cr.split("-", 1)[0].split("/")[-1].replace("bytes=", "").strip() or 0)
            if start != os.path.getsize(path):
                return web.Response(status=416, headers=self._upload_headers(name, uuid))
        await self._append(request, path)
        return web.Response(status=202, headers=self._upload_headers(name, uuid))

    async def upload_put(self, request: web.Request, name: str, uuid: str) -> web.Response:
        path = self._upload_path(uuid)
        if not os.path.exists(path):
            return _err(404, "BLOB_UPLOAD_UNKNOWN", f"upload {uuid} unknown")
        digest = request.query.get("digest")
        if not digest:
            return _err(400, "DIGEST_INVALID", "digest missing")
        await self._append(request, path)
        return await self._finish(name, path, digest)

    async def upload_get(self, request: web.Request, name: str, uuid: str) -> web.Response:
        if not os.path.exists(self._upload_path(uuid)):
            return _err(404, "BLOB_UPLOAD_UNKNOWN", f"upload {uuid} unknown")
        return web.Response(status=204, headers=self._upload_headers(name, uuid))

    async def upload_delete(self, request: web.Request, name: str, uuid: str) -> web.Response:
        with contextlib.suppress(OSError):
            os.unlink(self._upload_path(uuid))
        return web.Response(status=204)


def _page(items: list[str], request: web.Request) -> list[str]:
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    n = request.query.get("n")
    return items[:int(n)] if n and n.isdigit() else items


def serve(backend: RegistryBackend, addr: str, uploads_dir: str, htpasswd: str | None = None,
          tls_cert: str | None = None, tls_key: str | None = None) -> None:
    host, _, port = addr.rpartition(":")
    ctx = None
    if tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls_cert, tls_key)
    app = RegistryServer(backend, uploads_dir, htpasswd).make_app()
    web.run_app(app, host=host.strip("[]") or "127.0.0.1", port=int(port), ssl_context=ctx,
                print=lambda *a: log.info(*a), access_log=None)
