"""Docker's default seccomp profile (an allow-list built for the container's capabilities) and
custom JSON profiles, seen from inside containers run by a real dockyardd."""
from __future__ import annotations

import errno
import json
import os

import pytest

from conftest import Daemon
from dockyard.core import seccomp as profiles
from dockyard.core.spec import DEFAULT_CAPS
from test_api import run_container

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _rules_for(resolved: dict, name: str) -> list[dict]:
    return [r for r in resolved["syscalls"] if name in r["names"]]


def test_default_profile_is_an_allow_list_resolved_per_capability_set() -> None:
    plain = profiles.default_profile(list(DEFAULT_CAPS))
    assert plain["defaultAction"] == "SCMP_ACT_ERRNO" and plain["defaultErrnoRet"] == errno.EPERM
    assert "rt_sigreturn" in plain["syscalls"][0]["names"]
    for name in ("mount", "unshare", "setns", "swapon", "reboot", "kexec_load", "init_module",
                 "settimeofday", "clock_settime", "kcmp", "bpf", "perf_event_open", "acct"):
        assert not any(r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
                       for r in _rules_for(plain, name)), name
    # ptrace is allowed (kernel >= 4.8 checks it itself), as in Docker
    # clone only without namespace flags, clone3 ENOSYS
    (clone,) = _rules_for(plain, "clone")
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" and clone["args"][0]["value"] == 0x7E020000
    (clone3,) = _rules_for(plain, "clone3")
    assert clone3["errnoRet"] == errno.ENOSYS
    if os.uname().machine == "x86_64":
        assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        assert _rules_for(plain, "arch_prctl")

    admin = profiles.default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    for name in ("mount", "umount2", "unshare", "setns", "clone", "clone3", "settimeofday"):
        assert any(r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
                   for r in _rules_for(admin, name)), name
    assert not any(r["action"] == "SCMP_ACT_ERRNO" for r in _rules_for(admin, "clone3"))
    assert not _rules_for(admin, "swapon")  # not even CAP_SYS_ADMIN opens swap, as in Docker


def test_security_opt_parsing(tmp_path) -> None:
    assert profiles.for_container(["seccomp=unconfined"], list(DEFAULT_CAPS), False) is None
    assert profiles.for_container(["seccomp:unconfined"], list(DEFAULT_CAPS), False) is None
    assert profiles.for_container([], list(DEFAULT_CAPS), True) is None
    custom = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                            "includes": {"caps": ["CAP_CHOWN"]}},
                           {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO",
                            "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(custom))
    for opt in (f"seccomp={path}", "seccomp=" + json.dumps(custom), "seccomp:" + json.dumps(custom)):
        got = profiles.for_container([opt], list(DEFAULT_CAPS), False)
        assert got == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    from dockyard.hookspecs.errors import InvalidParameter
    with pytest.raises(InvalidParameter):
        profiles.for_container([f"seccomp={tmp_path}/missing.json"], [], False)
    with pytest.raises(InvalidParameter):
        profiles.for_container(["seccomp={not json"], [], False)


def _sh(d: Daemon, script: str, **extra) -> tuple[int, str]:
    _, code, out = run_container(d, ["sh", "-c", script], **extra)
    return code, out.decode()


@needs_root
def test_ordinary_tools_work_under_the_default_profile(shared_daemon: Daemon) -> None:
    code, out = _sh(shared_daemon, "grep ^Seccomp: /proc/self/status; ls / >/dev/null && "
                    "cat /etc/passwd >/dev/null && ps >/dev/null && mkdir /x && echo hi >/x/f && "
                    "mv /x/f /x/g && rm -r /x && sleep 0 && (true | cat) && date >/dev/null && "
                    "chown 1:1 /tmp && chroot / true && echo ok")
    assert code == 0, out
    assert out.split() == ["Seccomp:", "2", "ok"]


@needs_root
@pytest.mark.parametrize("script,refusal", [
    ("mkdir -p /mnt && mount -t tmpfs x /mnt", "permission denied"),
    ("unshare -m true", "Operation not permitted"),
    # a user namespace needs no capability: only the filter refuses it
    ("unshare -r true", "Operation not permitted"),
    ("swapoff /dev/null", "Operation not permitted"),
    # settimeofday/clock_settime need CAP_SYS_TIME (busybox's date still prints, exit 0)
    ("date -s 2001-01-01", "can't set date: Operation not permitted"),
    ("reboot -f -n", "Operation not permitted"),
])
def test_default_profile_refuses(shared_daemon: Daemon, script: str, refusal: str) -> None:
    code, out = _sh(shared_daemon, f"{script} 2>&1; echo rc=$?")
    assert refusal in out, out
    if not script.startswith("date"):
        assert "rc=0" not in out, out


@needs_root
def test_cap_add_sys_admin_opens_mount(shared_daemon: Daemon) -> None:
    code, out = _sh(shared_daemon, "mkdir -p /mnt && mount -t tmpfs x /mnt && grep -c ' /mnt tmpfs' /proc/mounts "
                                   "&& umount /mnt && echo ok", HostConfig={"CapAdd": ["SYS_ADMIN"]})
    assert code == 0, out
    assert out.split() == ["1", "ok"]


@needs_root
def test_unconfined_and_privileged_have_no_filter(shared_daemon: Daemon) -> None:
    code, out = _sh(shared_daemon, "grep ^Seccomp: /proc/self/status",
                    HostConfig={"SecurityOpt": ["seccomp=unconfined"]})
    assert out.split() == ["Seccomp:", "0"], out


@needs_root
def test_custom_profile_blocks_mkdir(shared_daemon: Daemon, tmp_path) -> None:
    custom = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                            "errnoRet": errno.EACCES}]}
    for opt in ("seccomp=" + json.dumps(custom), f"seccomp={tmp_path}/p.json"):
        (tmp_path / "p.json").write_text(json.dumps(custom))
        code, out = _sh(shared_daemon, "mkdir /x 2>&1; echo rc=$?; touch /y && echo touched",
                        HostConfig={"SecurityOpt": [opt]})
        assert "Permission denied" in out and "rc=1" in out and "touched" in out, out


@needs_root
def test_bad_profile_is_refused_at_create(shared_daemon: Daemon) -> None:
    status, body = shared_daemon.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"SecurityOpt": ["seccomp={nope"]}})
    assert status == 400, body
