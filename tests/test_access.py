"""Who may talk to dockyardd: TLS on tcp:// (certificates from ``dockyard tls init``, driven by the
real docker CLI and by dockyard's), plain TCP only on explicit request, plain HTTP on the TLS port
answered with Go's 400, and the unix socket's group and mode."""
from __future__ import annotations

import grp
import os
import shutil
import socket
import stat
import subprocess
import time
import uuid
from typing import Iterator

import pytest

from conftest import DOCKYARD, Daemon, running_daemon
from test_registry import free_port

DOCKER = shutil.which("docker")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = str(tmp_path_factory.mktemp("certs") / "tls")
    p = subprocess.run([DOCKYARD, "tls", "init", d], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return d


def _tls_args(certs: str, port: int) -> list[str]:
    return ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", f"{certs}/ca.pem",
            "--tlscert", f"{certs}/server-cert.pem", "--tlskey", f"{certs}/server-key.pem"]


@pytest.fixture(scope="module")
def tls_daemon(busybox_tar: str, certs: str) -> Iterator[tuple[Daemon, int]]:
    port = free_port()
    with running_daemon(busybox_tar, _tls_args(certs, port)) as d:
        yield d, port


def test_tls_init_files_and_modes(certs: str) -> None:
    modes = {name: stat.S_IMODE(os.stat(os.path.join(certs, name)).st_mode) for name in os.listdir(certs)}
    assert modes == {"ca.pem": 0o644, "ca-key.pem": 0o600, "server-cert.pem": 0o644,
                     "server-key.pem": 0o600, "cert.pem": 0o644, "key.pem": 0o600}
    for cert in ("server-cert.pem", "cert.pem"):
        p = subprocess.run(["openssl", "verify", "-CAfile", f"{certs}/ca.pem", f"{certs}/{cert}"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    again = subprocess.run([DOCKYARD, "tls", "init", certs], capture_output=True, text=True)
    assert again.returncode != 0 and "not overwriting" in again.stderr


@pytest.mark.docker_cli
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_tlsverify(tls_daemon: tuple[Daemon, int], certs: str) -> None:
    d, port = tls_daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = os.path.join(d.root, "docker-config")
    base = [DOCKER, "--tlsverify", "--tlscacert", f"{certs}/ca.pem", "--tlscert", f"{certs}/cert.pem",
            "--tlskey", f"{certs}/key.pem", "-H", f"tcp://127.0.0.1:{port}"]
    p = subprocess.run(base + ["ps"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(base + ["run", "--rm", "busybox", "echo", "over tls"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stdout == "over tls\n", p.stderr
    # no client certificate: the handshake is refused
    p = subprocess.run([DOCKER, "--tlsverify", "--tlscacert", f"{certs}/ca.pem", "-H",
                        f"tcp://127.0.0.1:{port}", "ps"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode != 0


def test_dockyard_cli_tlsverify(tls_daemon: tuple[Daemon, int], certs: str) -> None:
    d, port = tls_daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    host = f"tcp://127.0.0.1:{port}"
    p = subprocess.run([DOCKYARD, "--tlsverify", "--tlscacert", f"{certs}/ca.pem", "--tlscert",
                        f"{certs}/cert.pem", "--tlskey", f"{certs}/key.pem", "-H", host, "ps"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("CONTAINER ID"), p.stderr
    p = subprocess.run([DOCKYARD, "-H", host, "run", "--rm", "busybox", "echo", "cert path"],
                       capture_output=True, text=True, timeout=120,
                       env={**env, "DOCKER_CERT_PATH": certs, "DOCKER_TLS_VERIFY": "1"})
    assert p.returncode == 0 and p.stdout == "cert path\n", p.stderr


def test_plain_http_to_the_tls_port_gets_400(tls_daemon: tuple[Daemon, int]) -> None:
    _d, port = tls_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def test_plain_tcp_is_refused_unless_asked_for(busybox_tar: str) -> None:
    port = free_port()
    with running_daemon(None) as d:
        argv = d.argv()
        argv[argv.index("--data-root") + 1] += "2"
        argv[argv.index("--exec-root") + 1] += "2"
        argv[argv.index("-H") + 1] = f"tcp://127.0.0.1:{port}"
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1
        assert f"refusing to listen on tcp://127.0.0.1:{port} without TLS" in p.stderr, p.stderr
        assert "--tls=false" in p.stderr
        assert not os.path.exists(argv[argv.index("--data-root") + 1]), "it touched the data-root"
    with running_daemon(busybox_tar, ["-H", f"tcp://127.0.0.1:{port}", "--tls=false"]) as d:
        assert "without --tlsverify is insecure" in d.logs()
        p = subprocess.run([DOCKYARD, "-H", f"tcp://127.0.0.1:{port}", "run", "--rm", "busybox",
                            "echo", "plain"], capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
        assert p.returncode == 0 and p.stdout == "plain\n", p.stderr
        warnings = d.api.get("/info")[1]["Warnings"]
        assert any(f"http://127.0.0.1:{port} without encryption" in w for w in warnings), warnings


@pytest.fixture
def group() -> Iterator[str]:
    name = "dyg" + uuid.uuid4().hex[:8]
    subprocess.run(["groupadd", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], check=False)


def test_socket_group_and_mode(group: str) -> None:
    with running_daemon(None, ["-G", group]) as d:
        st = os.stat(d.sock)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (0, grp.getgrnam(group).gr_gid)
    # the default: the "dockyard" group if there is one, else root's
    try:
        want = grp.getgrnam("dockyard").gr_gid
    except KeyError:
        want = 0
    with running_daemon(None) as d:
        st = os.stat(d.sock)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == want


def test_socket_group_must_exist() -> None:
    with running_daemon(None) as d:
        argv = d.argv()
        argv[argv.index("--data-root") + 1] += "2"
        argv[argv.index("--exec-root") + 1] += "2"
        argv[argv.index("-H") + 1] = "unix://" + d.sock + "2"
        p = subprocess.run(argv + ["--group", "no-such-group-" + uuid.uuid4().hex[:6]],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "does not exist" in p.stderr, p.stderr


def test_daemon_json_group(group: str) -> None:
    """``group`` in daemon.json, dockerd's key."""
    with running_daemon(None) as d:
        d.stop()
        with open(os.path.join(d.root, "daemon.json"), "w") as f:
            f.write('{"group": "%s"}' % group)
        d.proc = subprocess.Popen(d.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and d.proc.poll() is None:
            try:
                if d.api.get("/_ping", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        assert os.stat(d.sock).st_gid == grp.getgrnam(group).gr_gid
