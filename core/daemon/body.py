"""Request bodies at the HTTP edge: Content-Type, size, read timeout, then the body's description.

- A JSON body must come as ``application/json`` (parameters allowed), as dockerd's
  ``httputils.CheckForJSON`` wants: a web page can POST ``text/plain`` to a loopback TCP
  listener without a CORS preflight, so such a body is refused before anything acts on it. No
  body and no Content-Type is fine (the docker CLI sends some POSTs that way).
- JSON bodies are limited to :data:`MAX_JSON_BODY` (dockerd has no limit; the largest body a real
  client sends, a create with an inline seccomp profile, is about 13 KB): a larger one is a 413
  naming the limit, refused from its Content-Length before it is read when it has one. Tar
  bodies (build, import, load, archive) stream to files and are not limited here.
- A client that stops sending a body for ``api-read-timeout`` seconds gets a 408 (JSON bodies
  and the tar bodies :func:`iter_body` streams); one that sends no request at all is
  disconnected after the same time by aiohttp's ``keepalive_timeout``. Streams the daemon writes
  (logs, events, attach, pull progress) have no such limit.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, InvalidParameter

from .. import schema

MAX_JSON_BODY = 8 << 20
#: seconds without a byte of the body (or of a first request) before giving up
DEFAULT_READ_TIMEOUT = 300.0


class PayloadTooLarge(DockyardError):
    status = 413


class RequestTimeout(DockyardError):
    status = 408


def _timeout(request: web.Request) -> float:
    return float(request.app.get("read_timeout") or DEFAULT_READ_TIMEOUT)


def _is_json(request: web.Request) -> bool:
    ctype = request.headers.get("Content-Type", "")
    return ctype.split(";", 1)[0].strip().lower() == "application/json"


def check_json_content_type(request: web.Request) -> None:
    """InvalidParameter unless the body is ``application/json`` (or there is no body)."""
    ctype = request.headers.get("Content-Type", "")
    if not ctype and not request.body_exists:
        return
    if not ctype:
        raise InvalidParameter("Content-Type header missing: a JSON body must be sent as "
                               "'application/json'")
    if not _is_json(request):
        raise InvalidParameter(f"unsupported Content-Type header ({ctype}): must be "
                               f"'application/json'")


#: where :func:`read_json_ahead` keeps a body it read before the handler
_READ_AHEAD = "dockyard.body.read_ahead"


async def read_json_ahead(request: web.Request) -> bytes | None:
    """The raw body of a request that carries JSON, read before its handler (for authorization
    plugins) and kept, so that :func:`read_limited` and :func:`iter_body` give the handler the
    same bytes; ``None`` for no body or a body of another type (never read ahead)."""
    if not request.body_exists or not _is_json(request):
        return None
    raw = await read_limited(request)
    request[_READ_AHEAD] = raw
    return raw


async def iter_body(request: web.Request) -> AsyncIterator[bytes]:
    """The body's chunks as they come; RequestTimeout if the client stalls."""
    if _READ_AHEAD in request:
        if request[_READ_AHEAD]:
            yield request[_READ_AHEAD]
        return
    timeout = _timeout(request)
    while True:
        try:
            data = await asyncio.wait_for(request.content.readany(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no request body data for {timeout:g} seconds") from None
        if not data:
            return
        yield data


async def read_limited(request: web.Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The whole body, at most ``limit`` bytes (PayloadTooLarge past it)."""
    if _READ_AHEAD in request:
        return request[_READ_AHEAD]
    too_large = PayloadTooLarge(f"request body too large: this engine accepts JSON bodies of at "
                                f"most {limit} bytes ({limit >> 20} MiB)")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    parts, size = [], 0
    async for data in iter_body(request):
        size += len(data)
        if size > limit:
            raise too_large
        parts.append(data)
    return b"".join(parts)


async def json_body(request: web.Request, body_type: type | None = None,
                    default: Any = None) -> Any:
    """The request's JSON body checked against ``body_type`` (a :mod:`dockyard.core.schema`
    description): a dict the services can trust; ``default`` when there is no body.
    Without ``body_type``, any JSON value (for bodies that have no description)."""
    check_json_content_type(request)
    raw = await read_limited(request)
    if not raw.strip():
        return default
    if body_type is None:
        return schema.loads(raw)
    return schema.decode(raw, body_type)
