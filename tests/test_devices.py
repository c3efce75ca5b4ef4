"""Devices of containers run by a real dockyardd, as Docker gives them: the default device cgroup
(root and ``-u nobody``), ``--device`` with its permissions, ``--device-cgroup-rule``,
``--privileged``, and no cgroup directory left behind by failed starts or ``rm``.

A loop device the test attaches (a 1 MiB file starting with ``dockyard-loop``) stands for a host
block device; ``/dev/kmsg`` (1:11) for a host character device: it is only opened for writing
and closed, nothing is written to the kernel log.
"""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from conftest import Daemon
from test_api import run_container
from test_docker_cli import DOCKER, docker

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
pytestmark = needs_root
DENIED = "Operation not permitted"
MAGIC = b"dockyard-loop"


@pytest.fixture(scope="module")
def loopdev(tmp_path_factory) -> tuple[str, int, int]:
    """(path, major, minor) of a loop device attached to a file of this test's."""
    backing = tmp_path_factory.mktemp("loop") / "disk.img"
    backing.write_bytes(MAGIC + b"\0" * ((1 << 20) - len(MAGIC)))
    r = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot attach a loop device: {r.stderr.strip()}")
    path = r.stdout.strip()
    try:
        st = os.stat(path)
        yield path, os.major(st.st_rdev), os.minor(st.st_rdev)
    finally:
        subprocess.run(["losetup", "-d", path], capture_output=True)


def sh(d: Daemon, script: str, **extra) -> tuple[int, list[str]]:
    cid, code, out = run_container(d, ["sh", "-c", script], **extra)
    d.api.delete(f"/containers/{cid}?force=1")
    return code, [line.strip() for line in out.decode().splitlines() if line.strip()]


def probe_script(major: int, minor: int) -> str:
    """mknod and open a host block device (the loop device) and /dev/kmsg; the standard nodes."""
    return (f"mknod /tmp/blk b {major} {minor} && echo mknod-b-ok; "
            f"(head -c {len(MAGIC)} /tmp/blk; echo) 2>&1; "
            "mknod /tmp/kmsg c 1 11 && echo mknod-c-ok; "
            "(exec 3>/tmp/kmsg && echo kmsg-opened) 2>&1; "
            "echo x > /dev/null && head -c 2 /dev/zero | wc -c && head -c 2 /dev/urandom | wc -c; "
            "[ \"$(stat -c %d /dev/null)\" = \"$(stat -c %d /dev)\" ] && echo own-null-node")


def test_default_container_cannot_open_devices_outside_the_allow_list(
        shared_daemon: Daemon, loopdev) -> None:
    _, major, minor = loopdev
    code, lines = sh(shared_daemon, probe_script(major, minor))
    # as runc: CAP_MKNOD and 'c *:* m' / 'b *:* m' let root make the nodes; opening them fails
    assert lines[0] == "mknod-b-ok" and DENIED in lines[1], lines
    assert lines[2] == "mknod-c-ok" and DENIED in lines[3] and "kmsg" in lines[3], lines
    # the allow-list still works, and /dev/null is a node of the container's own /dev (a bind
    # mount of the host's would let chmod inside change the host's)
    assert lines[4:] == ["2", "2", "own-null-node"], lines
    # the same script, --privileged: everything opens (the refusals above were the cgroup's)
    code, lines = sh(shared_daemon, probe_script(major, minor), HostConfig={"Privileged": True})
    assert lines[:4] == ["mknod-b-ok", MAGIC.decode(), "mknod-c-ok", "kmsg-opened"], lines


def test_nobody_cannot_mknod_nor_open_nodes_made_for_it(shared_daemon: Daemon, loopdev) -> None:
    """Nodes made readable by all (mode 0666) in a volume by a root container: a ``-u nobody``
    container still cannot open them (the device cgroup, not the file mode, says no)."""
    d = shared_daemon
    _, major, minor = loopdev
    vol = "devs-" + uuid.uuid4().hex[:8]
    binds = {"Binds": [f"{vol}:/v"]}
    try:
        code, lines = sh(d, f"mknod -m 666 /v/blk b {major} {minor} && mknod -m 666 /v/kmsg c 1 11"
                            " && echo made", HostConfig=binds)
        assert lines == ["made"], lines
        script = (f"id -u; (head -c {len(MAGIC)} /v/blk; echo) 2>&1; "
                  "(exec 3>/v/kmsg && echo kmsg-opened) 2>&1; "
                  "mknod /tmp/x c 1 3 2>&1; echo x > /dev/null && echo null-ok")
        code, lines = sh(d, script, User="nobody", HostConfig=binds)
        assert lines[0] == "65534", lines
        assert DENIED in lines[1] and DENIED in lines[2] and DENIED in lines[3], lines
        assert lines[4] == "null-ok", lines
        code, lines = sh(d, script, User="nobody", HostConfig={**binds, "Privileged": True})
        assert lines[1:3] == [MAGIC.decode(), "kmsg-opened"], lines
    finally:
        d.api.delete(f"/volumes/{vol}")


def test_device_flag_gives_the_node_with_its_permissions(shared_daemon: Daemon, loopdev) -> None:
    path, major, minor = loopdev
    script = (f"stat -c '%t:%T' /dev/xloop; (head -c {len(MAGIC)} /dev/xloop; echo) 2>&1; "
              "(exec 3<>/dev/xloop && echo rw-opened) 2>&1; "
              "(exec 3>/dev/xloop && echo w-opened) 2>&1; head -c 3 /dev/myzero | wc -c")
    myzero = {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/myzero",
              "CgroupPermissions": "rwm"}
    code, lines = sh(shared_daemon, script, HostConfig={"Devices": [
        {"PathOnHost": path, "PathInContainer": "/dev/xloop", "CgroupPermissions": "r"}, myzero]})
    assert lines[0] == f"{major:x}:{minor:x}", lines
    assert lines[1] == MAGIC.decode(), lines
    assert DENIED in lines[2] and DENIED in lines[3], lines  # 'r' only: no write
    assert lines[4] == "3", lines
    code, lines = sh(shared_daemon, script, HostConfig={"Devices": [
        {"PathOnHost": path, "PathInContainer": "/dev/xloop", "CgroupPermissions": "rwm"},
        myzero]})
    assert lines[1:] == [MAGIC.decode(), "rw-opened", "w-opened", "3"], lines


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_device_cgroup_rule_allows_exactly_that(shared_daemon: Daemon, loopdev) -> None:
    """Through the real docker CLI: ``--device-cgroup-rule 'b MAJ:MIN r'`` opens that block
    device for reading only, not its neighbour; ``c 1:11 w`` /dev/kmsg for writing only."""
    _, major, minor = loopdev
    script = (f"mknod /tmp/blk b {major} {minor}; mknod /tmp/next b {major} {minor + 1}; "
              "mknod /tmp/kmsg c 1 11; "
              f"(head -c {len(MAGIC)} /tmp/blk; echo) 2>&1; (exec 3>/tmp/blk) 2>&1; "
              f"(head -c 1 /tmp/next) 2>&1; (exec 3>/tmp/kmsg && echo kmsg-w-opened) 2>&1; "
              "(exec 3</tmp/kmsg) 2>&1; true")
    args = ("run", "--rm", "--device-cgroup-rule", f"b {major}:{minor} r",
            "--device-cgroup-rule", "c 1:11 w", "busybox", "sh", "-c", script)
    for r in (docker(shared_daemon, *args), shared_daemon.cli(*args)):  # and dockyard's CLI
        assert r.returncode == 0, r.stderr
        lines = [line.strip() for line in r.stdout.decode().splitlines() if line.strip()]
        assert lines[0] == MAGIC.decode(), lines
        assert DENIED in lines[1] and "blk" in lines[1], lines
        assert DENIED in lines[2] and "next" in lines[2], lines
        assert lines[3] == "kmsg-w-opened", lines
        assert DENIED in lines[4] and "kmsg" in lines[4], lines


def test_privileged_has_the_hosts_devices_and_a_writable_sys(shared_daemon: Daemon,
                                                             loopdev) -> None:
    path, major, minor = loopdev
    script = (f"stat -c '%t:%T' {path}; ls /dev/kmsg; grep ' /sys ' /proc/mounts | cut -d' ' -f4 "
              "| cut -d, -f1")
    code, lines = sh(shared_daemon, script, HostConfig={"Privileged": True})
    assert lines == [f"{major:x}:{minor:x}", "/dev/kmsg", "rw"], lines
    code, lines = sh(shared_daemon, script)
    assert lines[-1] == "ro" and not any(line.startswith(f"{major:x}:") for line in lines), lines


def test_bad_device_options_are_refused_at_create(shared_daemon: Daemon) -> None:
    api = shared_daemon.api
    for host, words in (
            ({"Devices": [{"PathOnHost": "/dev/nosuch-dky", "PathInContainer": "/dev/x",
                           "CgroupPermissions": "rwm"}]},
             'error gathering device information while adding custom device "/dev/nosuch-dky"'),
            ({"Devices": [{"PathOnHost": "/etc/hostname", "CgroupPermissions": "rwm"}]},
             "not a device node"),
            ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]},
             "invalid device mode: rwx"),
            ({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "rel"}]},
             "PathInContainer"),
            ({"DeviceCgroupRules": ["c 1:3"]}, "invalid device cgroup rule format: 'c 1:3'"),
            ({"DeviceCgroupRules": "c 1:3 r"}, "HostConfig.DeviceCgroupRules: expected an array"),
            ({"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]},
             "HostConfig.DeviceRequests: could not select device driver")):
        status, body = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                        "HostConfig": host})
        assert status == 400 and words in body["message"], (host, status, body)


# -- cgroups: none left behind ---------------------------------------------------------------------
def cgroup_dirs(cid: str) -> list[str]:
    """Every directory named ``cid`` in every cgroup hierarchy of the host (v1 and cgroup2)."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] in ("cgroup", "cgroup2"):
                mounts.append(pre.split()[4])
    found = []
    for top in mounts:
        for dirpath, dirnames, _ in os.walk(top):
            if dirpath.count("/") - top.count("/") >= 3:
                dirnames[:] = []
            if cid in dirnames:
                found.append(os.path.join(dirpath, cid))
                dirnames.remove(cid)
    return found


def test_no_cgroup_left_by_failed_starts_or_rm(shared_daemon: Daemon, tmp_path) -> None:
    d = shared_daemon
    api = d.api
    node = tmp_path / "vanishing"
    os.mknod(node, 0o020666, os.makedev(1, 3))
    failing = {
        "cpuset": ({"Cmd": ["true"], "HostConfig": {"CpusetCpus": "9999"}}, None),
        "missing executable": ({"Cmd": ["/no/such/binary"]}, None),
        "device gone before start": ({"Cmd": ["true"], "HostConfig": {"Devices": [
            {"PathOnHost": str(node), "PathInContainer": "/dev/v", "CgroupPermissions": "rwm"}]}},
            lambda: node.unlink()),
        "device node that cannot be made": ({"Cmd": ["true"], "HostConfig": {"Devices": [
            {"PathOnHost": "/dev/null", "PathInContainer": "/proc/dky-null",
             "CgroupPermissions": "rwm"}]}}, None),
    }
    for what, (body, before_start) in failing.items():
        status, created = api.post("/containers/create", {"Image": "busybox", **body})
        assert status == 201, (what, created)
        cid = created["Id"]
        if before_start:
            before_start()
        for _ in range(2):  # a retry must not leave anything either
            status, err = api.post(f"/containers/{cid}/start")
            assert status >= 400, (what, status, err)
            assert cgroup_dirs(cid) == [], (what, err)
        assert api.delete(f"/containers/{cid}?force=1")[0] == 204
        assert cgroup_dirs(cid) == []
    # a running container has its directories (v1 hierarchies and the cgroup2 tree)...
    status, created = api.post("/containers/create", {"Image": "busybox",
                                                       "Cmd": ["sleep", "60"]})
    cid = created["Id"]
    assert api.post(f"/containers/{cid}/start")[0] == 204
    running = cgroup_dirs(cid)
    assert len(running) >= 2 and any("/devices/" in p for p in running), running
    # ... which go when it exits, and a restart makes them afresh; rm leaves none
    assert api.post(f"/containers/{cid}/kill")[0] == 204
    assert api.post(f"/containers/{cid}/wait")[0] == 200
    assert cgroup_dirs(cid) == []
    assert api.post(f"/containers/{cid}/start")[0] == 204
    assert sorted(cgroup_dirs(cid)) == sorted(running)
    assert api.delete(f"/containers/{cid}?force=1")[0] == 204
    assert cgroup_dirs(cid) == []
