"""Every HostConfig resource / isolation option is applied (seen from inside the container and
in its cgroup files on the host) or refused with a 400 naming it; through the docker CLI."""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Iterator

import pytest

from conftest import Daemon
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]

CGROUP = "/sys/fs/cgroup"
MiB = 1024 * 1024


def _run(d: Daemon, *args: str) -> str:
    r = docker(d, "run", "--rm", *args)
    assert r.returncode == 0, (r.stderr, d.logs()[-3000:])
    return r.stdout.decode()


def _started(d: Daemon, *args: str) -> str:
    r = docker(d, "run", "-d", *args, "busybox", "sleep", "1000")
    assert r.returncode == 0, (r.stderr, d.logs()[-3000:])
    return r.stdout.decode().strip()


def _host_cgroup(ctrl: str, cid: str, name: str) -> str:
    with open(f"{CGROUP}/{ctrl}/dockyard/{cid}/{name}") as f:
        return f.read().strip()


def _cap_eff(out: str) -> int:
    line = next(x for x in out.splitlines() if x.startswith("CapEff:"))
    return int(line.split()[1], 16)


# -- capabilities --------------------------------------------------------------------------------
def test_cap_drop_all_then_add_keeps_only_the_added(shared_daemon: Daemon) -> None:
    out = _run(shared_daemon, "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "busybox",
               "cat", "/proc/self/status")
    assert _cap_eff(out) == 1 << 12  # CAP_NET_ADMIN alone


def test_cap_add_all_gives_every_capability_but_the_dropped(shared_daemon: Daemon) -> None:
    with open("/proc/self/status") as f:  # what this host's root may hand on
        every = int(next(x for x in f if x.startswith("CapBnd:")).split()[1], 16)
    out = _run(shared_daemon, "--cap-add", "ALL", "--cap-drop", "MKNOD", "busybox",
               "cat", "/proc/self/status")
    assert _cap_eff(out) == every & ~(1 << 27)


def test_cap_drop_all_leaves_none_and_unknown_is_refused(shared_daemon: Daemon) -> None:
    assert _cap_eff(_run(shared_daemon, "--cap-drop", "ALL", "busybox", "cat",
                         "/proc/self/status")) == 0
    r = docker(shared_daemon, "create", "--cap-add", "NOT_A_CAP", "busybox")
    assert r.returncode != 0
    assert b"unknown capability" in r.stderr and b"CAP_NOT_A_CAP" in r.stderr


# -- memory --------------------------------------------------------------------------------------
def test_memory_without_swap_gives_twice_the_memory(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _started(d, "--memory", "64m")
    try:
        assert _host_cgroup("memory", cid, "memory.limit_in_bytes") == str(64 * MiB)
        if os.path.exists(f"{CGROUP}/memory/memory.memsw.limit_in_bytes"):
            assert _host_cgroup("memory", cid, "memory.memsw.limit_in_bytes") == str(128 * MiB)
        r = docker(d, "inspect", "-f", "{{.HostConfig.MemorySwap}}", cid)
        assert r.stdout.decode().strip() == str(128 * MiB)
        # the container sees its own limit, in its own cgroup directory
        r = docker(d, "exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert r.stdout.decode().strip() == str(64 * MiB), r.stderr
    finally:
        docker(d, "rm", "-f", cid)


def test_memory_reservation_swappiness_oom_kill_disable(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _started(d, "--memory", "64m", "--memory-reservation", "32m",
                   "--memory-swappiness", "7", "--oom-kill-disable")
    try:
        assert _host_cgroup("memory", cid, "memory.soft_limit_in_bytes") == str(32 * MiB)
        assert _host_cgroup("memory", cid, "memory.swappiness") == "7"
        assert "oom_kill_disable 1" in _host_cgroup("memory", cid, "memory.oom_control")
        r = docker(d, "exec", cid, "cat", "/sys/fs/cgroup/memory/memory.swappiness")
        assert r.stdout.decode().strip() == "7"
        r = docker(d, "inspect", "-f", "{{.HostConfig.MemoryReservation}} "
                   "{{.HostConfig.MemorySwappiness}} {{.HostConfig.OomKillDisable}}", cid)
        assert r.stdout.decode().split() == [str(32 * MiB), "7", "true"]
    finally:
        docker(d, "rm", "-f", cid)


def test_memory_checks_as_dockerd(shared_daemon: Daemon) -> None:
    d = shared_daemon
    r = docker(d, "create", "--memory", "32m", "--memory-reservation", "64m", "busybox")
    assert r.returncode != 0 and b"Minimum memory limit can not be less than memory " \
        b"reservation limit" in r.stderr
    r = docker(d, "create", "--memory-reservation", "1m", "busybox")
    assert r.returncode != 0 and b"Minimum memory reservation allowed is 6MB" in r.stderr
    r = docker(d, "create", "--oom-kill-disable", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert b"OOM killer is disabled for the container, but no memory limit is set" in r.stderr
    docker(d, "rm", "-f", r.stdout.decode().strip())


def test_kernel_memory_is_refused(shared_daemon: Daemon) -> None:
    status, body = shared_daemon.api.post(
        "/containers/create", {"Image": "busybox", "HostConfig": {"KernelMemory": 64 * MiB}})
    assert status == 400 and "HostConfig.KernelMemory" in body["message"]


# -- block I/O -----------------------------------------------------------------------------------
def _block_device() -> str:
    """A block device of this host (the one under /)."""
    dev = os.stat("/").st_dev
    path = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    if not os.path.exists(path):
        pytest.skip("no block device under /")
    name = os.path.basename(os.path.realpath(path))
    if not os.path.exists(f"/dev/{name}"):
        pytest.skip(f"/dev/{name} is missing")
    return f"/dev/{name}"


def test_blkio_throttles_are_written(shared_daemon: Daemon) -> None:
    d = shared_daemon
    dev = _block_device()
    st = os.stat(dev)
    mm = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    cid = _started(d, "--device-read-bps", f"{dev}:1mb", "--device-write-bps", f"{dev}:2mb",
                   "--device-read-iops", f"{dev}:100", "--device-write-iops", f"{dev}:200")
    try:
        for name, value in (("read_bps_device", MiB), ("write_bps_device", 2 * MiB),
                            ("read_iops_device", 100), ("write_iops_device", 200)):
            assert _host_cgroup("blkio", cid, f"blkio.throttle.{name}") == f"{mm} {value}"
        r = docker(d, "exec", cid, "cat", "/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device")
        assert r.stdout.decode().strip() == f"{mm} {MiB}"
    finally:
        docker(d, "rm", "-f", cid)


def test_blkio_weight_applied_or_warned(shared_daemon: Daemon) -> None:
    d = shared_daemon
    r = docker(d, "create", "--blkio-weight", "300", "busybox", "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    try:
        weight = any(os.path.exists(f"{CGROUP}/blkio/{n}") for n in ("blkio.weight",
                                                                      "blkio.bfq.weight"))
        if weight:
            assert docker(d, "start", cid).returncode == 0
        else:  # this host: no BFQ, as dockerd: discarded with its warning
            assert b"Your kernel does not support Block I/O weight" in r.stderr
            r = docker(d, "inspect", "-f", "{{.HostConfig.BlkioWeight}}", cid)
            assert r.stdout.decode().strip() == "0"
    finally:
        docker(d, "rm", "-f", cid)


def test_blkio_device_must_be_a_block_device(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "create", "--device-read-bps", "/dev/null:1mb", "busybox")
    assert r.returncode != 0 and b"BlkioDeviceReadBps" in r.stderr


# -- tmpfs, cgroup view --------------------------------------------------------------------------
def test_tmpfs_gets_noexec_nosuid_nodev(shared_daemon: Daemon) -> None:
    out = _run(shared_daemon, "--tmpfs", "/x", "--tmpfs", "/y:exec,size=1m", "busybox",
               "grep", "-E", " /(x|y) ", "/proc/mounts")
    opts = {line.split()[1]: set(line.split()[3].split(",")) for line in out.splitlines()}
    assert {"noexec", "nosuid", "nodev"} <= opts["/x"]
    assert "noexec" not in opts["/y"] and {"nosuid", "nodev"} <= opts["/y"]


@pytest.mark.parametrize("cgroupns", ["host", "private"])
def test_container_sees_its_own_cgroup(shared_daemon: Daemon, cgroupns: str) -> None:
    d = shared_daemon
    cid = _started(d, "--cgroupns", cgroupns, "--pids-limit", "77", "--cpu-shares", "512")
    try:
        script = ("cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares; "
                  "grep ' /sys/fs/cgroup' /proc/self/mounts; "
                  "touch /sys/fs/cgroup/x 2>&1; echo 1 > /sys/fs/cgroup/pids/pids.max 2>&1; "
                  "cat /proc/self/cgroup")
        r = docker(d, "exec", cid, "sh", "-c", script)
        out = r.stdout.decode()
        lines = out.splitlines()
        assert lines[:2] == ["77", "512"], (out, r.stderr)
        assert "Read-only file system" in out  # the view and each hierarchy are read-only
        mounts = [x.split() for x in lines if len(x.split()) == 6
                  and x.split()[1].startswith("/sys/fs/cgroup")]
        assert len(mounts) >= 8, out  # the tmpfs, then one per hierarchy
        assert [m for m in mounts if "ro" not in m[3].split(",")] == []
        # the container's pids are those of its cgroup (sleep + this shell)
        procs = docker(d, "exec", cid, "cat", "/sys/fs/cgroup/pids/cgroup.procs").stdout.split()
        assert len(procs) >= 2
        memline = next(x for x in lines if ":memory:" in x)
        if cgroupns == "private":
            assert memline.endswith(":memory:/"), memline
        else:
            assert memline.endswith(f":memory:/dockyard/{cid}"), memline
    finally:
        docker(d, "rm", "-f", cid)


def test_cgroupns_default_is_dockerds(shared_daemon: Daemon) -> None:
    d = shared_daemon
    r = docker(d, "create", "busybox")
    cid = r.stdout.decode().strip()
    try:
        mode = docker(d, "inspect", "-f", "{{.HostConfig.CgroupnsMode}}", cid).stdout.decode()
        v2 = os.path.exists(f"{CGROUP}/cgroup.controllers")
        assert mode.strip() == ("private" if v2 else "host")
    finally:
        docker(d, "rm", "-f", cid)


# -- domainname, platform, gpus, storage-opt -----------------------------------------------------
def test_domainname_is_set_in_the_uts_namespace(shared_daemon: Daemon) -> None:
    out = _run(shared_daemon, "--hostname", "web", "--domainname", "example.test", "busybox",
               "sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == ["web", "example.test"]


def test_platform_the_image_does_not_match_is_refused(shared_daemon: Daemon) -> None:
    d = shared_daemon
    arch = d.api.get("/images/busybox/json")[1]["Architecture"]
    other = "arm64" if arch != "arm64" else "amd64"
    # through the API: the docker CLI would go on to pull (no outside traffic in tests)
    status, body = d.api.post("/containers/create?platform=linux/" + other, {"Image": "busybox"})
    assert status == 404, body
    assert body["message"] == (f"image with reference busybox was found but does not match the "
                               f"specified platform: wanted linux/{other}, actual: linux/{arch}")
    status, body = d.api.post("/containers/create?platform=linux/" + arch, {"Image": "busybox"})
    assert status == 201, body
    d.api.delete(f"/containers/{body['Id']}?force=1")
    status, body = d.api.post("/containers/create?platform=linux/x/y/z", {"Image": "busybox"})
    assert status == 400 and "platform" in body["message"]


def test_gpus_are_refused(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "create", "--gpus", "all", "busybox")
    assert r.returncode != 0
    assert b"DeviceRequests" in r.stderr and b"could not select device driver" in r.stderr


def test_storage_opt_refused_with_the_reason(shared_daemon: Daemon) -> None:
    r = docker(shared_daemon, "create", "--storage-opt", "size=1G", "busybox")
    assert r.returncode != 0 and b"StorageOpt" in r.stderr and b"size" in r.stderr
    r = docker(shared_daemon, "create", "--storage-opt", "foo=1", "busybox")
    assert r.returncode != 0 and b"Unknown option foo" in r.stderr


# -- mount propagation ---------------------------------------------------------------------------
@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A tmpfs of this test's own, made a shared mount (the host's / is private here)."""
    path = tempfile.mkdtemp(prefix="dockyard-prop-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dockyard-prop", path], check=True)
    subprocess.run(["mount", "--make-shared", path], check=True)
    try:
        yield path
    finally:
        for _ in range(5):  # what was mounted under it (from either side), then itself
            if subprocess.run(["umount", "-R", path], capture_output=True).returncode != 0:
                break
        os.rmdir(path)


def test_rslave_bind_sees_host_mounts(shared_daemon: Daemon, shared_dir: str) -> None:
    d = shared_daemon
    cid = _started(d, "-v", f"{shared_dir}:/data:rslave")
    try:
        r = docker(d, "inspect", "-f", "{{range .Mounts}}{{.Propagation}}{{end}}", cid)
        assert r.stdout.decode().strip() == "rslave"
        os.mkdir(f"{shared_dir}/sub")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dockyard-prop-sub",
                        f"{shared_dir}/sub"], check=True)
        with open(f"{shared_dir}/sub/f", "w") as f:
            f.write("from the host")
        r = docker(d, "exec", cid, "cat", "/data/sub/f")
        assert r.stdout.decode() == "from the host", r.stderr
    finally:
        docker(d, "rm", "-f", cid)


def test_rshared_bind_shows_container_mounts_on_the_host(shared_daemon: Daemon,
                                                         shared_dir: str) -> None:
    d = shared_daemon
    os.mkdir(f"{shared_dir}/in")
    cid = _started(d, "--privileged", "-v", f"{shared_dir}:/data:rshared")
    try:
        r = docker(d, "exec", cid, "sh", "-c",
                   "mount -t tmpfs dockyard-prop-in /data/in && echo hi > /data/in/f")
        assert r.returncode == 0, r.stderr
        with open(f"{shared_dir}/in/f") as f:
            assert f.read() == "hi\n"
    finally:
        docker(d, "rm", "-f", cid)


def test_shared_propagation_needs_a_shared_source(shared_daemon: Daemon) -> None:
    d = shared_daemon
    src = tempfile.mkdtemp(prefix="dockyard-prop-private-")
    try:
        r = docker(d, "run", "--rm", "-v", f"{src}:/data:rshared", "busybox", "true")
        assert r.returncode != 0
        assert b"is not a shared mount" in r.stderr, r.stderr
    finally:
        os.rmdir(src)


# -- volume-subpath ------------------------------------------------------------------------------
def test_volume_subpath(shared_daemon: Daemon) -> None:
    d = shared_daemon
    vol = "subpath-" + os.urandom(4).hex()
    assert docker(d, "volume", "create", vol).returncode == 0
    try:
        mp = docker(d, "volume", "inspect", "-f", "{{.Mountpoint}}", vol).stdout.decode().strip()
        os.makedirs(f"{mp}/a/b")
        with open(f"{mp}/a/b/f", "w") as f:
            f.write("in b")
        with open(f"{mp}/top", "w") as f:
            f.write("top")
        os.symlink("/etc", f"{mp}/out")
        out = _run(d, "--mount", f"type=volume,src={vol},dst=/data,volume-subpath=a/b",
                   "busybox", "sh", "-c", "ls /data; cat /data/f; echo x > /data/g")
        assert out.split() == ["f", "in", "b"]
        assert os.path.exists(f"{mp}/a/b/g") and not os.path.exists(f"{mp}/g")
        r = docker(d, "run", "--rm", "--mount",
                   f"type=volume,src={vol},dst=/data,volume-subpath=missing", "busybox", "true")
        assert r.returncode != 0 and b"cannot access path" in r.stderr, r.stderr
        r = docker(d, "run", "--rm", "--mount",
                   f"type=volume,src={vol},dst=/data,volume-subpath=out", "busybox", "true")
        assert r.returncode != 0 and b"cannot access path" in r.stderr, r.stderr
        r = docker(d, "create", "--mount",
                   f"type=volume,src={vol},dst=/data,volume-subpath=../x", "busybox")
        assert r.returncode != 0 and b"volume-subpath" in r.stderr, r.stderr
    finally:
        docker(d, "container", "prune", "-f")
        docker(d, "volume", "rm", "-f", vol)


def test_update_memory_reservation_and_swap_rule(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid = _started(d, "--memory", "64m")
    try:
        r = docker(d, "update", "--memory-reservation", "16m", cid)
        assert r.returncode == 0, r.stderr
        assert _host_cgroup("memory", cid, "memory.soft_limit_in_bytes") == str(16 * MiB)
        # above the swap limit set at create (2 x 64m), without a new swap limit: refused
        r = docker(d, "update", "--memory", "256m", cid)
        assert r.returncode != 0 and b"update the memoryswap at the same time" in r.stderr
        r = docker(d, "update", "--memory", "256m", "--memory-swap", "512m", cid)
        assert r.returncode == 0, r.stderr
        assert _host_cgroup("memory", cid, "memory.limit_in_bytes") == str(256 * MiB)
        if os.path.exists(f"{CGROUP}/memory/memory.memsw.limit_in_bytes"):
            assert _host_cgroup("memory", cid, "memory.memsw.limit_in_bytes") == str(512 * MiB)
    finally:
        docker(d, "rm", "-f", cid)
