"""The container's monitor: what holds an lxc container's stdio, log and exit status.

One process per container run, detached from the daemon (its own session, reparented away
from the daemon), so that a container outlives the daemon: ``python -m
dockyard.plugins.execdrivers.lxc.monitor <container dir>``. It

* makes the container's stdio (pipes, or a pseudo-terminal) and keeps their other ends;
* writes everything the container prints to the json-file log (``io.dockyard.log.*``
  annotations: ``none`` keeps none, ``max-size``/``max-file`` rotate) and to attached clients;
* listens on ``<dir>/sock`` (one JSON line per request): ``start`` forks the starter
  (:mod:`.starter`) and answers the container's pid once liblxc says it runs; ``attach`` turns
  the connection into the container's stdio stream; ``wait`` answers once it has exited and its
  output is written; ``resize`` sizes the terminal;
* writes ``state.json`` (``created``, ``running`` with the pid, ``exited`` with the exit) at each
  step, which the driver reads after a restart; exits once the container has.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import sys
import termios
import time
from typing import Any

from dockyard.hookspecs.host import cgroupfiles, streams, timefmt

from . import starter
from .execcheck import check_executable

READ = 65536


def write_json(path: str, data: Any) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


class Log:
    """The json-file log, rotated at ``max_size`` bytes into ``max_file - 1`` old files."""

    def __init__(self, path: str, ann: dict[str, str]) -> None:
        self.path = path
        self.enabled = ann.get("io.dockyard.log.driver", "json-file") != "none"
        self.max_size = int(ann.get("io.dockyard.log.max-size") or 0)
        self.max_file = max(1, int(ann.get("io.dockyard.log.max-file") or 1))
        self.f = open(path, "ab") if self.enabled else None  # noqa: SIM115

    def write(self, stream: str, data: bytes) -> None:
        if self.f is None:
            return
        line = json.dumps({"log": data.decode("utf-8", "replace"), "stream": stream,
                           "time": timefmt.rfc3339nano(time.time_ns())}).encode() + b"\n"
        if self.max_size and self.f.tell() + len(line) > self.max_size and self.f.tell():
            self.rotate()
        self.f.write(line)
        self.f.flush()

    def rotate(self) -> None:
        assert self.f is not None
        self.f.close()
        for i in range(self.max_file - 1, 0, -1):
            src = self.path if i == 1 else f"{self.path}.{i - 1}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i}")
        if self.max_file == 1:
            os.truncate(self.path, 0)
        self.f = open(self.path, "ab")  # noqa: SIM115


class Client:
    def __init__(self, writer: asyncio.StreamWriter, tty: bool, want: set[str]) -> None:
        self.writer, self.tty, self.want = writer, tty, want

    def send(self, stream: str, data: bytes) -> None:
        if stream not in self.want or self.writer.is_closing():
            return
        self.writer.write(data if self.tty else streams.frame(
            streams.STDOUT if stream == "stdout" else streams.STDERR, data))


class Monitor:
    def __init__(self, cdir: str) -> None:
        self.dir = cdir
        with open(os.path.join(cdir, "run.json")) as f:
            self.run = json.load(f)
        self.tty = bool(self.run["tty"])
        self.log = Log(self.run["log_path"], self.run.get("annotations") or {})
        self.clients: list[Client] = []
        self.exited = asyncio.Event()
        self.drained = asyncio.Event()
        self.state: dict[str, Any] = {"status": "created"}
        self.starter_pid = 0
        self.oom = False
        self.init = 0
        self.init_ready = asyncio.Event()
        self.stdin_w: int | None = None
        self._make_stdio()

    def _make_stdio(self) -> None:
        if self.tty:
            self.master, slave = os.openpty()
            self.child_fds = [slave, slave, slave]
            self.outs = {"stdout": self.master}
            self.stdin_w = self.master if self.run["open_stdin"] else None
            return
        if self.run["open_stdin"]:
            stdin_r, self.stdin_w = os.pipe()
        else:
            stdin_r = os.open("/dev/null", os.O_RDONLY)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.child_fds = [stdin_r, out_w, err_w]
        self.outs = {"stdout": out_r, "stderr": err_r}

    def close(self) -> None:
        """Every descriptor of this run, each unregistered from the loop first: one process
        serves many containers, and a number closed while still registered would be reused."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.hook_in)
        fds = {self.hook_in, self.hook_out, *self.outs.values()}
        if self.stdin_w is not None:
            fds.add(self.stdin_w)
        if not self.starter_pid:  # never started: the child's ends are still here
            fds.update(self.child_fds)
        for fd in fds:
            loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def save(self) -> None:
        write_json(os.path.join(self.dir, "state.json"), self.state)

    # -- output -------------------------------------------------------------------------------
    def _pump(self, stream: str, fd: int, done: asyncio.Future) -> None:
        try:
            data = os.read(fd, READ)
        except OSError:  # EIO: the terminal's last holder closed it
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
            if not done.done():
                done.set_result(None)
            return
        self.log.write(stream, data)
        for c in self.clients:
            c.send(stream, data)

    async def pump_output(self) -> None:
        loop = asyncio.get_running_loop()
        waits = []
        for stream, fd in self.outs.items():
            os.set_blocking(fd, False)
            done: asyncio.Future = loop.create_future()
            loop.add_reader(fd, self._pump, stream, fd, done)
            waits.append(done)
        await asyncio.gather(*waits)
        self.drained.set()

    # -- start --------------------------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        if self.state["status"] != "created":
            return {"error": "container already started", "code": 128}
        args = self.run["args"]
        bad = check_executable(self.run["rootfs"], args[0], self.run["env"], self.run["cwd"],
                               self.run.get("mounts"))
        if bad is not None:
            code, message = bad
            self._exit(code, message)
            return {"error": message, "code": code}
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the starter
            starter.run(self.dir, self.run["name"], args, self.run["joins"], self.child_fds,
                        self.tty)
        self.starter_pid = pid
        for fd in set(self.child_fds):
            os.close(fd)
        asyncio.get_running_loop().create_task(self.pump_output())
        asyncio.get_running_loop().create_task(self.reap())
        init = await self._init_pid()
        started = time.time()
        if not init:  # the starter ended: a failure, or a container that was quick to exit
            await self.exited.wait()
            if self.state["exit"]["error"]:
                return {"error": self.state["exit"]["error"],
                        "code": self.state["exit"]["exit_code"]}
            self.state.update(pid=self.starter_pid, started_at=started)
            self.save()
            return {"pid": self.starter_pid}
        self.state = {"status": "running", "pid": init, "started_at": started,
                      "starter": self.starter_pid}
        self.save()
        return {"pid": init}

    async def _init_pid(self) -> int:
        """The container's process once it has exec'd its program (its executable is no longer
        the starter's); 0 if the starter ended first. The monitor never calls liblxc while it
        starts the container: liblxc's own monitor (the starter) answers no request while it runs
        the hook, and the binding holds the interpreter lock meanwhile."""
        ready = asyncio.ensure_future(self.init_ready.wait())
        ended = asyncio.ensure_future(self.exited.wait())
        await asyncio.wait([ready, ended], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        ended.cancel()
        if not self.init:
            return 0
        mine = os.readlink(f"/proc/{self.starter_pid}/exe")
        while not self.exited.is_set():
            try:
                if os.readlink(f"/proc/{self.init}/exe") != mine:
                    break
            except OSError:
                break
            await asyncio.sleep(0.001)
        return self.init

    async def reap(self) -> None:
        """Wait for the starter through a pidfd (no thread: the monitor forks starters, and a
        fork must not happen while another thread may hold a lock)."""
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(self.starter_pid)
        done = loop.create_future()
        loop.add_reader(pidfd, lambda: None if done.done() else done.set_result(None))
        try:
            await done
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        os.waitpid(self.starter_pid, 0)
        try:
            with open(os.path.join(self.dir, "exit.json")) as f:
                res = json.load(f)
        except (OSError, ValueError):
            res = {"error": "the lxc starter ended without a status"}
        await self.drained.wait()
        error = res.get("error") or ("" if res.get("started") else self._lxc_error())
        self._exit(int(res.get("exit_code", 128)) if not error else 128, error)

    def _lxc_error(self) -> str:
        try:
            with open(os.path.join(self.dir, "lxc.log"), errors="replace") as f:
                lines = [line.strip() for line in f if "ERROR" in line]
        except OSError:
            lines = []
        return "lxc: " + (lines[-1].split(" - ", 1)[-1] if lines else "the container failed to start")

    def _exit(self, code: int, error: str = "") -> None:
        self.state = {**self.state, "status": "exited", "exit": {
            "exit_code": code, "finished_at": time.time(), "oom_killed": self._oom_killed(),
            "error": error}}
        self.save()
        for c in self.clients:
            if not c.writer.is_closing():
                c.writer.close()
        self.exited.set()

    def _oom_killed(self) -> bool:
        """v1: what the OOM watch saw; v2: ``oom_kill`` in the parent's ``memory.events``,
        which counts its children's (liblxc has removed the container's own cgroup)."""
        if self.oom:
            return True
        base = str(self.run.get("cgroups_path") or "").strip("/")
        try:
            with open(f"/sys/fs/cgroup/{base}/memory.events") as f:
                return bool(cgroupfiles.oom_kills(f.read()))
        except OSError:
            return False

    def watch_oom(self) -> None:
        """v1: an eventfd on the container's ``memory.oom_control`` (``cgroup.event_control``,
        as runc's OOM notifier): the kernel signals it once per OOM in the cgroup, and once when
        liblxc removes the cgroup (the directory is gone then)."""
        path = f"/sys/fs/cgroup/memory/{self.run.get('cgroups_path', '').strip('/')}/payload"
        if not os.path.isdir(path):  # cgroup v2: memory.events, read at the end
            return
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            cfd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            with open(os.path.join(path, "cgroup.event_control"), "w") as f:
                f.write(f"{efd} {cfd}")
        except OSError:
            return
        loop = asyncio.get_running_loop()

        def fired() -> None:
            try:
                events = os.eventfd_read(efd)
            except BlockingIOError:
                return
            # one event per OOM, one when the cgroup is removed (maybe read together)
            alive = os.path.isdir(path)
            if events >= 2 or alive:
                self.oom = True
            if alive:
                return
            loop.remove_reader(efd)
            os.close(efd)
            os.close(cfd)
        loop.add_reader(efd, fired)

    def open_hook(self) -> None:
        """The two FIFOs of liblxc's start-host hook (:func:`.config.start_hook`): ``hook.in``
        brings the container's pid, a byte in ``hook.out`` lets the hook end. Both are held
        open read-write here, so neither side ever sees an end of file or blocks on open."""
        fds = []
        for name in ("hook.in", "hook.out"):
            path = os.path.join(self.dir, name)
            if not os.path.exists(path):
                os.mkfifo(path, 0o600)
            fds.append(os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
        self.hook_in, self.hook_out = fds
        asyncio.get_running_loop().add_reader(self.hook_in, self.on_hook)

    def on_hook(self) -> None:
        """liblxc's start-host hook gave the container's pid; its cgroups exist: watch them,
        then let the hook (and liblxc) go on."""
        try:
            self.init = int(os.read(self.hook_in, 64).split()[0])
        except (OSError, ValueError, IndexError):
            self.init = 0
        self.watch_oom()
        os.write(self.hook_out, b"w")
        self.init_ready.set()

    # -- requests -----------------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = json.loads(await reader.readline() or b"{}")
            op = req.get("op")
            if op == "start":
                reply = await self.start()
            elif op == "wait":
                await self.exited.wait()
                reply = self.state["exit"]
            elif op == "resize":
                self.resize(int(req["height"]), int(req["width"]))
                reply = {}
            elif op == "attach":
                await self.attach(req, reader, writer)
                return
            elif op == "quit":
                reply = {}
                if self.state["status"] == "created":
                    self._exit(128, "deleted before it started")
            else:
                reply = {"error": f"unknown request {op!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    def resize(self, height: int, width: int) -> None:
        if self.tty:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def attach(self, req: dict[str, Any], reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        want = {s for s in ("stdout", "stderr") if req.get(s, True)}
        client = Client(writer, self.tty, want)
        writer.write(b"{}\n")
        if self.exited.is_set():
            writer.close()
            return
        self.clients.append(client)
        try:
            while req.get("stdin") and self.stdin_w is not None:
                data = await reader.read(READ)
                if not data:
                    break
                os.write(self.stdin_w, data)
            if req.get("stdin") and self.stdin_w is not None:
                if self.run["stdin_once"] and not self.tty:
                    os.close(self.stdin_w)
                    self.stdin_w = None
                else:
                    writer.close()
            await self.exited.wait()
        finally:
            self.clients.remove(client)


async def serve(m: Monitor, started: asyncio.Future) -> None:
    """One container's run: its socket, until it has exited (``started`` once it listens)."""
    path = os.path.join(m.dir, "sock")
    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(m.serve, path)
    m.open_hook()
    with open(os.path.join(m.dir, "monitor.pid"), "w") as f:
        f.write(str(os.getpid()))
    m.save()
    started.set_result(None)
    await m.exited.wait()
    await asyncio.sleep(0.05)  # the last replies (wait) go out
    server.close()
    with contextlib.suppress(FileNotFoundError):  # the driver may have removed the directory
        os.unlink(path)
    m.close()


class Supervisor:
    """The one monitor process of a driver root: each container added (``add`` on
    ``<root>/monitor.sock``) gets a :class:`Monitor` here; the process ends once it holds no
    container and no driver is connected."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.runs: dict[str, asyncio.Task] = {}
        self.idle = asyncio.Event()
        self.added = asyncio.Event()
        self.clients = 0

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A driver's connection: ``add`` requests, one JSON line each; the monitor stays while
        a driver holds one open, as the native supervisor does."""
        self.clients += 1
        try:
            while line := await reader.readline():
                writer.write(json.dumps(await self.add(json.loads(line))).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError, OSError) as e:
            print(f"lxc monitor: {e}", file=sys.stderr)
        finally:
            writer.close()
            self.clients -= 1
            self.check_idle()

    async def add(self, req: dict[str, Any]) -> dict[str, Any]:
        cdir = os.path.join(self.root, os.path.basename(str(req.get("id") or "")))
        if req.get("op") != "add" or not os.path.isfile(os.path.join(cdir, "run.json")):
            return {"error": "bad request"}
        if self.idle.is_set():
            return {"error": "the monitor is ending"}
        started = asyncio.get_running_loop().create_future()
        self.runs[cdir] = asyncio.ensure_future(self.run(Monitor(cdir), started))
        self.added.set()
        await started
        return {}

    def check_idle(self) -> None:
        if not self.runs and not self.clients:
            self.idle.set()

    async def run(self, m: Monitor, started: asyncio.Future) -> None:
        try:
            await serve(m, started)
        except BaseException as e:
            if not started.done():
                started.set_exception(e)
            raise
        finally:
            self.runs.pop(m.dir, None)
            self.check_idle()

    async def main(self, ready: int) -> None:
        path = os.path.join(self.root, "monitor.sock")
        if os.path.exists(path):
            os.unlink(path)
        server = await asyncio.start_unix_server(self.control, path)
        mine = os.stat(path).st_ino
        os.write(ready, b"r")
        os.close(ready)
        try:  # the driver adds the first container right after it started the monitor
            await asyncio.wait_for(self.added.wait(), 30)
            await self.idle.wait()
        except asyncio.TimeoutError:
            self.idle.set()
        server.close()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == mine:  # not a newer monitor's
                os.unlink(path)


def main(root: str) -> None:
    """Detach (a new session, the parent returns once the monitor listens), then supervise."""
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        ok = os.read(r, 1)
        os._exit(0 if ok else 1)
    os.close(r)
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    err = os.open(os.path.join(root, "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(err, 2)
    import lxc  # noqa: F401, PLC0415 - imported once here, never in a forked starter

    asyncio.run(Supervisor(root).main(w))


if __name__ == "__main__":
    main(sys.argv[1])
