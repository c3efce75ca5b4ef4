"""``GET /distribution/{name}/json`` (docker-py ``inspect_distribution``; the docker CLI's
``service create`` pins images with it): the registry's descriptor of an image's manifest and
the platforms it is for, asked of the registry (its mirrors first) with the credentials of
``X-Registry-Auth``, as moby's distribution router answers."""
from __future__ import annotations

import asyncio

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, InvalidParameter

from ... import reference, remote
from ..app import route
from .images import registry_auth


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if reference.HEX64.match(name) or (name.startswith("sha256:")
                                       and reference.HEX64.match(name[7:])):
        raise DockyardError("no manifest found for full image ID")
    ref = reference.parse(name)
    if not ref.tag and not ref.digest:
        raise InvalidParameter(f"image reference not tagged: {name}")
    try:
        auth = registry_auth(request)
    except InvalidParameter:  # as dockerd: a bad header counts as no credentials
        auth = {}
    backends = request.app["daemon"].remote(ref.domain, auth).pull_sources()
    try:
        body = await asyncio.to_thread(remote.inspect, backends, ref.path,
                                        ref.digest or ref.tag or "latest")
    finally:
        remote.close_all(backends)
    return web.json_response(body)


def setup(app: web.Application) -> None:
    route(app, "GET", "/distribution/{name:.+}/json", inspect)
