"""Work a request does in worker threads stops when its client hangs up.

aiohttp does not cancel a handler whose client went away (``handler_cancellation`` is off), and
a cancelled ``asyncio.to_thread`` leaves its thread running anyway. :func:`client_work` watches
the connection and opens a :func:`~dockyard.hookspecs.host.tarsafe.cancel_scope`: unpacking done in
threads started inside the block (``asyncio.to_thread`` copies the scope) stops at its next
chunk once the client is gone or the handler is cancelled (daemon shutdown).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any, AsyncIterator, Callable, TypeVar

from aiohttp import web

from dockyard.hookspecs.host import tarsafe

from .clients import client_gone

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL = 0.25


class ClientWork:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.cancel = threading.Event()

    def gone(self) -> bool:
        return client_gone(self.request)

    async def watch(self) -> None:
        while not self.cancel.is_set():
            if self.gone():
                log.info("%s %s: the client went away, stopping its work", self.request.method,
                         self.request.path)
                self.cancel.set()
                return
            await asyncio.sleep(POLL)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``asyncio.to_thread(fn, *args)``; if the handler is cancelled, the thread is told to
        stop and waited for, so that the handler's clean-up never races it."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.cancel.set()
            with contextlib.suppress(BaseException):
                await task
            raise


@contextlib.asynccontextmanager
async def client_work(request: web.Request) -> AsyncIterator[ClientWork]:
    """Inside the block, thread work of this request stops when its client hangs up."""
    work = ClientWork(request)
    watcher = asyncio.ensure_future(work.watch())
    try:
        with tarsafe.cancel_scope(work.cancel):
            yield work
    except BaseException:
        if work.cancel.is_set() or work.gone():
            log.info("%s %s: its work stopped (the client went away or the daemon is stopping)",
                     request.method, request.path)
        work.cancel.set()
        raise
    finally:
        watcher.cancel()
