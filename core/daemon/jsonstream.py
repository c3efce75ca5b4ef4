"""Docker's newline-delimited JSON progress streams (pull, push, load, build).

Once the status line is out, a failure can only be told in the stream: an ``error`` message
(``{"errorDetail": {"message": ...}, "error": ...}``) that the docker CLI prints and docker-py
raises; the answer stays 200, as dockerd's. A client that went away is not told anything.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Any, Callable

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError

from .clients import ClientGone, client_gone

log = logging.getLogger(__name__)


class JsonStream:
    """Docker's newline-delimited JSON progress: run ``fn(progress, cancel)`` in a thread and
    stream what it reports; a failure after the headers went out becomes an ``error`` message."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        self.started = False

    async def write(self, msg: dict[str, Any]) -> None:
        if not self.started:
            await self.resp.prepare(self.request)
            self.started = True
        await self.resp.write(json.dumps(msg).encode() + b"\r\n")

    async def run(self, fn: Callable[..., Any]) -> Any:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def progress(msg: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(q.put_nowait, msg)

        task = asyncio.ensure_future(asyncio.to_thread(fn, progress, cancel))
        try:
            while True:
                getter = asyncio.ensure_future(q.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await self.write(getter.result())
                    continue
                getter.cancel()
                while not q.empty():
                    await self.write(q.get_nowait())
                return task.result()
        except BaseException:
            cancel.set()
            if not task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.shield(task)
            raise

    async def fail(self, exc: BaseException) -> web.StreamResponse:
        """Report ``exc`` in the stream (the status line is gone already) and end it."""
        if client_gone(self.request):  # nobody to tell: the error middleware notes it
            raise ClientGone(f"{self.request.method} {self.request.path}: the client went "
                             f"away ({type(exc).__name__}: {exc})") from exc
        if isinstance(exc, DockyardError):
            msg = exc.message
        else:
            log.error("%s %s failed", self.request.method, self.request.path, exc_info=exc)
            msg = f"internal error: {type(exc).__name__}: {exc}"
        await self.error(msg)
        return await self.finish()

    async def error(self, message: str) -> None:
        await self.write({"errorDetail": {"message": message}, "error": message})

    async def finish(self) -> web.StreamResponse:
        if not self.started:
            await self.resp.prepare(self.request)
        await self.resp.write_eof()
        return self.resp
