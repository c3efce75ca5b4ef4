"""What differs between the runtimes one supervisor can hold: how a container's process is made.

The supervisor (:mod:`.server`) owns every container's stdio, json-file log, exit status,
cgroups and the attach/exec protocol, whatever makes the process. A :class:`Launcher` is the
part that does: its ``start_entry``/``exec_entry`` run in the supervisor's forked child (the
"intermediate") and report to the supervisor over a SOCK_SEQPACKET channel (written with
:mod:`.protocol`'s ``report_*``):

* ``P<pid>``: the host pid of the container's (or exec's) process; it must end up a child of
  the supervisor (the supervisor is a child subreaper: a process whose parent exits is
  reparented to it), which reaps it for its exit status;
* ``T`` with one fd: the pseudo-terminal master of a process with a TTY;
* ``E<code> <message>``: the process could not be started (Docker's exit code and words).

The channel reaching end-of-file ends the start. The supervisor-side operations (``kill``,
``pause``, ``resume``, ``update``, ``delete``) are coroutines given the supervisor; the
defaults act on the container's cgroups and process directly.

``python -m dockyard.hookspecs.host.supervisor --launcher MODULE:CLASS --launcher-options JSON``
picks the launcher (the native driver's makes processes itself; the OCI driver's runs runc or
crun).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import Any, Callable, NoReturn

from dockyard.hookspecs.errors import DockyardError, InvalidParameter

__all__ = ["Entry", "Launcher", "cgroup_rel", "default_mounts", "load", "reaped", "run"]


Entry = Callable[[dict[str, Any], Any], NoReturn]


def cgroup_rel(spec: dict[str, Any], cid: str) -> str:
    """Where a container's cgroups are, relative to each hierarchy's root: the spec's
    ``linux.cgroupsPath``, or ``dockyard/<id>`` (a systemd-style ``slice:prefix:name`` is not
    taken)."""
    rel = (spec.get("linux") or {}).get("cgroupsPath") or ""
    return rel if rel and ":" not in rel else f"dockyard/{cid}"


def default_mounts() -> list[dict[str, Any]]:
    """The mounts Docker gives every container (what the daemon puts in ``spec["mounts"]``):
    proc, a /dev tmpfs, devpts, read-only sysfs, mqueue and shm."""
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
    ]


class Launcher:
    """The defaults every launcher inherits (each one acts on the cgroups or the process)."""

    #: whether the runtime writes ``linux.resources`` into the cgroups itself (the supervisor
    #: then makes them empty: a runtime's own setup may need more than the container's limits)
    applies_resources = False
    #: the intermediate's entry points: ``entry(cfg, chan)``, never returning
    start_entry: Entry
    exec_entry: Entry

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def check(self, spec: dict[str, Any]) -> None:
        """Refuse (InvalidParameter) a spec this launcher cannot run, at create."""

    async def prepare(self, sup: Any, c: Any) -> None:
        """The container was created (or re-created for a restart): its spec is ``c.spec``,
        its directory ``c.dir``."""

    async def kill(self, sup: Any, c: Any, signal: int) -> None:
        try:
            os.kill(c.pid, int(signal))
        except ProcessLookupError:
            pass

    async def pause(self, sup: Any, c: Any) -> None:
        for _ in range(1000):
            if sup.cgroups.freeze(c.cg_dirs, True):
                return
            await asyncio.sleep(0.001)
        sup.cgroups.freeze(c.cg_dirs, False)
        raise DockyardError(f"container {c.id}: freezing timed out")

    async def resume(self, sup: Any, c: Any) -> None:
        for _ in range(1000):
            if sup.cgroups.freeze(c.cg_dirs, False):
                return
            await asyncio.sleep(0.001)

    async def update(self, sup: Any, c: Any, resources: dict[str, Any]) -> None:
        if sup.cgroups.available and c.cg_dirs:
            sup.cgroups.apply(c.cg_dirs, resources)

    async def delete(self, sup: Any, c: Any) -> None:
        """The container is gone (exited, its cgroups removed): drop what the runtime keeps."""

    def recover(self, sup: Any, cid: str) -> None:
        """A container found by a supervisor that restarted after the previous one died: its
        processes were killed; drop what the runtime keeps of it (synchronous)."""


def load(ref: str, options: dict[str, Any] | None = None) -> Launcher:
    """The launcher named ``module:Class``, made with ``options``."""
    module, _, attr = ref.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise InvalidParameter(f"launcher {ref!r}: {e}") from None
    return cls(options)


#: pids of the runtime commands :func:`run` forked -> the future of their exit code, which the
#: supervisor's reaper settles through :func:`reaped`
_HELPERS: dict[int, asyncio.Future] = {}


def reaped(pid: int, code: int) -> bool:
    """Whether ``pid`` was a runtime command of :func:`run` (its future now holds ``code``)."""
    fut = _HELPERS.pop(pid, None)
    if fut is not None and not fut.done():
        fut.set_result(code)
    return fut is not None


async def run(
    sup: Any, argv: list[str], *, input: bytes = b"", setup: Callable[[], None] | None = None
) -> tuple[int, bytes]:
    """Run a runtime's command as the supervisor's child and return ``(exit code, output)``
    (stdout and stderr together). The supervisor reaps every child it has (it is their
    subreaper), so asyncio's subprocesses would race it: the child is forked here and its pid
    handed to the supervisor's reaper. ``setup`` runs in the child before ``execve``."""
    r_in, w_in = os.pipe2(os.O_CLOEXEC)
    r_out, w_out = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.dup2(r_in, 0)
            os.dup2(w_out, 1)
            os.dup2(w_out, 2)
            if setup is not None:
                setup()
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    loop = asyncio.get_running_loop()
    exited: asyncio.Future = loop.create_future()
    _HELPERS[pid] = exited
    os.close(r_in)
    os.close(w_out)
    try:
        if input:
            os.write(w_in, input)  # small (a resources object): fits the pipe's buffer
    except OSError:
        pass
    finally:
        os.close(w_in)
    chunks: list[bytes] = []
    done: asyncio.Future = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(r_out, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            chunks.append(data)
            return
        loop.remove_reader(r_out)
        if not done.done():
            done.set_result(None)

    os.set_blocking(r_out, False)
    loop.add_reader(r_out, readable)
    try:
        await done
        code = await exited
    finally:
        loop.remove_reader(r_out)
        os.close(r_out)
    return code, b"".join(chunks)
