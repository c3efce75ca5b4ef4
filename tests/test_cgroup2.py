"""The cgroup v2 path, on this host's cgroup2 mount (a hybrid host's ``/sys/fs/cgroup/unified``:
no controller but ``hugetlb``, so no limit can be set there — what needs none is exercised):
creating the container's cgroup, moving processes in, ``cgroup.freeze`` (pause),
``cgroup.kill``, ``cgroup.events`` (``populated``) for exit, and the cgroup namespace view;
first through the native driver's :class:`Cgroups` alone, then a whole daemon whose native
driver uses that mount as its cgroup tree (``--exec-opt native.cgroup-root=...``).

Each test works under a parent cgroup of its own (``dockyard-test-<random>``), removed after."""
from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import subprocess
import tempfile
from typing import Iterator

import pytest

from conftest import Daemon, running_daemon
from test_docker_cli import docker
from dockyard.hookspecs.host import cgroupfiles
from dockyard.hookspecs.host.supervisor.cgroups import Cgroups

UNIFIED = "/sys/fs/cgroup/unified"
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists(f"{UNIFIED}/cgroup.controllers"),
                                 reason="no cgroup2 mount at /sys/fs/cgroup/unified")]


@pytest.fixture
def parent() -> Iterator[str]:
    """A unique parent cgroup under the cgroup2 mount; everything under it is removed after."""
    name = f"dockyard-test-{secrets.token_hex(4)}"
    yield name
    for dirpath, dirs, _ in sorted(os.walk(f"{UNIFIED}/{name}"), key=lambda t: -len(t[0])):
        with contextlib.suppress(OSError):
            with open(f"{dirpath}/cgroup.kill", "w") as f:
                f.write("1")
        for _ in range(200):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                select.select([], [], [], 0.01)


def _events(d: str) -> dict[str, int]:
    with open(f"{d}/cgroup.events") as f:
        return cgroupfiles.events(f.read())


def _wait_events(d: str, key: str, value: int) -> None:
    """Until ``cgroup.events`` shows ``key value``: the kernel wakes a poller of the file
    (POLLPRI) on each change, as the cgroup-v2 documentation says."""
    with open(f"{d}/cgroup.events") as f:
        p = select.poll()
        p.register(f.fileno(), select.POLLPRI | select.POLLERR)
        for _ in range(600):
            f.seek(0)
            if cgroupfiles.events(f.read()).get(key) == value:
                return
            p.poll(100)
    raise AssertionError(f"{d}: {key} never became {value}: {_events(d)}")


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_v2_create_move_freeze_kill_and_events(parent: str) -> None:
    cg = Cgroups(UNIFIED)
    assert cg.v2 and cg.hierarchies == {"unified": os.path.realpath(UNIFIED)}
    dirs = cg.create(f"{parent}/c1", {})
    (d,) = dirs
    assert d == f"{os.path.realpath(UNIFIED)}/{parent}/c1"
    assert _events(d)["populated"] == 0
    # a busy process moved in (as the native init joins: its pid into cgroup.procs)
    proc = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        with open(f"{d}/cgroup.procs", "w") as f:
            f.write(str(proc.pid))
        assert cg.pids(dirs) == [proc.pid] and cg.populated(dirs)
        assert _events(d)["populated"] == 1
        # pause: cgroup.freeze; once frozen, the process gets no CPU at all
        while not cg.freeze(dirs, True):
            _wait_events(d, "frozen", 1)
        assert _events(d)["frozen"] == 1
        before = _cpu_ticks(proc.pid)
        select.select([], [], [], 0.3)
        assert _cpu_ticks(proc.pid) == before
        # resume
        while not cg.freeze(dirs, False):
            _wait_events(d, "frozen", 0)
        assert _events(d)["frozen"] == 0
        # kill: one write of cgroup.kill; the exit is seen through cgroup.events
        assert cg.kill_all(dirs) == 1
        _wait_events(d, "populated", 0)
        assert not cg.populated(dirs)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Cgroups.remove(dirs) == [] and not os.path.exists(d)


def test_v2_limits_need_controllers_this_mount_lacks(parent: str) -> None:
    """No silent drop: a limit the v2 tree cannot hold (no memory controller here) fails, and
    nothing is left of the cgroup."""
    cg = Cgroups(UNIFIED)
    if "memory" in open(f"{UNIFIED}/cgroup.controllers").read().split():
        pytest.skip("this cgroup2 mount has the memory controller")
    with pytest.raises(Exception, match="cannot apply resource limits.*memory.max"):
        cg.create(f"{parent}/c2", {"memory": {"limit": 64 << 20}})
    assert not os.path.exists(f"{UNIFIED}/{parent}/c2")


def test_v2_cgroup_namespace_view(parent: str) -> None:
    """A process in the container's cgroup that makes a cgroup namespace sees its cgroup as
    ``/``, and cgroup2 mounted there shows that cgroup as the root (what the container sees
    at /sys/fs/cgroup on a v2 host)."""
    cg = Cgroups(UNIFIED)
    dirs = cg.create(f"{parent}/c3", {})
    mnt = tempfile.mkdtemp(prefix="dockyard-cg2-")
    try:
        procs = f"{dirs[0]}/cgroup.procs"

        def join() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        script = (f"grep '^0::' /proc/self/cgroup; mount -t cgroup2 none {mnt} && "
                  f"cat {mnt}/cgroup.procs; echo self $$; ls {mnt} | grep -c '^c3$'; true")
        out = subprocess.run(["unshare", "--cgroup", "--mount", "--propagation", "private",
                              "sh", "-c", script], preexec_fn=join, capture_output=True,
                             timeout=60, check=True).stdout.decode().split("\n")
        assert out[0] == "0::/"
        self_pid = next(x for x in out if x.startswith("self ")).split()[1]
        assert self_pid in out[1:-3]  # the namespace's root cgroup holds the shell
        assert out[-2] == "0"  # and not the host's tree above it
    finally:
        os.rmdir(mnt)
        assert Cgroups.remove(dirs) == []


@pytest.fixture(scope="module")
def v2_daemon(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar, ["--exec-opt", f"native.cgroup-root={UNIFIED}"]) as d:
        yield d


def _create(d: Daemon, parent: str, **host) -> str:
    status, body = d.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "cat /proc/self/cgroup; sleep 1000"],
        "HostConfig": {"CgroupParent": parent, "CgroupnsMode": "private", **host}})
    assert status == 201, body
    return body["Id"]


def test_v2_daemon_container_pause_resume_kill(v2_daemon: Daemon, parent: str) -> None:
    d = v2_daemon
    cid = _create(d, parent)
    assert d.api.post(f"/containers/{cid}/start")[0] == 204, d.logs()[-3000:]
    cgdir = f"{UNIFIED}/{parent}/{cid}"
    pid = d.api.get(f"/containers/{cid}/json")[1]["State"]["Pid"]
    with open(f"{cgdir}/cgroup.procs") as f:
        assert str(pid) in f.read().split()
    assert not os.path.exists(f"/sys/fs/cgroup/memory/{parent}/{cid}")  # v2 only
    # the container sees its own cgroup: / in its namespace, its directory at /sys/fs/cgroup
    r = docker(d, "exec", cid, "sh", "-c", "grep '^0::' /proc/self/cgroup; "
               "cat /sys/fs/cgroup/cgroup.procs | wc -l; touch /sys/fs/cgroup/x 2>&1")
    text = r.stdout.decode()
    assert "0::/" in text and "Read-only file system" in text, text
    # pause / unpause through cgroup.freeze
    assert d.api.post(f"/containers/{cid}/pause")[0] == 204
    assert _events(cgdir)["frozen"] == 1
    assert d.api.post(f"/containers/{cid}/unpause")[0] == 204
    assert _events(cgdir)["frozen"] == 0
    # kill: the exit is known, and the cgroup is gone once cgroup.events says it is empty
    assert d.api.post(f"/containers/{cid}/kill")[0] == 204
    status, body = d.api.post(f"/containers/{cid}/wait", timeout=60)
    assert status == 200 and body["StatusCode"] == 137
    for _ in range(600):
        if not os.path.exists(cgdir):
            break
        select.select([], [], [], 0.05)
    assert not os.path.exists(cgdir)
    status, body = d.api.get(f"/containers/{cid}/logs?stdout=1")
    assert b"0::/" in body
    d.api.delete(f"/containers/{cid}?force=1")


def test_v2_daemon_refuses_limits_it_cannot_set(v2_daemon: Daemon, parent: str) -> None:
    """The driver's tree (the controller-less cgroup2 mount) cannot hold a pids limit: the
    create is refused, naming the field, rather than run without it."""
    d = v2_daemon
    status, body = d.api.post("/containers/create", {
        "Image": "busybox", "HostConfig": {"CgroupParent": parent, "PidsLimit": 10}})
    assert status == 400 and "HostConfig.PidsLimit" in body["message"], body
