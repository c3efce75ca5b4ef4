"""Every graph driver this host supports, behind a real dockyardd: containers write into their own
layer only; unsupported drivers stop the daemon with the reason; a data-root keeps its driver."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Iterator

import pytest

from conftest import DOCKYARDD, Daemon, _kill_pidfile_tree, make_root, running_daemon
from dockyard.hookspecs.conformance.loopfs import LoopFilesystem, LoopUnavailable
from test_api import run_container
from test_docker_cli import DOCKER, docker


@pytest.fixture(scope="module")
def btrfs_dir() -> Iterator[str]:
    """A loop-mounted btrfs for the btrfs daemon's data-root, removed after the module."""
    try:
        with LoopFilesystem("btrfs", 2 << 30) as fs:
            yield fs.path
    except LoopUnavailable as e:
        pytest.skip(f"no loop-mounted btrfs: {e}")


STATUS_KEY = {"overlay": "Supports d_type", "fuse-overlayfs": "Backing Filesystem",
              "btrfs": "Build Version", "vfs": "Root Dir"}


@pytest.mark.parametrize("driver", ["overlay", "vfs", "btrfs", "fuse-overlayfs"])
def test_container_writes_never_reach_the_image(driver: str, busybox_tar: str,
                                                 request: pytest.FixtureRequest) -> None:
    root_dir = request.getfixturevalue("btrfs_dir") if driver == "btrfs" else "/tmp"
    with running_daemon(busybox_tar, ["--storage-driver", driver], root_dir=root_dir) as d:
        status, info = d.api.get("/info")
        assert status == 200 and info["Driver"] == driver
        assert STATUS_KEY[driver] in dict(info["DriverStatus"])
        cli = d.cli("info")
        assert f"Storage Driver: {driver}" in cli.stdout.decode(), cli.stderr
        assert STATUS_KEY[driver] in cli.stdout.decode()

        cid, code, out = run_container(d, ["sh", "-c", "echo changed > /etc/passwd; echo x > /bin/newfile; "
                                                       "rm /bin/ls; mkdir -p /a/b; cat /etc/passwd"])
        assert code == 0 and out == b"changed\n", out
        cid2, code, out = run_container(d, ["sh", "-c", "test ! -e /bin/newfile && test ! -e /a && "
                                                        "test -e /bin/ls && grep -q root /etc/passwd && echo clean"])
        assert (code, out) == (0, b"clean\n"), out
        # the first container's changes are still its own
        status, changes = d.api.get(f"/containers/{cid}/changes")
        if status == 200:
            kinds = {c["Path"]: c["Kind"] for c in changes}
            assert kinds.get("/bin/newfile") == 1 and kinds.get("/bin/ls") == 2
        for c in (cid, cid2):
            assert d.api.delete(f"/containers/{c}")[0] == 204


def _start_fails(args: list[str], root: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARDD, "--config-file", os.path.join(root, "daemon.json"),
                           "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
                           "-H", f"unix://{root}/d.sock", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("driver,reason", [
    ("devicemapper", "/dev/mapper/control not found"),
    ("aufs", "aufs is not in /proc/filesystems"),
])
def test_unsupported_driver_exits_with_the_reason(driver: str, reason: str) -> None:
    root = make_root()
    try:
        with open(os.path.join(root, "daemon.json"), "w") as f:
            f.write("{}")
        r = _start_fails(["--storage-driver", driver], root)
        assert r.returncode != 0
        assert "not supported" in r.stderr and reason in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_data_root_keeps_its_driver(busybox_tar: str) -> None:
    """Images stored by vfs: a later start without a driver picks vfs again; an explicit other
    driver is refused, naming both."""
    root = make_root()
    try:
        d = Daemon(root, ["--storage-driver", "vfs"])
        try:
            d.start()
            d.import_busybox(busybox_tar)
        finally:
            d.stop()
        r = _start_fails(["--storage-driver", "overlay"], root)
        assert r.returncode != 0
        assert "vfs" in r.stderr and "overlay" in r.stderr and "migrate" in r.stderr, r.stderr
        d = Daemon(root)
        try:
            d.start()
            assert d.api.get("/info")[1]["Driver"] == "vfs"
            _, code, out = run_container(d, ["echo", "still here"])
            assert (code, out) == (0, b"still here\n")
            d.remove_all_containers()
        finally:
            d.stop()
    finally:
        time.sleep(0.5)  # the exec driver's supervisor leaves by itself once it holds nothing
        _kill_pidfile_tree(os.path.join(root, "exec"))
        subprocess.run(["umount", "-R", "-l", root], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_storage_migrate_moves_images_and_stopped_containers(busybox_tar: str) -> None:
    script = "if [ -e /kept ]; then cat /kept; else echo kept > /kept; rm /bin/ls; echo first; fi"
    with running_daemon(busybox_tar) as d:
        assert d.api.get("/info")[1]["Driver"] == "overlay"
        cid, code, out = run_container(d, ["sh", "-c", script])
        assert (code, out) == (0, b"first\n")
        for target in ("vfs", "overlay"):
            r = d.cli("storage", "migrate", "--to", target)
            out = r.stdout.decode()
            assert r.returncode == 0, r.stderr.decode() + out
            assert "diff_id verified" in out and f"now using {target}" in out, out
            assert "content verified" in out and "warning" not in out, out  # the container layer
            assert d.api.get("/info")[1]["Driver"] == target
            assert not os.path.exists(os.path.join(d.data_root, "vfs" if target == "overlay" else "overlay"))
            # the stopped container kept its own changes
            assert d.api.post(f"/containers/{cid}/start")[0] == 204
            status, res = d.api.post(f"/containers/{cid}/wait", timeout=60)
            _, logs = d.api.get(f"/containers/{cid}/logs?stdout=1")
            assert res["StatusCode"] == 0 and logs.endswith(b"kept\n"), logs
            # and the image did not get them
            _, code, out = run_container(d, ["sh", "-c", "test ! -e /kept && test -e /bin/ls && echo clean"])
            assert (code, out) == (0, b"clean\n")
            status, c = d.api.get(f"/containers/{cid}/json")
            assert c["GraphDriver"]["Name"] == target
        r = d.cli("storage", "migrate", "--to", "devicemapper")
        assert r.returncode != 0 and b"not supported" in r.stderr, r.stderr
        assert d.api.get("/info")[1]["Driver"] == "overlay"


def _mount_count(path: str) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


@pytest.mark.parametrize("driver", ["overlay", "fuse-overlayfs"])
def test_sigkilled_daemon_leaves_mounts_that_the_next_one_adopts(driver: str, busybox_tar: str) -> None:
    import signal
    with running_daemon(busybox_tar, ["--storage-driver", driver]) as d:
        status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]})
        assert status == 201, body
        cid = body["Id"]
        assert d.api.post(f"/containers/{cid}/start")[0] == 204
        merged = os.path.join(os.path.realpath(d.data_root), driver, cid, "merged")
        assert _mount_count(merged) == 1
        d.stop(signal.SIGKILL)
        assert _mount_count(merged) == 1  # left behind, the container still runs on it
        d.start()
        _, c = d.api.get(f"/containers/{cid}/json")
        assert c["State"]["Running"], c["State"]
        assert _mount_count(merged) == 1, "mounted a second time"
        assert d.api.post(f"/containers/{cid}/kill")[0] == 204
        d.api.post(f"/containers/{cid}/wait", timeout=60)
        deadline = time.monotonic() + 10
        while _mount_count(merged) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _mount_count(merged) == 0, "the adopted mount was not released"
        assert d.api.delete(f"/containers/{cid}")[0] == 204


def test_switching_drivers_without_images_is_allowed(busybox_tar: str) -> None:
    """No images or containers: another driver may be chosen, and is remembered."""
    root = make_root()
    try:
        for args, want in ((["--storage-driver", "vfs"], "vfs"), ([], "vfs"),
                           (["--storage-driver", "overlay"], "overlay"), ([], "overlay")):
            d = Daemon(root, args)
            try:
                d.start()
                assert d.api.get("/info")[1]["Driver"] == want
            finally:
                d.stop()
    finally:
        time.sleep(0.5)
        _kill_pidfile_tree(os.path.join(root, "exec"))
        subprocess.run(["umount", "-R", "-l", root], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


WRITE_64M = "dd if=/dev/zero of=/big bs=1M count=64 conv=fsync 2>&1; echo rc=$?"


def test_storage_opt_size_is_applied_by_btrfs_and_refused_with_the_reason_elsewhere(
        busybox_tar: str, btrfs_dir: str) -> None:
    """``--storage-opt size=`` through the docker CLI: on btrfs the container's subvolume gets a
    qgroup limit, so writing past it inside fails with EDQUOT while a container without one
    writes it all; where the driver cannot limit (overlay without project quotas here) create
    is refused with dockerd's words and the reason, and an unknown key is refused."""
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    with running_daemon(busybox_tar, ["--storage-driver", "btrfs"], root_dir=btrfs_dir) as d:
        limited = docker(d, "run", "--rm", "--storage-opt", "size=24M", "busybox", "sh", "-c",
                        WRITE_64M, timeout=120)
        text = limited.stdout.decode()
        assert limited.returncode == 0 and "Disk quota exceeded" in text, (text, limited.stderr)
        assert "rc=0" not in text
        free = docker(d, "run", "--rm", "busybox", "sh", "-c", WRITE_64M, timeout=120)
        assert free.returncode == 0 and "rc=0" in free.stdout.decode(), free.stdout
        bad = docker(d, "create", "--storage-opt", "size=lots", "busybox")
        assert bad.returncode != 0 and b"invalid size: 'lots'" in bad.stderr, bad.stderr
    with running_daemon(busybox_tar, ["--storage-driver", "overlay"]) as d:
        refused = docker(d, "create", "--storage-opt", "size=24M", "busybox")
        assert refused.returncode != 0
        assert b"--storage-opt is supported only for overlay over xfs with 'pquota' mount " \
               b"option" in refused.stderr, refused.stderr
        unknown = docker(d, "create", "--storage-opt", "inodes=10", "busybox")
        assert unknown.returncode != 0 and b"Unknown option inodes" in unknown.stderr
        assert d.api.get("/containers/json?all=1")[1] == []
