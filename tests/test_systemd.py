"""dockyardd as a systemd service, where systemd is not PID 1: the listening socket is handed over
exactly as systemd does (``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES``, fds from 3), readiness
arrives on a ``NOTIFY_SOCKET`` the test owns, SIGHUP reloads daemon.json, and the unit files pass
``systemd-analyze verify``."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from conftest import DOCKYARDD, Daemon, running_daemon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = os.path.join(ROOT, "contrib", "systemd")

# What systemd does between fork and exec: the sockets from fd 3 on, the variables naming them
# and the pid they are for (the same process after exec).
LAUNCHER = r"""
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="dockyard.socket")
os.execv(sys.argv[2], sys.argv[2:])
"""


class Notifications:
    """The receiving end of ``NOTIFY_SOCKET``: a datagram socket owned by the test."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[dict[str, str]] = []

    def wait_for(self, key: str, timeout: float = 90) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.received.append(msg)
            if key in msg:
                return msg
        raise AssertionError(f"no {key} notification within {timeout}s; got {self.received}")

    def close(self) -> None:
        self.sock.close()


class ActivatedDaemon(Daemon):
    """dockyardd started as systemd starts a socket-activated ``Type=notify`` service."""

    def __init__(self, root: str, extra_args: list[str] | None = None) -> None:
        super().__init__(root, extra_args)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock)
        self.listener.listen(64)
        os.chmod(self.sock, 0o660)
        self.notifications = Notifications(os.path.join(root, "notify"))
        self.log_level = None  # daemon.json decides, so that a reload can change it
        self.config = {"log-level": "info"}

    def listen_args(self) -> list[str]:
        return ["-H", "fd://"]

    def spawn(self, argv: list[str], log: Any) -> subprocess.Popen[bytes]:
        fd = self.listener.fileno()
        env = {**os.environ, "NOTIFY_SOCKET": self.notifications.address}
        return subprocess.Popen([sys.executable, "-c", LAUNCHER, str(fd), *argv], pass_fds=(fd,),
                                env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def close(self) -> None:
        self.listener.close()
        self.notifications.close()


def _inspect(d: Daemon, cid: str) -> dict[str, Any]:
    status, body = d.api.get(f"/containers/{cid}/json")
    assert status == 200, body
    return body


def _reload(d: ActivatedDaemon, config: dict[str, Any] | str) -> dict[str, str]:
    with open(d.config_path, "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    d.notifications.wait_for("RELOADING")
    return d.notifications.wait_for("READY")


def _supervisor_pids(d: Daemon) -> list[int]:
    pids = []
    for dirpath, _dirs, files in os.walk(d.exec_root):
        for name in files:
            if name == "supervisor.pid":
                with open(os.path.join(dirpath, name)) as f:
                    pids.append(int(f.read()))
    return pids


def _socket_inode(sock: socket.socket) -> str:
    return os.readlink(f"/proc/self/fd/{sock.fileno()}")


def test_socket_activation_notify_reload_and_restart(busybox_tar: str) -> None:
    with running_daemon(busybox_tar, daemon_class=ActivatedDaemon) as d:
        assert isinstance(d, ActivatedDaemon) and d.proc is not None
        ready = d.notifications.wait_for("READY")
        assert ready["READY"] == "1" and ready["MAINPID"] == str(d.proc.pid)
        assert "serving the Docker Engine API" in ready["STATUS"]
        assert "socket activation" in d.logs()

        status, c = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]})
        assert status == 201, c
        cid = c["Id"]
        assert d.api.post(f"/containers/{cid}/start")[0] == 204
        before = _inspect(d, cid)["State"]
        assert before["Running"] and before["Pid"] > 0

        # nothing the daemon starts inherits the activation variables or the listening socket
        listener = _socket_inode(d.listener)
        for pid in _supervisor_pids(d):
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            assert not any(e.startswith((b"LISTEN_", b"NOTIFY_SOCKET=")) for e in env)
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            assert listener not in fds

        # at info, no request is logged; after the reload to debug, each one is
        assert "Calling GET" not in d.logs()
        new = {"log-level": "debug", "labels": ["tier=test"],
               "registry-mirrors": ["https://mirror.invalid"],
               "insecure-registries": ["registry.invalid:5000", "10.99.0.0/16"]}
        ready = _reload(d, new)
        assert "reloaded" in ready["STATUS"]
        status, info = d.api.get("/info")
        assert status == 200
        assert info["Labels"] == ["tier=test"] and info["Debug"] is True
        reg = info["RegistryConfig"]
        assert reg["Mirrors"] == ["https://mirror.invalid"]
        assert reg["IndexConfigs"]["registry.invalid:5000"]["Secure"] is False
        assert "10.99.0.0/16" in reg["InsecureRegistryCIDRs"]
        log = d.logs()
        assert "Reloaded configuration" in log and "Calling GET /info" in log
        status, events = d.api.get(f"/events?since=0&until={time.time() + 1:.3f}"
                                   "&filters=%7B%22type%22%3A%5B%22daemon%22%5D%7D")
        assert status == 200
        events = events if isinstance(events, list) else [events]
        assert any(e["Action"] == "reload" and e["Actor"]["Attributes"]["labels"] == '["tier=test"]'
                   for e in events), events
        after = _inspect(d, cid)["State"]
        assert after["Running"] and after["Pid"] == before["Pid"]
        assert after["StartedAt"] == before["StartedAt"]

        # a key that needs a restart is named, not silently dropped
        _reload(d, {**new, "mtu": 1400})
        assert re.search(r"take effect only when dockyardd restarts: mtu", d.logs())

        # a bad file, or a key also given as a flag, changes nothing
        ready = _reload(d, "{not json")
        assert "NOT reloaded" in ready["STATUS"] and "Error reloading configuration" in d.logs()
        ready = _reload(d, {"log-level": "info", "labels": ["x=y"], "data-root": "/nonexistent"})
        assert "specified both as a flag and in the configuration file" in ready["STATUS"]
        assert d.api.get("/info")[1]["Labels"] == ["tier=test"]

        # a restart of the unit (KillMode=process): the socket stays, the container keeps running
        d.config = {"log-level": "info"}
        assert d.stop() == 0
        d.notifications.wait_for("STOPPING")
        assert os.path.exists(d.sock), "the daemon removed systemd's socket"
        os.kill(before["Pid"], 0)  # still there
        d.start()
        d.notifications.wait_for("READY")
        again = _inspect(d, cid)["State"]
        assert again["Running"] and again["Pid"] == before["Pid"]


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_systemd_socket_activate_starts_on_first_connection() -> None:
    """systemd's own launcher: it listens, and execs dockyardd when the first client connects;
    that client's request is answered by the daemon it woke up. Readiness goes to an abstract
    NOTIFY_SOCKET."""
    notify = Notifications("@dky-notify-" + os.urandom(6).hex())

    class ToolActivated(Daemon):
        def listen_args(self) -> list[str]:
            return ["-H", "fd://dockyard.socket"]

        def spawn(self, argv: list[str], log: Any) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                ["systemd-socket-activate", "-l", self.sock, "--fdname=dockyard.socket",
                 "-E", f"NOTIFY_SOCKET={notify.address}", *argv],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    try:
        with running_daemon(None, daemon_class=ToolActivated) as d:
            assert d.proc is not None
            msg = notify.wait_for("READY")
            assert msg["MAINPID"] == str(d.proc.pid)  # the launcher exec'd into the daemon
            assert "Communication attempt on fd 3" in d.logs()
            status, version = d.api.get("/version")
            assert status == 200 and version["ApiVersion"]
    finally:
        notify.close()


def test_fd_host_without_sockets_is_refused(tmp_path: Any) -> None:
    """``-H fd://`` outside socket activation stops start-up with dockerd's words."""
    (tmp_path / "daemon.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    out = subprocess.run([DOCKYARDD, "--config-file", str(tmp_path / "daemon.json"),
                          "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"),
                          "-H", "fd://"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stderr
    assert "no sockets found via socket activation" in out.stderr


def test_fd_selection_by_name_and_number() -> None:
    from dockyard.core.daemon.systemd import Systemd
    from dockyard.hookspecs.errors import DockyardError

    a, b = socket.socket(), socket.socket()
    try:
        sd = Systemd([(a.fileno(), "api"), (b.fileno(), "metrics")], "")
        with pytest.raises(DockyardError, match="no socket named 'other'.*api, metrics"):
            sd.sockets("other")
        with pytest.raises(DockyardError, match="too few socket activated files"):
            sd.sockets("99")
        got = sd.sockets("metrics")
        assert [s.fileno() for s in got] == [b.fileno()]
        rest = sd.sockets("")
        assert [s.fileno() for s in rest] == [a.fileno()]  # each handed out once
        for s in got + rest:
            s.detach()  # a and b still own the fds
    finally:
        a.close()
        b.close()


def test_notify_without_socket_is_a_no_op() -> None:
    from dockyard.core.daemon.systemd import Systemd
    assert Systemd([], "").notify("READY=1") is False


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_files_verify(tmp_path: Any) -> None:
    """The shipped units pass systemd's own checker (ExecStart pointed at this venv's
    dockyardd, since /usr/local/bin/dockyardd exists only after ``make install``)."""
    for name in ("dockyard.service", "dockyard.socket"):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read().replace("/usr/local/bin/dockyardd", DOCKYARDD)
        (tmp_path / name).write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", "--man=no",
                          str(tmp_path / "dockyard.socket"), str(tmp_path / "dockyard.service")],
                         capture_output=True, text=True, timeout=120)
    # verify exits 0 on a line it cannot parse too: any complaint about our files fails
    assert out.returncode == 0 and str(tmp_path) not in out.stderr, out.stderr
    service = (tmp_path / "dockyard.service").read_text()
    for line in ("Type=notify", "KillMode=process", "Delegate=yes", "Requires=dockyard.socket",
                 "ExecReload=/bin/kill -s HUP $MAINPID", f"ExecStart={DOCKYARDD} -H fd://"):
        assert line in service
    socket_unit = (tmp_path / "dockyard.socket").read_text()
    for line in ("ListenStream=/run/dockyard.sock", "SocketMode=0660", "SocketGroup=dockyard"):
        assert line in socket_unit
