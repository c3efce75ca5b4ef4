"""Attaching to a container that cannot be prepared yet.

dockerd answers every attach to an existing, attachable container at once and reports a failed
start (a duplicate ``--ip``, an address outside the subnet...) as the error of ``POST /start``,
which the docker CLI prints. dockyard prepares a container (rootfs, network, the exec driver's
spec) at its first attach so that output is delivered from the first byte; when that fails, the
attach is answered all the same with a :class:`PendingAttach`, which the next start connects to
the container's stdio once it is prepared, or ends when the start fails too.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from dockyard.hookspecs.errors import Conflict, DockyardError
from dockyard.hookspecs.execdriver import AttachStreams

log = logging.getLogger(__name__)


def check_attachable(c: dict[str, Any], ref: str) -> None:
    """Conflict (409) with dockerd's words for a paused or restarting container."""
    state = c["State"]
    if state.get("Paused"):
        raise Conflict(f"container {ref} is paused, unpause the container before attach")
    if state.get("Restarting"):
        raise Conflict(f"container {ref} is restarting, wait until the container is running")


class _HeldInput:
    """The stdin side of a pending attach: bytes (and the end of input) are kept until the
    container's stdin exists, then passed on."""

    def __init__(self) -> None:
        self.target: Any = None
        self.held: list[bytes] = []
        self.eof = False
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.target is not None:
            self.target.write(data)
        else:
            self.held.append(data)

    def write_eof(self) -> None:
        if self.target is not None:
            self.target.write_eof()
        else:
            self.eof = True

    def is_closing(self) -> bool:
        return self.closed or (self.target is not None and self.target.is_closing())

    def close(self) -> None:
        self.closed = True
        if self.target is not None:
            self.target.close()

    def connect(self, target: Any) -> None:
        self.target = target
        for data in self.held:
            target.write(data)
        self.held = []
        if self.eof:
            target.write_eof()


class PendingAttach(AttachStreams):
    """An attach session answered before its container could be prepared."""

    def __init__(self, stdin: bool, stdout: bool, stderr: bool) -> None:
        super().__init__(reader=asyncio.StreamReader(), writer=_HeldInput() if stdin else None)  # type: ignore[arg-type]
        self.want = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
        self.real: AttachStreams | None = None
        self.pump: asyncio.Task[None] | None = None

    async def connect(self, driver: Any, cid: str) -> None:
        """The container is prepared: attach to it for real and carry its output over."""
        if self.reader.at_eof() or (self.writer is not None and self.writer.is_closing()):
            return  # the client went away meanwhile
        self.real = await driver.attach(cid, **self.want)
        if self.writer is not None and self.real.writer is not None:
            self.writer.connect(self.real.writer)  # type: ignore[attr-defined]
        self.pump = asyncio.ensure_future(self._pump(self.real))

    async def _pump(self, real: AttachStreams) -> None:
        try:
            while chunk := await real.reader.read(65536):
                self.reader.feed_data(chunk)
        except (ConnectionError, OSError) as exc:
            log.info("attach: %s", exc)
        finally:
            self.end()

    def end(self) -> None:
        """No more output: the start failed, or the container is gone."""
        if not self.reader.at_eof():
            self.reader.feed_eof()

    def close(self) -> None:
        if self.real is not None:
            self.real.close()
        if self.writer is not None:
            self.writer.close()
        if self.pump is not None:
            self.pump.cancel()
        self.end()

    async def detach(self) -> None:
        if self.real is not None:
            with contextlib.suppress(Exception):
                await self.real.detach()
        self.close()


def no_live_output() -> AttachStreams:
    """The session of an attach with ``logs=1`` and no ``stream``: its log replay only."""
    reader = asyncio.StreamReader()
    reader.feed_eof()
    return AttachStreams(reader=reader, writer=None)


class StartFailed(Exception):
    """A start failed once it was under way (not a refusal such as "already started"):
    ``error`` is what the client is answered, after the container is cleaned up."""

    def __init__(self, error: DockyardError) -> None:
        super().__init__(error.message)
        self.error = error


def record_start_failure(c: dict[str, Any], exc: DockyardError) -> None:
    """As dockerd: the container keeps its status (``created``), with the error and, if it has
    none yet, exit code 128 ("unknown")."""
    c["State"].update(Error=exc.message or type(exc).__name__)
    if not c["State"].get("ExitCode"):
        c["State"]["ExitCode"] = 128


async def connect_pending(pending: list[PendingAttach], driver: Any, cid: str) -> None:
    """The container is prepared: connect the attaches answered before it was."""
    while pending:
        attach = pending.pop(0)
        try:
            await attach.connect(driver, cid)
        except BaseException:
            attach.end()
            raise


def end_pending(pending: list[PendingAttach]) -> None:
    """The start failed: the attaches still waiting for it end (their clients then hear the
    start's error)."""
    while pending:
        pending.pop(0).end()


def check_removable(c: dict[str, Any], ref: str, force: bool) -> None:
    """Without ``force``, a running, paused or restarting container is not removed: Conflict
    (409) with dockerd's words."""
    state = c["State"]
    if force or not (state["Running"] or state.get("Restarting")):
        return
    if state.get("Paused"):
        why = "container is paused and must be unpaused first"
    else:
        why = (f"container is {'restarting' if state.get('Restarting') else 'running'}: "
               "stop the container before removing or force remove")
    raise Conflict(f'cannot remove container "{ref}": {why}')


async def exit_being_recorded(driver: Any, c: dict[str, Any], exited: asyncio.Future) -> None:
    """An attach to a container recorded as running whose process has already exited (the
    exit is on its way to the daemon) waits until the exit is recorded: it then attaches for
    the container's next run, as an attach to a stopped container does with dockerd, instead
    of ending at once with nothing (docker-compose's ``run`` attaches just after its start and
    starts the container again if it has stopped)."""
    try:
        if (await driver.state(c["Id"])).status == "exited":
            await asyncio.wait_for(asyncio.shield(exited), EXIT_RECORD_WAIT)
    except (DockyardError, asyncio.TimeoutError) as exc:
        log.info("attach to %s: %s", c["Id"][:12], exc)
    finally:
        exited.cancel()


#: seconds an attach waits for an exit the driver reported to be recorded
EXIT_RECORD_WAIT = 10
