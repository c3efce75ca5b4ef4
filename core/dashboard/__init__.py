"""The dashboard: a small web UI that ``dockyardd`` serves under ``/dashboard/``.

It is served by the daemon's own aiohttp application, on the listeners the API has, so it has
exactly the API's protection (TLS client verification on TCP, the socket's permissions on unix;
``dockyard dashboard`` forwards a loopback port to the unix socket for a browser). The page is
static HTML, CSS and vanilla JS shipped in the package (no build step, nothing fetched from
elsewhere) that reads the daemon's Docker API from the same origin: ``/containers/json``,
``/events``, ``/containers/{id}/stats``, ``/containers/{id}/logs``, ``/images/json``, ...

Cross-origin use is refused: a request whose ``Origin`` is not the origin it was sent to (another
page driving the API from a browser) gets a 403 before it reaches any handler. Docker clients
send no ``Origin`` and are not affected. The latest ``dockyard bench`` report is served, sandboxed,
from ``<data-root>/bench/latest.html`` when there is one.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from dockyard.hookspecs.errors import NotFound

from ..daemon.errors import error_response

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: the bench report the dashboard shows beside the engine's state, relative to data-root
BENCH_REPORT = os.path.join("bench", "latest.html")

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# the report is the bench tool's own HTML: shown in a frame of the dashboard, with no access to
# the API (a sandbox is an origin of its own, so the cross-origin check applies to it)
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts; default-src 'none'; img-src data:; "
                               "style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
}
_SAFE = ("GET", "HEAD", "OPTIONS")


def _static(name: str) -> web.FileResponse:
    path = os.path.join(STATIC, name)
    ext = os.path.splitext(name)[1]
    if "/" in name or name.startswith(".") or ext not in TYPES or not os.path.isfile(path):
        raise NotFound(f"no such dashboard file: {name}")
    return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": f"{TYPES[ext]}; charset=utf-8"})


async def index(request: web.Request) -> web.StreamResponse:
    return _static("index.html")


async def static(request: web.Request) -> web.StreamResponse:
    return _static(request.match_info["name"])


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/dashboard/")


async def bench_report(request: web.Request) -> web.StreamResponse:
    """The latest ``dockyard bench`` HTML report, if one was written into the data-root."""
    path = os.path.join(request.app["daemon"].config["data-root"], BENCH_REPORT)
    if not os.path.isfile(path):
        raise NotFound(f"no bench report at {path} (run `dockyard bench`)")
    return web.FileResponse(path, headers={**REPORT_HEADERS, "Content-Type": "text/html; charset=utf-8"})


def cross_origin(request: web.Request) -> str | None:
    """Why ``request`` comes from a page of another origin than the one it is sent to, or None.
    Browsers send ``Origin`` with every state-changing request (and ``Sec-Fetch-Site``)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != (request.host or "").lower():
            return f"Origin {origin} does not match Host {request.host}"
    elif request.headers.get("Sec-Fetch-Site") == "cross-site" and request.method not in _SAFE:
        return "a cross-site request"
    return None


@web.middleware
async def same_origin_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse requests made by a page of another origin (CSRF through a browser)."""
    why = cross_origin(request)
    if why is not None:
        return error_response(403, f"cross-origin request refused: {why}")
    return await handler(request)


def setup(app: web.Application) -> None:
    app.router.add_get("/dashboard", redirect)
    app.router.add_get("/dashboard/", index)
    app.router.add_get("/dashboard/static/{name}", static)
    app.router.add_get("/dashboard/bench/latest.html", bench_report)
