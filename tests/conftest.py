"""Shared fixtures: a real ``dockyardd`` on a temporary socket, data-root and exec-root.

Everything a test starts is torn down here: containers, the daemon, the exec driver's supervisor,
mounts under the temporary root.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator

import pytest

VENV_BIN = os.path.dirname(sys.executable)
DOCKYARD = os.path.join(VENV_BIN, "dockyard")
DOCKYARDD = os.path.join(VENV_BIN, "dockyardd")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def roundtrip(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on ``conn`` (closed after): status, headers (lower-case names), raw body."""
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class Api:
    """A deliberately small Docker-API client over the unix socket (stdlib only)."""

    def __init__(self, sock: str) -> None:
        self.sock = sock

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, Any]:
        conn = UnixHTTPConnection(self.sock, timeout)
        try:
            hdrs = dict(headers or {})
            data = raw
            if body is not None:
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type", "")
            if "json" in ctype and payload.strip():
                lines = payload.strip().split(b"\n")
                value = json.loads(payload) if len(lines) == 1 else [json.loads(x) for x in lines]
                return resp.status, value
            return resp.status, payload
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("DELETE", path, **kw)


class Daemon:
    def __init__(self, root: str, extra_args: list[str] | None = None) -> None:
        self.root = root
        self.sock = os.path.join(root, "d.sock")
        self.host = f"unix://{self.sock}"
        self.data_root = os.path.join(root, "data")
        self.exec_root = os.path.join(root, "exec")
        self.log_path = os.path.join(root, "dockyardd.log")
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = Api(self.sock)
        #: what the daemon reads as the host's resolv.conf (DOCKYARD_HOST_RESOLV_CONF): names
        #: no name server unless a test writes one of its own (no query leaves the machine)
        self.resolv_conf = os.path.join(root, "host-resolv.conf")
        self.config_path = os.path.join(root, "daemon.json")
        self.config: dict[str, Any] = {}   # written to daemon.json by start()
        self.log_level: str | None = "debug"  # None: no --log-level flag (daemon.json may set it)

    def listen_args(self) -> list[str]:
        return ["-H", self.host]

    def argv(self) -> list[str]:
        return [DOCKYARDD, "--config-file", self.config_path,
                "--data-root", self.data_root, "--exec-root", self.exec_root,
                *self.listen_args(), *(["--log-level", self.log_level] if self.log_level else []),
                *self.extra_args]

    def spawn(self, argv: list[str], log: Any) -> subprocess.Popen[bytes]:
        env = {**os.environ, "DOCKYARD_HOST_RESOLV_CONF": self.resolv_conf}
        return subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)

    def start(self, timeout: float = 30) -> None:
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        if not os.path.exists(self.resolv_conf):
            with open(self.resolv_conf, "w") as f:
                f.write("# the test suite's host resolv.conf: no name server\n")
        log = open(self.log_path, "ab")
        self.proc = self.spawn(self.argv(), log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockyardd exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _ = self.api.get("/_ping", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dockyardd did not come up:\n{self.logs()}")

    def logs(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-8000:]
        return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def close(self) -> None:
        """Release what the launcher holds once the daemon is gone (a subclass's sockets)."""

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        e = {**os.environ, **(env or {})}
        e.pop("DOCKER_HOST", None)
        return subprocess.run([DOCKYARD, "-H", self.host, *args], input=input,
                              capture_output=True, timeout=timeout, env=e)

    def import_busybox(self, tar_path: str, ref: str = "busybox:latest") -> str:
        with open(tar_path, "rb") as f:
            data = f.read()
        status, body = self.api.post(
            "/images/create?fromSrc=-&repo=" + ref.split(":")[0] + "&tag=" + ref.split(":")[1]
            + "&changes=" + "CMD%20%5B%22sh%22%5D",
            raw=data, headers={"Content-Type": "application/x-tar"}, timeout=120)
        assert status == 200, body
        return body["status"]

    def remove_all_containers(self) -> None:
        with contextlib.suppress(OSError):
            status, cs = self.api.get("/containers/json?all=1", timeout=10)
            if status == 200:
                for c in cs:
                    self.api.delete(f"/containers/{c['Id']}?force=1", timeout=60)


def _kill_pidfile_tree(root: str) -> list[int]:
    """Kill any process whose pidfile lies under ``root`` (the exec driver's supervisor)."""
    killed = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".pid"):
                continue
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(dirpath, name)) as f:
                    pid = int(f.read().strip())
                if pid > 1:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
    return killed


def _unmount_under(root: str) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    for p in sorted((p for p in points if p == root or p.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an aiohttp application on a free loopback port from a thread; yields host:port."""
    import asyncio
    import threading

    from aiohttp import web
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture(scope="session", autouse=True)
def no_host_resolvers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every dockyardd the suite starts, also those a test spawns its own way, reads a
    resolv.conf naming no server as the host's: no name a container looks up is forwarded to
    the machine's real resolvers (a Daemon gets a file of its own: ``Daemon.resolv_conf``)."""
    path = tmp_path_factory.mktemp("resolv") / "resolv.conf"
    path.write_text("# the test suite's host resolv.conf: no name server\n")
    before = os.environ.get("DOCKYARD_HOST_RESOLV_CONF")
    os.environ["DOCKYARD_HOST_RESOLV_CONF"] = str(path)
    yield
    if before is None:
        os.environ.pop("DOCKYARD_HOST_RESOLV_CONF", None)
    else:
        os.environ["DOCKYARD_HOST_RESOLV_CONF"] = before


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> str:
    from dockyard.core.busybox import main as make_tar

    path = str(tmp_path_factory.mktemp("busybox") / "busybox.tar")
    make_tar([path])
    return path


def make_root(dir: str = "/tmp") -> str:
    # short: unix socket paths are limited to 108 bytes
    return tempfile.mkdtemp(prefix="dky-", dir=dir)


def _host_subnets() -> list[Any]:
    import ipaddress
    out = []
    for line in subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True,
                               text=True).stdout.splitlines():
        dst = line.split()[0] if line.split() else ""
        if dst in ("default", "broadcast", "local", "unreachable") or not dst[0].isdigit():
            parts = line.split()
            dst = parts[1] if len(parts) > 1 and parts[1][:1].isdigit() else ""
        if dst:
            out.append(ipaddress.ip_network(dst, strict=False))
    return out


def unique_subnet(prefix: int = 24) -> str:
    """A random 10.x subnet overlapping no route of the host (so parallel daemons and test
    networks never share addresses)."""
    import ipaddress
    import random
    taken = _host_subnets()
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{random.randint(128, 250)}.{random.randint(0, 255)}.0/{prefix}",
                                   strict=False)
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise RuntimeError("no free 10.x subnet")


def unique_subnet6() -> str:
    """A random ULA /64 (fd00::/8 with a random global ID), unique per call for all practical
    purposes, overlapping no route of the host."""
    from dockyard.hookspecs.conformance.subnets import free_subnet6
    return str(free_subnet6())


def network_args() -> tuple[str, list[str]]:
    """A unique default bridge (name and address) for one test daemon, IPv4 forwarding left
    as the host has it."""
    import ipaddress
    name = "dyt" + os.urandom(4).hex()
    net = ipaddress.ip_network(unique_subnet())
    return name, ["--bridge", name, "--bip", f"{net.network_address + 1}/{net.prefixlen}",
                  "--ip-forward", "false"]


def remove_network_leftovers(d: "Daemon") -> list[str]:
    """Delete what a daemon's bridge driver may have left (after a crash): its bridges (marked
    with its tag), veths plugged into them, its nftables tables. Returns what was found."""
    import hashlib
    found = []
    home = os.path.realpath(os.path.join(d.data_root, "network", "bridge"))
    tag = "dockyard:" + hashlib.sha256(home.encode()).hexdigest()[:16]
    out = subprocess.run(["ip", "-o", "-d", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if f"alias {tag}" in line:
            name = line.split(":")[1].strip().split("@")[0]
            found.append(name)
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    bridge = getattr(d, "bridge_name", "")
    if bridge:
        table = "dockyard_" + bridge
        for family in ("ip", "ip6", "bridge"):
            if subprocess.run(["nft", "list", "table", family, table], capture_output=True).returncode == 0:
                found.append(f"nft {family} {table}")
                subprocess.run(["nft", "delete", "table", family, table], capture_output=True)
    return found


@contextlib.contextmanager
def running_daemon(busybox_tar: str | None, extra_args: list[str] | None = None,
                   root_dir: str = "/tmp", daemon_class: type[Daemon] = Daemon) -> Iterator[Daemon]:
    """A dockyardd whose socket, data-root and exec-root are in a fresh directory under
    ``root_dir`` (give one on another file system to put the data-root there), with a bridge
    and subnet of its own. ``daemon_class`` may change how it is configured and spawned."""
    root = make_root(root_dir)
    extra = list(extra_args or [])
    _name, net_args = network_args()
    for i in range(0, len(net_args), 2):
        if net_args[i] not in extra:
            extra += net_args[i:i + 2]
    bridge = extra[extra.index("--bridge") + 1]
    d = daemon_class(root, extra)
    d.bridge_name = bridge
    try:
        d.start()
        if busybox_tar:
            d.import_busybox(busybox_tar)
        yield d
    finally:
        try:
            if d.proc is not None and d.proc.poll() is None:
                d.remove_all_containers()
            d.stop()
            # the supervisor exits by itself once it holds no containers; give it a moment
            supervisor_pids = []
            for dirpath, _dirs, files in os.walk(d.exec_root):
                for name in files:
                    if name.endswith(".pid"):
                        with contextlib.suppress(OSError, ValueError):
                            with open(os.path.join(dirpath, name)) as f:
                                supervisor_pids.append(int(f.read().strip()))
            for pid in supervisor_pids:
                _wait_gone(pid, 5)
            _kill_pidfile_tree(d.exec_root)
        finally:
            _unmount_under(root)
            remove_network_leftovers(d)
            if os.environ.get("DOCKYARD_KEEP_LOGS"):
                with contextlib.suppress(OSError):
                    shutil.copy(d.log_path, os.environ["DOCKYARD_KEEP_LOGS"] + "/" + os.path.basename(root) + ".log")
            _unmount_under(root)
            d.close()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(busybox_tar: str) -> Iterator[Daemon]:
    """A fresh dockyardd with ``busybox:latest`` imported."""
    with running_daemon(busybox_tar) as d:
        yield d


@pytest.fixture(scope="module")
def shared_daemon(busybox_tar: str) -> Iterator[Daemon]:
    """One dockyardd shared by a module's tests (they must not depend on each other's state)."""
    with running_daemon(busybox_tar) as d:
        yield d
