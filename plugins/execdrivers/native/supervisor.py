"""The native driver's supervisor: one long-lived, single-threaded process per driver root.

It is the fork server (every container is forked from it, see :mod:`.init`), the subreaper and
parent of every container's first process, and the owner of each container's stdio, json-file log
and exit status. It is separate from the API daemon so containers survive the daemon; it exits by
itself once it holds no container and no client is connected.

Run as ``python -m dockyard.plugins.execdrivers.native.supervisor --root ROOT [--ready-fd N]``.

Protocol (unix socket ``ROOT/supervisor.sock``): every connection starts with one JSON line.

* control connection: any number of requests ``{"rid": n, "op": ..., ...}``, answered (possibly
  out of order: ``wait`` answers when the container exits) by ``{"rid": n, "ok": true,
  "result": ...}`` or ``{"rid": n, "ok": false, "error": {"type", "message", "exit_code"}}``.
  Ops: ``hello``, ``create``, ``start``, ``wait``, ``kill``, ``delete``, ``state``, ``list``,
  ``resize``, ``pause``, ``resume``, ``pids``.
* attach connection: first line ``{"op": "attach", "id", "stdin", "stdout", "stderr"}``, answered
  by one JSON line (``{"ok": true, "stdin": granted}`` or an error); afterwards the connection is a
  raw byte stream: container output to the client (Docker's multiplexed frames, raw for a TTY),
  client bytes to the container's stdin. The client's half-close closes stdin when the container
  has ``stdin_once`` and no TTY (output then flows until it exits); otherwise it ends the session
  and stdin stays open (a client detaching from a TTY). The supervisor closes the connection once
  the container exited and its output was delivered.
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import re
import resource
import shutil
import signal
import socket
import struct
import sys
import termios
import time
from typing import Any

from dockyard.hookspecs import host
from dockyard.hookspecs.host import seccompbpf
from dockyard.hookspecs.errors import (
    Conflict, DockyardError, ExecError, InvalidParameter, NotFound,
)
from dockyard.plugins.execdrivers.native import init as _init
from dockyard.plugins.execdrivers.native import launcher as _launcher
from dockyard.plugins.execdrivers.native.cgroups import Cgroups


try:  # warm: the fork server compiles seccomp filters (once per profile and capability set)
    import seccomp  # noqa: F401
except ImportError:  # pragma: no cover
    pass

log = logging.getLogger("dockyard.native.supervisor")


def _seccomp_bpf(spec: dict[str, Any]) -> bytes | None:
    """The container's seccomp program, compiled here once per (profile, capabilities) — some
    20 ms with libseccomp — so that forked children only load it."""
    profile = (spec.get("linux") or {}).get("seccomp")
    return seccompbpf.bpf_for(profile) if profile else None


def _warm_seccomp() -> None:
    """Compile Docker's default profile for Docker's default capabilities ahead of the first
    container that needs it."""
    try:
        seccompbpf.bpf_for(host.seccomp.default_profile(list(host.DEFAULT_CAPS)))
    except Exception:  # noqa: BLE001 - only a warm-up: the first start compiles (and reports)
        log.debug("seccomp warm-up failed", exc_info=True)

SOCK_NAME = "supervisor.sock"
PID_NAME = "supervisor.pid"
LOG_NAME = "supervisor.log"
LOCK_NAME = "supervisor.lock"
LINE_LIMIT = 64 << 20
IDLE_GRACE = 30.0     # exit if no client ever connects within this many seconds of starting
DRAIN_GRACE = 2.0     # after the main process exited, wait at most this long for output EOF
LOG_LINE_MAX = 16 * 1024
STREAM_NAMES = {1: "stdout", 2: "stderr"}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class JsonLog:
    """Docker's json-file log: one object per line of output (lines longer than 16 KiB split)."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1,
                 enabled: bool = True) -> None:
        self.path, self.max_size, self.max_files, self.enabled = path, max_size, max(1, max_files), enabled
        self.partial = {1: b"", 2: b""}
        self.fd = -1
        self.size = 0
        if enabled:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._open()

    @classmethod
    def for_spec(cls, path: str, spec: dict[str, Any]) -> "JsonLog":
        ann = spec.get("annotations") or {}
        return cls(path, int(ann.get("io.dockyard.log.max-size") or 0),
                   int(ann.get("io.dockyard.log.max-file") or 1),
                   ann.get("io.dockyard.log.driver", "json-file") != "none")

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        """``<log>`` becomes ``<log>.1`` (``.1`` becomes ``.2``... the oldest goes); with one
        file the log starts over. Readers follow the name (dockerd's json-file)."""
        os.close(self.fd)
        self.fd = -1
        try:
            if self.max_files > 1:
                for i in range(self.max_files - 1, 1, -1):
                    older = f"{self.path}.{i - 1}"
                    if os.path.exists(older):
                        os.replace(older, f"{self.path}.{i}")
                os.replace(self.path, f"{self.path}.1")
            else:
                os.truncate(self.path, 0)
        finally:
            self._open()

    def write(self, stream: int, data: bytes) -> None:
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        out = [line + b"\n" for line in lines]
        while len(rest) >= LOG_LINE_MAX:
            out.append(rest[:LOG_LINE_MAX])
            rest = rest[LOG_LINE_MAX:]
        self.partial[stream] = rest
        if out:
            self._emit(stream, out)

    def _emit(self, stream: int, chunks: list[bytes]) -> None:
        if self.fd < 0:
            return
        ts = host.rfc3339nano(time.time_ns())
        name = STREAM_NAMES[stream]
        entries = [(json.dumps({"log": c.decode("utf-8", "replace"), "stream": name, "time": ts},
                               ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                   for c in chunks]
        try:
            if not self.max_size:
                data = b"".join(entries)
                _write_all(self.fd, data)
                self.size += len(data)
                return
            # rotation is decided per entry, as dockerd's: a large burst spreads over files
            batch: list[bytes] = []
            pending = 0
            for entry in entries:
                batch.append(entry)
                pending += len(entry)
                if self.size + pending >= self.max_size:
                    _write_all(self.fd, b"".join(batch))
                    self.size += pending
                    batch, pending = [], 0
                    self._rotate()
            if batch:
                _write_all(self.fd, b"".join(batch))
                self.size += pending
        except OSError as e:
            log.error("writing log %s: %s", self.path, e)

    def flush(self) -> None:
        for stream in (1, 2):
            if self.partial[stream]:
                self._emit(stream, [self.partial[stream]])
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FdWriter:
    """Non-blocking, buffered writes to a container's stdin (a pipe or the console master).

    Data written before the fd exists (attach before start) is kept until it does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fd: int | None = None
        self.owns = True
        self.eof_bytes = b""
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.waiting = False

    def attach(self, fd: int, owns: bool = True, eof_bytes: bytes = b"") -> None:
        self.fd, self.owns, self.eof_bytes = fd, owns, eof_bytes
        os.set_blocking(fd, False)
        self._flush()

    def write(self, data: bytes) -> None:
        if self.closed or self.eof:
            return
        self.buf += data
        self._flush()

    def write_eof(self) -> None:
        if not self.closed and not self.eof:
            self.eof = True
            self._flush()

    def _flush(self) -> None:
        if self.fd is None or self.closed:
            return
        while self.buf:
            try:
                n = os.write(self.fd, self.buf)
            except BlockingIOError:
                if not self.waiting:
                    self.loop.add_writer(self.fd, self._flush)
                    self.waiting = True
                return
            except OSError:
                self.close()
                return
            del self.buf[:n]
        if self.waiting:
            self.loop.remove_writer(self.fd)
            self.waiting = False
        if self.eof:
            if self.owns:
                self.close()
            elif self.eof_bytes:
                try:
                    os.write(self.fd, self.eof_bytes)
                except OSError:
                    pass
                self.eof_bytes = b""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.buf.clear()
        if self.fd is not None:
            if self.waiting:
                self.loop.remove_writer(self.fd)
                self.waiting = False
            if self.owns:
                try:
                    os.close(self.fd)
                except OSError:
                    pass


class AttachClient:
    def __init__(self, writer: asyncio.StreamWriter, stdout: bool, stderr: bool) -> None:
        self.writer = writer
        self.want = {1: stdout, 2: stderr}
        self.done = asyncio.get_running_loop().create_future()

    def send(self, stream: int, data: bytes, tty: bool) -> None:
        if self.writer.is_closing():
            return
        if tty:
            if self.want[1] or self.want[2]:
                self.writer.write(data)
        elif self.want[stream]:
            self.writer.write(host.frame(stream, data))

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        if not self.done.done():
            self.done.set_result(None)


class Container:
    def __init__(self, sup: "Supervisor", cid: str) -> None:
        self.sup = sup
        self.id = cid
        self.dir = os.path.join(sup.root, cid)
        self.spec: dict[str, Any] = {}
        self.log_path = ""
        self.tty = self.open_stdin = self.stdin_once = False
        self.status = "created"
        self.pid = 0
        self.started_at = 0.0
        self.exit: dict[str, Any] | None = None
        self.cg_dirs: list[str] = []
        self.cg_release: asyncio.Task | None = None
        self.mem_limited = False
        self.log: JsonLog | None = None
        self.clients: list[AttachClient] = []
        self.waiters: list[asyncio.Future] = []
        self.execs: list[str] = []
        self._reset_run()

    def _reset_run(self) -> None:
        self.starting = False
        self.out_fds: dict[int, int] = {}
        self.master: int | None = None
        self.proc_code: int | None = None
        self.finished_at = 0.0
        self.exit_error = ""
        self.drain_timer: asyncio.TimerHandle | None = None
        self.stdin: FdWriter | None = FdWriter(self.sup.loop) if self.open_stdin else None
        self.stdin_claimed = False
        self.winsize: tuple[int, int] | None = None

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "pid": self.pid,
                "started_at": self.started_at, "exit": self.exit}

    def persist(self) -> None:
        data = dict(self.state(), log_path=self.log_path, tty=self.tty,
                    open_stdin=self.open_stdin, stdin_once=self.stdin_once, cgroups=self.cg_dirs)
        tmp = os.path.join(self.dir, "state.json.tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, os.path.join(self.dir, "state.json"))
        except OSError as e:
            log.error("%s: persisting state: %s", self.id, e)

    # -- output ---------------------------------------------------------------------------------
    def add_output(self, fd: int, stream: int) -> None:
        os.set_blocking(fd, False)
        self.out_fds[fd] = stream
        self.sup.loop.add_reader(fd, self._on_output, fd)

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the console's last slave closed
            data = b""
        if not data:
            self._close_output(fd)
            return
        stream = self.out_fds[fd]
        if self.log is not None:
            self.log.write(stream, data)
        for cl in self.clients:
            cl.send(stream, data, self.tty)

    def _close_output(self, fd: int) -> None:
        if self.out_fds.pop(fd, None) is None:
            return
        self.sup.loop.remove_reader(fd)
        if fd != self.master:
            os.close(fd)
        if not self.out_fds and self.proc_code is not None:
            self._finalize()

    def _force_drain(self) -> None:
        """The main process exited long ago but something still holds its output open (a
        daemonized child without a pid namespace): take what is buffered and stop reading."""
        self.drain_timer = None
        for fd in list(self.out_fds):
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                stream = self.out_fds[fd]
                if self.log is not None:
                    self.log.write(stream, data)
                for cl in self.clients:
                    cl.send(stream, data, self.tty)
            self._close_output(fd)

    def set_master(self, fd: int) -> None:
        self.master = fd
        if self.winsize:
            self._apply_winsize()
        self.add_output(fd, 1)
        if self.stdin is not None:
            self.stdin.attach(fd, owns=False, eof_bytes=b"\x04")

    def _apply_winsize(self) -> None:
        if self.master is not None and self.winsize:
            h, w = self.winsize
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
            except OSError as e:
                log.info("%s: resize: %s", self.id, e)

    def resize(self, height: int, width: int) -> None:
        if self.tty:
            self.winsize = (height, width)
            self._apply_winsize()

    # -- exit -----------------------------------------------------------------------------------
    def on_exit(self, code: int) -> None:
        self.sup.by_pid.pop(self.pid, None)
        self.proc_code = code
        self.finished_at = time.time()
        if not self.out_fds:
            self._finalize()
        else:
            self.drain_timer = self.sup.loop.call_later(DRAIN_GRACE, self._force_drain)

    def _finalize(self) -> None:
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        if self.log is not None:
            self.log.flush()
        oom = self.mem_limited and self.sup.cgroups.oom_killed(self.cg_dirs, self.proc_code)
        self.exit = {"exit_code": self.proc_code if self.proc_code is not None else 128,
                     "finished_at": self.finished_at or time.time(), "oom_killed": oom,
                     "error": self.exit_error}
        self.status = "exited"
        if self.stdin is not None:
            self.stdin.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        for cl in self.clients:
            cl.close()
        self.clients.clear()
        self.sup.release_cgroups(self)
        self.persist()
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(self.exit)
        self.waiters.clear()

    def wait_future(self) -> asyncio.Future:
        fut = self.sup.loop.create_future()
        if self.status == "exited" and not self.starting:
            fut.set_result(self.exit)
        else:
            self.waiters.append(fut)
        return fut


class Exec:
    """One process started in a running container (``docker exec``). Its output goes to the
    one client that started it (never to the container's log), as Docker does."""

    def __init__(self, sup: "Supervisor", eid: str, c: Container, tty: bool) -> None:
        self.sup, self.id, self.container, self.tty = sup, eid, c, tty
        self.pid = 0
        self.exit_code: int | None = None
        self.out_fds: dict[int, int] = {}
        self.master: int | None = None
        self.client: AttachClient | None = None
        self.stdin: FdWriter | None = None
        self.waiters: list[asyncio.Future] = []
        self.proc_code: int | None = None
        self.drain_timer: asyncio.TimerHandle | None = None
        self.winsize: tuple[int, int] | None = None
        self.held: list[tuple[int, bytes]] | None = []

    def add_output(self, fd: int, stream: int) -> None:
        os.set_blocking(fd, False)
        self.out_fds[fd] = stream
        self.sup.loop.add_reader(fd, self._on_output, fd)

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_output(fd)
            return
        if self.held is not None:
            self.held.append((self.out_fds[fd], data))
        elif self.client is not None:
            self.client.send(self.out_fds[fd], data, self.tty)

    def go_live(self) -> None:
        """The client has its answer line: deliver what was held back, then stream."""
        held, self.held = self.held or [], None
        if self.client is not None:
            for stream, data in held:
                self.client.send(stream, data, self.tty)
            if self.exit_code is not None:
                self.client.close()

    def _close_output(self, fd: int) -> None:
        if self.out_fds.pop(fd, None) is None:
            return
        self.sup.loop.remove_reader(fd)
        if fd != self.master:
            os.close(fd)
        if not self.out_fds and self.proc_code is not None:
            self._finalize()

    def set_master(self, fd: int) -> None:
        self.master = fd
        if self.winsize:
            self.resize(*self.winsize)
        self.add_output(fd, 1)
        if self.stdin is not None:
            self.stdin.attach(fd, owns=False, eof_bytes=b"\x04")

    def resize(self, height: int, width: int) -> None:
        self.winsize = (height, width)
        if self.master is not None:
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            except OSError as e:
                log.info("exec %s: resize: %s", self.id, e)

    def on_exit(self, code: int) -> None:
        self.sup.by_pid.pop(self.pid, None)
        self.proc_code = code
        if not self.out_fds:
            self._finalize()
        else:
            self.drain_timer = self.sup.loop.call_later(DRAIN_GRACE, self._force_drain)

    def _force_drain(self) -> None:
        self.drain_timer = None
        for fd in list(self.out_fds):
            self._close_output(fd)

    def _finalize(self) -> None:
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        self.exit_code = self.proc_code if self.proc_code is not None else 128
        if self.stdin is not None:
            self.stdin.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        if self.client is not None and self.held is None:
            self.client.close()
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(self.exit_code)
        self.waiters.clear()

    def state(self) -> dict[str, Any]:
        return {"id": self.id, "container": self.container.id, "pid": self.pid,
                "running": self.exit_code is None and self.pid != 0, "exit_code": self.exit_code}


class Supervisor:
    def __init__(self, root: str, launcher: _launcher.Launcher | None = None, cgroup_root: str = "") -> None:
        self.root = os.path.abspath(root)
        self.launcher = launcher or _launcher.NativeLauncher()
        self.sock_path = os.path.join(self.root, SOCK_NAME)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Any] = {}  # Container or Exec
        self.execs: dict[str, Exec] = {}
        self.intermediates: set[int] = set()
        self.early_exits: dict[int, int] = {}
        self.pending_starts = 0
        self.nclients = 0
        self.ever_connected = False
        self.stop: asyncio.Event | None = None
        self.cgroups = Cgroups(cgroup_root)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.base_rlimits = [(resource.RLIMIT_NOFILE, soft, hard)]
        if soft != hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (OSError, ValueError):
                pass

    # -- life -----------------------------------------------------------------------------------
    async def serve(self, ready_fd: int | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        try:
            os.unlink(self.sock_path)
        except FileNotFoundError:
            pass
        server = await asyncio.start_unix_server(self._on_connection, path=self.sock_path,
                                                 limit=LINE_LIMIT, backlog=128)
        os.chmod(self.sock_path, 0o600)
        sock_ino = os.stat(self.sock_path).st_ino
        tmp = os.path.join(self.root, PID_NAME + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, os.path.join(self.root, PID_NAME))
        self.loop.add_signal_handler(signal.SIGCHLD, self._reap)
        self.loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        self._reap()
        self._recover()
        self.loop.call_later(IDLE_GRACE, self._maybe_exit)
        log.info("supervisor %d serving on %s", os.getpid(), self.sock_path)
        if ready_fd is not None:
            try:
                os.write(ready_fd, b"ready\n")
            finally:
                os.close(ready_fd)
        self.loop.call_soon(_warm_seccomp)
        await self.stop.wait()
        try:
            if os.stat(self.sock_path).st_ino == sock_ino:
                os.unlink(self.sock_path)
        except FileNotFoundError:
            pass
        try:
            os.unlink(os.path.join(self.root, PID_NAME))
        except FileNotFoundError:
            pass
        server.close()
        log.info("supervisor %d exiting: no containers, no clients", os.getpid())

    def _recover(self) -> None:
        """Containers left by a supervisor that died: their processes lost their owner (stdio,
        exit status), so kill what is left in their cgroups, remove the cgroups and hold them
        as exited, for the daemon to record and clean up (unmount) on its restore."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for cid in names:
            path = os.path.join(self.root, cid, "state.json")
            if cid in self.containers or not ID_RE.match(cid) or not os.path.exists(path):
                continue
            try:
                with open(path) as f:
                    st = json.load(f)
            except (OSError, ValueError):
                shutil.rmtree(os.path.join(self.root, cid), ignore_errors=True)
                continue
            c = Container(self, cid)
            c.cg_dirs = [d for d in st.get("cgroups") or [] if d.startswith(self.cgroups.root + "/")]
            c.log_path = st.get("log_path", "")
            c.tty, c.open_stdin, c.stdin_once = (bool(st.get(k)) for k in ("tty", "open_stdin",
                                                                           "stdin_once"))
            c.started_at = st.get("started_at", 0.0)
            c._reset_run()
            killed = 0
            if c.cg_dirs:
                try:
                    self.cgroups.freeze(c.cg_dirs, False)
                except (OSError, DockyardError):
                    pass
                for _ in range(100):
                    killed += self.cgroups.kill_all(c.cg_dirs)
                    if not Cgroups.remove(c.cg_dirs):
                        break
                    time.sleep(0.01)
                c.cg_dirs = []  # created afresh if the container is started again
            if st.get("status") in ("running", "paused"):
                c.exit = {"exit_code": 255 if not killed else 137, "finished_at": time.time(),
                          "oom_killed": False, "error": "the native supervisor died while the "
                                                        "container ran; its processes were killed"}
                log.warning("%s: recovered from a dead supervisor (killed %d processes)",
                            cid, killed)
            else:
                c.exit = st.get("exit") or {"exit_code": 255, "finished_at": time.time(),
                                            "oom_killed": False, "error": ""}
            c.status = "exited"
            c.pid = 0
            self.launcher.recover(self, cid)
            try:
                with open(os.path.join(self.root, cid, "config.json")) as f:
                    c.spec = json.load(f)
            except (OSError, ValueError):
                c.spec = {}
            self.containers[cid] = c
            c.persist()

    def _maybe_exit(self) -> None:
        if self.nclients == 0 and not self.containers and self.stop is not None:
            self.stop.set()

    def _on_sigterm(self) -> None:
        if self.containers:
            log.warning("SIGTERM ignored: %d containers held", len(self.containers))
        else:
            self.stop.set()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                code = 128 - code
            if _launcher.reaped(pid, code):
                continue
            c = self.by_pid.pop(pid, None)
            if c is not None:
                c.on_exit(code)
            elif pid in self.intermediates:
                self.intermediates.discard(pid)
            elif self.pending_starts:
                self.early_exits[pid] = code

    # -- connections ----------------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        self.nclients += 1
        self.ever_connected = True
        tasks: set[asyncio.Task] = set()
        try:
            line = await reader.readline()
            while line:
                req = json.loads(line)
                if req.get("op") == "attach":
                    await self._attach(req, reader, writer)
                    return
                if req.get("op") == "exec":
                    await self._exec(req, reader, writer)
                    return
                task = self.loop.create_task(self._request(req, writer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                line = await reader.readline()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as e:
            log.info("connection dropped: %s", e)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("connection handler")
        finally:
            for t in tasks:
                t.cancel()
            writer.close()
            self.nclients -= 1
            self._maybe_exit()

    async def _request(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        rid = req.pop("rid", None)
        op = req.pop("op", "")
        try:
            handler = getattr(self, "op_" + op, None)
            if handler is None:
                raise InvalidParameter(f"unknown op {op!r}")
            resp = {"rid": rid, "ok": True, "result": await handler(**req)}
        except DockyardError as e:
            resp = {"rid": rid, "ok": False, "error": {
                "type": type(e).__name__, "message": e.message,
                "exit_code": getattr(e, "exit_code", None)}}
        except asyncio.CancelledError:
            raise
        except TypeError as e:
            resp = {"rid": rid, "ok": False,
                    "error": {"type": "InvalidParameter", "message": f"{op}: {e}"}}
        except Exception as e:  # noqa: BLE001
            log.exception("op %s", op)
            resp = {"rid": rid, "ok": False, "error": {"type": "DockyardError", "message": str(e)}}
        if not writer.is_closing():
            writer.write(json.dumps(resp).encode() + b"\n")

    async def _attach(self, req: dict[str, Any], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        c = self.containers.get(req.get("id", ""))
        if c is None:
            writer.write(json.dumps({"ok": False, "error": {
                "type": "NotFound", "message": f"No such container: {req.get('id')}"}}).encode()
                + b"\n")
            return
        want_stdin = bool(req.get("stdin")) and c.open_stdin
        writer.write(json.dumps({"ok": True, "stdin": want_stdin}).encode() + b"\n")
        if c.status == "exited" and not c.starting:
            return
        cl = AttachClient(writer, bool(req.get("stdout", True)), bool(req.get("stderr", True)))
        c.clients.append(cl)
        first_stdin = want_stdin and not c.stdin_claimed
        if want_stdin:
            c.stdin_claimed = True
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if want_stdin and c.stdin is not None and cl in c.clients:
                    c.stdin.write(data)
            if want_stdin and cl in c.clients:
                # the client's input ended. As dockerd: with stdin_once (and no TTY) that is
                # the end of the container's stdin, and output keeps flowing until it exits;
                # otherwise — always with a TTY (a client detaching) — the session ends and
                # the container's stdin stays open
                if c.tty or not c.stdin_once:
                    return
                if first_stdin and c.stdin is not None:
                    c.stdin.write_eof()
                closed = self.loop.create_task(writer.wait_closed())
                try:
                    await asyncio.wait([cl.done, closed], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    closed.cancel()
        except (ConnectionError, OSError):
            pass
        finally:
            if cl in c.clients:
                c.clients.remove(cl)

    async def _exec(self, req: dict[str, Any], reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        """An exec connection: start the process, answer one JSON line, then (unless detached)
        carry its output to the client and the client's bytes to its stdin until it exits."""
        try:
            ex = await self._start_exec(req, writer)
        except DockyardError as e:
            writer.write(json.dumps({"ok": False, "error": {
                "type": type(e).__name__, "message": e.message,
                "exit_code": getattr(e, "exit_code", None)}}).encode() + b"\n")
            return
        except Exception as e:  # noqa: BLE001
            log.exception("exec")
            writer.write(json.dumps({"ok": False, "error": {
                "type": "DockyardError", "message": str(e)}}).encode() + b"\n")
            return
        writer.write(json.dumps({"ok": True, "pid": ex.pid}).encode() + b"\n")
        ex.go_live()
        if ex.client is None:
            return
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if ex.stdin is not None:
                    ex.stdin.write(data)
            if ex.stdin is not None:
                if ex.tty:  # as dockerd: a client detaching ends the session, not the stdin
                    return
                ex.stdin.write_eof()
            closed = self.loop.create_task(writer.wait_closed())
            try:
                await asyncio.wait([ex.client.done, closed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
        except (ConnectionError, OSError):
            pass
        finally:
            ex.client = None

    async def _start_exec(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> Exec:
        c = self._get(req.get("container", ""))
        if c.status not in ("running",) or not c.pid or c.proc_code is not None:
            raise Conflict(f"Container {c.id} is not running" if c.status != "paused"
                           else f"Container {c.id} is paused, unpause the container before exec")
        eid = req.get("id") or ""
        if not ID_RE.match(eid) or eid in self.execs:
            raise InvalidParameter(f"invalid or duplicate exec id {eid!r}")
        process = req.get("process") or {}
        if not process.get("args"):
            raise InvalidParameter("No exec command specified")
        tty = bool(req.get("tty"))
        detach = bool(req.get("detach"))
        ex = Exec(self, eid, c, tty)
        child_fds: list[int] = []
        stdio: list[int | None] = [None, None, None]
        chan = child_chan = None
        if not detach:
            ex.client = AttachClient(writer, True, True)
        try:
            if req.get("stdin") and not detach:
                ex.stdin = FdWriter(self.loop)
            if not tty:
                if ex.stdin is not None:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    child_fds.append(r)
                    stdio[0] = r
                    ex.stdin.attach(w)
                else:
                    stdio[0] = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
                    child_fds.append(stdio[0])
                for stream in (1, 2):
                    if detach:
                        stdio[stream] = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
                        child_fds.append(stdio[stream])
                    else:
                        r, w = os.pipe2(os.O_CLOEXEC)
                        child_fds.append(w)
                        stdio[stream] = w
                        ex.add_output(r, stream)
            chan, child_chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            cfg = {"id": c.id, "dir": c.dir, "exec_id": eid, "options": self.launcher.options,
                   "spec": c.spec, "process": process, "tty": tty, "stdio": stdio,
                   "target_pid": c.pid, "cgroup_procs": Cgroups.procs_files(c.cg_dirs),
                   "base_rlimits": self.base_rlimits, "seccomp_bpf": _seccomp_bpf(c.spec)}
        except BaseException:
            self._undo_setup(ex, child_fds, chan, child_chan)
            raise
        gpid, err = await self._spawn(ex, self.launcher.exec_entry, cfg, child_fds, chan, child_chan)
        if gpid:
            ex.pid = gpid
            self.by_pid[gpid] = ex
            early = self.early_exits.pop(gpid, None)
            if early is not None:
                ex.on_exit(early)
        if not self.pending_starts:
            self.early_exits.clear()
        if err is not None or not gpid:
            code, message = err if err is not None else (126, "exec failed")
            if not gpid:
                ex.on_exit(code)
            for fd in list(ex.out_fds):
                ex._close_output(fd)
            raise ExecError(message, code)
        self.execs[eid] = ex
        c.execs.append(eid)
        return ex

    # -- helpers --------------------------------------------------------------------------------
    def _get(self, cid: str) -> Container:
        c = self.containers.get(cid)
        if c is None:
            raise NotFound(f"No such container: {cid}")
        return c

    # -- ops ------------------------------------------------------------------------------------
    async def op_hello(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": 1, "containers": len(self.containers)}

    async def op_list(self) -> list[dict[str, Any]]:
        return [c.state() for c in self.containers.values()]

    async def op_state(self, id: str) -> dict[str, Any]:
        return self._get(id).state()

    async def op_create(self, id: str, spec: dict[str, Any], log_path: str, tty: bool = False,
                        open_stdin: bool = False, stdin_once: bool = False) -> None:
        if not ID_RE.match(id or ""):
            raise InvalidParameter(f"invalid container id {id!r}")
        c = self.containers.get(id)
        if c is not None and (c.status in ("running", "paused") or c.starting):
            raise Conflict(f"container {id} is running")
        root = (spec.get("root") or {}).get("path")
        if not root or not os.path.isdir(root):
            raise InvalidParameter(f"rootfs {root!r} is not a directory")
        if not (spec.get("process") or {}).get("args"):
            raise InvalidParameter("no command specified")
        self.launcher.check(spec)
        for ns in (spec.get("linux") or {}).get("namespaces") or ():
            if ns.get("type") not in host.NAMESPACE_FLAGS:
                raise InvalidParameter(f"unknown namespace type {ns.get('type')!r}")
            if ns["type"] == "user" and not ns.get("path"):
                lin = spec.get("linux") or {}
                if not lin.get("uidMappings") or not lin.get("gidMappings"):
                    raise InvalidParameter("a new user namespace needs linux.uidMappings and "
                                           "linux.gidMappings")
        if not log_path:
            raise InvalidParameter("log_path is required")
        new = c is None
        if new:
            c = Container(self, id)
            os.makedirs(c.dir, mode=0o700, exist_ok=True)
        resources = (spec.get("linux") or {}).get("resources") or {}
        if self.cgroups.available:
            rel = _launcher.cgroup_rel(spec, id)
            # made afresh for every run (those of a created container hold no process yet)
            await self._remove_cgroups(c)
            notes = spec.get("annotations") or {}
            try:
                self.cgroups.set_rt_parents(rel, int(notes.get("io.dockyard.cpu-rt-period") or 0),
                                            int(notes.get("io.dockyard.cpu-rt-runtime") or 0))
                c.cg_dirs = self.cgroups.create(  # all made, or none left
                    rel, {} if self.launcher.applies_resources else resources)
            except (InvalidParameter, OSError) as e:
                if new:
                    shutil.rmtree(c.dir, ignore_errors=True)
                raise InvalidParameter(str(e)) from None
        c.mem_limited = (resources.get("memory") or {}).get("limit") is not None
        c.spec, c.tty, c.open_stdin, c.stdin_once = spec, bool(tty), bool(open_stdin), bool(stdin_once)
        if c.log is None or c.log_path != log_path:
            if c.log is not None:
                c.log.close()
            try:
                c.log = JsonLog.for_spec(log_path, spec)
            except OSError as e:
                Cgroups.remove(c.cg_dirs)  # just made, empty
                c.cg_dirs = []
                if new:
                    shutil.rmtree(c.dir, ignore_errors=True)
                raise InvalidParameter(f"cannot open log {log_path}: {e}") from None
            c.log_path = log_path
        c.status = "created"
        c.pid = 0
        c._reset_run()
        self.containers[id] = c
        with open(os.path.join(c.dir, "config.json"), "w") as f:
            json.dump(spec, f)
        c.persist()
        await self.launcher.prepare(self, c)

    async def op_start(self, id: str) -> int:
        c = self._get(id)
        if c.starting or c.status in ("running", "paused"):
            raise Conflict(f"container {id} is already running")
        if c.status == "exited":
            c._reset_run()
        c.starting = True
        c.status = "created"
        c.exit = None
        spec = c.spec
        namespaces = list((spec.get("linux") or {}).get("namespaces") or ())
        mounts = self.cgroups.view_mounts(spec.get("mounts", _init.default_mounts()), c.cg_dirs)
        child_fds: list[int] = []
        stdio: list[int | None] = [None, None, None]
        chan = child_chan = None
        try:
            if not c.tty:
                if c.open_stdin:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    child_fds.append(r)
                    stdio[0] = r
                    c.stdin.attach(w)
                else:
                    stdio[0] = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
                    child_fds.append(stdio[0])
                for stream in (1, 2):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    child_fds.append(w)
                    stdio[stream] = w
                    c.add_output(r, stream)
            chan, child_chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            cfg = {"id": c.id, "dir": c.dir, "options": self.launcher.options,
                   "cgroups_path": _launcher.cgroup_rel(spec, c.id), "spec": spec, "namespaces": namespaces, "mounts": mounts, "tty": c.tty,
                   "stdio": stdio, "cgroup_procs": Cgroups.procs_files(c.cg_dirs),
                   "base_rlimits": self.base_rlimits, "seccomp_bpf": _seccomp_bpf(spec)}
        except BaseException:
            self._undo_setup(c, child_fds, chan, child_chan)
            c.starting = False
            raise
        try:
            gpid, err = await self._spawn(c, self.launcher.start_entry, cfg, child_fds, chan,
                                          child_chan)
        finally:
            c.starting = False
        if gpid:
            c.pid = gpid
            c.started_at = time.time()
            c.status = "running"
            self.by_pid[gpid] = c
            early = self.early_exits.pop(gpid, None)
            if early is not None:
                self.by_pid.pop(gpid, None)
                c.on_exit(early)
        if not self.pending_starts:
            self.early_exits.clear()
        if err is not None or not gpid:
            code, message = err if err is not None else (128, "container init failed")
            c.exit_error = message
            if not gpid:
                c.on_exit(code)
            await c.wait_future()
            raise ExecError(message, code)
        c.persist()
        return gpid

    def release_cgroups(self, c: Container) -> None:
        """The container's main process is gone (or never ran: a failed start): its cgroups go
        too, in every hierarchy; what is left in them (processes of a container without a pid
        namespace) is killed first, as runc does. Retried in the background while the kernel
        still counts exiting processes; the next create and delete wait for that."""
        if not c.cg_dirs or (c.cg_release is not None and not c.cg_release.done()):
            return
        self.cgroups.kill_all(c.cg_dirs)
        if not Cgroups.remove(c.cg_dirs):
            c.cg_dirs = []
            return
        c.cg_release = self.loop.create_task(self._remove_cgroups(c))

    async def _remove_cgroups(self, c: Container) -> None:
        """Remove ``c``'s cgroups (killing what is still in them), after a pending release."""
        if c.cg_release is not None and c.cg_release is not asyncio.current_task():
            task, c.cg_release = c.cg_release, None
            await asyncio.shield(task)  # the same work: let it finish
        if not c.cg_dirs:
            return
        busy: list[str] = []
        for _ in range(200):
            busy = c.cg_dirs if self.cgroups.populated(c.cg_dirs) else Cgroups.remove(c.cg_dirs)
            if not busy:
                break
            self.cgroups.kill_all(busy)
            await asyncio.sleep(0.005)
        else:
            log.warning("%s: cgroups still busy: %s", c.id, busy)
        c.cg_dirs = busy
        c.persist()

    @staticmethod
    def _undo_setup(owner: Any, child_fds: list[int], chan: socket.socket | None,
                    child_chan: socket.socket | None) -> None:
        """A container start or exec failed before its fork: close what was made for it."""
        for fd in child_fds:
            os.close(fd)
        if chan is not None:
            chan.close()
            child_chan.close()  # type: ignore[union-attr]
        for fd in list(owner.out_fds):
            owner._close_output(fd)

    async def _spawn(self, owner: Any, entry: Any, cfg: dict[str, Any], child_fds: list[int],
                     chan: socket.socket, child_chan: socket.socket
                     ) -> tuple[int, tuple[int, str] | None]:
        """Fork the intermediate that runs ``entry`` (container start or exec), hand it the
        child ends, and read its reports: ``(host pid of the process, error)``. A failed fork
        also counts as done for ``pending_starts``."""
        self.pending_starts += 1
        try:
            try:
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child
                    try:
                        entry(cfg, child_chan)
                    finally:
                        os._exit(128)
                self.intermediates.add(pid)
            except BaseException:
                for fd in list(owner.out_fds):
                    owner._close_output(fd)
                raise
            finally:
                for fd in child_fds:
                    os.close(fd)
                child_chan.close()
            return await self._read_reports(owner, chan)
        finally:
            chan.close()
            self.pending_starts -= 1

    async def _read_reports(self, c: Container, chan: socket.socket
                            ) -> tuple[int, tuple[int, str] | None]:
        """Read the children's messages until end-of-file (the container process exec'd or
        everything died)."""
        chan.setblocking(False)
        fut = self.loop.create_future()
        got: dict[str, Any] = {"pid": 0, "err": None}

        def on_readable() -> None:
            while True:
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(chan, 65536, 4)
                except BlockingIOError:
                    return
                except OSError as e:
                    msg, fds = b"", []
                    log.warning("%s: report channel: %s", c.id, e)
                if not msg and not fds:
                    self.loop.remove_reader(chan.fileno())
                    if not fut.done():
                        fut.set_result(None)
                    return
                kind = msg[:1]
                if kind == b"P":
                    got["pid"] = int(msg[1:])
                elif kind == b"T" and fds:
                    c.set_master(fds[0])
                    fds = fds[1:]
                elif kind == b"E":
                    code, _, text = msg[1:].partition(b" ")
                    got["err"] = (int(code), text.decode("utf-8", "replace"))
                for fd in fds:
                    os.close(fd)

        self.loop.add_reader(chan.fileno(), on_readable)
        try:
            await fut
        finally:
            if not fut.done():
                self.loop.remove_reader(chan.fileno())
        return got["pid"], got["err"]

    async def op_wait(self, id: str) -> dict[str, Any]:
        c = self._get(id)
        return await c.wait_future()

    async def op_kill(self, id: str, signal: int) -> None:
        c = self._get(id)
        if c.status not in ("running", "paused") or not c.pid or c.proc_code is not None:
            raise Conflict(f"Container {id} is not running")
        await self.launcher.kill(self, c, int(signal))
        if c.status == "paused" and int(signal) == 9:
            self._thaw(c)

    async def op_delete(self, id: str) -> None:
        c = self.containers.get(id)
        if c is None:
            return None
        if c.status in ("running", "paused") or c.starting:
            if c.pid and c.proc_code is None:
                try:
                    os.kill(c.pid, 9)
                except ProcessLookupError:
                    pass
            self.cgroups.kill_all(c.cg_dirs)
            if c.status == "paused":
                self._thaw(c)
            await c.wait_future()
        await self._remove_cgroups(c)
        await self.launcher.delete(self, c)
        for cl in c.clients:
            cl.close()
        c.clients.clear()
        for fut in c.waiters:
            if not fut.done():
                fut.set_exception(NotFound(f"No such container: {id}"))
        c.waiters.clear()
        if c.stdin is not None:
            c.stdin.close()
        if c.log is not None:
            c.log.close()
            c.log = None
        for eid in c.execs:
            ex = self.execs.pop(eid, None)
            if ex is not None:
                for fut in ex.waiters:
                    if not fut.done():
                        fut.set_exception(NotFound(f"No such exec instance: {eid}"))
        c.execs.clear()
        shutil.rmtree(c.dir, ignore_errors=True)
        self.containers.pop(id, None)
        return None

    def _get_exec(self, eid: str) -> Exec:
        ex = self.execs.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    async def op_exec_wait(self, id: str) -> int:
        ex = self._get_exec(id)
        if ex.exit_code is not None:
            return ex.exit_code
        fut = self.loop.create_future()
        ex.waiters.append(fut)
        return await fut

    async def op_exec_state(self, id: str) -> dict[str, Any]:
        return self._get_exec(id).state()

    async def op_exec_resize(self, id: str, height: int, width: int) -> None:
        ex = self._get_exec(id)
        if ex.tty:
            ex.resize(int(height), int(width))

    async def op_exec_forget(self, id: str) -> None:
        ex = self.execs.pop(id, None)
        if ex is not None and id in ex.container.execs:
            ex.container.execs.remove(id)

    async def op_resize(self, id: str, height: int, width: int) -> None:
        self._get(id).resize(int(height), int(width))

    async def op_stats(self, id: str) -> dict[str, Any]:
        c = self._get(id)
        out = self.cgroups.stats(c.cg_dirs) if c.cg_dirs else {}
        out["online_cpus"] = len(os.sched_getaffinity(0))
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:8]
        out["system_ns"] = sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        return out

    async def op_pids(self, id: str) -> list[int]:
        c = self._get(id)
        if c.cg_dirs:
            return self.cgroups.pids(c.cg_dirs)
        return [c.pid] if c.status in ("running", "paused") else []

    def _thaw(self, c: Container) -> None:
        try:
            self.cgroups.freeze(c.cg_dirs, False)
        except (OSError, DockyardError) as e:
            log.warning("%s: thaw: %s", c.id, e)
        if c.status == "paused":
            c.status = "running"

    async def op_update(self, id: str, resources: dict[str, Any]) -> None:
        """``docker update``: the new limits on the container's cgroups now, and in its spec
        for later starts."""
        c = self._get(id)
        if not isinstance(resources, dict):
            raise InvalidParameter("resources must be an object")
        await self.launcher.update(self, c, resources)
        lin = c.spec.setdefault("linux", {})
        merged = dict(lin.get("resources") or {})
        for key, value in resources.items():
            merged[key] = {**(merged.get(key) or {}), **value} if isinstance(value, dict) else value
        lin["resources"] = merged
        c.mem_limited = (merged.get("memory") or {}).get("limit") is not None
        with open(os.path.join(c.dir, "config.json"), "w") as f:
            json.dump(c.spec, f)

    async def op_pause(self, id: str) -> None:
        c = self._get(id)
        if c.status != "running":
            raise Conflict(f"Container {id} is not running")
        await self.launcher.pause(self, c)
        c.status = "paused"
        c.persist()

    async def op_resume(self, id: str) -> None:
        c = self._get(id)
        if c.status != "paused":
            raise Conflict(f"Container {id} is not paused")
        await self.launcher.resume(self, c)
        c.status = "running"
        c.persist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard-native-supervisor")
    parser.add_argument("--root", required=True, type=os.path.abspath)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--launcher", default="", help="MODULE:CLASS (default: the native one)")
    parser.add_argument("--launcher-options", default="{}", help="a JSON object")
    parser.add_argument("--cgroup-root", default=None)  # the cgroup tree (native.cgroup-root)
    args = parser.parse_args(argv)
    os.makedirs(args.root, mode=0o711, exist_ok=True)
    logging.basicConfig(filename=os.path.join(args.root, LOG_NAME), level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    if args.ready_fd is not None:
        os.set_inheritable(args.ready_fd, False)
    # one supervisor per root: a previous one may still be shutting down
    lock = os.open(os.path.join(args.root, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    host.set_child_subreaper()
    host.set_name("dockyard-shim")
    try:
        launcher = _launcher.load(args.launcher, json.loads(args.launcher_options))
        asyncio.run(Supervisor(args.root, launcher, args.cgroup_root or "").serve(args.ready_fd))
    except Exception:  # noqa: BLE001
        log.exception("supervisor failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
