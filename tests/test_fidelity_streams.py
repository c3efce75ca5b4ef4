"""Errors, streams, hijacks and endpoints as dockerd answers them, driven by the real docker CLI
(28) and docker-py: errors print as text, start errors come from start, detaching keeps a TTY
container alive, exec output is framed by the start's Tty, a client that hangs up is no error,
load/auth/pull answer as dockerd, swarm and plugin endpoints answer dockerd's words.
"""
from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import uuid
from typing import Iterator

import docker as dockerpy
import pytest

from conftest import Daemon, UnixHTTPConnection, roundtrip, unique_subnet
from test_docker_cli import DOCKER, docker
from test_registry import dockyard_registry

pytestmark = [pytest.mark.docker_cli,
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]

JSON_ERROR = re.compile(rb'\{"message"')


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(shared_daemon: Daemon) -> Iterator[dockerpy.DockerClient]:
    c = dockerpy.DockerClient(base_url=shared_daemon.host, version="auto", timeout=60)
    yield c
    c.close()


def raw(d: Daemon, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return roundtrip(UnixHTTPConnection(d.sock, 60), method, path, body, headers)


def log_mark(d: Daemon) -> int:
    return os.path.getsize(d.log_path)


def log_since(d: Daemon, mark: int) -> str:
    with open(d.log_path, encoding="utf-8", errors="replace") as f:
        f.seek(mark)
        return f.read()


def no_error_in_log(text: str) -> None:
    """No ERROR line, no traceback, no 5xx answered (the access lines at DEBUG)."""
    assert " ERROR " not in text and "Traceback" not in text, text[-4000:]
    answered = re.findall(r"dockyard\.access: (\S+ \S+) (\d{3}) ", text)
    assert answered, "the daemon logged no request"
    assert not [a for a in answered if a[1].startswith("5")], answered


# -- errors ---------------------------------------------------------------------------------------
def test_errors_print_as_text_with_dockerd_status(shared_daemon: Daemon) -> None:
    d = shared_daemon
    r = docker(d, "rm", "nosuch-" + uuid.uuid4().hex[:6])
    assert r.returncode == 1
    assert re.match(rb"Error response from daemon: No such container: nosuch-\w+\n$", r.stderr), r.stderr
    r = docker(d, "network", "rm", "nosuch-net-x")
    assert r.returncode == 1 and not JSON_ERROR.search(r.stderr), r.stderr
    status, headers, body = raw(d, "GET", "/v1.45/containers/nosuch/json")
    assert status == 404 and headers["content-type"] == "application/json"
    assert body == b'{"message":"No such container: nosuch"}\n'
    for method, path in (("GET", "/v1.45/nosuch"), ("PUT", "/v1.45/containers/json")):
        status, headers, body = raw(d, method, path)
        assert (status, headers["content-type"], body) == (404, "application/json",
                                                             b'{"message":"page not found"}\n')


def test_ping_head_options(shared_daemon: Daemon) -> None:
    status, headers, body = raw(shared_daemon, "HEAD", "/_ping")
    assert status == 200 and body == b""
    assert headers["content-length"] == "0" and headers["api-version"] == "1.45"
    assert headers["swarm"] == "inactive" and headers["builder-version"] == "1"
    assert raw(shared_daemon, "GET", "/_ping")[2] == b"OK"
    assert raw(shared_daemon, "OPTIONS", "/v1.45/containers/json")[0] == 200


def test_swarm_plugins_search(shared_daemon: Daemon, client: dockerpy.DockerClient) -> None:
    d = shared_daemon
    r = docker(d, "swarm", "leave")
    assert r.returncode == 1 and r.stderr == b"Error response from daemon: This node is not part of a swarm\n"
    for args in (("node", "ls"), ("service", "ls"), ("secret", "ls"), ("config", "ls")):
        r = docker(d, *args)
        assert r.returncode == 1, args
        assert b'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join"' \
            in r.stderr and not JSON_ERROR.search(r.stderr), (args, r.stderr)
    assert client.swarm.leave(force=True) is True  # docker-py's teardown: it takes the 503
    with pytest.raises(dockerpy.errors.APIError) as exc:
        client.swarm.leave()
    assert exc.value.status_code == 503
    assert raw(d, "GET", "/v1.45/tasks")[0] == 503
    r = docker(d, "plugin", "ls")
    assert r.returncode == 0 and r.stdout.decode().split() == ["ID", "NAME", "DESCRIPTION", "ENABLED"]
    assert client.plugins.list() == []
    r = docker(d, "plugin", "inspect", "nosuchplugin")
    assert r.returncode == 1 and b'plugin "nosuchplugin" not found' in r.stderr
    r = docker(d, "search", "busybox")
    assert r.returncode == 1 and b"image search is not supported by dockyard" in r.stderr
    assert not JSON_ERROR.search(r.stderr)


# -- start errors after an attach -----------------------------------------------------------------
def test_start_errors_after_attach_come_from_start(shared_daemon: Daemon) -> None:
    d = shared_daemon
    net = unique("fsn")
    subnet = unique_subnet()
    prefix = subnet.rsplit(".", 1)[0]
    assert docker(d, "network", "create", "--subnet", subnet, net).returncode == 0
    holder = unique("fsh")
    try:
        r = docker(d, "run", "-d", "--name", holder, "--network", net, "--ip", f"{prefix}.9",
                   "busybox", "sleep", "300")
        assert r.returncode == 0, r.stderr
        before = set(docker(d, "ps", "-aq", "--no-trunc").stdout.split())
        for ip in (f"{prefix}.9", "10.1.2.3"):  # taken; outside the subnet
            r = docker(d, "run", "--rm", "--network", net, "--ip", ip, "busybox", "true", timeout=60)
            assert r.returncode == 125, r.stderr
            assert r.stderr.startswith(b"docker: Error response from daemon: "), r.stderr
            assert b"unable to upgrade" not in r.stderr and not JSON_ERROR.search(r.stderr)
            assert ip.encode() in r.stderr
        assert set(docker(d, "ps", "-aq", "--no-trunc").stdout.split()) == before, "--rm left one"
        # without --rm the container stays, created, with the error, as dockerd keeps it
        kept = unique("fsk")
        r = docker(d, "run", "--name", kept, "--network", net, "--ip", f"{prefix}.9", "busybox", "true")
        assert r.returncode == 125 and b"already in use" in r.stderr
        state = json.loads(docker(d, "inspect", kept).stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("created", 128) and "already in use" in state["Error"]
        r = docker(d, "start", "-a", kept)
        assert r.returncode == 1 and b"already in use" in r.stderr and b"unable to upgrade" not in r.stderr
        assert docker(d, "rm", kept).returncode == 0
    finally:
        docker(d, "rm", "-f", holder)
        docker(d, "network", "rm", net)


def test_attach_before_a_start_that_becomes_possible(shared_daemon: Daemon,
                                                     client: dockerpy.DockerClient) -> None:
    """The attach answered while the container could not be prepared (its network peer was
    not running) is connected by the start: input given early and all output arrive."""
    peer = client.containers.create("busybox", "sleep 300", name=unique("fsp"))
    try:
        cid = client.api.create_container(
            "busybox", ["sh", "-c", "echo first; read x; echo got-$x"], stdin_open=True,
            host_config=client.api.create_host_config(network_mode=f"container:{peer.name}"))["Id"]
        sock = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        sock._sock.sendall(b"early\n")
        peer.start()
        client.api.start(cid)
        sock._sock.settimeout(60)
        data = b""
        while chunk := sock._sock.recv(65536):
            data += chunk
        sock.close()
        assert demux(data) == (b"first\ngot-early\n", b"")
        assert client.api.wait(cid, timeout=60)["StatusCode"] == 0
        client.api.remove_container(cid)
    finally:
        peer.remove(force=True)


def demux(data: bytes) -> tuple[bytes, bytes]:
    out = {1: b"", 2: b""}
    while data:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        out[stream] += data[8:8 + size]
        data = data[8 + size:]
    return out[1], out[2]


# -- detaching from a TTY -------------------------------------------------------------------------
class Pty:
    """A docker CLI on a pseudo-terminal, as a user runs ``docker run -it``."""

    def __init__(self, d: Daemon, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=os.path.join(d.root, "docker-config"),
                   DOCKER_CLI_HINTS="false", TERM="dumb")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execve(DOCKER, [DOCKER, *args], env)
        self.out = b""

    def read_until(self, needle: bytes, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.out and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.out += chunk
        assert needle in self.out, self.out[-2000:]
        return self.out

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def _drain(self) -> None:
        """What the CLI wrote before it exited and is still in the terminal's buffer (its last
        words, e.g. "read escape sequence"): read until the pty reports its end."""
        while select.select([self.fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the other side is closed and everything was read
                return
            if not chunk:
                return
            self.out += chunk

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._drain()
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"the docker CLI did not exit: {self.out[-2000:]!r}")


def running(d: Daemon, name: str) -> bool:
    r = docker(d, "inspect", "-f", "{{.State.Running}}", name)
    return r.stdout.strip() == b"true"


@pytest.mark.parametrize("keys", [None, "ctrl-x,y"])
def test_detach_from_run_it_keeps_the_container(shared_daemon: Daemon, keys: str | None) -> None:
    d = shared_daemon
    name = unique("fsd")
    extra = ["--detach-keys", keys] if keys else []
    seq = b"\x18y" if keys else b"\x10\x11"
    try:
        cli = Pty(d, "run", "-it", "--name", name, *extra, "busybox", "sh")
        cli.read_until(b"# ")
        cli.send(b"echo one-$((40+2))\r")
        cli.read_until(b"one-42")
        cli.send(seq)
        assert cli.wait() == 0
        assert running(d, name), docker(d, "inspect", name).stdout
        # the shell and its stdin are alive: attach again and use it
        cli = Pty(d, "attach", name)
        cli.send(b"echo two-$((40+3))\r")
        cli.read_until(b"two-43")
        cli.send(b"\x10\x11")
        assert cli.wait() == 1  # docker attach: exit 1 and "read escape sequence", as with dockerd
        assert b"read escape sequence" in cli.out
        assert running(d, name)
        # the same for a shell started by exec -it: detached, it lives on
        cli = Pty(d, "exec", "-it", *extra, name, "sh")
        cli.send(b"echo three-$((40+4))\r")
        cli.read_until(b"three-44")
        cli.send(seq)
        assert cli.wait() == 1 and b"read escape sequence" in cli.out
        r = docker(d, "exec", name, "ps", "-o", "args")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split(b"\n").count(b"sh") == 2, r.stdout
    finally:
        docker(d, "rm", "-f", name)


def test_exec_detach_keys_from_docker_py(client: dockerpy.DockerClient) -> None:
    """docker-py sends ``detachKeys`` (lower case) in the exec body; a bad sequence is a 400."""
    ct = client.containers.run("busybox", "sleep 300", detach=True, tty=True)
    try:
        eid = client.api.exec_create(ct.id, "true", detach_keys="ctrl-x,y")["Id"]
        assert client.api.exec_inspect(eid)["DetachKeys"] == "ctrl-x,y"
        with pytest.raises(dockerpy.errors.APIError) as exc:
            client.api.exec_create(ct.id, "true", detach_keys="ctrl-P")
        assert exc.value.status_code == 400
        assert exc.value.explanation == "Invalid escape keys (ctrl-P) provided"
    finally:
        ct.remove(force=True)


# -- exec framing -------------------------------------------------------------------------------
def test_exec_start_tty_decides_the_framing(client: dockerpy.DockerClient) -> None:
    cmd = ["sh", "-c", "echo out; echo err >&2"]
    ct = client.containers.run("busybox", "sleep 300", detach=True, tty=True)
    try:
        assert ct.exec_run(cmd, demux=True) == (0, (b"out\n", b"err\n"))
        # a TTY process, a start without Tty: multiplexed, all of it on stdout (dockerd)
        eid = client.api.exec_create(ct.id, cmd, tty=True)["Id"]
        assert client.api.exec_start(eid, demux=True) == (b"out\r\nerr\r\n", None)
        eid = client.api.exec_create(ct.id, cmd, tty=True)["Id"]
        sock = client.api.exec_start(eid, socket=True)
        sock._sock.settimeout(60)
        data = b""
        while chunk := sock._sock.recv(65536):
            data += chunk
        sock.close()
        assert data[:1] == b"\x01" and demux(data) == (b"out\r\nerr\r\n", b"")
        # no TTY, a start with Tty: raw, the streams merged (and the process has no TTY)
        eid = client.api.exec_create(ct.id, ["sh", "-c", "echo out; echo err >&2; tty || true"])["Id"]
        out = client.api.exec_start(eid, tty=True)  # two pipes: their order is the kernel's
        assert sorted(out.splitlines()) == [b"err", b"not a tty", b"out"], out
        # a program that cannot run: the error in the start's framing
        eid = client.api.exec_create(ct.id, "nosuchcmd", tty=True)["Id"]
        out, err = client.api.exec_start(eid, demux=True)
        assert b"executable file not found" in out and err is None
        assert client.api.exec_inspect(eid)["ExitCode"] == 127
    finally:
        ct.remove(force=True)


# -- clients that go away -------------------------------------------------------------------------
def test_clients_that_hang_up_are_not_errors(shared_daemon: Daemon) -> None:
    d = shared_daemon
    name = unique("fsg")
    quiet = name + "-q"
    r = docker(d, "run", "-d", "--name", name, "busybox", "sh", "-c",
               "dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null; while true; do echo tick; sleep 0.2; done")
    assert r.returncode == 0, r.stderr
    try:
        # a container that said one thing and then nothing: its logs -f only waits
        assert docker(d, "run", "-d", "--name", quiet, "busybox", "sh", "-c",
                      "echo hello; exec sleep 300").returncode == 0
        mark = log_mark(d)
        for _ in range(2):  # run -d drops its wait once the container started
            r = docker(d, "run", "-d", "busybox", "sleep", "5")
            assert r.returncode == 0, r.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=os.path.join(d.root, "docker-config"))
        for args, first in ((["logs", "-f", name], b"tick\n"), (["logs", "-f", quiet], b"hello\n"),
                            (["events"], b""), (["stats"], b""), (["cp", f"{name}:/big", "-"], b""),
                            (["export", name], b""), (["save", "busybox"], b"")):
            proc = subprocess.Popen([DOCKER, *args], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            assert proc.stdout is not None
            if args == ["events"]:  # give it something to say
                assert docker(d, "tag", "busybox", f"{name}:tag").returncode == 0
            got = proc.stdout.read(len(first) or 64)  # it is streaming; now it goes away
            assert got.startswith(first) and got, (args, got)
            proc.kill()
            proc.wait()
            proc.stdout.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the daemon notices within a poll or a write
            text = log_since(d, mark)
            if text.count("request cancelled by client") >= 9:
                break
            time.sleep(0.2)
        no_error_in_log(text)
        assert text.count("request cancelled by client") >= 9, text[-4000:]
        # it still serves, and lets go of the event listeners of the dead clients (docker
        # stats has one too)
        deadline = time.monotonic() + 30
        while json.loads(docker(d, "info", "-f", "{{json .}}").stdout)["NEventsListener"]:
            assert time.monotonic() < deadline, "an event listener outlived its client"
            time.sleep(0.2)
        assert docker(d, "logs", "--tail", "1", name).stdout == b"tick\n"
    finally:
        docker(d, "rm", "-f", name, quiet)
        docker(d, "rmi", f"{name}:tag")


# -- kill / rm ------------------------------------------------------------------------------------
def test_kill_answers_once_exited_and_rm_of_a_restarting_container(
        shared_daemon: Daemon, client: dockerpy.DockerClient) -> None:
    d = shared_daemon
    for _ in range(3):
        ct = client.containers.run("busybox", "sleep 300", detach=True)
        ct.kill()
        assert client.api.inspect_container(ct.id)["State"]["Running"] is False
        ct.remove()
    r = docker(d, "kill", "nosuch-xyz")
    assert r.returncode == 1 and not JSON_ERROR.search(r.stderr)
    name = unique("fsr")
    assert docker(d, "run", "-d", "--name", name, "--restart", "always", "busybox", "false").returncode == 0
    try:
        deadline = time.monotonic() + 60
        while docker(d, "inspect", "-f", "{{.State.Status}}", name).stdout.strip() != b"restarting":
            assert time.monotonic() < deadline, "never seen restarting"
            time.sleep(0.05)
        r = docker(d, "rm", name)
        assert r.returncode == 1
        assert r.stderr == (f'Error response from daemon: cannot remove container "{name}": container is '
                            "restarting: stop the container before removing or force remove\n").encode()
        assert docker(d, "rm", "-f", name).returncode == 0
        assert docker(d, "inspect", name).returncode == 1
    finally:
        docker(d, "rm", "-f", name)


# -- load, auth, pull -----------------------------------------------------------------------------
def test_load_of_a_bad_body(shared_daemon: Daemon, client: dockerpy.DockerClient) -> None:
    with pytest.raises(dockerpy.errors.ImageLoadError):
        client.images.load(b"this is no tar")
    status, headers, body = raw(shared_daemon, "POST", "/v1.45/images/load", b"garbage")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body.splitlines()[-1])["error"]
    r = docker(shared_daemon, "load", input=b"garbage")
    assert r.returncode == 1 and r.stderr and not JSON_ERROR.search(r.stderr)


def test_auth_pull_refused_and_pull_all_tags(shared_daemon: Daemon, tmp_path) -> None:
    import bcrypt
    d = shared_daemon
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=str(tmp_path / "cfg"))

    def cli(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], input=input, stdin=None if input else subprocess.DEVNULL,
                              capture_output=True, timeout=120, env=env)

    with dockyard_registry(str(htpasswd)) as reg:
        repo = f"{reg}/private/{unique('bb')}"
        # a refused login: 401 and dockerd's words, printed as text
        r = cli("login", "-u", "alice", "--password-stdin", reg, input=b"wrong\n")
        assert r.returncode == 1 and not JSON_ERROR.search(r.stderr), r.stderr
        assert f"login attempt to {reg} failed with status: 401 Unauthorized".encode() in r.stderr
        auth = base64.urlsafe_b64encode(json.dumps(
            {"username": "alice", "password": "wrong", "serveraddress": reg}).encode())
        status, _, body = raw(d, "POST", "/v1.45/auth", json.dumps(
            {"username": "alice", "password": "wrong", "serveraddress": reg}).encode(),
            {"Content-Type": "application/json"})
        assert status == 401, body
        # a refused pull: no 401 (the CLI would prompt for a login), dockerd's message
        r = cli("pull", f"{repo}:1")
        assert r.returncode == 1, r.stderr
        assert b"pull access denied for " + repo.encode() in r.stderr and b"Username" not in r.stdout
        conn = UnixHTTPConnection(d.sock, 60)
        conn.request("POST", f"/v1.45/images/create?fromImage={repo}&tag=1",
                     headers={"X-Registry-Auth": auth.decode()})
        assert conn.getresponse().status == 404
        conn.close()
        # pull -a: every tag
        assert cli("login", "-u", "alice", "--password-stdin", reg, input=b"s3cret\n").returncode == 0
        for tag in ("1", "2"):
            assert cli("tag", "busybox", f"{repo}:{tag}").returncode == 0
            r = cli("push", f"{repo}:{tag}")
            assert r.returncode == 0, r.stderr
        assert cli("rmi", f"{repo}:1", f"{repo}:2").returncode == 0
        r = cli("pull", "-a", repo)
        assert r.returncode == 0, r.stderr
        assert b"1: Pulling from" in r.stdout and b"2: Pulling from" in r.stdout
        assert cli("image", "inspect", f"{repo}:1", f"{repo}:2").returncode == 0
        assert cli("rmi", f"{repo}:1", f"{repo}:2").returncode == 0
