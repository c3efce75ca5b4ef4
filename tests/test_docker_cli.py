"""The real docker CLI (28.x, installed as a client on these machines) drives dockyardd unchanged."""
from __future__ import annotations

import os
import time
import shutil
import subprocess

import pytest

from conftest import Daemon

DOCKER = shutil.which("docker")
pytestmark = [pytest.mark.docker_cli,
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]


def docker(d: Daemon, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=os.path.join(d.root, "docker-config"),
               DOCKER_CLI_HINTS="false")
    return subprocess.run([DOCKER, *args], input=input, capture_output=True, timeout=timeout, env=env)


def test_docker_version(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "version")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "Server:" in out and "1.45" in out and "Engine" in out


def test_docker_run_rm_and_ps(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hi\n"
    r = docker(shared_daemon, "run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3
    r = docker(shared_daemon, "ps", "-a")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().strip().splitlines()
    assert lines[0].startswith("CONTAINER ID")
    assert len(lines) == 1, "--rm left containers behind"


def test_docker_run_named_logs_inspect(shared_daemon: Daemon) -> None:
    name = f"dk{os.getpid()}"
    r = docker(shared_daemon, "run", "--name", name, "-e", "FOO=bar", "busybox", "sh", "-c", "echo $FOO")
    assert r.returncode == 0 and r.stdout == b"bar\n", r.stderr
    r = docker(shared_daemon, "logs", name)
    assert r.stdout == b"bar\n"
    r = docker(shared_daemon, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)
    assert r.stdout.decode().strip() == "exited 0"
    r = docker(shared_daemon, "ps", "-a", "--format", "{{.Names}}")
    assert name in r.stdout.decode().split()
    assert docker(shared_daemon, "rm", name).returncode == 0


def test_docker_run_detached_stop(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "run", "-d", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    r = docker(shared_daemon, "ps", "-q", "--no-trunc")
    assert cid in r.stdout.decode()
    assert docker(shared_daemon, "stop", "-t", "1", cid).returncode == 0
    assert docker(shared_daemon, "rm", cid).returncode == 0


def test_docker_stdin(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done", input=b"piped\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"piped\ndone\n"


def test_docker_errors(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "inspect", "nosuchthing")
    assert r.returncode != 0
    r = docker(shared_daemon, "run", "--rm", "busybox", "nosuchcmd")
    assert r.returncode == 127, r.stderr
    assert b"executable file not found" in r.stderr


def test_docker_run_security_limits_and_signals(shared_daemon: Daemon) -> None:
    d = shared_daemon
    r = docker(d, "run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status")
    assert r.returncode == 0 and r.stdout.split() == [b"CapEff:", b"00000000a80425fb"], r
    r = docker(d, "run", "--rm", "busybox", "sh", "-c", "mount -t tmpfs x /mnt")
    assert r.returncode != 0
    r = docker(d, "run", "--rm", "-m", "32m", "busybox", "sh", "-c",
               "x=$(head -c 209715200 /dev/zero | tr '\\0' a)")
    assert r.returncode == 137, r
    r = docker(d, "run", "--rm", "-u", "nobody", "busybox", "id", "-u")
    assert r.stdout == b"65534\n", r
    r = docker(d, "run", "--rm", "-t", "busybox", "tty")
    assert r.returncode == 0 and r.stdout.startswith(b"/dev/pts/"), r
    r = docker(d, "run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline")
    assert r.stdout.startswith(b"/dev/init\0"), r
    r = docker(d, "run", "-d", "busybox", "sh", "-c",
               "trap 'exit 12' HUP; trap 'exit 13' TERM; while true; do sleep 0.05; done")
    cid = r.stdout.decode().strip()
    try:
        assert docker(d, "kill", "-s", "HUP", cid).returncode == 0
        assert docker(d, "wait", cid).stdout == b"12\n"
        assert docker(d, "start", cid).returncode == 0
        assert docker(d, "stop", "-t", "5", cid).returncode == 0
        assert docker(d, "wait", cid).stdout == b"13\n"
    finally:
        docker(d, "rm", "-f", cid)


def test_docker_networks_and_ports(shared_daemon: Daemon) -> None:
    import socket
    import time
    import urllib.request

    from conftest import unique_subnet

    d = shared_daemon
    net, name = f"dkn{os.getpid()}", f"dkw{os.getpid()}"
    r = docker(d, "network", "create", "--subnet", unique_subnet(), "--label", "k=v", net)
    assert r.returncode == 0, r.stderr
    try:
        r = docker(d, "network", "ls", "--format", "{{.Name}}")
        assert {"bridge", "host", "none", net} <= set(r.stdout.decode().split())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = docker(d, "run", "-d", "--name", name, "--network", net, "--network-alias", "alias1",
                   "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
                   "mkdir /w && echo via-docker > /w/index.html && exec httpd -f -p 80 -h /w")
        assert r.returncode == 0, r.stderr
        assert docker(d, "port", name).stdout.decode().strip() == f"80/tcp -> 127.0.0.1:{port}"
        body = b""
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"via-docker\n"
        r = docker(d, "run", "--rm", "--network", net, "busybox", "wget", "-qO-", "http://alias1/")
        assert r.returncode == 0 and r.stdout == b"via-docker\n", r.stderr
        r = docker(d, "network", "inspect", "-f", "{{range .Containers}}{{.Name}}{{end}}", net)
        assert r.stdout.decode().strip() == name
        assert docker(d, "rm", "-f", name).returncode == 0
    finally:
        docker(d, "rm", "-f", name)
        r = docker(d, "network", "rm", net)
    assert r.returncode == 0, r.stderr


def test_docker_diff_and_commit(shared_daemon: Daemon) -> None:
    d = shared_daemon
    name, image = f"dc{os.getpid()}", f"dcimg{os.getpid()}:1"
    r = docker(d, "run", "--name", name, "busybox", "sh", "-c", "echo made > /made")
    assert r.returncode == 0, r.stderr
    try:
        r = docker(d, "diff", name)
        assert r.returncode == 0 and b"A /made" in r.stdout.splitlines(), r
        r = docker(d, "commit", "-c", "CMD cat /made", name, image)
        assert r.returncode == 0, r.stderr
        r = docker(d, "run", "--rm", image)
        assert r.returncode == 0 and r.stdout == b"made\n", r
    finally:
        docker(d, "rm", "-f", name)
        docker(d, "rmi", image)


def test_docker_cp(shared_daemon: Daemon, tmp_path) -> None:
    d = shared_daemon
    name = f"dcp{os.getpid()}"
    r = docker(d, "run", "-d", "--name", name, "busybox", "sh", "-c", "echo in-box > /in.txt; sleep 1000")
    assert r.returncode == 0, r.stderr
    try:
        (tmp_path / "host.txt").write_text("from-host\n")
        r = docker(d, "cp", str(tmp_path / "host.txt"), f"{name}:/tmp/")
        assert r.returncode == 0, r.stderr
        r = docker(d, "exec", name, "cat", "/tmp/host.txt")
        assert r.stdout == b"from-host\n", r
        for _ in range(100):
            r = docker(d, "cp", f"{name}:/in.txt", str(tmp_path / "out.txt"))
            if r.returncode == 0:
                break
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out.txt").read_text() == "in-box\n"
    finally:
        docker(d, "rm", "-f", name)


def test_docker_run_seccomp_profiles(shared_daemon: Daemon, tmp_path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", '
                       '"mkdirat"], "action": "SCMP_ACT_ERRNO"}]}')
    r = docker(shared_daemon, "run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
               "sh", "-c", "mkdir /x 2>&1; echo rc=$?")
    assert r.returncode == 0, r.stderr
    assert b"Operation not permitted" in r.stdout and b"rc=1" in r.stdout, r.stdout
    r = docker(shared_daemon, "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
               "mkdir -p /mnt && mount -t tmpfs x /mnt && echo mounted")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"mounted\n"
    r = docker(shared_daemon, "run", "-d", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    try:
        r = docker(shared_daemon, "exec", cid, "sh", "-c",
                   "grep ^Seccomp: /proc/self/status; unshare -m true 2>&1; echo rc=$?")
        assert r.stdout.split()[:2] == [b"Seccomp:", b"2"], r.stdout
        assert b"Operation not permitted" in r.stdout and b"rc=1" in r.stdout, r.stdout
    finally:
        docker(shared_daemon, "rm", "-f", cid)


def test_docker_events_window_and_filters(shared_daemon: Daemon) -> None:
    """``docker events --since/--until`` replays the window and ends; filters select by type,
    event, container and label; an unknown filter is a 400."""
    d = shared_daemon
    name = "ev" + os.urandom(3).hex()
    r = docker(d, "run", "--rm", "--name", name, "--label", "team=blue", "busybox", "true")
    assert r.returncode == 0, r.stderr
    time.sleep(1.1)  # --until 0s is "now", in whole seconds on the CLI's side

    def events(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        r = docker(d, "events", "--since", "2m", "--until", "0s", "--format",
                   "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", *args, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode().splitlines()

    mine = [e for e in events("container=" + name)]
    # as dockerd 20.10 for the same command: the CLI's attach is an event too
    assert mine == [f"container {a} {name}" for a in ("create", "attach", "start", "die", "destroy")], mine
    assert events("container=" + name, "event=start") == [f"container start {name}"]
    assert all(e.startswith("container ") for e in events("type=container"))
    assert f"container die {name}" in events("label=team=blue", "event=die")
    assert not [e for e in events("label=team=red") if name in e]
    r = docker(d, "events", "--since", "1m", "--until", "0s", "--filter", "bogus=1", timeout=30)
    assert r.returncode != 0 and b"invalid filter" in r.stderr


def test_system_df_and_ps_size(shared_daemon: Daemon) -> None:
    """``/system/df`` (docker system df, dockyard system df) and ``ps -s`` report what the store
    holds: layer sizes, a container's writable layer, a volume's bytes and users."""
    d = shared_daemon
    vol = "dfv" + os.urandom(3).hex()
    name = "df" + os.urandom(3).hex()
    r = d.cli("run", "--name", name, "-v", f"{vol}:/data", "busybox", "sh", "-c",
              "dd if=/dev/zero of=/data/blob bs=1024 count=1024 2>/dev/null; "
              "dd if=/dev/zero of=/rw bs=1024 count=300 2>/dev/null")
    assert r.returncode == 0, r.stderr
    try:
        status, df = d.api.get("/system/df")
        assert status == 200 and df["LayersSize"] > 1_000_000
        v = next(v for v in df["Volumes"] if v["Name"] == vol)
        assert v["UsageData"]["Size"] >= 1 << 20 and v["UsageData"]["RefCount"] == 1
        c = next(c for c in df["Containers"] if c["Names"] == ["/" + name])
        assert 300 << 10 <= c["SizeRw"] < 2 << 20 and c["SizeRootFs"] > c["SizeRw"]
        img = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
        assert img["Containers"] >= 1 and img["SharedSize"] >= 0
        status, only = d.api.get("/system/df?type=volume")
        assert set(only) == {"Volumes"}
        assert d.api.get("/system/df?type=bogus")[0] == 400
        out = d.cli("system", "df").stdout.decode()
        assert out.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert any(line.startswith("Local Volumes") for line in out.splitlines())
        r = d.cli("ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}", "--filter", "name=" + name)
        assert r.returncode == 0 and r.stdout.decode().startswith(name + " "), r
        if DOCKER:
            r = docker(d, "system", "df")
            assert r.returncode == 0 and b"Local Volumes" in r.stdout, r.stderr
            r = docker(d, "ps", "-a", "-s", "--filter", "name=" + name, "--format", "{{.Size}}")
            assert r.returncode == 0 and b"virtual" in r.stdout, r
    finally:
        d.cli("rm", "-f", name)
        d.cli("volume", "rm", vol)


def test_dockyard_events_cli(shared_daemon: Daemon) -> None:
    d = shared_daemon
    name = "evc" + os.urandom(3).hex()
    assert d.cli("run", "--rm", "--name", name, "busybox", "true").returncode == 0
    r = d.cli("events", "--since", "2m", "--until", "0s", "--filter", "container=" + name,
              "--filter", "event=die", timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1 and " container die " in lines[0] and f"name={name}" in lines[0]
    r = d.cli("system", "events", "--since", "2m", "--until", "0s", "--filter",
              "container=" + name, "--format", "{{.Action}}", timeout=30)
    assert r.stdout.decode().split() == ["create", "attach", "start", "die", "destroy"]


def test_namespace_modes_and_process_options(shared_daemon: Daemon) -> None:
    """--pid/--ipc/--uts host and container:<name>, --add-host, --shm-size, --sysctl,
    --device, --oom-score-adj, --group-add: honoured, or refused with a clear message."""
    import socket
    d = shared_daemon

    def out(*args: str) -> str:
        r = docker(d, "run", "--rm", *args)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout.decode()

    peer = "nsp" + os.urandom(3).hex()
    r = docker(d, "run", "-d", "--name", peer, "busybox", "sh", "-c", "echo $$ > /tmp/me; sleep 300")
    assert r.returncode == 0, r.stderr
    try:
        assert int(out("--pid", "host", "busybox", "sh", "-c", "ls /proc | grep -c '^[0-9]'")) > 10
        assert out("--uts", "host", "busybox", "hostname").strip() == socket.gethostname()
        # joined: the peer's processes are visible, its pid 1 is the peer's shell
        ps = out("--pid", "container:" + peer, "busybox", "ps", "-o", "pid,args")
        assert "sleep 300" in ps
        peer_ipc = docker(d, "exec", peer, "readlink", "/proc/self/ns/ipc").stdout.strip()
        assert out("--ipc", "container:" + peer, "busybox", "readlink", "/proc/self/ns/ipc").strip() \
            == peer_ipc.decode()
        assert out("--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc").strip() == \
            os.readlink("/proc/self/ns/ipc")
    finally:
        docker(d, "rm", "-f", peer)
    assert "10.1.2.3\tfoo.example" in out("--add-host", "foo.example:10.1.2.3", "busybox", "cat", "/etc/hosts")
    assert out("--shm-size", "128m", "busybox", "sh", "-c", "df -k /dev/shm | tail -1").split()[1] == str(128 * 1024)
    assert out("--sysctl", "kernel.shmmni=1234", "busybox", "cat", "/proc/sys/kernel/shmmni").strip() == "1234"
    assert out("--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
               "echo x > /dev/mynull && stat -c %t,%T /dev/mynull").strip() == "1,3"
    assert out("--oom-score-adj", "300", "busybox", "cat", "/proc/self/oom_score_adj").strip() == "300"
    assert "4242" in out("--group-add", "4242", "busybox", "id", "-G").split()
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                     "HostConfig": {"Sysctls": {"kernel.panic": "1"}}})
    assert status == 400 and "not whitelisted" in body["message"]
    for args, msg in ((["--pid", "bogus"], b"invalid PID mode"),
                      (["--network", "container:whatever"], b"No such container"),
                      (["--device", "/dev/nosuchdevice"], b"no such file"),
                      (["--add-host", "nohostip"], b"invalid"),
                      (["--group-add", "nosuchgroup"], b"unable to find group")):
        r = docker(d, "run", "--rm", *args, "busybox", "true")
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)


def test_links_and_runtime(shared_daemon: Daemon) -> None:
    d = shared_daemon
    peer = "lk" + os.urandom(3).hex()
    assert docker(d, "run", "-d", "--name", peer, "busybox", "sleep", "300").returncode == 0
    try:
        ip = docker(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", peer).stdout.decode().strip()
        r = docker(d, "run", "--rm", "--link", f"{peer}:db", "busybox", "sh", "-c",
                   "grep -w db /etc/hosts; ping -c1 -W2 db >/dev/null && echo reached")
        assert r.returncode == 0, r.stderr
        line, reached = r.stdout.decode().splitlines()
        assert line.split()[:3] == [ip, "db", peer] and reached == "reached"
        r = docker(d, "run", "--rm", "--link", "nosuchpeer:x", "busybox", "true")
        assert r.returncode != 0 and b"No such container" in r.stderr
    finally:
        docker(d, "rm", "-f", peer)
    assert docker(d, "run", "--rm", "--runtime", "runc", "busybox", "true").returncode == 0
    r = docker(d, "run", "--rm", "--runtime", "kata", "busybox", "true")
    assert r.returncode != 0 and b"unknown or invalid runtime name" in r.stderr


def test_network_container_mode(shared_daemon: Daemon) -> None:
    """--network container:<name>: the peer's network namespace, address and /etc files; it
    cannot publish ports or join other networks; the peer must be running."""
    d = shared_daemon
    peer = "np" + os.urandom(3).hex()
    assert docker(d, "run", "-d", "--name", peer, "busybox", "sh", "-c",
                  "mkdir /www; echo from-peer > /www/index.html; httpd -f -p 8080 -h /www").returncode == 0
    try:
        ip = docker(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", peer).stdout.decode().strip()
        r = docker(d, "run", "--rm", "--network", "container:" + peer, "busybox", "sh", "-c",
                   "ip -o -4 addr show eth0 | awk '{print $4}'; hostname; "
                   "wget -q -O - http://127.0.0.1:8080/")
        assert r.returncode == 0, r.stderr
        addr, hostname, body = r.stdout.decode().split()
        assert addr.split("/")[0] == ip and body == "from-peer"
        assert hostname == docker(d, "inspect", "-f", "{{.Config.Hostname}}", peer).stdout.decode().strip()
        r = docker(d, "run", "--rm", "--network", "container:" + peer, "-p", "9999:80", "busybox", "true")
        assert r.returncode != 0 and b"conflicting options" in r.stderr
        cid = docker(d, "create", "--network", "container:" + peer, "busybox", "sleep", "30").stdout.decode().strip()
        r = docker(d, "network", "connect", "bridge", cid)
        assert r.returncode != 0 and b"cannot be connected" in r.stderr
        docker(d, "rm", "-f", cid)
    finally:
        docker(d, "rm", "-f", peer)
    cid = docker(d, "create", "--name", peer, "busybox", "sleep", "30").stdout.decode().strip()
    other = docker(d, "create", "--network", "container:" + peer, "busybox", "true").stdout.decode().strip()
    r = docker(d, "start", other)
    assert r.returncode != 0 and b"non running container" in r.stderr
    docker(d, "rm", "-f", other, cid)


def test_system_prune(daemon: Daemon) -> None:
    """docker system prune: stopped containers, unused networks, dangling images and the
    build cache (POST /build/prune)."""
    d = daemon
    assert docker(d, "run", "--name", "gone", "busybox", "true").returncode == 0
    assert docker(d, "network", "create", "unused" + os.urandom(2).hex()).returncode == 0
    r = docker(d, "system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert b"Deleted Containers" in r.stdout and b"Deleted Networks" in r.stdout
    assert docker(d, "ps", "-aq").stdout == b""
    status, body = d.api.post("/build/prune")
    assert status == 200 and "SpaceReclaimed" in body
