"""``userns-remap``: containers' root is an unprivileged host ID, images are stored shifted, and
what leaves the store (diff, commit, export, cp) is shifted back."""
from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
from typing import Iterator

import pytest

from conftest import Daemon, running_daemon
from dockyard.core import userns
from dockyard.hookspecs.errors import InvalidParameter

DOCKER = shutil.which("docker")
SIZE = 65536
#: the exec drivers that run containers in user namespaces (lxc does not yet)
RUNTIMES = ("native", "runc", "crun")


def _taken(path: str) -> list[tuple[int, int]]:
    out = []
    with open(path, "a+", encoding="utf-8") as f:
        f.seek(0)
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                out.append((int(parts[1]), int(parts[1]) + int(parts[2])))
    return out


def _free_base() -> int:
    """A 64 Ki block no /etc/subuid or /etc/subgid entry and no existing file owner uses."""
    taken = _taken("/etc/subuid") + _taken("/etc/subgid")
    base = 3_000_000 + secrets.randbelow(1000) * SIZE
    while any(lo < base + SIZE and base < hi for lo, hi in taken):
        base += SIZE
    return base


def _drop_lines(path: str, name: str) -> None:
    with open(path, encoding="utf-8") as f:
        keep = [line for line in f if not line.startswith(name + ":")]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(keep)


@pytest.fixture(scope="module")
def remap_user() -> Iterator[tuple[str, int]]:
    """A user of its own with one subordinate uid and gid range, removed afterwards."""
    name = "dky" + secrets.token_hex(4)
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", name], check=True, capture_output=True)
    base = _free_base()
    try:
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{name}:{base}:{SIZE}\n")
        yield name, base
    finally:
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, name)
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def rd(busybox_tar: str, remap_user: tuple[str, int]) -> Iterator[Daemon]:
    with running_daemon(busybox_tar, ["--userns-remap", remap_user[0]]) as d:
        yield d


def ok(d: Daemon, *args: str) -> str:
    r = d.cli(*args)
    assert r.returncode == 0, (args, r.stdout, r.stderr, d.logs()[-3000:])
    return r.stdout.decode()


def on(d: Daemon, runtime: str) -> tuple[str, str]:
    """``--runtime NAME`` for ``docker run``; skips (with the daemon's reason) a runtime this
    host cannot run."""
    _, info = d.api.get("/info")
    if runtime not in info["Runtimes"]:
        why = info["DockyardDrivers"]["exec"]["unavailable"].get(runtime, "not installed")
        pytest.skip(f"{runtime} cannot run here: {why}")
    return "--runtime", runtime


def _host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_container_root_is_an_unprivileged_host_id(rd: Daemon, remap_user: tuple[str, int],
                                                   runtime: str) -> None:
    _, base = remap_user
    rt = on(rd, runtime)
    out = ok(rd, "run", "--rm", *rt, "busybox", "sh", "-c",
             "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; grep CapEff /proc/self/status")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0", str(base), str(SIZE)] and lines[1] == ["0", str(base), str(SIZE)]
    assert lines[2] == ["0"] and lines[3] == ["0"]
    assert lines[4] == ["CapEff:", "00000000a80425fb"]  # Docker's set, inside its namespace
    cid = ok(rd, "run", "-d", *rt, "--name", "sleeper-" + runtime, "busybox", "sleep", "300").strip()
    try:
        pid = json.loads(ok(rd, "inspect", cid))[0]["State"]["Pid"]
        assert _host_ids(pid) == (base, base)
        # exec joins the user namespace too, as root and as another user
        assert ok(rd, "exec", cid, "cat", "/proc/self/uid_map").split() == ["0", str(base), str(SIZE)]
        out = ok(rd, "exec", "-u", "nobody", cid, "sh", "-c", "id -u; grep CapEff /proc/self/status")
        assert out.split() == ["65534", "CapEff:", "0000000000000000"]
    finally:
        ok(rd, "rm", "-f", cid)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_non_root_user_has_no_capabilities(rd: Daemon, remap_user: tuple[str, int],
                                           runtime: str) -> None:
    _, base = remap_user
    cid = ok(rd, "run", "-d", *on(rd, runtime), "-u", "nobody", "busybox", "sleep", "300").strip()
    try:
        pid = json.loads(ok(rd, "inspect", cid))[0]["State"]["Pid"]
        assert _host_ids(pid) == (base + 65534, base + 65534)
        with open(f"/proc/{pid}/status") as f:
            caps = {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k.startswith("Cap")}
        assert caps["CapEff"] == caps["CapPrm"] == "0000000000000000"
    finally:
        ok(rd, "rm", "-f", cid)


def test_root_owns_its_files_and_host_sees_them_shifted(rd: Daemon, remap_user: tuple[str, int]) -> None:
    _, base = remap_user
    out = ok(rd, "run", "--name", "writer", "busybox", "sh", "-c",
             "stat -c %u:%g /bin/busybox /etc/passwd; touch /newfile; mkdir /d; "
             "touch /d/owned; chown 1000:1000 /d/owned; echo 10.0.0.1 extra >> /etc/hosts; echo ok")
    assert out.split() == ["0:0", "0:0", "ok"]
    info = json.loads(ok(rd, "inspect", "writer"))[0]
    # diff and export give back the container's own IDs
    diff = ok(rd, "diff", "writer")
    assert "A /newfile" in diff and "A /d/owned" in diff
    r = rd.cli("export", "writer")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        members = {m.name.lstrip("./"): m for m in tf.getmembers()}
    assert (members["bin/busybox"].uid, members["bin/busybox"].gid) == (0, 0)
    assert (members["d/owned"].uid, members["d/owned"].gid) == (1000, 1000)
    # a committed image keeps the container's IDs in its layer, and runs again remapped
    ok(rd, "commit", "writer", "userns-commit:1")
    out = ok(rd, "run", "--rm", "userns-commit:1", "stat", "-c", "%u:%g", "/d/owned", "/newfile")
    assert out.split() == ["1000:1000", "0:0"]
    saved = rd.cli("save", "userns-commit:1")
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as outer:
        index = json.load(outer.extractfile("manifest.json"))[0]
        top = outer.extractfile(index["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(top)) as layer:
        owned = layer.getmember("d/owned")
    assert (owned.uid, owned.gid) == (1000, 1000)
    assert info["HostConfig"].get("UsernsMode", "") == ""
    ok(rd, "rm", "writer")
    ok(rd, "rmi", "userns-commit:1")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_volume_is_written_as_the_remapped_root(rd: Daemon, remap_user: tuple[str, int],
                                                 runtime: str) -> None:
    _, base = remap_user
    name = "uv" + secrets.token_hex(3)
    ok(rd, "run", "--rm", *on(rd, runtime), "-v", f"{name}:/data", "busybox", "sh", "-c",
       "echo hi > /data/f")
    vol = json.loads(ok(rd, "volume", "inspect", name))[0]
    st = os.stat(os.path.join(vol["Mountpoint"], "f"))
    assert (st.st_uid, st.st_gid) == (base, base)
    ok(rd, "volume", "rm", name)


def test_cp(rd: Daemon, tmp_path) -> None:
    # cp in: the archive's IDs become the container's; cp out: back again
    src = tmp_path / "in.txt"
    src.write_text("copied\n")
    os.chown(src, 1000, 1000)
    cid = ok(rd, "create", "busybox", "true").strip()
    try:
        ok(rd, "cp", "-a", str(src), f"{cid}:/in.txt")
        ok(rd, "start", "-a", cid)
        r = rd.cli("cp", f"{cid}:/in.txt", "-")
        assert r.returncode == 0, r.stderr
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
            m = tf.getmember("in.txt")
        assert (m.uid, m.gid) == (1000, 1000)
    finally:
        ok(rd, "rm", "-f", cid)


def test_userns_host_and_privileged(rd: Daemon) -> None:
    r = rd.cli("run", "--rm", "--privileged", "busybox", "true")
    assert r.returncode != 0 and b"incompatible with user namespaces" in r.stderr
    out = ok(rd, "run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]
    out = ok(rd, "run", "--rm", "--userns=host", "--privileged", "busybox", "id", "-u")
    assert out.strip() == "0"
    r = rd.cli("run", "--rm", "--pid", "host", "busybox", "true")
    assert r.returncode != 0 and b"not supported with user namespaces" in r.stderr
    assert int(ok(rd, "run", "--rm", "--userns", "host", "--pid", "host", "busybox", "sh", "-c",
                  "ls /proc | grep -c '^[0-9]'")) > 10
    r = rd.cli("run", "--rm", "--userns", "private-ish", "busybox", "true")
    assert r.returncode != 0 and b"invalid USER mode" in r.stderr


def test_info_and_data_root(rd: Daemon, remap_user: tuple[str, int]) -> None:
    _, base = remap_user
    status, info = rd.api.get("/info")
    assert status == 200
    assert "name=userns" in info["SecurityOptions"]
    assert info["DockerRootDir"] == os.path.join(rd.data_root, f"{base}.{base}")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bridge_network_and_sysfs(rd: Daemon, runtime: str) -> None:
    """The network namespace is the host's user namespace's: sysfs comes from the host,
    read-only, and the container's network works."""
    out = ok(rd, "run", "--rm", *on(rd, runtime), "busybox", "sh", "-c",
             "ip -o -4 addr show eth0 | wc -l; touch /sys/x 2>/dev/null || echo ro")
    assert out.split() == ["1", "ro"]


@pytest.mark.skipif(DOCKER is None, reason="docker CLI not installed")
def test_docker_cli(rd: Daemon, remap_user: tuple[str, int]) -> None:
    _, base = remap_user
    r = subprocess.run([DOCKER, "-H", rd.host, "run", "--rm", "busybox", "cat", "/proc/self/uid_map"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"0", str(base).encode(), str(SIZE).encode()]


def test_bad_remap_user_stops_the_daemon(busybox_tar: str) -> None:
    with pytest.raises(RuntimeError, match="no such user"):
        with running_daemon(None, ["--userns-remap", "nosuchuser" + secrets.token_hex(3)]):
            pass


def test_parse_forms_and_default(tmp_path, monkeypatch) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("root:500000:1000\nroot:600000:2000\n")
    subgid.write_text("root:700000:3000\n")
    monkeypatch.setattr(userns, "SUBUID", str(subuid))
    monkeypatch.setattr(userns, "SUBGID", str(subgid))
    m, user, group = userns.parse("root:root")
    assert (user, group) == ("root", "root")
    assert m.uids == ((0, 500000, 1000), (1000, 600000, 2000)) and m.gids == ((0, 700000, 3000),)
    assert m.host_uid(1500) == 600500 and m.root == (500000, 700000)
    assert userns.parse("0")[0] == m
    assert userns.parse("")[0].is_identity
    with pytest.raises(InvalidParameter, match="no subordinate uid ranges"):
        userns.parse("nobody")
    # default: a system user of its own and a free range in each file
    name = "dkr" + secrets.token_hex(4)
    monkeypatch.setattr(userns, "DEFAULT_USER", name)
    try:
        m, user, _ = userns.parse("default")
        assert user == name
        assert m.uids == ((0, 100000, 65536),) and m.gids == ((0, 100000, 65536),)
        assert f"{name}:100000:65536\n" in subuid.read_text()
        assert userns.parse("default")[0] == m  # idempotent: no second range
        assert subuid.read_text().count(name) == 1
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.mark.parametrize("runtime", ["native", "runc", "crun"])
def test_network_sysctl_and_exec_in_the_container_network(rd: Daemon, runtime: str) -> None:
    """A network sysctl is the container's network namespace's, and an exec is in that
    namespace too (runc makes and execs such a container from inside it)."""
    cid = ok(rd, "run", "-d", *on(rd, runtime), "--sysctl", "net.ipv4.ip_local_port_range=40000 40500",
             "busybox", "sleep", "300").strip()
    try:
        assert ok(rd, "exec", cid, "cat", "/proc/sys/net/ipv4/ip_local_port_range").split() \
            == ["40000", "40500"]
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            assert f.read().split() != ["40000", "40500"]
        addr = json.loads(ok(rd, "inspect", cid))[0]["NetworkSettings"]["IPAddress"]
        out = ok(rd, "exec", "-u", "nobody", cid, "ip", "-o", "-4", "addr", "show", "eth0")
        assert f" {addr}/" in out
    finally:
        ok(rd, "rm", "-f", cid)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_host_sys_submounts_are_hidden(rd: Daemon, runtime: str) -> None:
    """/sys is the host's (bound read-only), but not the file systems mounted under it: the
    host's cgroup tree stays invisible; /sys/fs/cgroup shows only the container's own cgroups
    (its directory per hierarchy, as Docker's view), never the host's tree above them."""
    host_cgroups = os.listdir("/sys/fs/cgroup/memory")
    assert "dockyard" in host_cgroups  # the host's tree has the daemons' parents
    out = ok(rd, "run", "--rm", *on(rd, runtime), "busybox", "sh", "-c",
             "ls -A /sys/fs/cgroup/memory | grep -c -x -e dockyard -e docker; "
             "wc -l < /sys/fs/cgroup/memory/cgroup.procs; ls /sys/class | wc -l")
    n_host, n_procs, n_class = out.split()
    assert n_host == "0" and 1 <= int(n_procs) <= 3 and int(n_class) > 0  # sh, wc


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_survives_daemon_sigkill(rd: Daemon, remap_user: tuple[str, int], runtime: str) -> None:
    """Re-adoption is the same with user namespaces: after SIGKILL and restart the container
    still runs, and exec, stop and wait work."""
    _, base = remap_user
    cid = ok(rd, "run", "-d", *on(rd, runtime), "busybox", "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done").strip()
    try:
        assert rd.stop(signal.SIGKILL) == -signal.SIGKILL
        rd.start()
        assert json.loads(ok(rd, "inspect", cid))[0]["State"]["Running"] is True
        assert ok(rd, "exec", cid, "cat", "/proc/self/uid_map").split() == ["0", str(base), str(SIZE)]
        ok(rd, "stop", "-t", "5", cid)
        assert json.loads(ok(rd, "inspect", cid))[0]["State"]["ExitCode"] == 7
    finally:
        rd.cli("rm", "-f", cid)


def test_cli_info_shows_userns(rd: Daemon) -> None:
    out = ok(rd, "info")
    assert " Security Options:\n  seccomp\n   Profile: builtin\n  userns\n" in out


def test_runtimes_without_user_namespaces_are_refused(rd: Daemon) -> None:
    """With remapping on, the daemon offers only the exec drivers that run containers in user
    namespaces: lxc (which does not yet) is listed unavailable and refused by name."""
    _, info = rd.api.get("/info")
    assert info["DefaultRuntime"] == "native" and "native" in info["Runtimes"]
    unavailable = info["DockyardDrivers"]["exec"]["unavailable"]
    for name in RUNTIMES:
        assert "user namespaces" not in unavailable.get(name, "")
    for name in ("lxc",):
        if name not in unavailable and name not in info["Runtimes"]:
            continue  # not installed: nothing to offer or refuse
        assert name not in info["Runtimes"]
        assert "user namespaces" in unavailable[name]
        status, body = rd.api.post("/containers/create", {
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"Runtime": name}})
        assert status == 400, body
        assert f"runtime '{name}' is not available on this host" in body["message"]
        assert "userns-remap" in body["message"]
        valid = body["message"].partition("valid runtimes: ")[2].rstrip(")")
        assert set(info["Runtimes"]) <= set(valid.replace(",", " ").split()), body["message"]
