"""Taking over an HTTP connection after ``101 UPGRADED`` (attach, exec start).

aiohttp's parser treats only ``Upgrade: websocket`` as an upgrade, so after sending the 101 we swap
the transport's protocol for our own: bytes from the client go to the container's stdin, the
container's output is written straight to the transport with flow control.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from dockyard.hookspecs.execdriver import AttachStreams

log = logging.getLogger(__name__)


class _HijackedProtocol(asyncio.Protocol):
    def __init__(self, streams: AttachStreams) -> None:
        self.streams = streams
        self.closed = asyncio.get_running_loop().create_future()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        w = self.streams.writer
        if w is not None and not w.is_closing():
            w.write(data)

    def eof_received(self) -> bool:
        # Docker clients half-close stdin (CloseWrite) and keep reading output until exit.
        w = self.streams.writer
        if w is not None and not w.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                w.write_eof()
        return True

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.can_write.set()
        if not self.closed.done():
            self.closed.set_result(None)


async def serve_hijacked(request: web.Request, streams: AttachStreams, tty: bool,
                         upgrade: bool = True) -> web.StreamResponse:
    """Answer 101 (or 200 without an upgrade header) and pump ``streams`` over the connection."""
    ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    if upgrade:
        resp = web.StreamResponse(status=101, reason="UPGRADED",
                                  headers={"Content-Type": ctype, "Connection": "Upgrade",
                                           "Upgrade": "tcp"})
    else:
        resp = web.StreamResponse(status=200, headers={"Content-Type": ctype})
    resp.force_close()
    await resp.prepare(request)
    transport: Any = request.transport
    if transport is None or transport.is_closing():
        streams.close()
        return resp
    proto = _HijackedProtocol(streams)
    transport.set_protocol(proto)
    transport.resume_reading()
    try:
        while True:
            read = asyncio.ensure_future(streams.reader.read(65536))
            done, _ = await asyncio.wait({read, proto.closed}, return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                read.cancel()
                break
            chunk = read.result()
            if not chunk:
                break
            await proto.can_write.wait()
            if transport.is_closing():
                break
            transport.write(chunk)
    finally:
        streams.close()
        if not transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                if transport.can_write_eof():
                    transport.write_eof()
            transport.close()
    return resp
