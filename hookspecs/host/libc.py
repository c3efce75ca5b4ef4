"""The one ctypes handle on the C library, and errno-checked calls through it.

Python 3.11 has no ``mount``, ``unshare``, ``setns``, ``pivot_root``, ``capset`` or ``bpf``.
Every module of the toolkit reaches them through :data:`libc` (loaded once, ``use_errno=True``)
and turns a failure into :class:`OSError` with :func:`check`, so callers handle errors as they
would for any :mod:`os` function. System calls glibc has no wrapper for go through
:func:`syscall`, which knows their numbers on the machines dockyard runs on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform

__all__ = ["libc", "check", "fsencode", "syscall", "syscall_number", "SYSCALLS"]


def _load() -> ctypes.CDLL:
    try:  # glibc's soname: no ``ldconfig -p`` subprocess, which find_library would run
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # another C library (musl...)
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


#: the C library, loaded once for the whole process
libc = _load()
libc.syscall.restype = ctypes.c_long

#: the machines dockyard knows system call numbers for (``platform.machine()``)
_MACHINES = ("x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "i686", "i386", "armv7l")
#: numbers of the system calls called through syscall(2), per ``platform.machine()``
# fmt: off
SYSCALLS: dict[str, dict[str, int]] = {
    "pivot_root": {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203,
                   "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218},
    "bpf": {"x86_64": 321, "aarch64": 280, "arm64": 280, "i386": 357, "i686": 357,
            "armv7l": 386, "ppc64le": 361, "s390x": 351, "riscv64": 280},
    # the new mount API (Linux 5.2): one number on every architecture
    "open_tree": dict.fromkeys(_MACHINES, 428),
    "move_mount": dict.fromkeys(_MACHINES, 429),
}
# fmt: on


def fsencode(value: str | bytes | None) -> bytes | None:
    """A path or name as the bytes C wants (``None`` stays ``None``, a NULL pointer)."""
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def check(ret: int, *paths: str | bytes | None) -> int:
    """``ret`` when it is not negative; else :class:`OSError` from ``errno``, naming the first
    one or two of ``paths`` as ``os`` functions do."""
    if ret < 0:
        err = ctypes.get_errno()
        names = [os.fsdecode(p) for p in paths if p is not None]
        if len(names) >= 2:
            raise OSError(err, os.strerror(err), names[0], None, names[1])
        raise OSError(err, os.strerror(err), *names[:1])
    return ret


def syscall_number(name: str, machine: str | None = None) -> int:
    """The number of system call ``name`` on ``machine`` (default: this one); OSError(ENOSYS)
    for a machine the table does not know."""
    machine = machine or platform.machine()
    nr = SYSCALLS.get(name, {}).get(machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"{name}(2): unknown system call number on {machine}")
    return nr


def syscall(name: str, *args: object, paths: tuple[str | bytes | None, ...] = ()) -> int:
    """syscall(2) of ``name`` with ``args`` (already ctypes values), checked: OSError naming
    ``paths`` on failure."""
    return check(libc.syscall(ctypes.c_long(syscall_number(name)), *args), *paths)
