"""The daemon's clients as dockerd sees them: when one has gone away, and what it was answered.

aiohttp does not cancel a handler whose client disconnects (and cancelling every handler at any
point would interrupt work that must finish, as dockerd's does), so the handlers that only wait —
``wait``, ``logs -f``, ``events``, ``stats`` — :func:`race` what they wait for against the client's
connection and stop when it is gone. Everything else finds out at its next write, which the error
middleware reports at INFO (dockerd's "request cancelled by client"), not as a 5xx.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Awaitable, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

T = TypeVar("T")

#: how often a waiting handler looks at its client's connection
POLL_INTERVAL = 0.5


class ClientGone(ConnectionResetError):
    """The client closed its connection while its request was being served."""


def client_gone(request: web.Request) -> bool:
    """Whether the client of ``request`` has closed its connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def race(request: web.Request, aw: Awaitable[T]) -> T:
    """The result of ``aw``, unless the client goes away first: then ``aw`` is cancelled and
    :class:`ClientGone` raised."""
    task = asyncio.ensure_future(aw)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_INTERVAL)
            if done:
                return task.result()
            if client_gone(request):
                raise ClientGone(f"{request.method} {request.path}: the client went away")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # let it unwind (an async generator's __anext__ must)


async def race_iter(request: web.Request, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, until they end or the client goes away (:class:`ClientGone`)."""
    try:
        while True:
            try:
                yield await race(request, items.__anext__())
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


class AccessLogger(AbstractAccessLogger):
    """One DEBUG line per answered request (dockerd logs its API calls at debug): method, path,
    status. A request whose client went away is logged as 499."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %d %.3fs", request.method, request.path_qs, response.status, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


def access_log() -> dict[str, Any]:
    """The ``AppRunner`` arguments that install :class:`AccessLogger`."""
    return {"access_log": logging.getLogger("dockyard.access"), "access_log_class": AccessLogger}
