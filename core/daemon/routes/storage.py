"""dockyard's own storage routes (not in Docker's API): ``POST /dockyard/storage/migrate``.

``?to=DRIVER`` (and ``opt=key=value``, repeatable, the new driver's storage options) moves every
image layer and stopped container's layer to DRIVER (see :mod:`dockyard.core.storage`). The
answer streams JSON lines as ``docker pull`` does: ``{"status", "id", "progress"}`` per layer,
``{"error", "errorDetail"}`` if it fails (the old driver then stays in charge).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import Conflict, DriverNotSupported, InvalidParameter

from ... import storage
from ...config import parse_opts
from ..app import route


async def migrate(request: web.Request) -> web.StreamResponse:
    d = request.app["daemon"]
    to = request.query.get("to", "")
    if not to:
        raise InvalidParameter("to: the storage driver to migrate to must be given")
    opts = parse_opts(request.query.getall("opt", []), "opt")
    if getattr(d, "migrating", False):
        raise Conflict("a storage migration is already in progress")
    storage.check_idle(d)
    if to == d.graph.name:
        raise InvalidParameter(f"the storage driver is already {to}")
    greg = d.registries["graph"]
    greg.get_class(to)  # DriverNotFound lists the installed ones
    d.migrating = True
    try:
        try:
            new = await asyncio.to_thread(d.create_graph, to, opts)
        except DriverNotSupported as exc:
            raise InvalidParameter(f"storage driver {to} is not supported on this host: "
                                   f"{exc.reason}") from None
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def progress(msg: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        task = asyncio.ensure_future(asyncio.to_thread(storage.migrate, d, new, progress))
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await resp.write(json.dumps(getter.result()).encode() + b"\r\n")
                continue
            getter.cancel()
            break
        while not queue.empty():
            await resp.write(json.dumps(queue.get_nowait()).encode() + b"\r\n")
        try:
            result = task.result()
        except Exception as exc:  # noqa: BLE001 - reported in the stream, as docker pull does
            msg = f"migration to {to} failed, {d.graph.name} is still in use: {exc}"
            await resp.write(json.dumps({"error": msg, "errorDetail": {"message": msg}}).encode() + b"\r\n")
        else:
            note = ""
            if d.config["storage-driver"] and d.config["storage-driver"] != to:
                note = (f"; the daemon's configuration names storage-driver "
                        f"{d.config['storage-driver']}: change it to {to} before the next start")
            await resp.write(json.dumps({
                "status": f"Migrated {result['layers']} image layer(s) and {result['containers']} "
                          f"container(s) from {result['from']} to {result['to']}; now using "
                          f"{result['to']}{note}", "result": result}).encode() + b"\r\n")
        await resp.write_eof()
        return resp
    finally:
        d.migrating = False


def setup(app: web.Application) -> None:
    route(app, "POST", "/dockyard/storage/migrate", migrate)
