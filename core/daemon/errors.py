"""Errors → HTTP, in one place: Docker's ``{"message": ...}`` body with the status of the error.

As dockerd's ``httputils.WriteJSON``: ``Content-Type`` is exactly ``application/json`` (the docker
CLI decodes an error body only then; with ``; charset=utf-8`` it prints the raw JSON) and the body
is compact JSON and a newline. A client that went away is normal, not an error: logged at INFO,
as dockerd's "request cancelled by client", never answered with a 5xx or a traceback.
"""
from __future__ import annotations

import json
import logging
from typing import Awaitable, Callable

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, NotModified

from .clients import client_gone

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: nginx's "client closed request": what a request whose client went away is logged as
CLIENT_CLOSED = 499


def json_bytes(value: object) -> bytes:
    """Compact JSON and a newline, non-ASCII kept as is: what Go's json.Encoder writes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json_bytes({"message": message}),
                        headers={"Content-Type": "application/json"})


def _http_exception(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status in (404, 405):  # no such route, or not with this method: dockerd's words
        return error_response(404, "page not found")
    msg = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
    return error_response(exc.status, msg or exc.reason)


def _cancelled(request: web.Request, exc: BaseException) -> web.Response:
    log.info("%s %s: request cancelled by client (%s)", request.method, request.path, exc)
    return web.Response(status=CLIENT_CLOSED)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotModified:
        return web.Response(status=304)
    except DockyardError as exc:
        if client_gone(request):  # its work stopped because it went away
            return _cancelled(request, exc)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return error_response(exc.status, exc.message or type(exc).__name__)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_exception(exc)
    except ConnectionError as exc:
        if not client_gone(request):  # a peer of ours (supervisor, registry) went away
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
        return _cancelled(request, exc)
    except NotImplementedError as exc:  # a driver without an optional operation
        return error_response(501, str(exc) or "not implemented")
    except ValueError as exc:
        # a value a parser refused (an address, a number in a string): the client's fault.
        # Types are checked at the edge (dockyard.core.schema): a TypeError or KeyError here
        # is a bug, and a 500 with its traceback in the log says so.
        log.info("%s %s: bad request: %r", request.method, request.path, exc)
        return error_response(400, f"invalid request: {exc}")
    except Exception as exc:  # noqa: BLE001 - never a traceback to the client
        from ..reserve import disk_full
        if disk_full(exc):
            log.error("%s %s: no space left on device: %s", request.method, request.path, exc)
            return error_response(500, f"no space left on device: {exc}")
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

