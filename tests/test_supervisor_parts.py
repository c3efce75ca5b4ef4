"""The supervisor's pieces on their own, without a daemon (``dockyard.hookspecs.host.supervisor``):
the protocol both ends share (error mapping, the report channel over a real SOCK_SEQPACKET pair,
the attach/exec handshake over a real unix socket), the json-file writer (line splitting,
rotation), the stdio base (real pipes and a real pseudo-terminal), the process identity helpers."""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import socket
import struct
import tempfile
import termios
from typing import Any

import pytest

from dockyard.hookspecs.errors import Conflict, DockyardError, ExecError, NotFound
from dockyard.hookspecs.host import process
from dockyard.hookspecs.host.supervisor import protocol
from dockyard.hookspecs.host.supervisor.jsonlog import LOG_LINE_MAX, JsonLog
from dockyard.hookspecs.host.supervisor.stdio import AttachClient, FdWriter, Stdio


@pytest.fixture
def tmp() -> str:
    path = tempfile.mkdtemp(prefix="dky-sup-parts-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- protocol -----------------------------------------------------------------------------------
@pytest.mark.parametrize("err", [NotFound("No such container: x"), Conflict("is running"),
                                 ExecError("exec failed", 126), DockyardError("boom")])
def test_errors_cross_the_socket_with_their_type(err: DockyardError) -> None:
    wire = json.loads(json.dumps(protocol.error_body(err)))
    back = protocol.error_from(wire)
    assert type(back) is type(err) and back.message == err.message
    assert getattr(back, "exit_code", None) == getattr(err, "exit_code", None)


def test_other_exceptions_arrive_as_dockyard_errors() -> None:
    back = protocol.error_from(protocol.error_body(ValueError("bad")))
    assert type(back) is DockyardError and back.message == "bad"
    assert type(protocol.error_from({"type": "KeyError", "message": "m"})) is DockyardError


def test_report_channel_carries_pid_console_and_error() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    try:
        protocol.report_pid(theirs, 4242)
        protocol.report_console(theirs, r)
        protocol.report_error(theirs, 127, "exec: \"nope\": executable file not found in $PATH")
        theirs.close()
        got = []
        while True:
            msg, fds, _flags, _addr = socket.recv_fds(ours, 65536, 4)
            if not msg and not fds:
                break
            got.append((protocol.parse_report(msg), len(fds)))
            for fd in fds:
                os.write(w, b"x")  # the fd that travelled is the pipe's read end
                assert os.read(fd, 1) == b"x"
                os.close(fd)
        assert got == [(("pid", 4242), 0), (("console", None), 1),
                       (("error", (127, 'exec: "nope": executable file not found in $PATH')), 0)]
    finally:
        ours.close()
        os.close(r)
        os.close(w)


def test_open_session_handshake(tmp: str) -> None:
    path = os.path.join(tmp, protocol.SOCK_NAME)
    seen: list[dict[str, Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = json.loads(await reader.readline())
        seen.append(req)
        if req["id"] == "missing":
            writer.write(protocol.encode({"ok": False, "error": protocol.error_body(
                NotFound("No such container: missing"))}))
        elif req["id"] == "silent":
            pass
        else:
            writer.write(protocol.encode({"ok": True, "stdin": True}) + b"raw bytes")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(serve, path=path)
        try:
            reader, writer, msg = await protocol.open_session(
                path, {"op": "attach", "id": "c1"}, "attach")
            assert msg == {"ok": True, "stdin": True}
            assert await reader.read() == b"raw bytes"  # after the line: the raw stream
            writer.close()
            with pytest.raises(NotFound, match="No such container: missing"):
                await protocol.open_session(path, {"op": "attach", "id": "missing"}, "attach")
            with pytest.raises(DockyardError, match="closed the exec"):
                await protocol.open_session(path, {"op": "exec", "id": "silent"}, "exec")
        finally:
            server.close()

    asyncio.run(main())
    assert [r["id"] for r in seen] == ["c1", "missing", "silent"]


# -- the json-file log --------------------------------------------------------------------------
def _entries(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_log_lines_partial_and_long(tmp: str) -> None:
    path = os.path.join(tmp, "c-json.log")
    log = JsonLog(path)
    log.write(1, b"one\ntw")
    log.write(2, b"err\n")
    log.write(1, b"o\n" + b"x" * (LOG_LINE_MAX + 5))
    assert [(e["stream"], e["log"]) for e in _entries(path)] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"),
        ("stdout", "x" * LOG_LINE_MAX)]
    log.close()  # the partial line is written at the end
    last = _entries(path)[-1]
    assert last["log"] == "xxxxx" and last["time"].endswith("Z")


def test_log_rotates_by_size_over_max_files(tmp: str) -> None:
    path = os.path.join(tmp, "c-json.log")
    log = JsonLog.for_spec(path, {"annotations": {"io.dockyard.log.max-size": "200",
                                                  "io.dockyard.log.max-file": "3"}})
    for i in range(40):
        log.write(1, b"line %02d\n" % i)
    log.close()
    files = sorted(os.listdir(tmp))
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    entry = len(json.dumps({"log": "line 00\n", "stream": "stdout", "time": "x" * 30}))
    for f in files[1:]:  # rotated once an entry took a file to max-size (as dockerd)
        assert 200 <= os.path.getsize(os.path.join(tmp, f)) < 200 + entry
    newest = [e["log"] for e in _entries(path)]
    assert newest[-1] == "line 39\n"
    older = [e["log"] for e in _entries(path + ".1")]
    assert int(older[-1].split()[1]) + 1 == int(newest[0].split()[1])  # no entry lost between


def test_log_driver_none_writes_nothing(tmp: str) -> None:
    path = os.path.join(tmp, "c-json.log")
    log = JsonLog.for_spec(path, {"annotations": {"io.dockyard.log.driver": "none"}})
    log.write(1, b"hidden\n")
    log.close()
    assert not os.path.exists(path)


# -- the stdio base -----------------------------------------------------------------------------
class _Sup:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.by_pid: dict[int, Any] = {}


class _Proc(Stdio):
    def __init__(self, sup: Any) -> None:
        super().__init__(sup)
        self.got: list[tuple[int, bytes]] = []
        self.done = sup.loop.create_future()

    def deliver(self, stream: int, data: bytes) -> None:
        self.got.append((stream, data))

    def finished(self) -> None:
        self.done.set_result(self.proc_code)


def test_stdio_pipes_output_and_stdin_until_exit() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        p = _Proc(_Sup(loop))
        p.stdin = FdWriter(loop)
        p.stdin.write(b"early\n")  # before the pipe exists: kept
        child: list[int] = []
        stdio = p.child_stdio(child)
        assert len(child) == 3 and all(isinstance(fd, int) for fd in stdio)
        assert os.read(stdio[0], 100) == b"early\n"  # type: ignore[arg-type]
        p.stdin.write(b"more")
        p.stdin.write_eof()
        assert os.read(stdio[0], 100) == b"more"  # type: ignore[arg-type]
        assert os.read(stdio[0], 100) == b""  # type: ignore[arg-type]  # closed: EOF
        os.write(stdio[1], b"out")  # type: ignore[arg-type]
        os.write(stdio[2], b"err")  # type: ignore[arg-type]
        p.on_exit(3)  # exited, but its output is not over yet
        await asyncio.sleep(0.05)
        assert not p.done.done()
        for fd in child:
            os.close(fd)
        assert await asyncio.wait_for(p.done, 5) == 3
        assert sorted(p.got) == [(1, b"out"), (2, b"err")] and not p.out_fds

    asyncio.run(main())


def test_stdio_sync_delivers_what_was_written_before_the_loop_polls() -> None:
    """``sync`` (a ``logs`` read right after a start): output already in the pipes is
    delivered at once, without the event loop running in between; the outputs stay open."""

    async def main() -> None:
        p = _Proc(_Sup(asyncio.get_running_loop()))
        child: list[int] = []
        stdio = p.child_stdio(child)
        try:
            os.write(stdio[1], b"a" * 50000)  # type: ignore[arg-type]
            os.write(stdio[2], b"err")  # type: ignore[arg-type]
            p.drain_available()  # no await: the loop has not polled the pipes
            assert b"".join(d for s, d in p.got if s == 1) == b"a" * 50000
            assert (2, b"err") in p.got and len(p.out_fds) == 2
            p.drain_available()  # nothing new: nothing delivered, nothing closed
            assert len(p.got) == 2 and len(p.out_fds) == 2
        finally:
            for fd in child:
                os.close(fd)
            p.close_outputs()

    asyncio.run(main())


def test_stdio_discarded_output_is_dev_null() -> None:
    async def main() -> None:
        p = _Proc(_Sup(asyncio.get_running_loop()))
        child: list[int] = []
        stdio = p.child_stdio(child, discard_output=True)
        try:
            assert not p.out_fds
            for fd in stdio:
                assert os.readlink(f"/proc/self/fd/{fd}") == "/dev/null"
        finally:
            for fd in child:
                os.close(fd)

    asyncio.run(main())


def test_stdio_tty_master_resize_and_frames() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        p = _Proc(_Sup(loop))
        p.tty = True
        assert p.child_stdio([]) == [None, None, None]  # the child makes its terminal
        master, slave = os.openpty()
        p.resize(30, 100)  # before the master arrives: applied when it does
        p.set_master(master)
        h, w, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (h, w) == (30, 100)
        os.write(slave, b"hi")
        for _ in range(100):
            if p.got:
                break
            await asyncio.sleep(0.01)
        assert p.got and p.got[0][0] == 1 and b"hi" in p.got[0][1]
        os.close(slave)
        p.on_exit(0)
        assert await asyncio.wait_for(p.done, 5) == 0
        assert p.master is None

    asyncio.run(main())


def test_attach_client_frames_unless_tty() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=a)
        cl = AttachClient(writer, stdout=True, stderr=False)
        cl.send(1, b"out", tty=False)
        cl.send(2, b"err", tty=False)  # not asked for
        cl.send(1, b"raw", tty=True)
        await writer.drain()
        cl.close()
        assert cl.done.done()
        await writer.wait_closed()
        data = b""
        while chunk := b.recv(100):
            data += chunk
        b.close()
        assert data == b"\x01\0\0\0\0\0\0\x03out" + b"raw"

    asyncio.run(main())


# -- process identity ---------------------------------------------------------------------------
def test_merge_env_and_go_error() -> None:
    assert process.merge_env(["A=1", "B=2"], ["B=3", "A", "C=4"]) == {"B": "3", "C": "4"}
    assert process.go_error(FileNotFoundError(2, "x")) == "no such file or directory"
