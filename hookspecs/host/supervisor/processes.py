"""What the supervisor holds: a :class:`Container` (its run's stdio, json-file log, attach
clients, exit status, cgroups, state on disk) and an :class:`Exec` (a process started in a
running container, whose output goes to the one client that started it)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

from dockyard.hookspecs.host.supervisor.jsonlog import JsonLog
from dockyard.hookspecs.host.supervisor.stdio import AttachClient, FdWriter, Stdio

__all__ = ["Container", "Exec"]

log = logging.getLogger("dockyard.supervisor")


class Container(Stdio):
    def __init__(self, sup: Any, cid: str) -> None:
        super().__init__(sup)
        self.id = cid
        self.dir = os.path.join(sup.root, cid)
        self.spec: dict[str, Any] = {}
        self.log_path = ""
        self.tty = self.open_stdin = self.stdin_once = False
        self.status = "created"
        self.started_at = 0.0
        self.exit: dict[str, Any] | None = None
        self.cg_dirs: list[str] = []
        self.cg_release: asyncio.Task | None = None
        self.mem_limited = False
        self.log: JsonLog | None = None
        self.clients: list[AttachClient] = []
        self.waiters: list[asyncio.Future] = []
        self.execs: list[str] = []
        self.reset_run()

    def reset_run(self) -> None:
        """Forget the last run (stdio, exit): the container is started (again)."""
        self.starting = False
        self.out_fds = {}
        self.master = None
        self.proc_code = None
        self.finished_at = 0.0
        self.exit_error = ""
        self.drain_timer = None
        self.stdin = FdWriter(self.sup.loop) if self.open_stdin else None
        self.stdin_claimed = False
        self.winsize = None

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "started_at": self.started_at,
            "exit": self.exit,
        }

    def persist(self) -> None:
        data = dict(
            self.state(),
            log_path=self.log_path,
            tty=self.tty,
            open_stdin=self.open_stdin,
            stdin_once=self.stdin_once,
            cgroups=self.cg_dirs,
        )
        tmp = os.path.join(self.dir, "state.json.tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, os.path.join(self.dir, "state.json"))
        except OSError as e:
            log.error("%s: persisting state: %s", self.id, e)

    # -- stdio ----------------------------------------------------------------------------------
    def deliver(self, stream: int, data: bytes) -> None:
        if self.log is not None:
            self.log.write(stream, data)
        for cl in self.clients:
            cl.send(stream, data, self.tty)

    def resize(self, height: int, width: int) -> None:
        if self.tty:
            super().resize(height, width)

    # -- exit -----------------------------------------------------------------------------------
    def exited(self) -> None:
        self.finished_at = time.time()

    def finished(self) -> None:
        if self.log is not None:
            self.log.flush()
        oom = self.mem_limited and self.sup.cgroups.oom_killed(self.cg_dirs, self.proc_code)
        self.exit = {
            "exit_code": self.proc_code if self.proc_code is not None else 128,
            "finished_at": self.finished_at or time.time(),
            "oom_killed": oom,
            "error": self.exit_error,
        }
        self.status = "exited"
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


class Exec(Stdio):
    """One process started in a running container (``docker exec``). Its output goes to the
    one client that started it (never to the container's log), as Docker does."""

    def __init__(self, sup: Any, eid: str, c: Container, tty: bool) -> None:
        super().__init__(sup)
        self.id, self.container, self.tty = eid, c, tty
        self.exit_code: int | None = None
        self.client: AttachClient | None = None
        self.waiters: list[asyncio.Future] = []
        #: output read before the client has its answer line (None: live)
        self.held: list[tuple[int, bytes]] | None = []

    def deliver(self, stream: int, data: bytes) -> None:
        if self.held is not None:
            self.held.append((stream, data))
        elif self.client is not None:
            self.client.send(stream, data, self.tty)

    def go_live(self) -> None:
        """The client has its answer line: deliver what was held back, then stream."""
        held, self.held = self.held or [], None
        if self.client is not None:
            for stream, data in held:
                self.client.send(stream, data, self.tty)
            if self.exit_code is not None:
                self.client.close()

    def finished(self) -> None:
        self.exit_code = self.proc_code if self.proc_code is not None else 128
        if self.client is not None and self.held is None:
            self.client.close()
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(self.exit_code)
        self.waiters.clear()

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "container": self.container.id,
            "pid": self.pid,
            "running": self.exit_code is None and self.pid != 0,
            "exit_code": self.exit_code,
        }
