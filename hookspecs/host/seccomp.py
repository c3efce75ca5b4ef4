"""Seccomp profiles: Docker's default profile and Docker's JSON profile format, resolved for one
container.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). A *profile* is Docker's JSON
structure (``defaultAction``, ``defaultErrnoRet``, ``architectures`` or ``archMap``, ``syscalls``
with ``names``, ``action``, ``errnoRet``, ``args`` and conditional ``includes``/``excludes`` on
``caps``, ``arches`` and ``minKernel``). :func:`resolve` turns a profile into the OCI
``linux.seccomp`` object for one container — the conditions evaluated against that container's
capability set and the host's architecture — which
:func:`dockyard.hookspecs.host.seccompbpf.compile_bpf` compiles. The built-in profile
(:data:`DEFAULT`) is written in the same structure, so one path serves the default and
``--security-opt seccomp=profile.json``.

The default is an ALLOW-list, as Docker's: every system call not listed fails with EPERM
(``SCMP_ACT_ERRNO``); ``clone3`` fails with ENOSYS so that libc falls back to ``clone``, whose
flags a filter can inspect; so does every call newer than the profile (the compiled filter
answers ENOSYS above the highest number the profile names, see
:mod:`~dockyard.hookspecs.host.seccompbpf`); ``clone`` with a ``CLONE_NEW*`` flag,
mount/namespace/BPF/perf/... calls are allowed only when CAP_SYS_ADMIN (or the capability named
in the rule) is in the container's set. Whether a container gets a filter at all
(``--privileged``, ``--security-opt seccomp=unconfined``) is the daemon's decision.
"""

from __future__ import annotations

import errno
import os
import platform
from typing import Any

from .ns import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)

__all__ = ["DEFAULT", "ALWAYS", "BY_CAPABILITY", "IO_URING", "resolve", "default_profile"]


def _names(text: str) -> list[str]:
    return text.split()


#: allowed for every container, grouped by what they are for
ALWAYS = _names("""
    read write readv writev pread64 pwrite64 preadv preadv2 pwritev pwritev2 lseek _llseek
    open openat openat2 creat close close_range dup dup2 dup3 fcntl fcntl64 flock
    stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs
    fstatfs64 access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd
    chdir fchdir mkdir mkdirat rmdir rename renameat renameat2 link linkat symlink symlinkat
    unlink unlinkat mknod mknodat chmod fchmod fchmodat chown chown32 fchown fchown32 fchownat
    lchown lchown32 truncate truncate64 ftruncate ftruncate64 fallocate fadvise64 fadvise64_64
    readahead fsync fdatasync sync syncfs sync_file_range umask utime utimes utimensat
    utimensat_time64 futimesat copy_file_range sendfile sendfile64 splice tee vmsplice
    getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr flistxattr
    removexattr lremovexattr fremovexattr name_to_handle_at
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock
    munlockall remap_file_pages membarrier memfd_create memfd_secret pkey_alloc pkey_free
    pkey_mprotect
    execve execveat fork vfork exit exit_group wait4 waitid waitpid kill tkill tgkill
    pidfd_open pidfd_send_signal process_mrelease set_tid_address set_robust_list
    get_robust_list rseq futex futex_time64 futex_waitv get_thread_area set_thread_area prctl
    capget capset getpid getppid gettid getpgid setpgid getpgrp getsid setsid
    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32
    getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid
    setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid
    setfsuid32 setfsgid setfsgid32 setgroups setgroups32
    getrlimit setrlimit ugetrlimit prlimit64 getrusage getpriority setpriority ioprio_get
    ioprio_set sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
    sched_getparam sched_setparam sched_getscheduler sched_setscheduler sched_get_priority_max
    sched_get_priority_min sched_rr_get_interval sched_rr_get_interval_time64 getcpu
    rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo rt_tgsigqueueinfo rt_sigreturn
    rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 sigaltstack sigprocmask sigreturn
    signalfd signalfd4 pause alarm getitimer setitimer
    time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
    clock_nanosleep clock_nanosleep_time64 nanosleep adjtimex clock_adjtime clock_adjtime64
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times
    poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 epoll_create
    epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2
    eventfd eventfd2 pipe pipe2 ioctl
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    socketpair socketcall bind connect listen accept accept4 getsockname getpeername
    getsockopt setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg
    recvmmsg_time64 shutdown
    ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl shmget
    shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive
    mq_timedreceive_time64 mq_notify mq_getsetattr
    uname sysinfo getrandom restart_syscall seccomp landlock_create_ruleset landlock_add_rule
    landlock_restrict_self
""")

#: refused in every container (Docker 25+ dropped them from its default profile)
IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]

#: the namespace flags of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
CLONE_NS_MASK = (
    CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
)
#: personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
#: and 0xffffffff (query)
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: system calls opened by one capability (Docker's default profile's ``includes.caps`` rules)
BY_CAPABILITY = {
    "CAP_SYS_ADMIN": _names("""bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick
        lookup_dcookie mount mount_setattr move_mount open_tree perf_event_open quotactl
        quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare"""),
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["init_module", "finit_module", "delete_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": _names("""ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd
        process_madvise"""),
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
}


def _allow(names: list[str], **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ALLOW", **extra}


#: the built-in profile, in Docker's JSON structure
DEFAULT: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": errno.EPERM,
    "archMap": [
        {
            "architecture": "SCMP_ARCH_X86_64",
            "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        },
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        _allow(ALWAYS),
        # reading other processes' memory needs ptrace rights the kernel checks itself (4.8+)
        _allow(["ptrace", "process_vm_readv", "process_vm_writev"], includes={"minKernel": "4.8"}),
        # every socket family but AF_VSOCK (40)
        _allow(["socket"], args=[{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]),
        *(
            _allow(["personality"], args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
            for v in PERSONALITIES
        ),
        _allow(["arch_prctl"], includes={"arches": ["amd64", "x32"]}),
        _allow(["modify_ldt"], includes={"arches": ["amd64", "x32", "x86"]}),
        _allow(
            [
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ],
            includes={"arches": ["arm", "arm64"]},
        ),
        *(_allow(names, includes={"caps": [cap]}) for cap, names in BY_CAPABILITY.items()),
        # without CAP_SYS_ADMIN: clone only without namespace flags, clone3 "not implemented"
        _allow(
            ["clone"],
            args=[{"index": 0, "value": CLONE_NS_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            excludes={"caps": ["CAP_SYS_ADMIN"]},
        ),
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOSYS,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        # io_uring: refused with EPERM whatever the capabilities, as in Docker 25+ (a large
        # attack surface that seccomp cannot filter call by call). Named here rather than left
        # to the default so that they can never fall in the "newer than the profile" ENOSYS
        # range (a program would take that for an old kernel and try elsewhere silently).
        {"names": IO_URING, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
    ],
}

#: Go's GOARCH names (used in ``includes.arches``) for the host's machine
# fmt: off
_GOARCH = {"x86_64": "amd64", "i686": "x86", "i386": "x86", "aarch64": "arm64", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
# fmt: on
#: libseccomp architecture names for the host's machine
# fmt: off
_SCMP_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
              "i686": "SCMP_ARCH_X86", "i386": "SCMP_ARCH_X86", "armv7l": "SCMP_ARCH_ARM"}
# fmt: on


def _kernel_at_least(want: str, release: str) -> bool:
    def nums(v: str) -> tuple[int, ...]:
        out = []
        for part in v.split("-")[0].split(".")[:2]:
            digits = "".join(ch for ch in part if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)

    return nums(release) >= nums(want)


def resolve(
    profile: dict[str, Any], caps: list[str], machine: str | None = None, kernel: str | None = None
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object of ``profile`` for a container holding ``caps``:
    conditional rules kept or dropped, architectures chosen for the host."""
    machine = machine or platform.machine()
    kernel = kernel or os.uname().release
    goarch = _GOARCH.get(machine, machine)
    held = set(caps)
    native = _SCMP_ARCH.get(machine)
    arches: list[str] = list(profile.get("architectures") or ())
    if not arches:
        for entry in profile.get("archMap") or ():
            if native is not None and entry.get("architecture") == native:
                arches = [native, *(entry.get("subArchitectures") or ())]
    syscalls = []
    for rule in profile.get("syscalls") or ():
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= held:
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], kernel):
            continue
        if exc.get("caps") and set(exc["caps"]) & held:
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        names = list(rule.get("names") or ())
        if rule.get("name"):
            names.append(rule["name"])
        out = {"names": names, "action": rule.get("action", "SCMP_ACT_ALLOW")}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                out[key] = rule[key]
        syscalls.append(out)
    resolved: dict[str, Any] = {
        "defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW"),
        "syscalls": syscalls,
    }
    if profile.get("defaultErrnoRet") is not None:
        resolved["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if arches:
        resolved["architectures"] = arches
    return resolved


def default_profile(caps: list[str]) -> dict[str, Any]:
    """Docker's default profile for a container holding ``caps``."""
    return resolve(DEFAULT, caps)
