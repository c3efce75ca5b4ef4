"""The supervisor: one long-lived, single-threaded process per driver root.

It is the fork server (every container is forked from it, by its launcher: see :mod:`.launcher`),
the subreaper and parent of every container's first process, and the owner of each container's
stdio, json-file log and exit status. It is separate from the API daemon so containers survive
the daemon; it exits by itself once it holds no container and no client is connected. The
protocol is :mod:`.protocol`'s; the operations are in :mod:`.ops`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import shutil
import signal
import socket
import time
from typing import Any

from dockyard.hookspecs.errors import Conflict, DockyardError, ExecError, InvalidParameter, NotFound
from dockyard.hookspecs.host import caps, seccomp, seccompbpf
from dockyard.hookspecs.host.supervisor import launcher as _launcher
from dockyard.hookspecs.host.supervisor import protocol
from dockyard.hookspecs.host.supervisor.cgroups import Cgroups
from dockyard.hookspecs.host.supervisor.ops import Ops, seccomp_bpf
from dockyard.hookspecs.host.supervisor.processes import Container, Exec
from dockyard.hookspecs.host.supervisor.protocol import ID_RE, LINE_LIMIT, PID_NAME, SOCK_NAME
from dockyard.hookspecs.host.supervisor.stdio import AttachClient, FdWriter, Stdio

__all__ = ["Supervisor"]

try:  # warm: the fork server compiles seccomp filters (once per profile and capability set)
    import seccomp as _libseccomp  # noqa: F401
except ImportError:  # pragma: no cover
    pass

log = logging.getLogger("dockyard.supervisor")

IDLE_GRACE = 30.0  # exit if no client ever connects within this many seconds of starting


def _warm_seccomp() -> None:
    """Compile Docker's default profile for Docker's default capabilities ahead of the first
    container that needs it."""
    try:
        seccompbpf.bpf_for(seccomp.default_profile(list(caps.DEFAULT_CAPS)))
    except Exception:  # noqa: BLE001 - only a warm-up: the first start compiles (and reports)
        log.debug("seccomp warm-up failed", exc_info=True)


class Supervisor(Ops):
    """The supervisor of the containers under ``root``, made by ``launcher``, with their cgroups
    under ``cgroup_root`` (empty: the host's tree)."""

    def __init__(self, root: str, launcher: _launcher.Launcher, cgroup_root: str = "") -> None:
        self.root = os.path.abspath(root)
        self.launcher = launcher
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
        server = await asyncio.start_unix_server(
            self._on_connection, path=self.sock_path, limit=LINE_LIMIT, backlog=128
        )
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
            self._recover_one(cid, st)

    def _recover_one(self, cid: str, st: dict[str, Any]) -> None:
        c = Container(self, cid)
        c.cg_dirs = [d for d in st.get("cgroups") or [] if d.startswith(self.cgroups.root + "/")]
        c.log_path = st.get("log_path", "")
        c.tty, c.open_stdin, c.stdin_once = (
            bool(st.get(k)) for k in ("tty", "open_stdin", "stdin_once")
        )
        c.started_at = st.get("started_at", 0.0)
        c.reset_run()
        killed = self._kill_leftovers(c)
        if st.get("status") in ("running", "paused"):
            c.exit = {
                "exit_code": 255 if not killed else 137,
                "finished_at": time.time(),
                "oom_killed": False,
                "error": "the native supervisor died while the "
                "container ran; its processes were killed",
            }
            log.warning("%s: recovered from a dead supervisor (killed %d processes)", cid, killed)
        else:
            c.exit = st.get("exit") or {
                "exit_code": 255,
                "finished_at": time.time(),
                "oom_killed": False,
                "error": "",
            }
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

    def _kill_leftovers(self, c: Container) -> int:
        """Kill what is left in a recovered container's cgroups and remove them; the number of
        processes killed."""
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
        return killed

    def _maybe_exit(self) -> None:
        if self.nclients == 0 and not self.containers and self.stop is not None:
            self.stop.set()

    def _on_sigterm(self) -> None:
        if self.containers:
            log.warning("SIGTERM ignored: %d containers held", len(self.containers))
        elif self.stop is not None:
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
    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
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
        except (
            ConnectionError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as e:
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
            resp = {"rid": rid, "ok": False, "error": protocol.error_body(e)}
        except asyncio.CancelledError:
            raise
        except TypeError as e:
            resp = {
                "rid": rid,
                "ok": False,
                "error": {"type": "InvalidParameter", "message": f"{op}: {e}"},
            }
        except Exception as e:  # noqa: BLE001
            log.exception("op %s", op)
            resp = {"rid": rid, "ok": False, "error": protocol.error_body(e)}
        if not writer.is_closing():
            writer.write(protocol.encode(resp))

    async def _attach(
        self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        c = self.containers.get(req.get("id", ""))
        if c is None:
            writer.write(
                protocol.encode(
                    {
                        "ok": False,
                        "error": protocol.error_body(
                            NotFound(f"No such container: {req.get('id')}")
                        ),
                    }
                )
            )
            return
        want_stdin = bool(req.get("stdin")) and c.open_stdin
        writer.write(protocol.encode({"ok": True, "stdin": want_stdin}))
        if c.status == "exited" and not c.starting:
            return
        cl = AttachClient(writer, bool(req.get("stdout", True)), bool(req.get("stderr", True)))
        c.clients.append(cl)
        first_stdin = want_stdin and not c.stdin_claimed
        if want_stdin:
            c.stdin_claimed = True

        def feed(data: bytes) -> None:
            if want_stdin and c.stdin is not None and cl in c.clients:
                c.stdin.write(data)

        try:
            await self._pump(reader, feed)
            if want_stdin and cl in c.clients:
                # the client's input ended. As dockerd: with stdin_once (and no TTY) that is
                # the end of the container's stdin, and output keeps flowing until it exits;
                # otherwise — always with a TTY (a client detaching) — the session ends and
                # the container's stdin stays open
                if c.tty or not c.stdin_once:
                    return
                if first_stdin and c.stdin is not None:
                    c.stdin.write_eof()
                await self._until_done(cl, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            if cl in c.clients:
                c.clients.remove(cl)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, feed: Any) -> None:
        """The client's bytes to ``feed`` until it half-closes."""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            feed(data)

    async def _until_done(self, cl: AttachClient, writer: asyncio.StreamWriter) -> None:
        """Wait until the session's output ended (the process exited) or the client left."""
        closed = self.loop.create_task(writer.wait_closed())
        try:
            await asyncio.wait([cl.done, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()

    async def _exec(
        self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """An exec connection: start the process, answer one JSON line, then (unless detached)
        carry its output to the client and the client's bytes to its stdin until it exits."""
        try:
            ex = await self._start_exec(req, writer)
        except Exception as e:  # noqa: BLE001
            if not isinstance(e, DockyardError):
                log.exception("exec")
            writer.write(protocol.encode({"ok": False, "error": protocol.error_body(e)}))
            return
        writer.write(protocol.encode({"ok": True, "pid": ex.pid}))
        ex.go_live()
        if ex.client is None:
            return
        try:
            await self._pump(reader, lambda data: ex.stdin.write(data) if ex.stdin else None)
            if ex.stdin is not None:
                if ex.tty:  # as dockerd: a client detaching ends the session, not the stdin
                    return
                ex.stdin.write_eof()
            await self._until_done(ex.client, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            ex.client = None

    async def _start_exec(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> Exec:
        c = self._get(req.get("container", ""))
        if c.status not in ("running",) or not c.pid or c.proc_code is not None:
            raise Conflict(
                f"Container {c.id} is not running"
                if c.status != "paused"
                else f"Container {c.id} is paused, unpause the container before exec"
            )
        eid = req.get("id") or ""
        if not ID_RE.match(eid) or eid in self.execs:
            raise InvalidParameter(f"invalid or duplicate exec id {eid!r}")
        process = req.get("process") or {}
        if not process.get("args"):
            raise InvalidParameter("No exec command specified")
        tty = bool(req.get("tty"))
        detach = bool(req.get("detach"))
        ex = Exec(self, eid, c, tty)
        if not detach:
            ex.client = AttachClient(writer, True, True)
            if req.get("stdin"):
                ex.stdin = FdWriter(self.loop)
        cfg = {
            "id": c.id,
            "dir": c.dir,
            "exec_id": eid,
            "spec": c.spec,
            "process": process,
            "tty": tty,
            "target_pid": c.pid,
            "cgroup_procs": Cgroups.procs_files(c.cg_dirs),
            "seccomp_bpf": seccomp_bpf(c.spec),
        }
        gpid, err = await self._launch(ex, self.launcher.exec_entry, cfg, discard_output=detach)
        self._adopt(ex, gpid)
        if err is not None or not gpid:
            code, message = err if err is not None else (126, "exec failed")
            if not gpid:
                ex.on_exit(code)
            ex.close_outputs()
            raise ExecError(message, code)
        self.execs[eid] = ex
        c.execs.append(eid)
        return ex

    # -- cgroups ---------------------------------------------------------------------------------
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

    # -- making processes -----------------------------------------------------------------------
    async def _launch(
        self, owner: Stdio, entry: Any, cfg: dict[str, Any], discard_output: bool = False
    ) -> tuple[int, tuple[int, str] | None]:
        """Make ``owner``'s stdio and run ``entry`` (a container start or an exec) in a forked
        child given ``cfg``: ``(host pid of the process, error)``."""
        child_fds: list[int] = []
        chan = child_chan = None
        try:
            cfg["stdio"] = owner.child_stdio(child_fds, discard_output)
            chan, child_chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            cfg.update(options=self.launcher.options, base_rlimits=self.base_rlimits)
        except BaseException:
            self._undo_setup(owner, child_fds, chan, child_chan)
            raise
        return await self._spawn(owner, entry, cfg, child_fds, chan, child_chan)

    def _adopt(self, owner: Stdio, gpid: int) -> None:
        """``owner``'s process is ``gpid`` (0: none): reaped from now on, or already (an exit
        seen while the start was under way)."""
        if gpid:
            owner.pid = gpid
            self.by_pid[gpid] = owner
            early = self.early_exits.pop(gpid, None)
            if early is not None:
                owner.on_exit(early)
        if not self.pending_starts:
            self.early_exits.clear()

    @staticmethod
    def _undo_setup(
        owner: Stdio,
        child_fds: list[int],
        chan: socket.socket | None,
        child_chan: socket.socket | None,
    ) -> None:
        """A container start or exec failed before its fork: close what was made for it."""
        for fd in child_fds:
            os.close(fd)
        if chan is not None:
            chan.close()
            child_chan.close()  # type: ignore[union-attr]
        owner.close_outputs()

    async def _spawn(
        self,
        owner: Stdio,
        entry: Any,
        cfg: dict[str, Any],
        child_fds: list[int],
        chan: socket.socket,
        child_chan: socket.socket,
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
                owner.close_outputs()
                raise
            finally:
                for fd in child_fds:
                    os.close(fd)
                child_chan.close()
            return await self._read_reports(owner, chan)
        finally:
            chan.close()
            self.pending_starts -= 1

    async def _read_reports(
        self, owner: Stdio, chan: socket.socket
    ) -> tuple[int, tuple[int, str] | None]:
        """Read the children's messages until end-of-file (the container process exec'd or
        everything died)."""
        chan.setblocking(False)
        fut = self.loop.create_future()
        got: dict[str, Any] = {"pid": 0, "error": None}

        def on_readable() -> None:
            while True:
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(chan, 65536, 4)
                except BlockingIOError:
                    return
                except OSError as e:
                    msg, fds = b"", []
                    log.warning("%s: report channel: %s", getattr(owner, "id", "?"), e)
                if not msg and not fds:
                    self.loop.remove_reader(chan.fileno())
                    if not fut.done():
                        fut.set_result(None)
                    return
                kind, value = protocol.parse_report(msg)
                if kind == "console" and fds:
                    owner.set_master(fds[0])
                    fds = fds[1:]
                elif kind in ("pid", "error"):
                    got[kind] = value
                for fd in fds:
                    os.close(fd)

        self.loop.add_reader(chan.fileno(), on_readable)
        try:
            await fut
        finally:
            if not fut.done():
                self.loop.remove_reader(chan.fileno())
        return got["pid"], got["error"]
