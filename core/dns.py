"""The embedded DNS server: containers resolve each other by name and alias.

Like Docker's, it answers at ``127.0.0.11:53`` *inside each container's network namespace*: the
daemon opens one UDP socket per container, in that container's namespace (a thread joins it just
long enough to create and bind the socket), and serves every socket from its event loop. Why this
rather than one server on each bridge's gateway address:

* the socket a query arrives on says which container asks, so answers are scoped to the networks
  that container is on (isolation holds for names too, whatever the firewall does);
* it works the same for internal networks and for networks of any driver, needs no firewall rule
  to let containers reach the gateway, and nothing listens on a host address.

It answers ``A`` and ``AAAA`` queries for those names with the containers' IPv4 and IPv6
addresses. Queries for names it does not know are forwarded, as dockerd's are: to the
container's own servers (``--dns``) or the daemon's (``dns`` in daemon.json), from the
container's namespace; with neither, to the host's resolvers (:mod:`.resolvconf`), from the
daemon's namespace (so a loopback resolver of the host works). With no server anywhere they get
NXDOMAIN at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from typing import Any, Callable

from dockyard.hookspecs.host import ns

from .resolvconf import HostResolvConf

log = logging.getLogger(__name__)

ADDRESS = "127.0.0.11"
QTYPE_A, QTYPE_AAAA, QCLASS_IN = 1, 28, 1
RCODE_NXDOMAIN, RCODE_SERVFAIL, RCODE_REFUSED, RCODE_FORMERR = 3, 2, 5, 1
TTL = 600

Resolver = Callable[[str, str], "list[str] | None"]
#: an upstream server, and whether queries go to it from the container's namespace (else the
#: daemon's)
Upstream = tuple[str, bool]


def parse_query(data: bytes) -> tuple[int, int, str, int, int, int]:
    """``(id, flags, name, qtype, qclass, end of question)`` of a one-question query."""
    if len(data) < 12:
        raise ValueError("short packet")
    qid, flags, qd = struct.unpack(">HHH", data[:6])
    if qd != 1:
        raise ValueError("expected one question")
    labels, pos = [], 12
    while True:
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(data[pos:pos + n].decode("ascii", "replace"))
        pos += n
    qtype, qclass = struct.unpack(">HH", data[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, qclass, pos + 4


def build_reply(query: bytes, qend: int, flags: int, rcode: int, addresses: list[str],
                qtype: int = QTYPE_A) -> bytes:
    """The reply to ``query``: the ``addresses`` of the family ``qtype`` asks for (``A``:
    IPv4, ``AAAA``: IPv6; none for other types) as answers."""
    qid = query[:2]
    rd = flags & 0x0100
    hdr_flags = 0x8000 | 0x0400 | rd | 0x0080 | (flags & 0x7800) | rcode  # QR AA RD RA opcode
    want = {QTYPE_A: 4, QTYPE_AAAA: 6}.get(qtype)
    packed = [ipaddress.ip_address(a).packed for a in addresses]
    packed = [p for p in packed if want and len(p) == (4 if want == 4 else 16)]
    out = bytearray(qid + struct.pack(">HHHHH", hdr_flags, 1, len(packed), 0, 0))
    out += query[12:qend]
    for p in packed:
        out += struct.pack(">HHHIH", 0xC00C, qtype, QCLASS_IN, TTL, len(p)) + p
    return bytes(out)


class _Server(asyncio.DatagramProtocol):
    def __init__(self, owner: "DnsServer", key: str) -> None:
        self.owner, self.key = owner, key
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            reply = self.owner.answer(self.key, data)
        except Exception:  # noqa: BLE001 - a bad packet must not hurt the server
            log.debug("dns: bad query from %s", addr, exc_info=True)
            return
        if reply:
            self.transport.sendto(reply, addr)  # type: ignore[union-attr]
        elif reply is None and self.owner.upstreams_for(self.key):
            asyncio.ensure_future(self._forward(data, addr))

    async def _forward(self, data: bytes, addr: Any) -> None:
        reply = await self.owner.forward(self.key, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsServer:
    def __init__(self, resolve: Resolver, upstreams: list[str] | None = None,
                 host: HostResolvConf | None = None) -> None:
        self.resolve = resolve
        self.upstreams = [u for u in (upstreams or []) if u]
        self.host = host or HostResolvConf()
        self.servers: dict[str, tuple[asyncio.DatagramTransport, str]] = {}
        #: a container's own servers (``--dns``), in place of the daemon's
        self.own_upstreams: dict[str, list[str]] = {}

    def upstreams_for(self, key: str) -> list[Upstream]:
        mine = self.own_upstreams.get(key) or self.upstreams
        if mine:
            return [(u, True) for u in mine]
        return [(u, False) for u in self.host.get().nameservers]

    def answer(self, key: str, data: bytes) -> bytes | None:
        """The reply to ``data``; ``b""`` to drop it; None to forward it upstream."""
        try:
            _qid, flags, name, qtype, qclass, qend = parse_query(data)
        except (ValueError, IndexError, struct.error):
            return None if self.upstreams_for(key) else (data[:2] + b"\x80\x01" + bytes(8) if len(data) >= 12 else None)
        if flags & 0x8000:
            return b""  # a response sent to us: ignore
        addrs = self.resolve(key, name.lower().rstrip(".")) if qclass == QCLASS_IN else None
        if addrs:
            return build_reply(data, qend, flags, 0, addrs, qtype)
        if self.upstreams_for(key):
            return None
        return build_reply(data, qend, flags, RCODE_NXDOMAIN, [])

    async def forward(self, key: str, data: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for server, in_container in self.upstreams_for(key):
            path = self.servers.get(key, (None, ""))[1] if in_container else ""
            try:
                family, address = _server_address(server)
                sock = await asyncio.to_thread(ns.in_netns, path, _udp_socket, family) if path \
                    else _udp_socket(family)
            except OSError:
                continue
            try:
                await loop.sock_connect(sock, address)
                await loop.sock_sendall(sock, data)
                return await asyncio.wait_for(loop.sock_recv(sock, 4096), 3)
            except (OSError, asyncio.TimeoutError):
                continue
            finally:
                sock.close()
        return None

    async def add(self, key: str, netns_path: str, upstreams: list[str] | None = None) -> None:
        """Serve ``127.0.0.11:53`` in the namespace at ``netns_path`` for container ``key``;
        names it does not know go to ``upstreams`` (the container's ``--dns``), else to the
        daemon's."""
        if upstreams:
            self.own_upstreams[key] = [u for u in upstreams if u]
        if key in self.servers:
            return
        sock = await asyncio.to_thread(ns.in_netns, netns_path, _bound_socket)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Server(self, key), sock=sock)
        self.servers[key] = (transport, netns_path)

    def remove(self, key: str) -> None:
        self.own_upstreams.pop(key, None)
        entry = self.servers.pop(key, None)
        if entry is not None:
            with contextlib.suppress(Exception):
                entry[0].close()

    def close(self) -> None:
        for key in list(self.servers):
            self.remove(key)


def _udp_socket(family: int = socket.AF_INET) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setblocking(False)
    return s


def _server_address(server: str) -> tuple[int, Any]:
    """The socket family and address of name server ``server`` (an IP address, IPv6 with an
    optional ``%zone``), port 53; no name is looked up."""
    family, _, _, _, address = socket.getaddrinfo(server, 53, type=socket.SOCK_DGRAM,
                                                  flags=socket.AI_NUMERICHOST)[0]
    return family, address


def _bound_socket() -> socket.socket:
    s = _udp_socket()
    try:
        s.bind((ADDRESS, 53))
    except BaseException:
        s.close()
        raise
    return s
