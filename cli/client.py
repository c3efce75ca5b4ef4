"""A small HTTP/1.1 client for the Docker Engine API over a unix socket or TCP (+TLS).

Why not ``http.client``: importing it pulls in the ``email`` package, which costs about as much as
importing click itself, and the CLI is on the hot path of ``dockyard run``. The subset of HTTP/1.1
spoken here is what the Engine API needs: keep-alive on one connection per invocation,
``Content-Length``/chunked/until-close bodies, chunked request bodies for uploads, and connection
hijacking after ``101 UPGRADED`` for attach.
"""
from __future__ import annotations

import json
import socket
import sys
from typing import Any, Iterable, Iterator

API_VERSION = "1.45"
DEFAULT_HOST = "unix:///run/dockyard.sock"
_DEBUG = False


class DaemonError(Exception):
    """The daemon answered 4xx/5xx; ``message`` is its ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    """The daemon could not be reached."""


def parse_host(host: str) -> tuple[str, Any]:
    """``unix://PATH`` / ``tcp://HOST:PORT`` / ``HOST:PORT`` → (``"unix"``, path) or (``"tcp"``, (host, port))."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path:
            raise ValueError(f"invalid host {host!r}: empty socket path")
        return "unix", path
    if host.startswith("/"):
        return "unix", host
    rest = host
    for prefix in ("tcp://", "http://", "https://"):
        if host.startswith(prefix):
            rest = host[len(prefix):]
            break
    else:
        if "://" in host:
            raise ValueError(f"invalid host {host!r}: only unix:// and tcp:// are supported")
    rest = rest.split("/", 1)[0]
    if not rest:
        raise ValueError(f"invalid host {host!r}")
    if rest.startswith("["):  # [v6]:port
        h, _, p = rest[1:].partition("]")
        p = p.lstrip(":")
    elif rest.count(":") == 1:
        h, p = rest.split(":")
    else:
        h, p = rest, ""
    try:
        port = int(p) if p else 2375
    except ValueError:
        raise ValueError(f"invalid host {host!r}: bad port {p!r}") from None
    return "tcp", (h or "127.0.0.1", port)


class Response:
    """One HTTP response read from a buffered socket file."""

    def __init__(self, conn: "Connection", status: int, reason: str, headers: dict[str, str],
                 method: str) -> None:
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._fp = conn.fp
        self._done = False
        te = headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        self._chunk_left = 0
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._length: int | None = 0
        elif self._chunked:
            self._length = None
        elif "content-length" in headers:
            self._length = int(headers["content-length"])
        else:
            self._length = None  # until close
        self._keep = (headers.get("connection", "").lower() != "close"
                      and (self._chunked or self._length is not None))
        if self._length == 0 and not self._chunked:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.conn._release(self._keep)

    def read1(self, n: int = 65536) -> bytes:
        """Return some body bytes (blocking until at least one is available); b"" at the end."""
        if self._done:
            return b""
        fp = self._fp
        if self._chunked:
            if self._chunk_left == 0:
                line = fp.readline()
                if not line:
                    self._keep = False
                    self._finish()
                    return b""
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = fp.readline()
                        if t in (b"\r\n", b"\n", b""):
                            break
                    self._finish()
                    return b""
                self._chunk_left = size
            data = fp.read1(min(n, self._chunk_left))
            if not data:
                self._keep = False
                self._finish()
                return b""
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                fp.readline()  # CRLF after the chunk
            return data
        if self._length is None:
            data = fp.read1(n)
            if not data:
                self._finish()
            return data
        data = fp.read1(min(n, self._length))
        if not data:
            self._keep = False
            self._finish()
            return b""
        self._length -= len(data)
        if self._length == 0:
            self._finish()
        return data

    def iter_chunks(self) -> Iterator[bytes]:
        while True:
            data = self.read1()
            if not data:
                return
            yield data

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())

    def iter_lines(self) -> Iterator[bytes]:
        buf = b""
        for data in self.iter_chunks():
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line
        if buf:
            yield buf

    def json(self) -> Any:
        body = self.read()
        return json.loads(body) if body.strip() else None

    def close(self) -> None:
        if not self._done:
            self._keep = False
            self._finish()


def json_messages(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The messages of a JSON-lines stream (pull, push, build, load progress): blank and
    undecodable lines skipped; DaemonError for a message that carries an error, as the docker
    CLI stops on one."""
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("error") or msg.get("errorDetail"):
            raise DaemonError(500, msg.get("error") or (msg.get("errorDetail") or {}).get("message", ""))
        yield msg


class Connection:
    """One socket to the daemon, re-used for consecutive requests when the server allows it."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.sock = client._open_socket()
        self.fp = self.sock.makefile("rb")
        self.busy = False
        self.closed = False

    def _release(self, keep: bool) -> None:
        self.busy = False
        if not keep:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.fp.close()
            finally:
                self.sock.close()

    def send_request(self, method: str, path: str, headers: dict[str, str],
                     body: bytes | Iterable[bytes] | None) -> None:
        hdrs = {"Host": self.client.host_header, "User-Agent": "dockyard-cli/0.1"}
        hdrs.update(headers)
        chunked = body is not None and not isinstance(body, (bytes, bytearray))
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        elif body is not None:
            hdrs["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT"):
            hdrs["Content-Length"] = "0"
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        if _DEBUG:
            print(f"DEBU[cli] {method} {path}", file=sys.stderr)
        self.busy = True
        sock = self.sock
        if chunked:
            sock.sendall(head.encode("latin-1"))
            for data in body:  # type: ignore[union-attr]
                if data:
                    sock.sendall(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head.encode("latin-1") + (bytes(body) if body else b""))

    def read_response(self, method: str) -> Response:
        fp = self.fp
        while True:
            line = fp.readline(65537)
            if not line:
                self.close()
                raise ConnectionResetError("the daemon closed the connection without answering")
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                self.close()
                raise ConnectionError(f"bad status line from the daemon: {line!r}")
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers: dict[str, str] = {}
            while True:
                h = fp.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if status == 100:
                continue
            return Response(self, status, reason, headers, method)


class Client:
    """The Engine API client of one CLI invocation."""

    def __init__(self, host: str = DEFAULT_HOST, tls: dict[str, Any] | None = None,
                 timeout: float | None = None) -> None:
        self.host = host
        self.kind, self.addr = parse_host(host)
        self.tls = tls
        self.timeout = timeout
        self.host_header = "localhost" if self.kind == "unix" else f"{self.addr[0]}:{self.addr[1]}"
        self.prefix = f"/v{API_VERSION}"
        self._conn: Connection | None = None
        self._ssl_ctx = None

    # -- sockets -------------------------------------------------------------------------------
    def _ssl_context(self):
        if self._ssl_ctx is None:
            import ssl
            t = self.tls or {}
            if t.get("verify"):
                ctx = ssl.create_default_context(cafile=t.get("cacert") or None)
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if t.get("cert") and t.get("key"):
                ctx.load_cert_chain(t["cert"], t["key"])
            self._ssl_ctx = ctx
        return self._ssl_ctx

    def _open_socket(self) -> socket.socket:
        try:
            if self.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.addr)
            else:
                sock = socket.create_connection(self.addr, timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls:
                    sock = self._ssl_context().wrap_socket(sock, server_hostname=self.addr[0])
        except (FileNotFoundError, ConnectionRefusedError, PermissionError, socket.gaierror) as e:
            hint = "is dockyardd running?"
            if isinstance(e, PermissionError):
                hint = "permission denied"
            raise ConnectError(
                f"Cannot connect to the dockyard daemon at {self.host}: {hint}") from e
        except OSError as e:
            if e.__class__.__name__.startswith("SSL"):
                raise ConnectError(f"TLS error talking to {self.host}: {e}") from e
            raise ConnectError(f"Cannot connect to the dockyard daemon at {self.host}: {e}") from e
        return sock

    def _connection(self, fresh: bool = False) -> Connection:
        if fresh:
            return Connection(self)
        c = self._conn
        if c is None or c.closed or c.busy:
            c = self._conn = Connection(self)
        return c

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # -- requests ------------------------------------------------------------------------------
    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = self.prefix + path
        if params:
            from urllib.parse import quote
            items = []
            for k, v in params.items():
                if v is None:
                    continue
                if isinstance(v, bool):
                    v = "1" if v else "0"
                vals = v if isinstance(v, (list, tuple)) else [v]
                for one in vals:
                    items.append(f"{quote(str(k), safe='')}={quote(str(one), safe='')}")
            if items:
                url += "?" + "&".join(items)
        return url

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None, fresh: bool = False,
                check: bool = True) -> Response:
        """Send a request and return the response with its body still unread.

        ``body``: bytes, an iterable of bytes (sent chunked), or anything JSON-able (a dict/list).
        ``fresh``: use a new connection (e.g. for a long-poll read by another thread).
        Raises :class:`DaemonError` on 4xx/5xx when ``check``.
        """
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)) and (
                isinstance(body, (dict, list))):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in (0, 1):
            conn = self._connection(fresh)
            reused = conn is self._conn and getattr(conn, "_used", False)
            try:
                conn.send_request(method, self.url(path, params), hdrs, body)
                resp = conn.read_response(method)
            except (BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused and attempt == 0 and isinstance(body, (bytes, bytearray, type(None))):
                    continue  # the server closed an idle keep-alive connection
                raise
            conn._used = True  # type: ignore[attr-defined]
            if (resp.status == 400 and attempt == 0 and self.prefix
                    and isinstance(body, (bytes, bytearray, type(None)))):
                data = resp.read()
                if b"version" in data.lower():
                    self.prefix = ""
                    continue
                raise DaemonError(400, _message(data, resp))
            break
        if check and resp.status >= 400:
            raise DaemonError(resp.status, _message(resp.read(), resp))
        return resp

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params).json()

    def post_json(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self.request("POST", path, params, body).json()

    def hijack(self, path: str, params: dict[str, Any] | None = None,
               body: Any = None) -> tuple[socket.socket, Any]:
        """POST with ``Upgrade: tcp`` on a fresh connection; return (socket, buffered reader).

        Read the stream from the returned reader (it may already hold bytes sent right after the
        101); write to the socket.
        """
        conn = Connection(self)
        hdrs = {"Connection": "Upgrade", "Upgrade": "tcp"}
        if body is not None:
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.send_request("POST", self.url(path, params), hdrs, body)
        resp = conn.read_response("POST")
        if resp.status >= 400:
            msg = _message(resp.read(), resp)
            conn.close()
            raise DaemonError(resp.status, msg)
        if resp.status not in (101, 200):
            conn.close()
            raise DaemonError(resp.status, f"unexpected status {resp.status} to an attach request")
        conn.sock.settimeout(None)
        return conn.sock, conn.fp


def _message(data: bytes, resp: Response) -> str:
    try:
        obj = json.loads(data)
        if isinstance(obj, dict) and "message" in obj:
            return str(obj["message"])
    except ValueError:
        pass
    text = data.decode("utf-8", "replace").strip()
    return text or f"{resp.status} {resp.reason}"
