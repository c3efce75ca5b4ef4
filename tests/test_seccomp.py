"""Docker's default seccomp profile (an allow-list built for the container's capabilities) and
custom JSON profiles, seen from inside containers run by a real dockyardd."""
from __future__ import annotations

import errno
import json
import os

import pytest

from conftest import Daemon
from dockyard.core import seccomp as policy
from dockyard.hookspecs.host import seccomp as profiles
from dockyard.hookspecs.host import seccompbpf
from dockyard.hookspecs.host.caps import DEFAULT_CAPS
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
    assert policy.for_container(["seccomp=unconfined"], list(DEFAULT_CAPS), False) is None
    assert policy.for_container(["seccomp:unconfined"], list(DEFAULT_CAPS), False) is None
    assert policy.for_container([], list(DEFAULT_CAPS), True) is None
    custom = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                            "includes": {"caps": ["CAP_CHOWN"]}},
                           {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO",
                            "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(custom))
    for opt in (f"seccomp={path}", "seccomp=" + json.dumps(custom), "seccomp:" + json.dumps(custom)):
        got = policy.for_container([opt], list(DEFAULT_CAPS), False)
        assert got == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    from dockyard.hookspecs.errors import InvalidParameter
    with pytest.raises(InvalidParameter):
        policy.for_container([f"seccomp={tmp_path}/missing.json"], [], False)
    with pytest.raises(InvalidParameter):
        policy.for_container(["seccomp={not json"], [], False)


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


@needs_root
@pytest.mark.parametrize("where", ["defaultAction", "rule"])
@pytest.mark.parametrize("action,says", [
    ("SCMP_ACT_NOTIFY", "SCMP_ACT_NOTIFY (%s) is not supported: it hands the call to a user-space "
                        "listener"),
    ("SCMP_ACT_TRACE", "SCMP_ACT_TRACE (%s) is not supported: it hands the call to a ptrace tracer"),
    ("SCMP_ACT_BOGUS", "seccomp profile: unknown action 'SCMP_ACT_BOGUS' (%s); supported: "),
])
def test_actions_dockyard_cannot_run_are_refused_at_create(shared_daemon: Daemon, where: str,
                                                           action: str, says: str) -> None:
    if where == "defaultAction":
        profile, place = {"defaultAction": action, "syscalls": []}, "defaultAction"
    else:
        profile = {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": action}]}
        place = "the rule for mkdir"
    status, body = shared_daemon.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["true"],
        "HostConfig": {"SecurityOpt": ["seccomp=" + json.dumps(profile)]}})
    assert status == 400, body
    assert says % place in body["message"], body


# -- ENOSYS for system calls newer than the profile ------------------------------------------------
x86_64_only = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 numbers")
X32 = 0x40000000
# x86_64 numbers: all exist in the kernel, only some are named by the default profile
GETPID, MOUNT, KEXEC_LOAD, FUTEX_WAITV = 39, 165, 246, 449   # futex_waitv: the profile's highest
CACHESTAT, FCHMODAT2, STATMOUNT, LISTMOUNT, MSEAL = 451, 452, 457, 458, 462  # newer


def _errnos_under(bpf: bytes, numbers: list[int]) -> dict[int, int]:
    """Load ``bpf`` in a forked child (no_new_privs, as the exec driver does) and call each raw
    system call number with zero arguments: {number: errno, 0 when the call succeeded}. The
    kernel, not a model of the filter, answers."""
    import ctypes
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
                os._exit(2)
            seccompbpf.load_bpf(bpf)
            out = {}
            for nr in numbers:
                ctypes.set_errno(0)
                rc = libc.syscall(ctypes.c_long(nr), 0, 0, 0, 0, 0, 0)
                out[nr] = ctypes.get_errno() if rc == -1 else 0
            os.write(w, json.dumps(out).encode())
            os._exit(0)
        except BaseException:
            os._exit(3)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    return {int(k): v for k, v in json.loads(data).items()}


def _bpf(profile: dict) -> bytes:
    return seccompbpf.compile_bpf(profile)


@x86_64_only
def test_enosys_ranges_per_architecture() -> None:
    ranges = seccompbpf.enosys_ranges(profiles.default_profile(list(DEFAULT_CAPS)))
    assert ranges["X86_64"] == [(FUTEX_WAITV + 1, 1023)]
    assert ranges["X86"] == [(FUTEX_WAITV + 1, 1023)]
    # x32: common calls and x32's own (512..547, rt_sigaction... named by the profile) apart
    assert ranges["X32"] == [(X32 | (FUTEX_WAITV + 1), X32 | 511), (X32 | 548, X32 | 1023)]
    # a profile that allows by default, or already answers ENOSYS, gets no stub
    for default in ({"defaultAction": "SCMP_ACT_ALLOW"}, {"defaultAction": "SCMP_ACT_LOG"},
                    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS}):
        p = {**default, "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]}
        assert seccompbpf.enosys_ranges(p) == {} and seccompbpf.enosys_stub(p) == b""
    # a deny-by-default profile naming only old calls: everything after its highest
    killer = {"defaultAction": "SCMP_ACT_KILL_PROCESS", "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}
    assert seccompbpf.enosys_ranges(killer)["X86_64"] == [(232, 1023)]  # exit_group: 231


@needs_root
@x86_64_only
def test_newer_syscalls_get_enosys_known_ones_keep_eperm() -> None:
    bpf = _bpf(profiles.default_profile(list(DEFAULT_CAPS)))
    got = _errnos_under(bpf, [GETPID, MOUNT, KEXEC_LOAD, FCHMODAT2, STATMOUNT, LISTMOUNT, MSEAL,
                              1000, 1023, 1024, 5000, X32 | GETPID, X32 | 528, X32 | MSEAL,
                              X32 | 1000, X32 | 2000])
    assert got[GETPID] == 0  # allowed: works
    # named by no rule, below the profile's highest: refused as the profile says (this kernel
    # may lack kexec_load, and then says ENOSYS itself: EPERM is the filter's answer)
    assert got[MOUNT] == errno.EPERM and got[KEXEC_LOAD] == errno.EPERM
    # newer than the profile: "no such call", so that libc falls back
    for nr in (FCHMODAT2, STATMOUNT, LISTMOUNT, MSEAL, 1000, 1023):
        assert got[nr] == errno.ENOSYS, nr
    assert got[1024] == errno.EPERM and got[5000] == errno.EPERM  # above the bound: the default
    # x32 (x86_64's AUDIT_ARCH, bit 30 set): its kexec_load (528) is refused, newer calls ENOSYS
    assert got[X32 | 528] == errno.EPERM
    assert got[X32 | MSEAL] == errno.ENOSYS and got[X32 | 1000] == errno.ENOSYS
    assert got[X32 | 2000] == errno.EPERM


@needs_root
@x86_64_only
def test_enosys_follows_the_profiles_default_action() -> None:
    # allow by default: a newer call really runs (mseal of nothing succeeds)
    allow = profiles.resolve({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, list(DEFAULT_CAPS))
    got = _errnos_under(_bpf(allow), [MSEAL, MOUNT])
    assert got[MSEAL] == 0 and got[MOUNT] not in (0, errno.ENOSYS, errno.EPERM)  # EFAULT: ran
    # a custom errno default: older unnamed calls get it, newer ones ENOSYS
    custom = profiles.resolve({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EACCES,
                               "syscalls": [{"names": profiles.ALWAYS, "action": "SCMP_ACT_ALLOW"}]},
                              list(DEFAULT_CAPS))
    got = _errnos_under(_bpf(custom), [GETPID, KEXEC_LOAD, MSEAL])
    assert got == {GETPID: 0, KEXEC_LOAD: errno.EACCES, MSEAL: errno.ENOSYS}
    # a profile naming a newer call itself decides it, and the calls below it (the name must be
    # one libseccomp knows: Debian 12's 2.5.4 ends at futex_requeue, 456; mseal is unknown to it)
    named = profiles.resolve({**custom, "syscalls": [*custom["syscalls"],
                                                     {"names": ["cachestat"], "action": "SCMP_ACT_ERRNO",
                                                      "errnoRet": errno.EPERM}]}, list(DEFAULT_CAPS))
    got = _errnos_under(_bpf(named), [FUTEX_WAITV + 1, CACHESTAT, FCHMODAT2])
    assert got == {FUTEX_WAITV + 1: errno.EACCES, CACHESTAT: errno.EPERM, FCHMODAT2: errno.ENOSYS}


# -- io_uring: refused, as in Docker 25+ -----------------------------------------------------------
IO_URING_PROBE = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* io_uring_setup(1, params), io_uring_enter(-1, ...), io_uring_register(-1, ...):
   print each call's result as "name rc errno" */
int main(void) {
    unsigned char params[120];
    long rc;
    memset(params, 0, sizeof params);
    errno = 0; rc = syscall(__NR_io_uring_setup, 1, params);
    printf("io_uring_setup %ld %d\n", rc < 0 ? -1L : 0L, rc < 0 ? errno : 0);
    errno = 0; rc = syscall(__NR_io_uring_enter, -1, 0, 0, 0, NULL, 0);
    printf("io_uring_enter %ld %d\n", rc < 0 ? -1L : 0L, rc < 0 ? errno : 0);
    errno = 0; rc = syscall(__NR_io_uring_register, -1, 0, NULL, 0);
    printf("io_uring_register %ld %d\n", rc < 0 ? -1L : 0L, rc < 0 ? errno : 0);
    return 0;
}
"""


@pytest.fixture(scope="module")
def io_uring_probe(tmp_path_factory) -> str:
    """A static binary (busybox has no way to make a raw system call), built now with gcc."""
    import shutil
    import subprocess
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("io_uring")
    (d / "probe.c").write_text(IO_URING_PROBE)
    r = subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "probe"), str(d / "probe.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {r.stderr.strip()[-300:]}")
    os.chmod(d, 0o755)  # bind-mounted: -u nobody must reach it
    return str(d / "probe")


def _io_uring_results(d: Daemon, probe: str, **extra) -> dict[str, tuple[int, int]]:
    host = {"Binds": [f"{os.path.dirname(probe)}:/probe:ro"], **extra.pop("HostConfig", {})}
    cid, code, out = run_container(d, ["/probe/probe"], HostConfig=host, **extra)
    d.api.delete(f"/containers/{cid}?force=1")
    assert code == 0, out
    return {name: (int(rc), int(err)) for name, rc, err in
            (line.split() for line in out.decode().splitlines())}


@needs_root
def test_io_uring_is_refused_in_default_and_nobody_containers(shared_daemon: Daemon,
                                                              io_uring_probe: str) -> None:
    refused = {name: (-1, errno.EPERM) for name in ("io_uring_setup", "io_uring_enter",
                                                     "io_uring_register")}
    assert _io_uring_results(shared_daemon, io_uring_probe) == refused
    assert _io_uring_results(shared_daemon, io_uring_probe, User="nobody") == refused
    assert _io_uring_results(shared_daemon, io_uring_probe,
                             HostConfig={"CapAdd": ["SYS_ADMIN"]}) == refused
    # the probe does reach the kernel: without a filter io_uring_setup gives a ring (where the
    # host allows io_uring at all), and the others fail on the bad fd, not with EPERM
    with open("/proc/sys/kernel/io_uring_disabled") as f:
        host_allows = f.read().strip() == "0"
    got = _io_uring_results(shared_daemon, io_uring_probe,
                            HostConfig={"SecurityOpt": ["seccomp=unconfined"]})
    assert got["io_uring_enter"] == (-1, errno.EBADF), got
    assert got["io_uring_register"][0] == -1 and got["io_uring_register"][1] in (
        errno.EBADF, errno.EINVAL), got
    if host_allows:
        assert got["io_uring_setup"] == (0, 0), got
