"""Capabilities: the table of names and numbers, Docker's default set, and the calls that set a
process's sets between fork and execve.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). Names are the OCI spec's
(``CAP_CHOWN``); :func:`normalize` also takes Docker's short forms (``chown``, ``NET_ADMIN``).
A capability the running kernel does not know (above ``/proc/sys/kernel/cap_last_cap``) is never
held: asking for it is not an error, as in runc.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

from .libc import libc as _libc
from .ns import PR_CAPBSET_DROP, prctl

# fmt: off
__all__ = [
    "CAPABILITIES", "CAPS", "DEFAULT_CAPS", "ALL_CAPS", "normalize", "last_cap", "mask",
    "drop_bounding", "capset", "set_ambient", "apply_capabilities",
]
# fmt: on

#: every capability name, in number order (linux/capability.h): ``CAPABILITIES[n]`` is number n
# fmt: off
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
# fmt: on
#: capability name -> number
CAPS: dict[str, int] = {name: i for i, name in enumerate(CAPABILITIES)}
#: Docker's default capability set (a container's CapEff is 00000000a80425fb)
# fmt: off
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# fmt: on
#: every capability (what ``--privileged`` gets)
ALL_CAPS: tuple[str, ...] = CAPABILITIES


def normalize(name: str, allow_all: bool = False) -> str:
    """The OCI name of capability ``name`` (``chown``, ``CAP_CHOWN``, ``net_admin``...);
    ValueError ``unknown capability`` for a name not in the table. With ``allow_all``, ``ALL``
    (Docker's ``--cap-drop ALL``/``--cap-add ALL``) gives ``CAP_ALL``."""
    up = name.strip().upper()
    full = up if up.startswith("CAP_") else "CAP_" + up
    if full in CAPS or (allow_all and full == "CAP_ALL"):
        return full
    raise ValueError(f'unknown capability: "{full}"')


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def mask(names: list[str] | tuple[str, ...] | None) -> int:
    """The bit mask of ``names`` (ValueError for an unknown name); capabilities this kernel does
    not know are left out, as they cannot be held."""
    bits = 0
    top = last_cap()
    for name in names or ():
        n = CAPS[normalize(name)]
        if n <= top:
            bits |= 1 << n
    return bits


# -- setting a process's sets ----------------------------------------------------------------------
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    # fmt: off
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]
    # fmt: on


def drop_bounding(keep: list[str] | tuple[str, ...]) -> None:
    """Drop every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    keep_mask = mask(keep)
    for n in range(last_cap() + 1):
        if not keep_mask & (1 << n):
            try:
                prctl(PR_CAPBSET_DROP, n)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise


def _held() -> int:
    """The caller's permitted set: a set cannot grow beyond it (e.g. --privileged on a host
    whose root lacks CAP_SYS_RESOURCE)."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(hdr), data) != 0:
        return (1 << 64) - 1
    return int(data[0].permitted | (data[1].permitted << 32))


def capset(effective: list[str], permitted: list[str], inheritable: list[str]) -> None:
    """capset(2) of the calling thread, each set cut to what it holds."""
    held = _held()
    eff, prm, inh = mask(effective) & held, mask(permitted) & held, mask(inheritable) & held
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        data[i].effective = (eff >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (prm >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inh >> (32 * i)) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {errno.errorcode.get(err, err)}")


def set_ambient(names: list[str]) -> None:
    """Make the ambient set exactly ``names``."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for name in names:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAPS[normalize(name)])


def apply_capabilities(caps: dict[str, Any] | None, uid: int) -> None:
    """The OCI spec's ``process.capabilities`` after setresuid: effective, permitted and
    inheritable set (root only: a non-root user has lost them on setuid, as in Docker), the
    ambient set made the spec's. The bounding set is :func:`drop_bounding`'s, done earlier."""
    if caps is None:
        return
    if uid == 0:
        capset(
            caps.get("effective") or [], caps.get("permitted") or [], caps.get("inheritable") or []
        )
    set_ambient(caps.get("ambient") or [])
