"""What a benchmark measures: engines (a daemon, or podman's CLI with its store), the clients
that drive them, and subjects (an engine seen through one client with one network mode).

An :class:`Engine` owns a fresh file system, its processes and its image store; a
:class:`Subject` is what a scenario samples and what a chart shows as one bar. Several subjects may
share one engine (dockyardd through the docker CLI and through its own CLI; one engine per network
mode would measure nothing more).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .. import host


class Skip(Exception):
    """A subject (or a scenario for a subject) cannot be measured here; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: what a subject can do, as scenarios ask for it
CAP_RUN = "run"          # run --rm a command (floors can do only this)
CAP_CONTAINERS = "containers"  # detached runs, exec, ps, rm: a container engine behind a CLI
CAP_API = "api"          # a Docker Engine API socket
CAP_IMAGES = "images"    # pull and build through the CLI
CAP_GRAPH = "graph"      # a dockyard graph driver usable in process
CAP_NETDRIVER = "netdriver"  # a dockyard network driver usable in process


class Client:
    """A command-line client of an engine: ``argv(*args)`` and the environment to run it with."""

    name = ""
    #: options of every ``run`` (podman: never pull)
    run_opts: tuple[str, ...] = ()
    #: options of ``rm -f`` (podman: no grace period; docker's rm -f kills at once)
    rm_opts: tuple[str, ...] = ()
    #: options of ``pull`` from the loopback registry (podman: no TLS)
    pull_opts: tuple[str, ...] = ()
    #: options of ``build`` (podman: keep intermediate layers as a cache, as docker's does)
    build_opts: tuple[str, ...] = ()

    def __init__(self, prefix: list[str], env: dict[str, str]) -> None:
        self.prefix = prefix
        self.env = env

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 600,
                 input: bytes | None = None, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[bytes]:
        return host.run(self.argv(*args), env={**self.env, **(env or {})}, check=check,
                        timeout=timeout, input=input)


def clean_env(drop: tuple[str, ...] = ("DOCKER_", "DOCKYARD_", "CONTAINERS_")) -> dict[str, str]:
    """The caller's environment without anything that would point a client elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def docker_client(sock: str, root: str) -> Client:
    """The docker CLI against ``sock``, with a private config directory (no user credentials or
    contexts are read)."""
    env = clean_env()
    # DOCKER_BUILDKIT=0: the classic builder (POST /build), the one dockyardd serves
    env.update(DOCKER_HOST="unix://" + sock, DOCKER_CONFIG=os.path.join(root, "cli-config"),
               DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0")
    c = Client(["docker"], env)
    c.name = "docker CLI"
    return c


class Engine:
    """One engine instance on its own fresh file system. Subclasses set :attr:`name` and
    implement :meth:`launch`, :meth:`owns` and :meth:`versions`."""

    name = ""
    #: network modes its containers can use (``run --network``)
    nets: tuple[str, ...] = ("none", "host")
    caps: frozenset[str] = frozenset({CAP_RUN, CAP_CONTAINERS, CAP_IMAGES})
    #: the file system type the engine's store needs (None: a tmpfs)
    fstype: str | None = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)
        self.fs: host.FreshFs | None = None
        self.root = ""
        self.sock = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, image_tar: str | None) -> None:
        """Make the file system, start the engine, and load ``image_tar`` (if any) as
        ``busybox:latest``. Raises :class:`Skip` when this configuration cannot run here."""
        self.fs = host.FreshFs(self.fstype, prefix=f"dyb-{self.name[:4]}-")
        self.fs.__enter__()
        self.root = self.fs.path
        self.sock = os.path.join(self.root, "engine.sock")
        try:
            self.launch()
            if image_tar:
                self.load_image(image_tar)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        raise NotImplementedError

    def fresh(self) -> "Engine":
        """A new, not yet started, instance of the same configuration (a cold store)."""
        return type(self)(self.config)

    def load_image(self, tar: str) -> None:
        with open(tar, "rb") as f:
            self.client("import", "-", "busybox:latest", input=f.read())

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, **kw: Any) -> None:
        log = open(os.path.join(self.root, "engine.log"), "ab")
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env=env, **kw)
        finally:
            log.close()

    def log_tail(self, n: int = 3) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.root, "engine.log"),
                                                errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
            return " | ".join(lines[-n:])
        return ""

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise Skip(f"{self.name} exited at start: {self.log_tail()}")
            if self.client("version", check=False, timeout=30).returncode == 0:
                return
            time.sleep(0.2)
        raise host.CommandFailed(f"{self.name} did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Remove every container, stop the engine, remove its file system. Safe to call twice."""
        if self.client is not None and self.running():
            with contextlib.suppress(Exception):
                self.remove_all()
        self.terminate()
        leftovers = [pid for pid, comm, argv in host.processes()
                     if self.root and self.owns(comm, argv)]
        host.kill_pids(leftovers)
        if self.fs is not None:
            self.fs.close()
            self.fs = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 30) -> None:
        host.stop_process(self.proc, timeout)

    # -- containers ----------------------------------------------------------------------------
    def remove_all(self) -> None:
        ids = self.client("ps", "-aq", timeout=120).stdout.decode().split()
        for i in range(0, len(ids), 50):
            self.client("rm", "-f", *ids[i:i + 50], check=False, timeout=300)

    def engine_pids(self) -> list[int]:
        """Every process of the engine (daemons, shims, monitors; not the containers' own)."""
        return [pid for pid, comm, argv in host.processes() if self.owns(comm, argv)]

    def owns(self, comm: str, argv: list[str]) -> bool:
        raise NotImplementedError

    def versions(self) -> dict[str, str | None]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The engine's configuration as it actually runs (after start)."""
        return dict(self.config)


@dataclass
class Subject:
    """One bar in every chart: an engine (or a floor) seen through one client, one network mode.

    ``dims`` name what distinguishes it (``graph``, ``exec``, ``net``, ``client``); ``id`` is
    unique and stable across runs so that :mod:`..compare` can pair subjects of two runs."""

    engine_name: str
    dims: dict[str, str]
    caps: frozenset[str]
    engine: Engine | None = None
    floor: Any = None
    client: Client | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: the scenarios it is made for (None: every one it can do); others leave it out silently
    only: frozenset[str] | None = None

    @property
    def id(self) -> str:
        return ":".join([self.engine_name, *(f"{k}={v}" for k, v in sorted(self.dims.items()))])

    @property
    def name(self) -> str:
        """``dockerd (overlay2, runc, none)``: for messages."""
        dims = ", ".join(self.dims[k] for k in ("graph", "exec", "net", "client")
                         if self.dims.get(k))
        return f"{self.engine_name} ({dims})" if dims else self.engine_name

    @property
    def net(self) -> str:
        return self.dims.get("net", "none")

    def run_argv(self, cmd: list[str], *, detach: bool = False, rm: bool = True,
                 name: str | None = None) -> list[str]:
        """The command line of ``run`` for ``cmd`` in busybox, with this subject's network."""
        if self.floor is not None:
            return self.floor.run_argv(cmd)
        opts = ["-d"] if detach else []
        opts += ["--rm"] if rm and not detach else []
        opts += ["--name", name] if name else []
        return self.client.argv("run", *self.client.run_opts, *opts, "--network", self.net,
                                "busybox", *cmd)

    @property
    def env(self) -> dict[str, str] | None:
        if self.floor is not None:
            return self.floor.env
        return self.client.env

    def cli(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return self.client(*args, **kw)

    def run_detached(self, cmd: list[str]) -> str:
        r = host.run(self.run_argv(cmd, detach=True), env=self.env, timeout=300)
        return r.stdout.decode().strip().splitlines()[-1]

    def remove(self, *ids: str) -> None:
        if ids:
            self.client("rm", "-f", *self.client.rm_opts, *ids, check=False, timeout=300)

    def summary(self) -> dict[str, Any]:
        out = {"id": self.id, "engine": self.engine_name, **self.dims, **self.info}
        if self.only is not None:
            out["scenarios"] = sorted(self.only)
        return out
