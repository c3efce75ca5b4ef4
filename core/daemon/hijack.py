"""Taking over an HTTP connection after ``101 UPGRADED`` (attach, exec start).

aiohttp's parser treats only ``Upgrade: websocket`` as an upgrade, so after sending the 101 we swap
the transport's protocol for our own: bytes from the client go to the container's stdin, the
container's output is written straight to the transport with flow control.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.execdriver import AttachStreams

log = logging.getLogger(__name__)


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
#: moby/term's names of the control keys: ``ctrl-@`` is 0, ``ctrl-a`` 1 ... ``ctrl-_`` 31
_CTRL_KEYS = {f"ctrl-{ch}": code for code, ch in enumerate("@abcdefghijklmnopqrstuvwxyz[\\]^_")}


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's detach-key syntax (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``, ``DEL``) → the byte
    sequence, as moby/term's ``ToBytes``; none given (or empty) is the default, ctrl-p ctrl-q.
    InvalidParameter with dockerd's words for anything else."""
    if not spec:
        spec = DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if len(key.encode()) == 1:
            out += key.encode()
        elif key in _CTRL_KEYS:
            out.append(_CTRL_KEYS[key])
        elif key == "DEL":
            out.append(127)
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class _HijackedProtocol(asyncio.Protocol):
    def __init__(self, streams: AttachStreams, detach_keys: bytes = b"",
                 replaced: asyncio.BaseProtocol | None = None) -> None:
        self.streams = streams
        #: aiohttp's protocol this one took the connection from: it must hear that the
        #: connection is gone, or its server keeps it (and its request) for ever
        self.replaced = replaced
        self.closed = asyncio.get_running_loop().create_future()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.detach_keys = detach_keys
        self.held = b""  # a prefix of the detach sequence, not forwarded yet
        self.detached = False

    def data_received(self, data: bytes) -> None:
        w = self.streams.writer
        if self.detach_keys and w is not None:
            data = self.held + data
            self.held = b""
            idx = data.find(self.detach_keys)
            if idx >= 0:
                if idx and not w.is_closing():
                    w.write(data[:idx])
                self.detached = True
                if not self.closed.done():
                    self.closed.set_result(None)
                return
            for n in range(min(len(self.detach_keys) - 1, len(data)), 0, -1):
                if data.endswith(self.detach_keys[:n]):
                    data, self.held = data[:-n], data[-n:]
                    break
        if w is not None and not w.is_closing() and data:
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
        if self.replaced is not None:
            replaced, self.replaced = self.replaced, None
            with contextlib.suppress(Exception):
                replaced.connection_lost(exc)


async def serve_hijacked(request: web.Request,
                         streams: AttachStreams | Callable[[], Awaitable[AttachStreams]],
                         tty: bool, upgrade: bool = True,
                         detach_keys: bytes = b"",
                         replay: AsyncIterator[bytes] | None = None) -> web.StreamResponse:
    """Answer 101 (or 200 without an upgrade header) and pump ``streams`` over the connection.

    ``streams`` may be a coroutine function, called once the answer's headers are on the wire:
    an exec is started only then, as dockerd does. docker-py reads the headers through a
    buffered file and then the socket underneath it, so output that arrives in the same read
    as the headers is lost to it (about one ``exec_run`` in six, measured).

    With ``detach_keys`` (a TTY session with stdin), that sequence typed by the client detaches:
    the connection closes and the process keeps running, as with dockerd.

    ``replay`` (an attach's ``logs=1``) is sent first, the live output after it: as dockerd,
    the session is attached before the log is read, so output made meanwhile may come twice
    but is never missed."""
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
    if callable(streams):
        # the client may half-close at once (no stdin): that end-of-file must reach our
        # protocol, not aiohttp's, which would drop the connection meanwhile
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        streams = await streams()
    if transport is None or transport.is_closing():
        streams.close()
        return resp
    proto = _HijackedProtocol(streams, detach_keys if streams.writer is not None else b"",
                              replaced=transport.get_protocol())
    transport.set_protocol(proto)
    transport.resume_reading()
    try:
        if replay is not None:
            await _send_replay(replay, proto, transport)
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
        if proto.detached:
            with contextlib.suppress(Exception):
                await streams.detach()
        streams.close()
        if not transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                if transport.can_write_eof():
                    transport.write_eof()
            transport.close()
    return resp


#: seconds between an attach's answer and its log replay: docker-py reads the answer's headers
#: through a buffered file and the stream from the socket under it, so bytes that arrive with the
#: headers are lost to it; dockerd opens and decodes the log first, a pause clients rely on
REPLAY_PAUSE = 0.05


async def _send_replay(replay: AsyncIterator[bytes], proto: _HijackedProtocol, transport: Any) -> None:
    try:
        await asyncio.sleep(REPLAY_PAUSE)
        async for chunk in replay:
            await proto.can_write.wait()
            if transport.is_closing() or proto.closed.done():
                return
            transport.write(chunk)
    finally:
        aclose = getattr(replay, "aclose", None)
        if aclose is not None:
            await aclose()
