"""The userland proxy: published ports served from the daemon's event loop (Docker's
``docker-proxy``, without a process per port).

Binding the host socket is also how a host port is reserved: a port the daemon could not bind is
refused at once with a clear error, and a random one (``-P``, or ``-p 80``) is whatever port the
kernel picks from ``net.ipv4.ip_local_port_range``. Loopback traffic needs this proxy (DNAT to a
bridge address does not apply to 127.0.0.0/8); other traffic is normally DNAT'ed by the network
driver before it reaches the proxy.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from typing import Any

from dockyard.hookspecs.errors import Conflict, InvalidParameter

log = logging.getLogger(__name__)

UDP_IDLE = 60.0


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, server: "_UdpServer", addr: Any) -> None:
        self.server, self.addr = server, addr
        self.transport: asyncio.DatagramTransport | None = None
        self.last = asyncio.get_running_loop().time()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = asyncio.get_running_loop().time()
        if self.server.transport is not None:
            self.server.transport.sendto(data, self.addr)


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[Any, _UdpClient] = {}
        self.reaper: asyncio.Task[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.reaper = asyncio.ensure_future(self._reap())

    def datagram_received(self, data: bytes, addr: Any) -> None:
        client = self.clients.get(addr)
        if client is not None and client.transport is not None:
            client.transport.sendto(data)
            client.last = asyncio.get_running_loop().time()
            return
        asyncio.ensure_future(self._new_client(addr, data))

    async def _new_client(self, addr: Any, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _t, proto = await loop.create_datagram_endpoint(lambda: _UdpClient(self, addr),
                                                            remote_addr=self.target)
        except OSError as e:
            log.debug("udp proxy to %s: %s", self.target, e)
            return
        self.clients[addr] = proto
        proto.transport.sendto(first)  # type: ignore[union-attr]

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE / 4)
            now = asyncio.get_running_loop().time()
            for addr, c in list(self.clients.items()):
                if now - c.last > UDP_IDLE and c.transport is not None:
                    c.transport.close()
                    del self.clients[addr]

    def close(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
        for c in self.clients.values():
            if c.transport is not None:
                c.transport.close()
        self.clients.clear()
        if self.transport is not None:
            self.transport.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def proxy_target(ep: dict[str, Any], host_ip: str, port: int) -> tuple[str, int]:
    """Where the proxy of a port published on ``host_ip`` connects, for an endpoint (as the
    daemon records it): its IPv6 address for an IPv6 host address when it has one, else its
    IPv4 address (as docker-proxy does)."""
    if ":" in host_ip and ep.get("ipv6_address"):
        return ep["ipv6_address"], port
    return ep["ip_address"], port


class Proxy:
    """One published port: a bound host socket, proxying to ``target`` when ``enabled``."""

    def __init__(self, proto: str, host_ip: str, host_port: int, target: tuple[str, int]) -> None:
        self.proto, self.host_ip, self.target = proto, host_ip.strip("[]") or "0.0.0.0", target
        self.host_port = host_port
        self.sock: socket.socket | None = None
        self._server: asyncio.base_events.Server | None = None
        self._udp: _UdpServer | None = None
        self._conns: set[asyncio.Task[None]] = set()

    def bind(self) -> int:
        kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(self.host_ip).version == 6 \
                else socket.AF_INET
        except ValueError:
            raise InvalidParameter(f"invalid host IP address {self.host_ip!r} for a published "
                                   f"port") from None
        shown = f"[{self.host_ip}]" if family == socket.AF_INET6 else self.host_ip
        s = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # [::] is IPv6 only: 0.0.0.0 is bound on its own
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((self.host_ip, self.host_port))
        except OSError as e:
            s.close()
            raise Conflict(f"driver failed programming external connectivity: Bind for "
                           f"{shown}:{self.host_port} failed: {e.strerror}") from None
        s.setblocking(False)
        self.sock = s
        self.host_port = s.getsockname()[1]
        return self.host_port

    async def start(self) -> None:
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        if self.proto == "tcp":
            self._server = await asyncio.start_server(self._handle, sock=self.sock, backlog=128)
        else:
            target = self.target
            _t, self._udp = await loop.create_datagram_endpoint(lambda: _UdpServer(target),
                                                                sock=self.sock)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            try:
                ur, uw = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
            except (OSError, asyncio.TimeoutError):
                writer.close()
                return
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
            for w in (uw, writer):
                with contextlib.suppress(Exception):
                    w.close()
        finally:
            if task is not None:
                self._conns.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._conns):
            t.cancel()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None
