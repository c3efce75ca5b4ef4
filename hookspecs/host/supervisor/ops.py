"""The supervisor's control operations (``op_<name>``, see :mod:`.protocol`), a mixin of
:class:`~.server.Supervisor`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from typing import Any, Awaitable, Callable

from dockyard.hookspecs.errors import (
    Conflict,
    DockyardError,
    ExecError,
    InvalidParameter,
    NotFound,
)
from dockyard.hookspecs.host import seccompbpf
from dockyard.hookspecs.host.ns import NAMESPACE_FLAGS
from dockyard.hookspecs.host.supervisor import launcher as _launcher
from dockyard.hookspecs.host.supervisor.cgroups import Cgroups
from dockyard.hookspecs.host.supervisor.jsonlog import JsonLog
from dockyard.hookspecs.host.supervisor.processes import Container, Exec
from dockyard.hookspecs.host.supervisor.protocol import ID_RE
from dockyard.hookspecs.host.supervisor.stdio import Stdio

__all__ = ["Ops"]

log = logging.getLogger("dockyard.supervisor")


def seccomp_bpf(spec: dict[str, Any]) -> bytes | None:
    """The container's seccomp program, compiled here once per (profile, capabilities) — some
    20 ms with libseccomp — so that forked children only load it."""
    profile = (spec.get("linux") or {}).get("seccomp")
    return seccompbpf.bpf_for(profile) if profile else None


class Ops:
    """The operations; the state and the process plumbing are the supervisor's."""

    root: str
    loop: asyncio.AbstractEventLoop
    launcher: _launcher.Launcher
    cgroups: Cgroups
    containers: dict[str, Container]
    execs: dict[str, Exec]
    _launch: Callable[..., Awaitable[tuple[int, tuple[int, str] | None]]]
    _adopt: Callable[[Stdio, int], None]
    _remove_cgroups: Callable[[Container], Awaitable[None]]

    def _get(self, cid: str) -> Container:
        c = self.containers.get(cid)
        if c is None:
            raise NotFound(f"No such container: {cid}")
        return c

    def _get_exec(self, eid: str) -> Exec:
        ex = self.execs.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    def _thaw(self, c: Container) -> None:
        try:
            self.cgroups.freeze(c.cg_dirs, False)
        except (OSError, DockyardError) as e:
            log.warning("%s: thaw: %s", c.id, e)
        if c.status == "paused":
            c.status = "running"

    async def op_hello(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": 1, "containers": len(self.containers)}

    async def op_list(self) -> list[dict[str, Any]]:
        return [c.state() for c in self.containers.values()]

    async def op_state(self, id: str) -> dict[str, Any]:
        return self._get(id).state()

    def _check_spec(self, spec: dict[str, Any]) -> None:
        """Refuse a spec no process can be made from (InvalidParameter)."""
        root = (spec.get("root") or {}).get("path")
        if not root or not os.path.isdir(root):
            raise InvalidParameter(f"rootfs {root!r} is not a directory")
        if not (spec.get("process") or {}).get("args"):
            raise InvalidParameter("no command specified")
        self.launcher.check(spec)
        for ns in (spec.get("linux") or {}).get("namespaces") or ():
            if ns.get("type") not in NAMESPACE_FLAGS:
                raise InvalidParameter(f"unknown namespace type {ns.get('type')!r}")
            if ns["type"] == "user" and not ns.get("path"):
                lin = spec.get("linux") or {}
                if not lin.get("uidMappings") or not lin.get("gidMappings"):
                    raise InvalidParameter(
                        "a new user namespace needs linux.uidMappings and linux.gidMappings"
                    )

    async def op_create(
        self,
        id: str,
        spec: dict[str, Any],
        log_path: str,
        tty: bool = False,
        open_stdin: bool = False,
        stdin_once: bool = False,
    ) -> None:
        if not ID_RE.match(id or ""):
            raise InvalidParameter(f"invalid container id {id!r}")
        c = self.containers.get(id)
        if c is not None and (c.status in ("running", "paused") or c.starting):
            raise Conflict(f"container {id} is running")
        self._check_spec(spec)
        if not log_path:
            raise InvalidParameter("log_path is required")
        new = c is None
        if c is None:
            c = Container(self, id)
            os.makedirs(c.dir, mode=0o700, exist_ok=True)
        resources = (spec.get("linux") or {}).get("resources") or {}
        if self.cgroups.available:
            rel = _launcher.cgroup_rel(spec, id)
            # made afresh for every run (those of a created container hold no process yet)
            await self._remove_cgroups(c)
            notes = spec.get("annotations") or {}
            try:
                self.cgroups.set_rt_parents(
                    rel,
                    int(notes.get("io.dockyard.cpu-rt-period") or 0),
                    int(notes.get("io.dockyard.cpu-rt-runtime") or 0),
                )
                c.cg_dirs = self.cgroups.create(  # all made, or none left
                    rel, {} if self.launcher.applies_resources else resources
                )
            except (InvalidParameter, OSError) as e:
                if new:
                    shutil.rmtree(c.dir, ignore_errors=True)
                raise InvalidParameter(str(e)) from None
        c.mem_limited = (resources.get("memory") or {}).get("limit") is not None
        c.spec, c.tty, c.open_stdin, c.stdin_once = (
            spec,
            bool(tty),
            bool(open_stdin),
            bool(stdin_once),
        )
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
        c.reset_run()
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
            c.reset_run()
        c.starting = True
        c.status = "created"
        c.exit = None
        spec = c.spec
        cfg = {
            "id": c.id,
            "dir": c.dir,
            "cgroups_path": _launcher.cgroup_rel(spec, c.id),
            "spec": spec,
            "namespaces": list((spec.get("linux") or {}).get("namespaces") or ()),
            "mounts": self.cgroups.view_mounts(
                spec.get("mounts", _launcher.default_mounts()), c.cg_dirs
            ),
            "tty": c.tty,
            "cgroup_procs": Cgroups.procs_files(c.cg_dirs),
        }
        try:
            cfg["seccomp_bpf"] = seccomp_bpf(spec)
            gpid, err = await self._launch(c, self.launcher.start_entry, cfg)
        finally:
            c.starting = False
        if gpid:
            c.started_at = time.time()
            c.status = "running"
        self._adopt(c, gpid)
        if err is not None or not gpid:
            code, message = err if err is not None else (128, "container init failed")
            c.exit_error = message
            if not gpid:
                c.on_exit(code)
            await c.wait_future()
            raise ExecError(message, code)
        c.persist()
        return gpid

    async def op_sync(self, id: str) -> None:
        self._get(id).drain_available()

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
