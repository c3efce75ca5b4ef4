"""The supervisor's protocol, one place for both ends: the driver (:mod:`.client`) and the
supervisor (:mod:`.server`).

Unix socket ``ROOT/supervisor.sock``; every connection starts with one JSON line.

* control connection: any number of requests ``{"rid": n, "op": ..., ...}``, answered (possibly
  out of order: ``wait`` answers when the container exits) by ``{"rid": n, "ok": true,
  "result": ...}`` or ``{"rid": n, "ok": false, "error": {"type", "message", "exit_code"}}``.
  Ops: ``hello``, ``create``, ``start``, ``wait``, ``kill``, ``delete``, ``state``, ``list``,
  ``resize``, ``pause``, ``resume``, ``pids``, ``update``, ``stats``, ``exec_wait``,
  ``exec_state``, ``exec_resize``, ``exec_forget``.
* attach connection: first line ``{"op": "attach", "id", "stdin", "stdout", "stderr"}``, answered
  by one JSON line (``{"ok": true, "stdin": granted}`` or an error); afterwards the connection is a
  raw byte stream: container output to the client (Docker's multiplexed frames, raw for a TTY),
  client bytes to the container's stdin. The client's half-close closes stdin when the container
  has ``stdin_once`` and no TTY (output then flows until it exits); otherwise it ends the session
  and stdin stays open (a client detaching from a TTY). The supervisor closes the connection once
  the container exited and its output was delivered.
* exec connection: first line ``{"op": "exec", "container", "id", "process", "tty", "stdin",
  "detach"}``, answered by ``{"ok": true, "pid": n}`` or an error; then (unless detached) a raw
  byte stream as for an attach, until the process exits.

The report channel (a SOCK_SEQPACKET pair between the supervisor and the child it forked to make
a process): ``P<pid>`` (the process's host pid), ``T`` with one fd (a TTY's master), ``E<code>
<message>`` (the process could not be started: Docker's exit code and words).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

from dockyard.hookspecs import errors
from dockyard.hookspecs.errors import DockyardError, ExecError

__all__ = [
    "SOCK_NAME",
    "PID_NAME",
    "LOG_NAME",
    "LOCK_NAME",
    "LINE_LIMIT",
    "ID_RE",
    "encode",
    "error_body",
    "error_from",
    "open_session",
    "report_pid",
    "report_console",
    "report_error",
    "parse_report",
]

SOCK_NAME = "supervisor.sock"
PID_NAME = "supervisor.pid"
LOG_NAME = "supervisor.log"
LOCK_NAME = "supervisor.lock"
#: the longest JSON line either end reads (a spec with many mounts and a long environment)
LINE_LIMIT = 64 << 20
#: container and exec ids
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

#: the errors that cross the socket by name (anything else arrives as a DockyardError)
_ERRORS = {
    name: getattr(errors, name)
    for name in ("NotFound", "Conflict", "InvalidParameter", "NotModified", "DockyardError")
}


def encode(msg: dict[str, Any]) -> bytes:
    """One message: a JSON line."""
    return json.dumps(msg).encode() + b"\n"


def error_body(e: BaseException) -> dict[str, Any]:
    """The ``error`` object of an answer for ``e`` (a DockyardError keeps its type and code)."""
    if isinstance(e, DockyardError):
        return {
            "type": type(e).__name__,
            "message": e.message,
            "exit_code": getattr(e, "exit_code", None),
        }
    return {"type": "DockyardError", "message": str(e)}


def error_from(err: dict[str, Any]) -> DockyardError:
    """The exception an answer's ``error`` object stands for."""
    kind = err.get("type", "DockyardError")
    message = err.get("message", "")
    if kind == "ExecError":
        return ExecError(message, err.get("exit_code") or 128)
    return _ERRORS.get(kind, DockyardError)(message)


async def open_session(
    sock_path: str, request: dict[str, Any], what: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    """The client's side of an attach or exec handshake: connect, send ``request``, read the
    answer line. Raises the answer's error (the connection closed); ``what`` names the session
    in the error of a supervisor that closed without answering."""
    reader, writer = await asyncio.open_unix_connection(sock_path, limit=LINE_LIMIT)
    try:
        writer.write(encode(request))
        line = await reader.readline()
        msg: dict[str, Any] = (
            json.loads(line)
            if line
            else {"ok": False, "error": {"message": f"native: supervisor closed the {what}"}}
        )
    except BaseException:
        writer.close()
        raise
    if not msg.get("ok"):
        writer.close()
        raise error_from(msg.get("error") or {})
    return reader, writer, msg


# -- the report channel -------------------------------------------------------------------------
def report_pid(chan: socket.socket, pid: int) -> None:
    """The host pid of the process just made."""
    chan.send(b"P%d" % pid)


def report_console(chan: socket.socket, master: int) -> None:
    """The master side of the process's pseudo-terminal."""
    socket.send_fds(chan, [b"T"], [master])


def report_error(chan: socket.socket, code: int, message: str) -> None:
    """The process could not be made: Docker's exit code and message (best effort)."""
    try:
        chan.send(b"E%d %s" % (code, message.encode("utf-8", "replace")[:60000]))
    except OSError:
        pass


def parse_report(msg: bytes) -> tuple[str, Any]:
    """``("pid", n)``, ``("console", None)`` (its fd travels beside), ``("error", (code,
    message))``, or ``("", None)`` for anything else."""
    kind = msg[:1]
    if kind == b"P":
        return "pid", int(msg[1:])
    if kind == b"T":
        return "console", None
    if kind == b"E":
        code, _, text = msg[1:].partition(b" ")
        return "error", (int(code), text.decode("utf-8", "replace"))
    return "", None
