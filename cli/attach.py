"""Attaching to a container or an exec as ``docker run``/``start -a``/``exec`` do: the output
stream (multiplexed frames, or raw with a TTY), stdin with the detach keys, the raw terminal and
its size, waiting for the exit and forwarding signals."""
from __future__ import annotations

import os
import sys
import threading
from typing import Any


from dockyard.hookspecs.host.streams import STDOUT, parse_header

from .client import Client, DaemonError

from .cmdutil import _err


def _write(fd_file: Any, data: bytes) -> None:
    try:
        fd_file.write(data)
        fd_file.flush()
    except BrokenPipeError:
        pass


def pump_output(fp: Any, tty: bool) -> None:
    """Copy an attach/logs stream to stdout/stderr until EOF (demultiplexing unless ``tty``)."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    if tty:
        while True:
            data = fp.read1(65536)
            if not data:
                return
            _write(out, data)
    while True:
        header = _read_exact(fp, 8)
        if len(header) < 8:
            if header:
                _write(out, header)
            return
        stream, size = parse_header(header)
        data = _read_exact(fp, size)
        _write(out if stream == STDOUT else err, data)  # stderr, and the daemon's errors
        if len(data) < size:
            return


def _read_exact(fp: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = fp.read1(n - len(buf)) if hasattr(fp, "read1") else fp.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class _RespReader:
    """Adapter so pump_output can read a Response body."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp

    def read1(self, n: int) -> bytes:
        return self.resp.read1(n)


def relay(sock: Any, fp: Any, tty: bool, detach_keys: bytes | None) -> bool:
    """The attached streams until the output ends: ``fp``'s to this terminal and, unless
    ``detach_keys`` is None, this terminal's input to ``sock`` (those keys detach). True if
    the user detached."""
    detached = threading.Event()
    if detach_keys is not None:
        threading.Thread(target=_pump_stdin, args=(sock, tty, detach_keys, detached),
                         daemon=True).start()
    try:
        pump_output(fp, tty)
    except OSError:
        pass
    return detached.is_set()


def _pump_stdin(sock: Any, tty: bool, detach_keys: bytes = b"\x10\x11",
                detached: threading.Event | None = None) -> None:
    import socket as _socket
    fd = sys.stdin.fileno()
    pending = b""
    try:
        while True:
            try:
                data = os.read(fd, 32768)
            except OSError:
                data = b""
            if not data:
                break
            if tty and detach_keys:
                data = pending + data
                pending = b""
                idx = data.find(detach_keys)
                if idx >= 0:
                    sock.sendall(data[:idx])
                    if detached is not None:
                        detached.set()
                    try:
                        sock.shutdown(_socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if data.endswith(detach_keys[:1]):
                    pending, data = data[-1:], data[:-1]
            sock.sendall(data)
        if pending:
            sock.sendall(pending)
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


class RawTerminal:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stdin.isatty()
        self.saved: list[Any] | None = None

    def __enter__(self) -> "RawTerminal":
        if self.enabled:
            import termios
            import tty
            fd = sys.stdin.fileno()
            self.saved = termios.tcgetattr(fd)
            tty.setraw(fd)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            import termios
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)


def _term_size() -> tuple[int, int] | None:
    for stream in (sys.stdout, sys.stdin, sys.stderr):
        try:
            sz = os.get_terminal_size(stream.fileno())
            return sz.lines, sz.columns
        except (OSError, ValueError):
            continue
    return None


def _resize(client: Client, cid: str) -> None:
    size = _term_size()
    if size:
        try:
            client.request("POST", f"/containers/{cid}/resize", {"h": size[0], "w": size[1]}).read()
        except Exception:
            pass


class Waiter:
    """``POST /containers/{id}/wait`` on its own connection, its body read in a thread."""

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.headers_seen = threading.Event()
        self.done = threading.Event()
        conn_client = Client(client.host, client.tls)
        conn_client.prefix = client.prefix
        self.client = conn_client
        self.cid = cid
        self.condition = condition
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.headers_seen.wait(5)

    def _run(self) -> None:
        try:
            from .client import Connection
            conn = Connection(self.client)
            conn.send_request("POST", self.client.url(f"/containers/{self.cid}/wait",
                                                      {"condition": self.condition}), {}, None)
            resp = conn.read_response("POST")
            self.headers_seen.set()
            if resp.status >= 400:
                from .client import _message
                raise DaemonError(resp.status, _message(resp.read(), resp))
            self.result = resp.json() or {}
        except BaseException as e:  # reported by wait()
            self.error = e
        finally:
            self.headers_seen.set()
            self.done.set()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        self.done.wait(timeout)
        if self.error is not None:
            raise self.error
        return self.result or {}


def run_status_code(msg: str) -> int:
    """docker's ``toStatusError``: 127 command not found, 126 cannot invoke, else 125."""
    if ("executable file not found" in msg or "no such file or directory" in msg
            or "not found" in msg and "exec" in msg):
        return 127
    if "permission denied" in msg or "is a directory" in msg or "not executable" in msg:
        return 126
    return 125


def attach_and_run(opts: Any, cid: str, tty: bool, stdin: bool, auto_remove: bool,
                   start: bool = True, sig_proxy: bool = True) -> int:
    """Attach, wait and start as ``docker run`` does; return the container's exit code."""
    client: Client = opts.client
    params = {"stream": 1, "stdout": 1, "stderr": 1}
    if stdin:
        params["stdin"] = 1
    sock, fp = client.hijack(f"/containers/{cid}/attach", params)
    waiter = Waiter(client, cid, "removed" if auto_remove else "next-exit")
    if waiter.error is not None and isinstance(waiter.error, DaemonError):
        raise waiter.error
    with RawTerminal(tty and stdin):
        if start:
            try:
                client.request("POST", f"/containers/{cid}/start").read()
            except DaemonError:
                sock.close()
                raise
        if tty:
            _resize(client, cid)
            try:
                import signal
                signal.signal(signal.SIGWINCH, lambda *a: _resize(client, cid))
            except (ValueError, AttributeError):
                pass
        if sig_proxy and not tty:
            _install_sig_proxy(client, cid)
        detached = relay(sock, fp, tty, b"\x10\x11" if stdin else None)
    if detached:
        return 0
    res = waiter.wait()
    msg = wait_error(res)
    if msg is not None:
        _err(msg)
        return 125
    return int(res.get("StatusCode", 0))


def wait_error(res: dict[str, Any]) -> str | None:
    """The error a ``/wait`` answer carries (``Error.Message``, or an error as a string)."""
    err = res.get("Error")
    msg = err.get("Message") if isinstance(err, dict) else err
    return str(msg) if msg else None


def _install_sig_proxy(client: Client, cid: str) -> None:
    import signal

    def handler(signum: int, frame: Any) -> None:
        try:
            c = Client(client.host, client.tls)
            c.prefix = client.prefix
            c.request("POST", f"/containers/{cid}/kill", {"signal": str(signum)}).read()
            c.close()
        except Exception:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2):
        try:
            signal.signal(s, handler)
        except (ValueError, OSError):
            pass
