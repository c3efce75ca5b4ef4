"""Errors → HTTP, in one place: Docker's ``{"message": ...}`` body with the status of the error."""
from __future__ import annotations

import json
import logging
from typing import Awaitable, Callable

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError, NotModified

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"message": message}) + "\n",
                        content_type="application/json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotModified:
        return web.Response(status=304)
    except DockyardError as exc:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return error_response(exc.status, exc.message or type(exc).__name__)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        msg = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, msg or exc.reason)
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

