"""Authorization plugins (the ``dockyard_authorize`` hook), asked before every request is handled.

A plugin gets the method, the path without its ``/vX.Y`` prefix and, when the request carries
a JSON body, that body: read here once (held to the JSON body limit, as the handler would) and
kept on the request, so the handler reads the same bytes (:func:`body.read_limited`). Tar and
other streams are never read ahead: the plugin gets ``None`` for them, as Docker's authz
plugins do. Runs inside the error middleware: a body too large or too slow, a refusal (403) and
a plugin that raises (500) all answer with Docker's JSON error body.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import Forbidden

from . import body as bodymod


@web.middleware
async def authorization_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    hook = request.app["daemon"].pm.hook.dockyard_authorize
    if not hook.get_hookimpls():
        return await handler(request)
    version = request.match_info.get("apiver")
    path = request.path[len(version) + 2:] if version else request.path
    raw = await bodymod.read_json_ahead(request)
    veto = hook(method=request.method, path=path, body=raw)
    if veto:
        raise Forbidden(str(veto))
    return await handler(request)
