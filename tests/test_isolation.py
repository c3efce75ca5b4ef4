"""Security defaults and resource limits, seen from inside containers run by a real dockyardd."""
from __future__ import annotations

import pytest

from conftest import Daemon
from test_api import run_container

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0, reason="needs root")


def test_default_capabilities(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["grep", "^Cap", "/proc/self/status"])
    assert code == 0, out
    caps = dict(line.split(":\t") for line in out.decode().splitlines())
    assert caps["CapEff"] == "00000000a80425fb"
    assert caps["CapPrm"] == "00000000a80425fb"
    assert caps["CapBnd"] == "00000000a80425fb"
    assert caps["CapInh"] == "0000000000000000"
    assert caps["CapAmb"] == "0000000000000000"


@pytest.mark.parametrize("host_config, want", [
    # moby's TweakCapabilities: drop ALL keeps only what is added; add before drop is kept
    ({"CapDrop": ["ALL"], "CapAdd": ["chown", "CAP_KILL"]}, (1 << 0) | (1 << 5)),
    ({"CapAdd": ["NET_ADMIN"], "CapDrop": ["chown"]}, (0xA80425FB & ~1) | (1 << 12)),
])
def test_cap_add_and_drop(shared_daemon: Daemon, host_config: dict, want: int) -> None:
    _, code, out = run_container(shared_daemon, ["grep", "^CapEff", "/proc/self/status"],
                                 HostConfig=host_config)
    assert code == 0, out
    assert int(out.decode().split()[1], 16) == want


def test_unknown_capability_is_refused_at_create(shared_daemon: Daemon) -> None:
    for key in ("CapAdd", "CapDrop"):
        status, err = shared_daemon.api.post("/containers/create", {
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {key: ["NET_FOO"]}})
        assert status == 400, err
        assert err["message"] == f'invalid {key}: unknown capability: "CAP_NET_FOO"'


def test_non_root_user_has_no_effective_capabilities(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["sh", "-c", "id -u; grep ^CapEff /proc/self/status"],
                                 User="nobody")
    assert code == 0, out
    assert out.decode().split() == ["65534", "CapEff:", "0000000000000000"]


def test_no_new_privs_and_seccomp(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["grep", "-E", "^(NoNewPrivs|Seccomp):",
                                                 "/proc/self/status"])
    assert code == 0, out
    assert out.decode().split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]


def test_mount_and_proc_sys_are_refused(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["sh", "-c", "mount -t tmpfs none /mnt; echo rc=$?"])
    assert b"rc=0" not in out, out
    _, code, out = run_container(
        shared_daemon, ["sh", "-c", "echo 1 > /proc/sys/kernel/domainname; echo rc=$?"])
    assert b"rc=1" in out, out
    _, code, out = run_container(shared_daemon, ["unshare", "-n", "true"])
    assert code != 0, out


def test_masked_paths(shared_daemon: Daemon) -> None:
    present = [p for p in ("/proc/keys", "/proc/timer_list") if __import__("os").path.exists(p)]
    script = "".join(f"wc -c < {p}; " for p in present) + "ls /sys/firmware | wc -l"
    _, code, out = run_container(shared_daemon, ["sh", "-c", script])
    assert out.decode().split() == ["0"] * (len(present) + 1), out


def test_privileged_keeps_everything(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["grep", "-E", "^(Seccomp|NoNewPrivs):",
                                                 "/proc/self/status"],
                                 HostConfig={"Privileged": True})
    assert out.decode().split() == ["NoNewPrivs:", "0", "Seccomp:", "0"]


def test_read_only_rootfs(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["sh", "-c", "touch /x; echo rc=$?; touch /dev/shm/y && echo ok"],
                                 HostConfig={"ReadonlyRootfs": True})
    assert b"rc=1" in out and b"ok" in out, out


def test_ulimits_and_init(shared_daemon: Daemon) -> None:
    _, code, out = run_container(shared_daemon, ["sh", "-c", "ulimit -n"],
                                 HostConfig={"Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 1024}]})
    assert out.strip() == b"512", out
    _, code, out = run_container(shared_daemon, ["sh", "-c", "cat /proc/1/comm; echo $$"],
                                 HostConfig={"Init": True})
    assert code == 0 and out.decode().split()[0] in ("init", "tini", "tini-static"), out
    assert out.decode().split()[1] != "1"


def test_memory_limit_oom(shared_daemon: Daemon) -> None:
    cid, code, out = run_container(
        shared_daemon, ["sh", "-c", "dd if=/dev/zero bs=1M count=200 | cat > /dev/shm/fill; "
                                    "x=$(head -c 209715200 /dev/zero | tr '\\0' a); echo survived"],
        HostConfig={"Memory": 32 * 1024 * 1024, "MemorySwap": 32 * 1024 * 1024})
    assert code == 137, out
    _, info = shared_daemon.api.get(f"/containers/{cid}/json")
    assert info["State"]["OOMKilled"] is True


def test_pids_limit(shared_daemon: Daemon) -> None:
    _, code, out = run_container(
        shared_daemon, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait; "
                                    "echo done"],
        HostConfig={"PidsLimit": 8})
    assert b"can't fork" in out or b"Resource temporarily unavailable" in out, out
