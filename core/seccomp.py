"""The default seccomp profile every unprivileged container gets, as an OCI ``linux.seccomp`` object.

Docker's default profile is an allow-list whose effect, for a container with Docker's default
capabilities, is to refuse (EPERM) the system calls below: kernel modules and keyrings, mounts and
namespaces, clocks, tracing other processes' memory, BPF and perf, reboot and swap, obsolete or
dangerous calls; ``clone`` with any ``CLONE_NEW*`` flag; and ``clone3`` with ENOSYS (so that libc
falls back to ``clone``, whose flags can be inspected). dockyard writes the same effect as a
deny-list over an ALLOW default: a program the allow-list does not know (a new system call) keeps
working, which is the only behavioural difference. ``--security-opt seccomp=unconfined`` and
``--privileged`` turn it off.
"""
from __future__ import annotations

import errno
from typing import Any

DENIED = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "clock_settime64",
    "create_module", "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
    "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "syslog", "sysfs",
    "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup",
    "vm86", "vm86old",
]
#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (and NEWTIME)
CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                  0x40000000, 0x00000080)


def default_profile() -> dict[str, Any]:
    syscalls: list[dict[str, Any]] = [
        {"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
    ]
    for flag in CLONE_NS_FLAGS:
        syscalls.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
                         "args": [{"index": 0, "value": flag, "valueTwo": flag,
                                   "op": "SCMP_CMP_MASKED_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}
