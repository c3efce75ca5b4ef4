"""Exec driver contract: runs container processes from an OCI runtime-spec shaped dict.

An exec driver is one class registered under the entry-point group ``dockyard.execdrivers``; its
entry-point name equals its ``name`` attribute and is what users write as ``exec-driver``.

The daemon is asyncio; every method that talks to processes is a coroutine and must not block the
event loop for more than a few milliseconds.

The spec
--------
``create`` receives a dict shaped like an OCI runtime ``config.json`` (runtime-spec 1.0):

* ``process``: ``terminal`` (bool), ``args`` (list), ``env`` (``["K=V"]``), ``cwd``,
  ``user`` (``{"uid", "gid", "additionalGids"}``; dockyard adds ``"username"``: the Docker
  ``User`` string, e.g. ``"nobody"``, ``"1000:1000"``, ``"app:staff"``, to be resolved against the
  container's own ``/etc/passwd`` and ``/etc/group`` when present, and ``"additionalGroups"``:
  ``--group-add`` names or numbers resolved the same way), ``capabilities``, ``rlimits``,
  ``noNewPrivileges``, ``oomScoreAdj``.
* ``root``: ``{"path": <mounted rootfs>, "readonly": bool}``.
* ``hostname``, ``domainname``; ``mounts`` (list of ``{"destination", "type", "source",
  "options"}``; a ``type: cgroup`` entry at ``/sys/fs/cgroup`` means the container's own cgroups,
  read-only unless its options say ``rw``, as runc mounts them; ``tmpfs`` options are the
  kernel's, flags such as ``noexec``/``exec`` applied in order).
* ``linux``: ``namespaces`` (list of ``{"type": "pid"|"network"|"mount"|"ipc"|"uts"|"cgroup"|"user",
  "path"?: str}`` — a ``path`` means join that namespace instead of creating one; a type that is
  absent means share the host's), ``resources``, ``maskedPaths``, ``readonlyPaths``,
  ``cgroupsPath``, ``sysctl``, and with a ``user`` namespace ``uidMappings``/``gidMappings``.
* ``annotations``: ``io.dockyard.stop-signal``; the container log's ``io.dockyard.log.driver``
  (``json-file``, or ``none``: keep no log), ``io.dockyard.log.max-size`` (bytes; rotate the
  json-file log when it reaches it) and ``io.dockyard.log.max-file`` (files kept, the current one
  included, as ``<log>.1`` … ``<log>.<n-1>``, newest first); ``io.dockyard.cpu-rt-period`` and
  ``io.dockyard.cpu-rt-runtime`` (microseconds; the daemon's ``cpu-rt-period``/``cpu-rt-runtime``,
  present when set): the real-time budget to write into every ancestor of the container's cgroup
  (top down, below the hierarchy's root) before its own ``cpu.realtimePeriod``/``realtimeRuntime``,
  which must fit in its parent's, as dockerd does.
"""
from __future__ import annotations

import abc
import asyncio
import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass
class ExitStatus:
    """How a container's main process ended."""

    exit_code: int
    finished_at: float  # unix time
    oom_killed: bool = False
    error: str = ""


@dataclasses.dataclass
class ProcessState:
    """What the driver knows of one container it holds (``restore`` and ``state`` return these)."""

    id: str
    status: str  # "created" | "running" | "paused" | "exited"
    pid: int = 0
    started_at: float = 0.0
    exit: ExitStatus | None = None


@dataclasses.dataclass
class AttachStreams:
    """One attach session to a container's stdio.

    ``reader`` yields the container's output exactly as the Docker API sends it on a hijacked
    attach: multiplexed frames (8-byte header ``[stream, 0, 0, 0, size_be32]``, stream 1 stdout,
    2 stderr) when the container has no TTY, raw bytes when it has one. It reaches EOF once the
    container has exited and all of its output has been delivered.
    ``writer`` (``None`` unless stdin was asked for and the container was created with
    ``open_stdin``) feeds the container's stdin. ``writer.write_eof()``, as dockerd: closes the
    container's stdin when it was created with ``stdin_once`` and without a TTY (the reader goes
    on until the container exits); otherwise it ends this session (the reader reaches EOF) and
    the container's stdin stays open — a client detaching from a TTY never closes it.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter | None

    def close(self) -> None:
        """Detach; the container keeps running."""
        if self.writer is not None:
            self.writer.close()

    async def detach(self) -> None:
        """The client typed its detach keys: end the session *without* closing the container's
        stdin (even with ``stdin_once``); the container keeps running. Defaults to :meth:`close`."""
        self.close()


class ExecDriver(abc.ABC):
    """Runs and supervises container processes.

    Containers outlive the daemon: whatever owns a container's stdio, exit status and log must not
    be the daemon process. ``restore`` re-adopts what is still running after a daemon restart.
    """

    #: the entry-point name, also the value users give to ``--exec-driver``
    name: ClassVar[str] = ""
    #: with no ``exec-driver`` configured the daemon uses the installed driver of highest
    #: priority that runs on this host (dockyard's ``native``: 50)
    priority: ClassVar[int] = 0
    #: whether :meth:`create` takes a spec with a new ``user`` namespace and its
    #: ``linux.uidMappings``/``gidMappings`` (the daemon's ``userns-remap``); a driver that
    #: does not must refuse such a spec with InvalidParameter, and the daemon will not start
    #: remapped on it
    user_namespaces: ClassVar[bool] = False
    #: whether the class runs OCI runtimes given by path: the daemon's ``runtimes`` map
    #: (dockerd's key, ``{"name": {"path": ..., "runtimeArgs": [...]}}``) makes one instance per
    #: entry, with the options ``path``, ``runtimeArgs`` and ``name`` (the instance's ``name``)
    runtime_paths: ClassVar[bool] = False

    def __init__(self, root: str, options: dict[str, Any] | None = None) -> None:
        """``root`` is a private directory under exec-root for this driver's runtime state.

        Raise :class:`~dockyard.hookspecs.errors.DriverNotSupported` if this host cannot run the
        driver. Do not start processes here; that belongs in :meth:`restore`.
        """
        self.root = root
        self.options = dict(options or {})

    @abc.abstractmethod
    async def restore(self) -> list[ProcessState]:
        """Called once when the daemon starts: (re)connect to whatever runs the containers and
        return every container it still holds (running or exited but not yet deleted)."""

    @abc.abstractmethod
    async def create(self, cid: str, spec: dict[str, Any], *, log_path: str, tty: bool = False,
                     open_stdin: bool = False, stdin_once: bool = False) -> None:
        """Prepare container ``cid`` from ``spec`` without starting its process.

        Output is written to ``log_path`` in Docker's json-file format (one JSON object per line:
        ``{"log": "...", "stream": "stdout"|"stderr", "time": RFC3339Nano}``) from the first byte on,
        whether or not anybody is attached. May be called again for a created or exited ``cid``
        (restart): the new spec replaces the old one; the log is appended to.
        """

    @abc.abstractmethod
    async def attach(self, cid: str, *, stdin: bool = False, stdout: bool = True,
                     stderr: bool = True) -> AttachStreams:
        """Attach to ``cid``'s stdio. Allowed before :meth:`start`: output from the first byte is
        delivered. Raises NotFound for an unknown ``cid``."""

    @abc.abstractmethod
    async def start(self, cid: str) -> int:
        """Start the container's process and return its host pid.

        Returns once the process has exec'd the user's program (or raise
        :class:`~dockyard.hookspecs.errors.ExecError` with Docker's message and exit code when it
        cannot, e.g. ``exec: "nosuch": executable file not found in $PATH`` → 127).
        """

    @abc.abstractmethod
    async def wait(self, cid: str) -> ExitStatus:
        """Return once ``cid``'s main process has exited and all its output has been written to the
        log and to attached readers. Returns at once for a container that has already exited."""

    @abc.abstractmethod
    async def kill(self, cid: str, signal: int) -> None:
        """Send ``signal`` to the container's main process. Conflict if it is not running."""

    @abc.abstractmethod
    async def delete(self, cid: str) -> None:
        """Forget ``cid``: kill whatever still runs in it, release its runtime resources. The
        caller has already stopped it unless forced. Idempotent."""

    @abc.abstractmethod
    async def state(self, cid: str) -> ProcessState:
        """What the driver knows of ``cid`` now. NotFound for an unknown one."""

    async def resize(self, cid: str, height: int, width: int) -> None:
        """Resize the container's TTY. No-op for a container without one."""

    async def pause(self, cid: str) -> None:
        raise NotImplementedError(f"{self.name}: pause")

    async def resume(self, cid: str) -> None:
        raise NotImplementedError(f"{self.name}: resume")

    async def pids(self, cid: str) -> list[int]:
        """Host pids of every process in the container."""
        raise NotImplementedError(f"{self.name}: pids")

    def unsupported_resources(self, resources: dict[str, Any]) -> list[str]:
        """Which of ``resources`` (an OCI ``linux.resources``) this driver cannot apply on this
        host, as dotted OCI names (``blockIO.weight``): the daemon refuses a container (or an
        update) that sets one with a 400 naming its HostConfig field, instead of running it
        without. Called at create and update; the default claims everything is applied."""
        return []

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        """Apply new ``linux.resources`` to a created or running container (``docker update``)
        and keep them for its later starts. InvalidParameter if the kernel refuses a value."""
        raise NotImplementedError(f"{self.name}: update")

    # -- exec (optional: a driver without it answers NotImplementedError → HTTP 501) -----------
    async def exec(self, cid: str, eid: str, process: dict[str, Any], *, tty: bool = False,
                   stdin: bool = False, detach: bool = False
                   ) -> tuple[int, AttachStreams | None]:
        """Start a new process in running container ``cid`` (``docker exec``) and return its
        host pid and, unless ``detach``, its streams.

        ``process`` is shaped like the spec's ``process``: ``args``, ``env`` (added to the
        container's), ``cwd``, ``user`` (``{"username": "..."}``, resolved in the container; empty
        means the container's user), ``privileged``. The process joins every namespace and the
        cgroup of the container and gets the container's capabilities, no_new_privs and seccomp
        profile. ``eid`` names it for :meth:`exec_wait` and :meth:`exec_resize`. The streams are
        framed as for :meth:`attach` (raw with ``tty``); ``reader`` reaches EOF once the process
        exited and its output was delivered. Its output is not written to the container's log.
        Conflict if ``cid`` is not running; ExecError (126/127) if the program cannot be run.
        """
        raise NotImplementedError(f"{self.name}: exec")

    async def exec_wait(self, eid: str) -> int:
        """The exit code of exec ``eid`` once it has exited (at once if it already has)."""
        raise NotImplementedError(f"{self.name}: exec")

    async def exec_resize(self, eid: str, height: int, width: int) -> None:
        """Resize exec ``eid``'s TTY. No-op without one."""
        raise NotImplementedError(f"{self.name}: exec")

    async def exec_forget(self, eid: str) -> None:
        """Drop what the driver remembers of an exited exec ``eid``. Idempotent."""

    async def sync_output(self, cid: str) -> None:
        """Write to ``cid``'s log what its process has written and the driver not yet read (a
        ``logs`` read right after a start sees what the process printed before it, as dockerd's
        log copier, never idle, makes it see). Optional: the default does nothing."""

    async def stats(self, cid: str) -> dict[str, Any]:
        """Raw resource usage of ``cid`` (``cpu``: ``{usage_ns, user_ns, system_ns,
        throttling}``, ``memory``: ``{usage, limit, max_usage, stats}``, ``pids``:
        ``{current, limit}``, ``blkio``: Docker's ``blkio_stats`` lists by their names
        (``io_service_bytes_recursive``...: ``[{major, minor, op, value}]``, empty when nothing
        was counted, for each one the driver measures; absent for the others), ``online_cpus``,
        ``system_ns``); the daemon shapes Docker's stats JSON from it."""
        raise NotImplementedError(f"{self.name}: stats")

    async def close(self) -> None:
        """The daemon is going away: disconnect, leaving running containers running."""

    def status(self) -> list[tuple[str, str]]:
        """``(key, value)`` lines shown under this driver in ``info``."""
        return []

    def version(self) -> str:
        """The version of what runs the containers (``runc --version``'s, liblxc's...), shown in
        ``info``'s ``Runtimes`` and ``version``'s components; empty: dockyard's own."""
        return ""
