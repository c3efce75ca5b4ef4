"""Docker's managed plugins (moby's plugin router): ``docker plugin create``, ``ls``,
``inspect``, ``set``, ``enable``, ``disable``, ``rm`` and ``GET /plugins/privileges`` are served
(:mod:`dockyard.core.managedplugins`, :mod:`dockyard.core.pluginrun`); pulling, pushing and
upgrading plugins through a registry are not, and say so with a 501."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ... import reference, remote
from ...managedplugins import privileges, remote_config
from .. import params
from ..app import VERSION, route
from ..body import iter_body, json_body
from ..clientwork import client_work
from .images import registry_auth

NO_REGISTRY_PLUGINS = ("dockyard does not pull, push or upgrade managed plugins through a "
                       "registry yet: make one from a directory with `docker plugin create "
                       "NAME DIR` (config.json and rootfs/)")


def _svc(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].managed_plugins


def _runner(request: web.Request):  # noqa: ANN202
    return request.app["daemon"].plugin_runner


async def list_plugins(request: web.Request) -> web.Response:
    return web.json_response(_svc(request).list(params.filters(request)))


async def inspect(request: web.Request) -> web.Response:
    return web.json_response(_svc(request).get(request.match_info["name"]))


async def create(request: web.Request) -> web.Response:
    name = request.query.get("name") or ""
    if not name:
        raise InvalidParameter("a name is required to create a plugin")
    d = request.app["daemon"]
    tmp = os.path.join(d.data_root, "tmp")
    os.makedirs(tmp, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=tmp, prefix="plugin-")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            async for chunk in iter_body(request):
                digest.update(chunk)
                f.write(chunk)
        async with client_work(request):
            await asyncio.to_thread(_svc(request).create, name, path,
                                    "sha256:" + digest.hexdigest(), f"dockyard {VERSION}")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    await _runner(request).remove(request.match_info["name"], params.flag(request, "force"))
    return web.Response(status=204)


async def enable(request: web.Request) -> web.Response:
    timeout = params.integer(request, "timeout") or 0
    await _runner(request).enable(request.match_info["name"], float(timeout or 10))
    return web.Response(status=200)


async def disable(request: web.Request) -> web.Response:
    await _runner(request).disable(request.match_info["name"], params.flag(request, "force"))
    return web.Response(status=200)


async def set_(request: web.Request) -> web.Response:
    args = await json_body(request, None, [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidParameter("the body must be a JSON array of strings (NAME=VALUE)")
    _svc(request).set(request.match_info["name"], args)
    return web.Response(status=204)


async def get_privileges(request: web.Request) -> web.Response:
    """What a plugin in a registry would ask of the host, from its config there (a mirror
    first, as for pulls)."""
    ref = reference.parse(request.query.get("remote") or "")
    want = ref.digest or ref.tag or "latest"
    backends = request.app["daemon"].remote(ref.domain, registry_auth(request)).pull_sources()
    def from_sources() -> dict | None:
        for b in backends:  # a mirror without the plugin: the next source
            config = remote_config(b, ref.path, want)
            if config is not None:
                return config
        return None

    try:
        config = await asyncio.to_thread(from_sources)
    finally:
        remote.close_all(backends)
    return web.json_response(privileges(config) if config is not None else [])


async def no_registry_plugins(request: web.Request) -> web.Response:
    raise NotImplementedError(NO_REGISTRY_PLUGINS)


def setup(app: web.Application) -> None:
    route(app, "GET", "/plugins", list_plugins)
    route(app, "GET", "/plugins/privileges", get_privileges)
    route(app, "POST", "/plugins/create", create)
    for path in ("/plugins/pull", "/plugins/{name:.+}/push", "/plugins/{name:.+}/upgrade"):
        route(app, "POST", path, no_registry_plugins)
    route(app, "GET", "/plugins/{name:.+}/json", inspect)
    route(app, "DELETE", "/plugins/{name:.+}", remove)
    route(app, "POST", "/plugins/{name:.+}/enable", enable)
    route(app, "POST", "/plugins/{name:.+}/disable", disable)
    route(app, "POST", "/plugins/{name:.+}/set", set_)
