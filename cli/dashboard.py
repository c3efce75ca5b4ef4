"""``dockyard dashboard``: open the daemon's dashboard in a browser.

A browser cannot speak HTTP over a unix socket, so this command forwards a loopback port to the
daemon (``127.0.0.1``, a random port unless ``--port``). That port is never open to anyone who
finds it: the URL printed carries a one-time token; its first use sets a session cookie
(``HttpOnly``, ``SameSite=Strict``) and every request forwarded afterwards must carry it. A
request whose ``Host`` is not this port's address (DNS rebinding) or whose ``Origin`` is another
page's (CSRF) is refused before it is forwarded. Protocol upgrades (attach, exec) are not
forwarded: the dashboard does not use them.

With a TCP daemon (``-H tcp://...``) the forwarder connects with the command line's TLS
settings, so the browser needs no client certificate of its own.
"""
from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import sys
from typing import Any
from urllib.parse import urlsplit

import click

COOKIE = "dockyard_dashboard_{port}"
# hop-by-hop headers, and those that are the forwarder's business, not the daemon's
_DROP_REQUEST = {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer",
                 "transfer-encoding", "upgrade", "cookie", "origin", "referer", "content-length"}
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class Forwarder:
    """The loopback side of the dashboard: checks each request, then relays it to the daemon."""

    def __init__(self, client: Any) -> None:
        self.client = client                       # the CLI's: its address and TLS settings
        self.host = client.host
        self.token = secrets.token_urlsafe(24)     # in the URL, good once
        self.session = secrets.token_urlsafe(32)   # in the cookie, for every request after
        self.token_used = False
        self.port = 0
        self._session: Any = None
        self._base = ""

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}/dashboard/?token={self.token}"

    def _connector(self) -> Any:
        import aiohttp
        c = self.client
        if c.kind == "unix":
            self._base = "http://localhost"
            return aiohttp.UnixConnector(path=c.addr)
        if c.tls:
            self._base = f"https://{c.addr[0]}:{c.addr[1]}"
            return aiohttp.TCPConnector(ssl=c._ssl_context())
        self._base = f"http://{c.addr[0]}:{c.addr[1]}"
        return aiohttp.TCPConnector()

    def refusal(self, request: Any) -> tuple[int, str] | None:
        """Why ``request`` must not be forwarded, or None; sets nothing."""
        if (request.host or "").lower() not in (self.authority, f"localhost:{self.port}"):
            return 403, f"wrong Host {request.host!r}: open {self.authority}"
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() not in (self.authority, f"localhost:{self.port}"):
            return 403, f"cross-origin request from {origin} refused"
        if request.headers.get("Upgrade"):
            return 400, "protocol upgrades (attach, exec) are not forwarded by the dashboard"
        return None

    async def handle(self, request: Any) -> Any:
        from aiohttp import web
        refused = self.refusal(request)
        if refused:
            return web.Response(status=refused[0], text=refused[1] + "\n")
        token = request.query.get("token")
        if token is not None:
            if self.token_used or not hmac.compare_digest(token, self.token):
                return web.Response(status=403, text="this dashboard link is invalid or was already "
                                                     "used: run `dockyard dashboard` again\n")
            self.token_used = True
            resp = web.HTTPSeeOther(request.path)  # the same page, without the token in its URL
            resp.set_cookie(COOKIE.format(port=self.port), self.session, httponly=True,
                            samesite="Strict", path="/")
            return resp
        cookie = request.cookies.get(COOKIE.format(port=self.port), "")
        if not hmac.compare_digest(cookie, self.session):
            return web.Response(status=403, text="no dashboard session: open the link printed by "
                                                 "`dockyard dashboard`\n")
        return await self.relay(request)

    async def relay(self, request: Any) -> Any:
        """Send ``request`` on to the daemon and stream its answer back as it comes (logs that
        are followed, events, stats)."""
        import aiohttp
        from aiohttp import web
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in _DROP_REQUEST and not k.lower().startswith("sec-")}
        body = request.content if request.body_exists else None
        try:
            upstream = await self._session.request(request.method, self._base + request.path_qs,
                                                   headers=headers, data=body,
                                                   allow_redirects=False, auto_decompress=False)
        except aiohttp.ClientError as exc:
            return web.json_response({"message": f"cannot reach the daemon at {self.host}: {exc}"},
                                     status=502)
        async with upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in _DROP_RESPONSE:
                    resp.headers.add(k, v)
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def serve(self, port: int, ready: Any) -> None:
        import aiohttp
        from aiohttp import web
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        self._session = aiohttp.ClientSession(connector=self._connector(), timeout=timeout,
                                              cookie_jar=aiohttp.DummyCookieJar())
        app = web.Application(client_max_size=16 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        try:
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready(self)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            await self._session.close()


def _graphical() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command(short_help="Open the dashboard: containers, images, logs and stats in a browser")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="loopback port to serve the dashboard on (0: any free one)")
@click.option("--open/--no-open", "open_", default=None,
              help="open a web browser [default: when a graphical session is there]")
@click.pass_obj
def dashboard(opts: Any, port: int, open_: bool | None) -> None:
    """Serve the daemon's dashboard on 127.0.0.1 and print its one-time link.

    The page follows the daemon live (containers, stats, logs, events) and can start, stop,
    restart and remove containers. The link works once, in one browser; Ctrl-C ends it.
    A daemon listening on TCP with TLS serves the same page itself at https://HOST:PORT/dashboard/.
    """
    opts.client.request("GET", "/_ping").read()  # a daemon that is not there: say so now
    opts.client.close()
    fwd = Forwarder(opts.client)

    def ready(f: Forwarder) -> None:
        click.echo(f"dockyard dashboard: {f.url}")
        click.echo("(a one-time link for one browser; Ctrl-C stops the dashboard)", err=True)
        sys.stdout.flush()
        if open_ or (open_ is None and _graphical()):
            import webbrowser
            webbrowser.open(f.url)

    asyncio.run(fwd.serve(port, ready))
