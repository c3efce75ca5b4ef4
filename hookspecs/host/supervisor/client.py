"""The daemon's side of a supervised exec driver: an asyncio client of the supervisor.

:class:`SupervisedDriver` is an :class:`~dockyard.hookspecs.execdriver.ExecDriver` whose
containers run under the supervisor (:mod:`.server`) of its root, made by its ``launcher``
(``module:Class``, a :class:`~.launcher.Launcher`). The driver holds one control connection to
``ROOT/supervisor.sock`` (JSON lines, requests matched to answers by ``rid``) and opens one extra
connection per attach or exec. ``restore()`` (or the first call of any method) starts the
supervisor when none answers on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any

from dockyard.hookspecs.errors import DockyardError, DriverNotSupported, InvalidParameter
from dockyard.hookspecs.execdriver import AttachStreams, ExecDriver, ExitStatus, ProcessState
from dockyard.hookspecs.host.supervisor import protocol
from dockyard.hookspecs.host.supervisor.protocol import LINE_LIMIT, LOG_NAME, PID_NAME, SOCK_NAME

log = logging.getLogger(__name__)


__all__ = ["ConnectionLost", "SupervisedAttach", "SupervisedDriver"]

SUPERVISOR_MODULE = "dockyard.hookspecs.host.supervisor"
SPAWN_TIMEOUT = 30.0


def _settle(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _exit_status(d: dict[str, Any] | None) -> ExitStatus | None:
    if d is None:
        return None
    return ExitStatus(
        exit_code=d["exit_code"],
        finished_at=d["finished_at"],
        oom_killed=d.get("oom_killed", False),
        error=d.get("error", ""),
    )


def _process_state(d: dict[str, Any]) -> ProcessState:
    return ProcessState(
        id=d["id"],
        status=d["status"],
        pid=d.get("pid", 0),
        started_at=d.get("started_at", 0.0),
        exit=_exit_status(d.get("exit")),
    )


class ConnectionLost(DockyardError):
    """The supervisor went away in the middle of a request."""


@dataclasses.dataclass
class SupervisedAttach(AttachStreams):
    """An attach session; ``close()`` detaches even when no stdin writer was asked for (the
    supervisor never closes a TTY's stdin when a session ends, so detaching is closing)."""

    transport_writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.transport_writer is not None:
            self.transport_writer.close()


class _Control:
    """The control connection: requests out, answers dispatched to futures by ``rid``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pending: dict[int, asyncio.Future] = {}
        self.rids = itertools.count(1)
        self.closed = False
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                fut = self.pending.pop(msg.get("rid"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError) as e:
            log.warning("native: supervisor connection: %s", e)
        finally:
            self.closed = True
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(
                        ConnectionLost("native: lost the connection to the supervisor")
                    )
            self.pending.clear()
            self.writer.close()

    async def call(self, op: str, **args: Any) -> Any:
        if self.closed:
            raise ConnectionResetError("supervisor connection closed")
        rid = next(self.rids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.writer.write(protocol.encode(dict(args, rid=rid, op=op)))
        try:
            msg = await fut
        finally:
            self.pending.pop(rid, None)
        if msg.get("ok"):
            return msg.get("result")
        raise protocol.error_from(msg.get("error") or {})

    async def close(self) -> None:
        self.closed = True
        self.writer.close()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class SupervisedDriver(ExecDriver):
    """Containers run by a long-lived supervisor per root, which outlives the daemon; a
    subclass names its ``launcher`` (and its ``name``, ``priority``...)."""

    #: what makes the processes in the supervisor: ``module:Class`` of a Launcher
    launcher = ""

    def launcher_options(self) -> dict[str, Any]:
        """The launcher's options (JSON), given to the supervisor when it starts."""
        return {}

    def __init__(self, root: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(root, options)
        if not sys.platform.startswith("linux"):
            raise DriverNotSupported(f"{self.name}: needs Linux")
        if os.geteuid() != 0:
            raise DriverNotSupported(f"{self.name}: needs root")
        if not os.path.exists("/proc/self/ns/pid") or not os.path.exists("/proc/self/ns/mnt"):
            raise DriverNotSupported(f"{self.name}: kernel without pid/mount namespaces")
        self.root = os.path.abspath(root)
        self.sock_path = os.path.join(self.root, SOCK_NAME)
        if not self.launcher:
            raise DriverNotSupported(f"{self.name}: no launcher")
        #: ``--exec-opt native.cgroup-root=PATH``: the cgroup tree the containers go in (a v1
        #: root of hierarchies, or a cgroup2 mount such as a hybrid host's ``unified``)
        self.cgroup_root = self.options.get("native.cgroup-root") or ""
        if (
            self.cgroup_root
            and not os.path.exists(os.path.join(self.cgroup_root, "cgroup.procs"))
            and not os.path.isdir(os.path.join(self.cgroup_root, "memory"))
        ):
            raise DriverNotSupported(
                f"{self.name}: native.cgroup-root {self.cgroup_root!r} is not a cgroup file system"
            )
        self._control: _Control | None = None
        self._lock: asyncio.Lock | None = None
        self._waits: dict[str, asyncio.Task] = {}
        self.supervisor_pid = 0
        #: the supervisor process this driver object started, if any (reaped by a thread)
        self.spawned: subprocess.Popen | None = None

    # -- connection -----------------------------------------------------------------------------
    async def _connect_once(self) -> _Control:
        reader, writer = await asyncio.open_unix_connection(self.sock_path, limit=LINE_LIMIT)
        ctl = _Control(reader, writer)
        try:
            hello = await ctl.call("hello")
        except BaseException:
            await ctl.close()
            raise
        self.supervisor_pid = hello["pid"]
        return ctl

    async def _conn(self) -> _Control:
        ctl = self._control
        if ctl is not None and not ctl.closed:
            return ctl
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._control is not None and not self._control.closed:
                return self._control
            try:
                self._control = await self._connect_once()
            except (OSError, DockyardError):
                # nobody answers (or an idle supervisor was just leaving): start one
                await self._spawn()
                self._control = await self._connect_once()
            return self._control

    async def _spawn(self) -> None:
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        r, w = os.pipe()
        try:
            with open(os.path.join(self.root, LOG_NAME), "ab") as errlog:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        SUPERVISOR_MODULE,
                        "--root",
                        self.root,
                        "--ready-fd",
                        str(w),
                        "--launcher",
                        self.launcher,
                        "--launcher-options",
                        json.dumps(self.launcher_options()),
                        *(["--cgroup-root", self.cgroup_root] if self.cgroup_root else []),
                    ],
                    pass_fds=(w,),
                    start_new_session=True,
                    close_fds=True,
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errlog,
                )
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.spawned = proc
        loop = asyncio.get_running_loop()
        ready: asyncio.Future = loop.create_future()

        def watch() -> None:
            # wait for "ready" (or EOF if it died), then reap it whenever it exits
            data = b""
            try:
                while not data.endswith(b"\n"):
                    chunk = os.read(r, 64)
                    if not chunk:
                        break
                    data += chunk
            finally:
                os.close(r)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, ready, data)
            proc.wait()

        threading.Thread(target=watch, name="dockyard-native-supervisor", daemon=True).start()
        data = await asyncio.wait_for(ready, SPAWN_TIMEOUT)
        if not data.startswith(b"ready"):
            raise DockyardError(
                f"{self.name}: the supervisor did not start; see "
                f"{os.path.join(self.root, LOG_NAME)}"
            )

    async def _call(self, op: str, **args: Any) -> Any:
        ctl = await self._conn()
        return await ctl.call(op, **args)

    # -- the contract ---------------------------------------------------------------------------
    async def restore(self) -> list[ProcessState]:
        return [_process_state(d) for d in await self._call("list")]

    async def create(
        self,
        cid: str,
        spec: dict[str, Any],
        *,
        log_path: str,
        tty: bool = False,
        open_stdin: bool = False,
        stdin_once: bool = False,
    ) -> None:
        await self._call(
            "create",
            id=cid,
            spec=spec,
            log_path=os.path.abspath(log_path),
            tty=tty,
            open_stdin=open_stdin,
            stdin_once=stdin_once,
        )

    async def attach(
        self, cid: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True
    ) -> AttachStreams:
        await self._conn()  # make sure a supervisor runs
        reader, writer, msg = await protocol.open_session(
            self.sock_path,
            {"op": "attach", "id": cid, "stdin": stdin, "stdout": stdout, "stderr": stderr},
            "attach",
        )
        return SupervisedAttach(
            reader=reader, writer=writer if msg.get("stdin") else None, transport_writer=writer
        )

    async def start(self, cid: str) -> int:
        return await self._call("start", id=cid)

    async def wait(self, cid: str) -> ExitStatus:
        task = self._waits.get(cid)
        if task is None:
            task = asyncio.ensure_future(self._wait_surviving(cid))
            self._waits[cid] = task

            def forget(t: asyncio.Task, cid: str = cid) -> None:
                if self._waits.get(cid) is t:
                    del self._waits[cid]
                if not t.cancelled():
                    t.exception()  # mark retrieved

            task.add_done_callback(forget)
        return _exit_status(await asyncio.shield(task))  # type: ignore[return-value]

    async def _wait_surviving(self, cid: str) -> Any:
        """``wait`` that outlives the supervisor: if it dies, the next one (started here at once)
        kills the orphaned processes and answers with the container's recorded exit."""
        for attempt in range(3):
            try:
                return await self._call("wait", id=cid)
            except ConnectionLost:
                if attempt == 2:
                    raise
                log.warning(
                    "native: supervisor lost while waiting for %s; starting a new one", cid[:12]
                )
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def kill(self, cid: str, signal: int) -> None:
        await self._call("kill", id=cid, signal=int(signal))

    async def delete(self, cid: str) -> None:
        await self._call("delete", id=cid)

    async def state(self, cid: str) -> ProcessState:
        return _process_state(await self._call("state", id=cid))

    async def resize(self, cid: str, height: int, width: int) -> None:
        await self._call("resize", id=cid, height=int(height), width=int(width))

    async def pause(self, cid: str) -> None:
        await self._call("pause", id=cid)

    def unsupported_resources(self, resources: dict[str, Any]) -> list[str]:
        from dockyard.hookspecs.host.supervisor.cgroups import Cgroups

        if getattr(self, "_cgroups", None) is None:
            # the supervisor's cgroup tree (native.cgroup-root, else the host's)
            self._cgroups = Cgroups(self.cgroup_root or None)
        return self._cgroups.unsupported(resources)

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        await self._call("update", id=cid, resources=resources)

    async def resume(self, cid: str) -> None:
        await self._call("resume", id=cid)

    async def pids(self, cid: str) -> list[int]:
        return await self._call("pids", id=cid)

    async def exec(
        self,
        cid: str,
        eid: str,
        process: dict[str, Any],
        *,
        tty: bool = False,
        stdin: bool = False,
        detach: bool = False,
    ) -> tuple[int, AttachStreams | None]:
        await self._conn()
        reader, writer, msg = await protocol.open_session(
            self.sock_path,
            {
                "op": "exec",
                "container": cid,
                "id": eid,
                "process": process,
                "tty": tty,
                "stdin": stdin,
                "detach": detach,
            },
            "exec",
        )
        if detach:
            writer.close()
            return msg["pid"], None
        return msg["pid"], SupervisedAttach(
            reader=reader, writer=writer if stdin else None, transport_writer=writer
        )

    async def exec_wait(self, eid: str) -> int:
        return await self._call("exec_wait", id=eid)

    async def exec_resize(self, eid: str, height: int, width: int) -> None:
        await self._call("exec_resize", id=eid, height=int(height), width=int(width))

    async def exec_forget(self, eid: str) -> None:
        await self._call("exec_forget", id=eid)

    async def sync_output(self, cid: str) -> None:
        try:
            await self._call("sync", id=cid)
        except InvalidParameter:  # a supervisor from before ``sync``, still running: no op
            pass

    async def stats(self, cid: str) -> dict[str, Any]:
        return await self._call("stats", id=cid)

    async def close(self) -> None:
        for task in list(self._waits.values()):
            task.cancel()
        self._waits.clear()
        if self._control is not None:
            await self._control.close()
            self._control = None

    def status(self) -> list[tuple[str, str]]:
        pid = self.supervisor_pid
        if not pid:
            try:
                with open(os.path.join(self.root, PID_NAME)) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
        return [("Supervisor", f"pid {pid}" if pid else "not running"), ("Root", self.root)]
