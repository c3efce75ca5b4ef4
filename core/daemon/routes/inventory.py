"""dockyard's own route (not in Docker's API): ``GET /dockyard/plugins`` — every driver and
plugin the daemon found, its package, version and state (``dockyard plugins ls``)."""
from __future__ import annotations

import asyncio

from aiohttp import web

from ... import inventory
from ..app import route


async def plugins(request: web.Request) -> web.Response:
    # reading distributions' metadata touches many small files: off the event loop
    rows = await asyncio.to_thread(inventory.of_daemon, request.app["daemon"])
    return web.json_response(rows)


def setup(app: web.Application) -> None:
    route(app, "GET", "/dockyard/plugins", plugins)
