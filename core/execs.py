"""``docker exec``: exec instances of running containers, kept in memory as dockerd keeps them.

An instance is created (``POST /containers/{id}/exec``), started once (``POST /exec/{id}/start``,
hijacked unless detached) and inspected (``GET /exec/{id}/json``). As dockerd, an exec that exited
leaves its container's ``ExecIDs`` at once and stays inspectable for :data:`KEEP_EXITED` seconds
(dockerd's exec garbage collector runs every five minutes); all of a container's go when it is
removed. The exec driver runs the process; this service only keeps Docker's view of it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from dockyard.hookspecs.errors import Conflict, DockyardError, ExecError, InvalidParameter, NotFound
from dockyard.hookspecs.execdriver import AttachStreams
from dockyard.hookspecs.host.streams import HEADER_SIZE, STDOUT, frame, parse_header

log = logging.getLogger(__name__)

#: how long an exited exec can still be inspected
KEEP_EXITED = 300.0


class _ExitAwareReader:
    """Wraps an exec's output reader: end-of-file is reported only once the exit code is
    recorded, so a client that inspects the exec right after the stream ends sees it."""

    def __init__(self, reader: Any, recorded: asyncio.Future) -> None:
        self.reader, self.recorded = reader, recorded

    async def read(self, n: int = -1) -> bytes:
        data = await self.reader.read(n)
        if not data:
            try:
                await asyncio.wait_for(asyncio.shield(self.recorded), 10)
            except (asyncio.TimeoutError, DockyardError):
                pass
        return data


def exec_event(d: Any, c: dict[str, Any], kind: str, eid: str, args: list[str],
               **extra: str) -> None:
    """dockerd's exec events on container ``c``: ``exec_create: <command>``, ``exec_start:
    <command>`` (the command as dockerd writes it: program, a space, the arguments) and
    ``exec_die`` (with ``exitCode``); health probes have them too."""
    action = kind if kind == "exec_die" else f"{kind}: {args[0]} {' '.join(args[1:])}"
    d.containers._event(action, c, execID=eid, **extra)


class ExecService:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.execs: dict[str, dict[str, Any]] = {}
        self._recorded: dict[str, asyncio.Future] = {}

    def get(self, eid: str) -> dict[str, Any]:
        e = self.execs.get(eid)
        if e is None:
            raise NotFound(f"No such exec instance: {eid}")
        return e

    def create(self, ref: str, body: dict[str, Any]) -> str:
        c = self.d.containers.get(ref)
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id']} is not running")
        if c["State"]["Paused"]:
            raise Conflict(f"Container {c['Id']} is paused, unpause the container before exec")
        cmd = body.get("Cmd")  # a list: checked by dockyard.core.schema.ExecCreate
        if not cmd:
            raise InvalidParameter("No exec command specified")
        env = body.get("Env") or []
        eid = secrets.token_hex(32)
        self.execs[eid] = {
            "ID": eid, "ContainerID": c["Id"], "Running": False, "ExitCode": None, "Pid": 0,
            "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
            "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False,
            "DetachKeys": body.get("DetachKeys") or "",
            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0],
                              "arguments": cmd[1:], "privileged": bool(body.get("Privileged")),
                              "user": body.get("User") or ""},
            "_env": env, "_cwd": body.get("WorkingDir") or "", "_started": False,
            "_console": body.get("ConsoleSize") or [],
        }
        ids = c.get("ExecIDs") or []
        c["ExecIDs"] = ids + [eid]
        exec_event(self.d, c, "exec_create", eid, cmd)
        return eid

    @staticmethod
    def public(e: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in e.items() if not k.startswith("_")}

    def _drv(self, e: dict[str, Any]) -> Any:
        """The exec driver of the exec's container."""
        return self.d.containers.drv(e["ContainerID"])

    def check_start(self, eid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(exec, container)`` if exec ``eid`` may start now, else Conflict/NotFound: what a
        hijacked start must answer before its headers go out."""
        e = self.get(eid)
        if e["_started"]:
            raise Conflict(f"Error: Exec command {eid} is already running")
        c = self.d.containers.get(e["ContainerID"])
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id']} is not running")
        return e, c

    async def start(self, eid: str, detach: bool,
                    console: list[int] | None = None) -> AttachStreams | None:
        """Run exec ``eid`` (with a TTY if it was created with one); ``console``: the TTY's
        [height, width] (else the one given at create)."""
        e, c = self.check_start(eid)
        pc = e["ProcessConfig"]
        user = pc["user"] or c["Config"].get("User") or ""
        process = {"args": [pc["entrypoint"], *pc["arguments"]], "env": e["_env"],
                   "cwd": e["_cwd"] or c["Config"].get("WorkingDir") or "/",
                   "user": {"username": user}, "privileged": pc["privileged"]}
        e["_started"] = True
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future = loop.create_future()
        self._recorded[eid] = recorded
        exec_event(self.d, c, "exec_start", eid, process["args"])
        try:
            pid, streams = await self._drv(e).exec(
                c["Id"], eid, process, tty=pc["tty"], stdin=e["OpenStdin"] and not detach,
                detach=detach)
        except ExecError as exc:
            e.update(ExitCode=exc.exit_code, Running=False)
            recorded.set_result(exc.exit_code)
            self._exited(eid)
            if detach:
                raise
            return None if detach else FailedStreams(exc.message, pc["tty"])
        e.update(Pid=pid, Running=True)
        size = console or e["_console"]
        if pc["tty"] and len(size) == 2 and all(size):
            with contextlib.suppress(DockyardError, NotImplementedError):
                await self._drv(e).exec_resize(eid, size[0], size[1])
        asyncio.ensure_future(self._watch(eid, recorded, c))
        if streams is not None:
            streams.reader = _ExitAwareReader(streams.reader, recorded)  # type: ignore[assignment]
        return streams

    async def _watch(self, eid: str, recorded: asyncio.Future, c: dict[str, Any]) -> None:
        code = 126
        try:
            code = await self.d.containers.drv(c["Id"]).exec_wait(eid)
        except DockyardError as exc:
            log.info("exec %s: %s", eid[:12], exc)
        except Exception:  # noqa: BLE001
            log.exception("exec %s", eid[:12])
        e = self.execs.get(eid)
        if e is not None:
            e.update(ExitCode=code, Running=False)
        exec_event(self.d, c, "exec_die", eid, [], exitCode=str(code))
        if not recorded.done():
            recorded.set_result(code)
        self._exited(eid)

    def _exited(self, eid: str) -> None:
        """Out of its container's ``ExecIDs`` now; forgotten after :data:`KEEP_EXITED`."""
        e = self.execs.get(eid)
        if e is None:
            return
        with contextlib.suppress(NotFound):
            c = self.d.containers.get(e["ContainerID"])
            ids = [x for x in c.get("ExecIDs") or [] if x != eid]
            c["ExecIDs"] = ids or None
        asyncio.get_running_loop().call_later(KEEP_EXITED, self._forget, eid)

    def _forget(self, eid: str) -> None:
        self.execs.pop(eid, None)
        self._recorded.pop(eid, None)

    async def resize(self, eid: str, h: int, w: int) -> None:
        e = self.get(eid)
        if not e["Running"]:
            raise Conflict(f"Exec {eid} is not running")
        await self._drv(e).exec_resize(eid, h, w)

    def forget_container(self, cid: str) -> None:
        for eid in [k for k, v in self.execs.items() if v["ContainerID"] == cid]:
            self._forget(eid)


class FailedStreams(AttachStreams):
    """What a hijacked exec start shows when the program cannot run: Docker writes the error
    to the stream (the CLI prints it) and the exit code is in ``GET /exec/{id}/json``."""

    def __init__(self, message: str, tty: bool) -> None:
        reader = asyncio.StreamReader()
        msg = (f"OCI runtime exec failed: {message}: unknown\r\n").encode()
        reader.feed_data(msg if tty else frame(STDOUT, msg))
        reader.feed_eof()
        super().__init__(reader=reader, writer=None)


class _Reframed:
    """An exec's output reader in the other framing: a TTY's raw bytes as stdout frames, or
    the frames of a process without a TTY as their raw payloads."""

    def __init__(self, reader: Any, to_frames: bool) -> None:
        self.reader, self.to_frames = reader, to_frames
        self.buf = b""

    async def read(self, n: int = -1) -> bytes:
        if self.to_frames:
            data = await self.reader.read(n)
            return frame(STDOUT, data) if data else b""
        while True:
            out = self._payloads()
            if out:
                return out
            data = await self.reader.read(n)
            if not data:
                return b""
            self.buf += data

    def _payloads(self) -> bytes:
        out, buf = b"", self.buf
        while len(buf) >= HEADER_SIZE:
            size = parse_header(buf)[1]
            if len(buf) < HEADER_SIZE + size:
                break
            out, buf = out + buf[HEADER_SIZE:HEADER_SIZE + size], buf[HEADER_SIZE + size:]
        self.buf = buf
        return out


def reframe(streams: AttachStreams, process_tty: bool, raw: bool) -> AttachStreams:
    """``streams`` (framed as ``process_tty`` makes them) as a client that asked for ``raw``
    output (the start's ``Tty``) wants them, as dockerd frames exec output."""
    if process_tty != raw:
        streams.reader = _Reframed(streams.reader, to_frames=not raw)  # type: ignore[assignment]
    return streams
