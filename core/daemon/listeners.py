"""Where ``dockyardd`` listens, and who may talk to it.

* ``unix://PATH``: mode 0660, owned by root and the socket group (``-G/--group``, daemon.json
  ``group``; by default ``dockyard`` when that group exists, as dockerd's ``docker``). A path
  where a live daemon answers is refused; a stale socket of a dead one is replaced. At exit the
  socket is unlinked only while it is still the one this daemon bound.
* ``tcp://ADDR:PORT``: refused without TLS unless plain TCP is asked for explicitly
  (``--tls=false`` or ``--tlsverify=false``): anyone who reaches the port is root on this host.
  Every listener without client verification is logged loudly and start-up is held back a
  second, as dockerd does. A TLS port answers a plain HTTP request with Go's
  ``400 Client sent an HTTP request to an HTTPS server.`` instead of a dropped connection.
"""
from __future__ import annotations

import asyncio
import contextlib
import grp
import ipaddress
import logging
import os
import socket
import ssl
import time
from asyncio import sslproto
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from dockyard.hookspecs.errors import DockyardError

from .. import config as configmod

log = logging.getLogger("dockyard.daemon")

DEFAULT_GROUP = "dockyard"
#: what Go's net/http answers when the first bytes on a TLS port are not a TLS handshake
PLAIN_HTTP_ON_TLS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_TLS_HANDSHAKE = 0x16          # the content type of a TLS record carrying a ClientHello
_SNIFF_TIMEOUT = 30.0


def targets(hosts: list[str]) -> list[tuple[str, Any]]:
    """``[("unix", path) | ("tcp", (host, port)) | ("fd", spec)]`` for ``-H`` values."""
    out: list[tuple[str, Any]] = []
    for h in hosts:
        if h.startswith("unix://"):
            out.append(("unix", h[len("unix://"):] or "/run/dockyard.sock"))
        elif h.startswith("tcp://"):
            u = urlparse(h)
            if not u.hostname or not u.port:
                raise DockyardError(f"invalid host {h!r}: expected tcp://ADDRESS:PORT")
            out.append(("tcp", (u.hostname, u.port)))
        elif h.startswith("fd://"):
            out.append(("fd", h[len("fd://"):]))
        else:
            raise DockyardError(f"invalid host {h!r}: expected unix://PATH, tcp://ADDRESS:PORT or fd://")
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def plain_tcp_opt_in(cfg: configmod.Config) -> bool:
    """``--tls=false`` or ``--tlsverify=false`` given on purpose (flag or daemon.json)."""
    return (("tls" in cfg.explicit and not cfg["tls"])
            or ("tlsverify" in cfg.explicit and not cfg["tlsverify"] and not cfg["tls"]))


def check_access(cfg: configmod.Config, where: list[tuple[str, Any]]) -> list[str]:
    """Refuse plain TCP that was not asked for; log the risk of what is allowed and hold start-up
    back (dockerd's second). Returns dockerd's ``info`` warnings for these listeners."""
    tcp = [f"{w[0]}:{w[1]}" for kind, w in where if kind == "tcp"]
    if not tcp:
        return []
    tls, verify = bool(cfg["tls"] or cfg["tlsverify"]), bool(cfg["tlsverify"])
    if not tls and not plain_tcp_opt_in(cfg):
        raise DockyardError(
            f"refusing to listen on tcp://{tcp[0]} without TLS: anyone who can reach it gets root "
            "on this host. Use --tlsverify with --tlscacert, --tlscert and --tlskey (`dockyard tls "
            "init DIR` makes them), or give --tls=false to accept unauthenticated plain TCP")
    warnings = []
    for addr in tcp:
        host = addr.rsplit(":", 1)[0]
        if verify:
            continue
        log.warning("Binding to IP address without --tlsverify is insecure and gives root access on "
                    "this machine to everyone who has access to your network. host=tcp://%s", addr)
        log.warning("Binding to an IP address, even on localhost, can also give access to scripts "
                    "run in a browser. Be safe out there! host=tcp://%s", addr)
        if not _is_loopback(host.strip("[]")):
            log.warning("tcp://%s is reachable from other hosts: anyone on the network controls "
                        "this daemon%s", addr, "" if tls else ", and everything it sends is readable")
        scheme, what = ("https", "without TLS client verification") if tls else ("http", "without encryption")
        warnings.append(f"WARNING: API is accessible on {scheme}://{addr} {what}.\n"
                        "         Access to the remote API is equivalent to root access on the host.")
    if warnings:
        time.sleep(1)  # dockerd's pause, so the warning is seen
    return warnings


def ssl_context(cfg: configmod.Config) -> ssl.SSLContext | None:
    if not (cfg["tls"] or cfg["tlsverify"]):
        return None
    if not cfg["tlscert"] or not cfg["tlskey"]:
        raise DockyardError("--tls/--tlsverify need --tlscert and --tlskey")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg["tlscert"], cfg["tlskey"])
        if cfg["tlsverify"]:
            if not cfg["tlscacert"]:
                raise DockyardError("--tlsverify needs --tlscacert")
            ctx.load_verify_locations(cfg["tlscacert"])
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise DockyardError(f"invalid TLS configuration: {exc}") from None
    return ctx


def socket_gid(cfg: configmod.Config) -> int:
    """The group of the unix socket: ``group`` if set (it must exist), else ``dockyard`` if that
    group exists, else root's."""
    name = cfg["group"]
    try:
        if name:
            return grp.getgrgid(int(name)).gr_gid if name.isdigit() else grp.getgrnam(name).gr_gid
        return grp.getgrnam(DEFAULT_GROUP).gr_gid
    except KeyError:
        if name:
            raise DockyardError(f"group {name!r} for the API socket does not exist") from None
        log.debug("no %s group: the API socket stays root:root", DEFAULT_GROUP)
        return 0


def check_socket(path: str) -> None:
    """Refuse a socket path where a live daemon answers; remove a dead daemon's socket."""
    if not os.path.exists(path):
        return
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except OSError:
        os.unlink(path)  # stale socket of a dead daemon
    else:
        raise DockyardError(f"another daemon is already listening on {path}")
    finally:
        s.close()


class UnixListener:
    """A unix-socket site whose file is removed at exit only if it is still this one's."""

    def __init__(self, runner: web.AppRunner, path: str, gid: int) -> None:
        self.path, self.gid = path, gid
        self.site = web.UnixSite(runner, path)
        self._ident: tuple[int, int] | None = None

    async def start(self) -> None:
        await self.site.start()
        os.chown(self.path, 0, self.gid)
        os.chmod(self.path, 0o660)
        st = os.stat(self.path)
        self._ident = (st.st_dev, st.st_ino)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._ident:
                os.unlink(self.path)


class _HalfCloseSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, letting the peer half-close as Go's ``tls.Conn`` does.

    The docker CLI ends stdin of ``run``/``attach``/``exec`` with ``CloseWrite``, which on TLS
    is a ``close_notify`` alert, and keeps reading the output. asyncio answers any close_notify
    by shutting the connection down, so the output would be lost; here an application protocol
    whose ``eof_received`` returns true (the hijacked streams) keeps the write side until it
    closes the transport itself."""

    _peer_closed = False
    _keep_once = False

    def _do_read(self) -> None:
        if not self._peer_closed:  # after close_notify there is nothing more to read
            super()._do_read()  # type: ignore[misc]  # asyncio's, not in typeshed

    def _call_eof_received(self) -> None:
        if self._app_state != sslproto.AppProtocolState.STATE_CON_MADE:  # type: ignore[has-type]
            return
        self._app_state = sslproto.AppProtocolState.STATE_EOF
        try:
            keep = self._app_protocol.eof_received()  # type: ignore[attr-defined]
        except Exception as ex:  # noqa: BLE001 - as asyncio's own
            self._fatal_error(ex, "Error calling eof_received()")
            return
        if keep and self._state == sslproto.SSLProtocolState.WRAPPED:  # type: ignore[attr-defined]
            self._peer_closed = self._keep_once = True

    def _start_shutdown(self) -> None:
        if self._keep_once:  # the close_notify that was just read: the app keeps writing
            self._keep_once = False
            return
        super()._start_shutdown()


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def start_tls(conn: socket.socket, app: asyncio.Protocol, ctx: ssl.SSLContext) -> None:
    """Serve ``app`` over TLS on the accepted ``conn`` (handshake included)."""
    loop = asyncio.get_running_loop()
    handshake = loop.create_future()
    proto = _HalfCloseSSLProtocol(loop, app, ctx, handshake, server_side=True,
                                  ssl_handshake_timeout=_SNIFF_TIMEOUT)  # type: ignore[arg-type]
    await loop.connect_accepted_socket(lambda: proto, conn)
    await handshake


class TLSSite(web.BaseSite):
    """A TCP site serving TLS that peeks at each connection's first byte: a TLS handshake goes
    on to aiohttp over TLS, anything else (plain HTTP) gets Go's 400 and is closed."""

    __slots__ = ("_host", "_port", "_sock", "_accepting", "_sniffing")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, ssl_context: ssl.SSLContext,
                 sock: socket.socket | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._sock = sock  # a listening socket already bound (systemd's), else bound at start
        self._accepting: asyncio.Task[None] | None = None
        self._sniffing: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        if self._sock is None:
            info = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM,
                                      flags=socket.AI_PASSIVE)[0]
            self._sock = socket.create_server(info[4][:2], family=info[0], backlog=self._backlog)
        self._sock.setblocking(False)
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            task = loop.create_task(self._sniff(conn))
            self._sniffing.add(task)
            task.add_done_callback(self._sniffing.discard)

    async def _sniff(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            readable = loop.create_future()
            loop.add_reader(conn.fileno(), _set_once, readable)
            try:
                await asyncio.wait_for(readable, _SNIFF_TIMEOUT)
            finally:
                loop.remove_reader(conn.fileno())
            first = conn.recv(1, socket.MSG_PEEK)
            if first and first[0] == _TLS_HANDSHAKE:
                server = self._runner.server
                assert server is not None and self._ssl_context is not None
                await start_tls(conn, server(), self._ssl_context)
                return
            if first:
                with contextlib.suppress(OSError):
                    while conn.recv(65536):  # what was sent, so closing does not reset
                        pass
                with contextlib.suppress(OSError):
                    conn.send(PLAIN_HTTP_ON_TLS)
                    conn.shutdown(socket.SHUT_WR)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            log.debug("TLS connection on %s failed: %s", self.name, exc)
        conn.close()

    async def stop(self) -> None:
        for task in [self._accepting, *self._sniffing]:
            if task is not None:
                task.cancel()
        if self._sock is not None:
            self._sock.close()
        await super().stop()


async def start_activated(runner: web.AppRunner, sockets: list[socket.socket],
                          sslctx: ssl.SSLContext | None) -> None:
    """``-H fd://[SPEC]``: serve the listening sockets systemd passed. TLS applies to inherited
    TCP sockets as to ``tcp://`` ones (plain HTTP answered with the 400, half-close kept)."""
    for sock in sockets:
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        name = sock.getsockname()
        site: web.BaseSite = (TLSSite(runner, name[0], name[1], sslctx, sock) if tcp and sslctx
                              else web.SockSite(runner, sock))
        await site.start()
        log.info("API listening on %s (fd %d, socket activation)",
                 f"tcp://{name[0]}:{name[1]}" if tcp else name, sock.fileno())
