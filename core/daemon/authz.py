"""Authorization, asked before every request is handled: the ``dockyard_authorize`` hook of
dockyard's plugins, then Docker's authorization plugins (``--authorization-plugin NAME``,
daemon.json ``authorization-plugins``), in that order.

The hook gets the method, the path without its ``/vX.Y`` prefix and query and, when the request
carries a JSON body, that body: read here once (held to the JSON body limit, as the handler
would) and kept on the request, so the handler reads the same bytes (:func:`body.read_limited`).
Tar and other streams are never read ahead: the hook gets ``None`` for them.

A Docker authz plugin (``Implements: ["authz"]``) is asked ``AuthZPlugin.AuthZReq`` with
``RequestMethod``, ``RequestUri`` (as sent, version and query included), ``RequestHeaders``
(one value per name, without ``Authorization``, ``X-Registry-Auth``, ``X-Registry-Config``) and
``RequestBody`` (base64, for a JSON body under 1 MiB, never for ``.../auth``); ``User`` is absent
(dockyard authenticates no user, as dockerd without TLS client certificates). After the
handler, ``AuthZPlugin.AuthZRes`` gets the same plus ``ResponseStatusCode``,
``ResponseHeaders`` and ``ResponseBody`` (a JSON answer). ``Allow: false`` answers 403
``authorization denied by plugin NAME: MSG``; an ``Err`` or an unreachable plugin answers 500
``plugin NAME failed with error: ...`` — dockerd's words. A streamed or hijacked response
(logs, attach, events) is on its way before the handler returns: its ``AuthZRes`` sees status
and headers only, and a refusal then is logged (dockerd's response writer has flushed it too).
Everything runs inside the error middleware, so refusals are Docker's JSON error bodies.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, Forbidden

from ..dockerplugins import PluginDirs
from . import body as bodymod

log = logging.getLogger(__name__)

IMPLEMENTS = "authz"
#: dockerd's limit for a body handed to an authz plugin (larger ones are left out)
MAX_BODY = 1 << 20
_SECRET_HEADERS = ("authorization", "x-registry-auth", "x-registry-config")


class AuthzPlugins:
    """The Docker authorization plugins named in the configuration, asked in that order."""

    def __init__(self, dirs: PluginDirs, names: list[str]) -> None:
        self.dirs = dirs
        self.names = list(dict.fromkeys(names))

    def ask(self, method: str, request: dict[str, Any]) -> None:
        """``AuthZPlugin.<method>`` of every plugin: Forbidden at the first refusal,
        DockyardError (500) when one fails. Blocking."""
        for name in self.names:
            try:
                answer = self.dirs.get(name, IMPLEMENTS).call(f"AuthZPlugin.{method}", request)
            except DockyardError as e:
                raise DockyardError(f"plugin {name} failed with error: {e.message}") from None
            if not answer.get("Allow"):
                raise Forbidden(f"authorization denied by plugin {name}: {answer.get('Msg') or ''}")


def _headers(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS}


def _body(uri: str, ctype: str, raw: Any) -> str | None:
    """A body as an authz plugin is given it (base64), or None when it is not given one."""
    if not isinstance(raw, bytes) or not raw or len(raw) >= MAX_BODY:
        return None
    if uri.split("?", 1)[0].endswith("/auth") or not ctype.lower().startswith("application/json"):
        return None
    return base64.b64encode(raw).decode()


@web.middleware
async def authorization_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    daemon = request.app["daemon"]
    hook = daemon.pm.hook.dockyard_authorize
    docker: AuthzPlugins = daemon.authz
    if not hook.get_hookimpls() and not docker.names:
        return await handler(request)
    raw = await bodymod.read_json_ahead(request)
    if hook.get_hookimpls():
        version = request.match_info.get("apiver")
        path = request.path[len(version) + 2:] if version else request.path
        veto = hook(method=request.method, path=path, body=raw)
        if veto:
            raise Forbidden(str(veto))
    if not docker.names:
        return await handler(request)
    asked: dict[str, Any] = {"RequestMethod": request.method, "RequestUri": request.raw_path,
                             "RequestHeaders": _headers(request.headers)}
    sent = _body(request.raw_path, request.headers.get("Content-Type", ""), raw)
    if sent:
        asked["RequestBody"] = sent
    await asyncio.to_thread(docker.ask, "AuthZReq", asked)
    response = await handler(request)
    await _authorize_response(docker, asked, response)
    return response


async def _authorize_response(docker: AuthzPlugins, asked: dict[str, Any],
                              response: web.StreamResponse) -> None:
    answer = {**asked, "ResponseStatusCode": response.status,
              "ResponseHeaders": _headers(response.headers)}
    if response.prepared:  # streamed or hijacked: already on its way
        try:
            await asyncio.to_thread(docker.ask, "AuthZRes", answer)
        except DockyardError as e:
            log.warning("%s %s: %s (the response was already streamed)",
                        asked["RequestMethod"], asked["RequestUri"], e.message)
        return
    raw = response.body if isinstance(response, web.Response) else None
    sent = _body(asked["RequestUri"], response.headers.get("Content-Type", ""), raw)
    if sent:
        answer["ResponseBody"] = sent
    await asyncio.to_thread(docker.ask, "AuthZRes", answer)
