"""exec, pause/unpause, stats and top through the API and the real docker CLI."""
from __future__ import annotations

import json
import os
import socket
import time

import pytest

from conftest import Daemon
from test_api import demux
from test_docker_cli import DOCKER, docker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _running(d: Daemon, cmd: list[str] | None = None, **extra) -> str:
    status, body = d.api.post("/containers/create", {"Image": "busybox",
                                                     "Cmd": cmd or ["sleep", "1000"], **extra})
    assert status == 201, body
    cid = body["Id"]
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    return cid


def _hijacked_start(d: Daemon, eid: str) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.sock)
    body = b'{"Detach": false, "Tty": false}'
    s.sendall(f"POST /v1.45/exec/{eid}/start HTTP/1.1\r\nHost: localhost\r\n"
              "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


def _rm(d: Daemon, cid: str) -> None:
    d.api.delete(f"/containers/{cid}?force=1")


def test_exec_api_detached_and_inspect(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _running(d)
    try:
        status, body = d.api.post(f"/containers/{cid}/exec",
                                  {"Cmd": ["sh", "-c", "echo $FOO > /tmp/x; exit 4"],
                                   "Env": ["FOO=bar"]})
        assert status == 201, body
        eid = body["Id"]
        status, _ = d.api.post(f"/exec/{eid}/start", {"Detach": True})
        assert status == 200
        for _ in range(200):
            info = d.api.get(f"/exec/{eid}/json")[1]
            if not info["Running"] and info["ExitCode"] is not None:
                break
            time.sleep(0.05)
        assert info["ExitCode"] == 4 and info["ContainerID"] == cid
        # as dockerd: an exec that exited leaves ExecIDs (and stays inspectable a while)
        assert d.api.get(f"/containers/{cid}/json")[1]["ExecIDs"] is None
        # the exec ran in the container's mount namespace
        eid2 = d.api.post(f"/containers/{cid}/exec", {"Cmd": ["cat", "/tmp/x"],
                                                      "AttachStdout": True})[1]["Id"]
        out = _hijacked_start(d, eid2)
        assert demux(out) == b"bar\n"
        assert d.api.get(f"/exec/{eid2}/json")[1]["ExitCode"] == 0
        assert d.api.get("/exec/nosuch/json")[0] == 404
    finally:
        _rm(d, cid)
    assert d.api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})[0] == 404


def test_exec_on_stopped_container_conflicts(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]})[1]["Id"]
    try:
        assert d.api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})[0] == 409
    finally:
        _rm(d, cid)


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_exec_cli(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _running(d, User="nobody")
    try:
        r = docker(d, "exec", cid, "sh", "-c", "id -u; echo $HOME; pwd; exit 7")
        assert r.returncode == 7, r.stderr
        assert r.stdout.decode().split() == ["65534", "/home", "/"]
        r = docker(d, "exec", "-u", "root", "-w", "/tmp", "-e", "A=b", cid, "sh", "-c",
                   "id -u; pwd; echo $A; cat /proc/1/cmdline | tr '\\0' ' '; "
                   "grep ^CapEff /proc/self/status")
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().split() == ["0", "/tmp", "b", "sleep", "1000", "CapEff:",
                                             "00000000a80425fb"]
        r = docker(d, "exec", "-i", cid, "cat", input=b"from stdin\n")
        assert (r.returncode, r.stdout) == (0, b"from stdin\n"), r.stderr
        r = docker(d, "exec", cid, "nosuch")
        assert r.returncode == 127, r
        r = docker(d, "exec", "-d", cid, "sleep", "30")
        assert r.returncode == 0, r.stderr
        top = d.api.get(f"/containers/{cid}/top?ps_args=-ef")[1]
        assert top["Titles"][:2] == ["UID", "PID"]
        cmds = [p[-1] for p in top["Processes"]]
        assert "sleep 1000" in cmds and "sleep 30" in cmds
    finally:
        _rm(d, cid)


def test_pause_unpause_and_stats(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _running(d, ["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
                   HostConfig={"Memory": 64 << 20, "PidsLimit": 50})
    try:
        assert d.api.post(f"/containers/{cid}/pause")[0] == 204
        info = d.api.get(f"/containers/{cid}/json")[1]["State"]
        assert info["Status"] == "paused" and info["Paused"] is True
        assert d.api.post(f"/containers/{cid}/pause")[0] == 409
        assert d.api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})[0] == 409
        size = len(d.api.get(f"/containers/{cid}/logs?stdout=1")[1])
        time.sleep(0.3)
        assert len(d.api.get(f"/containers/{cid}/logs?stdout=1")[1]) == size  # frozen
        assert d.api.post(f"/containers/{cid}/unpause")[0] == 204
        assert d.api.get(f"/containers/{cid}/json")[1]["State"]["Status"] == "running"
        status, raw = d.api.get(f"/containers/{cid}/stats?stream=0")
        assert status == 200
        st = raw if isinstance(raw, dict) else json.loads(raw)
        assert st["id"] == cid and st["name"].startswith("/")
        assert st["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        assert st["precpu_stats"]["cpu_usage"]["total_usage"] > 0
        assert st["cpu_stats"]["system_cpu_usage"] > 0 and st["cpu_stats"]["online_cpus"] >= 1
        assert st["memory_stats"]["limit"] == 64 << 20 and st["memory_stats"]["usage"] > 0
        assert st["pids_stats"]["current"] >= 1 and st["pids_stats"]["limit"] == 50
        assert "io_service_bytes_recursive" in st["blkio_stats"]
    finally:
        _rm(d, cid)


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_stats_pause_cli(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _running(d)
    try:
        r = docker(d, "stats", "--no-stream", "--format", "{{.ID}} {{.PIDs}}", cid)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().split() == [cid[:12], "1"]
        assert docker(d, "pause", cid).returncode == 0
        assert docker(d, "unpause", cid).returncode == 0
        r = docker(d, "top", cid)
        assert r.returncode == 0 and b"sleep 1000" in r.stdout, r
    finally:
        _rm(d, cid)


def test_dockyard_exec_cli(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _running(d)
    try:
        r = d.cli("exec", "-e", "X=1", "-w", "/etc", "-u", "nobody", cid, "sh", "-c",
                  "echo $X; pwd; id -u; exit 5")
        assert r.returncode == 5, r.stderr
        assert r.stdout.decode().split() == ["1", "/etc", "65534"]
        r = d.cli("exec", "-i", cid, "cat", input=b"abc")
        assert (r.returncode, r.stdout) == (0, b"abc"), r.stderr
        r = d.cli("exec", "-t", cid, "tty")
        assert r.returncode == 0 and r.stdout.startswith(b"/dev/pts/"), r
        assert d.cli("exec", "-d", cid, "sleep", "20").returncode == 0
        r = d.cli("top", cid)
        assert r.returncode == 0 and b"sleep 20" in r.stdout, r
        assert d.cli("pause", cid).returncode == 0
        assert d.cli("unpause", cid).returncode == 0
        r = d.cli("stats", "--no-stream", cid)
        assert r.returncode == 0 and cid[:12].encode() in r.stdout, r
    finally:
        _rm(d, cid)


def _attach_socket(d: Daemon, cid: str, query: str = "stream=1&stdin=1&stdout=1&stderr=1"):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.sock)
    s.sendall(f"POST /v1.45/containers/{cid}/attach?{query} HTTP/1.1\r\nHost: localhost\r\n"
              "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _read_until(s: socket.socket, needle: bytes) -> bytes:
    data = b""
    while needle not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_tty_detach_keys_keep_the_container_and_its_stdin(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = d.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["sh"], "Tty": True, "OpenStdin": True, "StdinOnce": True,
        "AttachStdin": True, "AttachStdout": True})[1]["Id"]
    try:
        s = _attach_socket(d, cid)
        assert d.api.post(f"/containers/{cid}/start")[0] == 204
        s.sendall(b"echo one-$((40+2))\n")
        assert b"one-42" in _read_until(s, b"one-42")
        s.sendall(b"\x10\x11")  # ctrl-p ctrl-q
        assert _read_until(s, b"never") is not None  # the daemon closes the connection
        s.close()
        time.sleep(0.3)
        assert d.api.get(f"/containers/{cid}/json")[1]["State"]["Running"] is True
        s = _attach_socket(d, cid)
        s.sendall(b"echo two-$((40+3))\n")
        assert b"two-43" in _read_until(s, b"two-43")
        s.sendall(b"exit 3\n")
        _read_until(s, b"never")
        s.close()
        assert d.api.post(f"/containers/{cid}/wait")[1]["StatusCode"] == 3
    finally:
        _rm(d, cid)


def test_security_opts_no_new_privileges_and_systempaths(shared_daemon: Daemon) -> None:
    """no_new_privs is on unless a container opts out; systempaths=unconfined lifts the
    masked and read-only /proc paths; unknown options are refused at create."""
    d = shared_daemon

    def status_of(*opts: str) -> str:
        args = [a for o in opts for a in ("--security-opt", o)]
        r = d.cli("run", "--rm", *args, "busybox", "sh", "-c",
                  "grep NoNewPrivs /proc/self/status; wc -c < /proc/keys; "
                  "grep -c ' /proc/sys ' /proc/self/mounts; true")
        assert r.returncode == 0, r.stderr
        return " ".join(r.stdout.decode().split())

    assert status_of() == "NoNewPrivs: 1 0 1"
    assert status_of("no-new-privileges=false") == "NoNewPrivs: 0 0 1"
    assert status_of("no-new-privileges:true") == "NoNewPrivs: 1 0 1"
    keys = status_of("systempaths=unconfined").split()
    # /proc/keys readable, /proc/sys not re-mounted read-only
    assert keys[:2] == ["NoNewPrivs:", "1"] and int(keys[2]) > 0 and keys[3] == "0"
    for bad in ("bogus=1", "no-new-privileges=maybe", "systempaths=open"):
        r = d.cli("create", "--security-opt", bad, "busybox", "true")
        assert r.returncode != 0 and b"invalid --security-opt" in r.stderr, (bad, r.stderr)


def test_update_resources_and_restart_policy(shared_daemon: Daemon) -> None:
    """``docker update`` / ``dockyard update``: limits change on the running container's
    cgroups at once, survive a restart, and bad values are refused."""
    d = shared_daemon
    cid = d.cli("run", "-d", "-m", "32m", "--pids-limit", "20", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        def mem_limit() -> int:
            r = d.cli("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
            if r.returncode == 0 and r.stdout.strip().isdigit():
                return int(r.stdout)
            pid = json.loads(d.cli("inspect", cid).stdout)[0]["State"]["Pid"]
            with open(f"/proc/{pid}/cgroup") as f:
                rel = next(line.split(":", 2)[2].strip() for line in f if ":memory:" in line)
            with open(f"/sys/fs/cgroup/memory{rel}/memory.limit_in_bytes") as f:
                return int(f.read())

        assert mem_limit() == 32 << 20
        r = d.cli("update", "-m", "64m", "--memory-swap", "128m", "--pids-limit", "50",
                  "--restart", "on-failure:3", cid)
        assert r.returncode == 0 and r.stdout.decode().strip() == cid, r.stderr
        assert mem_limit() == 64 << 20
        host = json.loads(d.cli("inspect", cid).stdout)[0]["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (64 << 20, 128 << 20, 50)
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        # the pids limit is live: 60 background sleeps hit it
        r = d.cli("exec", cid, "sh", "-c", "for i in $(seq 60); do sleep 30 & done 2>&1; true")
        assert b"can't fork" in r.stdout + r.stderr or b"Resource temporarily" in r.stdout + r.stderr
        assert d.cli("restart", "-t", "1", cid).returncode == 0
        assert mem_limit() == 64 << 20  # kept for later starts
        for bad, msg in ((["-m", "1m"], b"Minimum memory limit"),
                         (["-m", "256m", "--memory-swap", "128m"], b"memoryswap limit should be larger"),
                         (["--cpus", "1", "--cpu-quota", "50000"], b"Conflicting options")):
            r = d.cli("update", *bad, cid)
            assert r.returncode != 0 and msg in r.stderr, (bad, r.stderr)
        if DOCKER:
            r = docker(d, "update", "--cpu-shares", "512", cid)
            assert r.returncode == 0, r.stderr
            assert json.loads(d.cli("inspect", cid).stdout)[0]["HostConfig"]["CpuShares"] == 512
    finally:
        d.cli("rm", "-f", cid)


def test_health_checks(shared_daemon: Daemon) -> None:
    """--health-*: starting, then healthy; failures past Retries make it unhealthy; the log
    keeps the probes' output and exit codes; ps shows it; events report the changes."""
    d = shared_daemon

    def health(cid: str) -> dict:
        return json.loads(d.cli("inspect", cid).stdout)[0]["State"].get("Health") or {}

    def wait_for(cid: str, status: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = health(cid)
            if h.get("Status") == status:
                return h
            time.sleep(0.1)
        raise AssertionError(f"{cid[:12]} never {status}: {health(cid)}")

    # failures inside the start period do not count (dockerd's rule), so the container stays
    # "starting" until /tmp/ok appears, however slowly the machine runs; afterwards they do
    r = d.cli("run", "-d", "--health-cmd", "test -f /tmp/ok && echo fine", "--health-interval", "200ms",
              "--health-retries", "2", "--health-start-period", "5m", "busybox", "sh", "-c",
              "sleep 1; touch /tmp/ok; sleep 300")
    cid = r.stdout.decode().strip()
    try:
        assert health(cid)["Status"] == "starting"
        h = wait_for(cid, "healthy")
        assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "fine\n"
        assert "(healthy)" in d.cli("ps", "--filter", "id=" + cid, "--format", "{{.Status}}").stdout.decode()
        assert d.cli("exec", cid, "rm", "/tmp/ok").returncode == 0
        h = wait_for(cid, "unhealthy")
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1 and len(h["Log"]) <= 5
        r = d.cli("events", "--since", "1m", "--until", "0s", "--filter", "container=" + cid,
                  "--format", "{{.Action}}", timeout=30)
        acts = r.stdout.decode().splitlines()
        assert "health_status: healthy" in acts and "health_status: unhealthy" in acts
    finally:
        d.cli("rm", "-f", cid)
    # a check that outlives its timeout fails; --no-healthcheck has none
    cid = d.cli("run", "-d", "--health-cmd", "sleep 5", "--health-interval", "200ms", "--health-timeout",
                "300ms", "--health-retries", "1", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        h = wait_for(cid, "unhealthy")
        assert "exceeded timeout" in h["Log"][-1]["Output"]
    finally:
        d.cli("rm", "-f", cid)
    cid = d.cli("create", "--no-healthcheck", "busybox", "true").stdout.decode().strip()
    assert "Health" not in json.loads(d.cli("inspect", cid).stdout)[0]["State"]
    d.cli("rm", cid)
    if DOCKER:
        r = docker(d, "run", "-d", "--health-cmd", "true", "--health-interval", "100ms", "busybox", "sleep", "300")
        cid = r.stdout.decode().strip()
        try:
            wait_for(cid, "healthy")
            r = docker(d, "inspect", "--format", "{{.State.Health.Status}}", cid)
            assert r.stdout == b"healthy\n"
        finally:
            docker(d, "rm", "-f", cid)


def test_cgroup_parent_and_namespace(shared_daemon: Daemon) -> None:
    d = shared_daemon
    parent = "dkytest" + os.urandom(3).hex()
    try:
        r = d.cli("run", "--rm", "--cgroup-parent", parent, "busybox", "cat", "/proc/self/cgroup")
        assert r.returncode == 0 and f":/{parent}/" in r.stdout.decode(), r
    finally:
        for base in os.listdir("/sys/fs/cgroup"):
            path = os.path.join("/sys/fs/cgroup", base, parent)
            if os.path.isdir(path):
                os.rmdir(path)
    mine = os.readlink("/proc/self/ns/cgroup")
    r = d.cli("run", "--rm", "--cgroupns", "private", "busybox", "readlink", "/proc/self/ns/cgroup")
    assert r.returncode == 0 and r.stdout.decode().strip() != mine
    r = d.cli("run", "--rm", "--cgroup-parent", "../escape", "busybox", "true")
    assert r.returncode != 0 and b"invalid cgroup parent" in r.stderr
