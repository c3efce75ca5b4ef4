"""Namespaces and the calling process: ``unshare``/``setns``, ``pivot_root``, host and domain
names, ``prctl`` helpers, per-thread work, network namespaces as files.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). Every call checks ``errno`` and
raises :class:`OSError`. Namespace changes made through :func:`in_thread`, :func:`call_in_dir`
and :func:`in_netns` touch only a short-lived thread: a threaded daemon's other threads never
see them, and nothing is forked.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from typing import Any, Callable, TypeVar

from .libc import check as _check
from .libc import fsencode as _b
from .libc import libc as _libc
from .libc import syscall
from .mounts import MNT_DETACH, MS_BIND, mount, umount2

T = TypeVar("T")

# fmt: off
__all__ = [
    "unshare", "setns", "pivot_root", "sethostname", "setdomainname", "prctl",
    "set_child_subreaper", "set_name", "set_pdeathsig", "set_no_new_privs", "set_link_up",
    "NAMESPACE_FLAGS", "NAMESPACE_FILES", "in_thread", "call_in_dir", "create_netns",
    "remove_netns", "in_netns",
    "CLONE_NEWTIME", "CLONE_NEWNS", "CLONE_NEWCGROUP", "CLONE_NEWUTS", "CLONE_NEWIPC",
    "CLONE_NEWUSER", "CLONE_NEWPID", "CLONE_NEWNET", "CLONE_FILES", "CLONE_FS",
    "PR_SET_PDEATHSIG", "PR_GET_PDEATHSIG", "PR_SET_DUMPABLE", "PR_SET_KEEPCAPS", "PR_SET_NAME",
    "PR_GET_NAME", "PR_CAPBSET_DROP", "PR_SET_CHILD_SUBREAPER", "PR_GET_CHILD_SUBREAPER",
    "PR_SET_NO_NEW_PRIVS", "PR_GET_NO_NEW_PRIVS", "set_fs_ids", "PR_SET_SECUREBITS",
    "SECBIT_NO_SETUID_FIXUP",
]
# fmt: on

# -- clone(2) / unshare(2) flags ------------------------------------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_FILES = 0x00000400
CLONE_FS = 0x00000200

#: OCI runtime-spec namespace type -> clone flag
# fmt: off
NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS, "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER, "time": CLONE_NEWTIME,
}
# fmt: on
#: OCI runtime-spec namespace type -> name under /proc/<pid>/ns/
# fmt: off
NAMESPACE_FILES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "cgroup": "cgroup", "user": "user", "time": "time",
}
# fmt: on

# -- prctl(2) -------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def unshare(flags: int) -> None:
    """unshare(2) with ``CLONE_NEW*`` flags."""
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace ``fd`` refers to (an open ``/proc/<pid>/ns/<x>`` file)."""
    _check(_libc.setns(fd, nstype))


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    """pivot_root(2) through syscall(2) (glibc has no wrapper)."""
    syscall(
        "pivot_root",
        ctypes.c_char_p(_b(new_root)),
        ctypes.c_char_p(_b(put_old)),
        paths=(new_root, put_old),
    )


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments (pass a ``ctypes`` address for pointer arguments)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5))


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_name(name: str) -> None:
    """Set the calling thread's ``comm`` (15 bytes at most, as ``ps`` shows it)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    prctl(PR_SET_NAME, ctypes.addressof(buf))


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


PR_SET_SECUREBITS = 28
SECBIT_NO_SETUID_FIXUP = 1 << 2
_libc.setfsuid.argtypes = [ctypes.c_uint]
_libc.setfsgid.argtypes = [ctypes.c_uint]


def set_fs_ids(uid: int, gid: int) -> None:
    """The calling thread's file-system uid and gid (``setfsuid``/``setfsgid``: the owner of the
    files it makes, which a file system mounted in a user namespace must be able to map), its
    capabilities kept (``SECBIT_NO_SETUID_FIXUP``). Credentials are per thread: the process's
    other threads keep theirs; threads it starts afterwards inherit them."""
    prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP)
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    # both calls return the previous value: asking again tells whether the change was made
    if _libc.setfsuid(uid) != uid or _libc.setfsgid(gid) != gid:
        raise OSError(errno.EPERM, f"setfsuid({uid})/setfsgid({gid}) refused")


# -- network interface flags (enough to bring ``lo`` up in a fresh network namespace) -------------
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def set_link_up(ifname: str = "lo") -> None:
    """Set IFF_UP on ``ifname`` in the caller's network namespace (SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0) as s:
        req = struct.pack("16sh14x", ifname.encode(), 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(
                s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", ifname.encode(), flags | IFF_UP)
            )


# -- a private working directory for one call ----------------------------------------------------
def in_thread(fn: "Callable[..., T]", *args: Any) -> "T":
    """Run ``fn(*args)`` in a fresh thread and return its result or raise its error.

    For calls that change per-thread kernel state (``unshare(CLONE_FS)``, ``setns``,
    ``unshare(CLONE_NEWNET)``): the change dies with the thread, the daemon's other threads never
    see it, and nothing is forked."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            result["error"] = e

    t = threading.Thread(target=run, name=getattr(fn, "__name__", "linux-call"), daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def call_in_dir(path: str, fn: "Callable[[], T]") -> "T":
    """Run ``fn()`` with ``path`` as the working directory, without touching the process's.

    The call runs in its own thread (:func:`in_thread`) that first unshares its file-system
    attributes (``unshare(CLONE_FS)``), so its ``chdir`` is its own. Used to pass relative paths to
    ``mount(2)`` (overlay's ``lowerdir=l/...`` stays well under a page for deep layer chains)."""

    def run() -> "T":
        unshare(CLONE_FS)
        os.chdir(path)
        return fn()

    return in_thread(run)


# -- network namespaces as files (what ``ip netns add`` makes) --------------------------------------
def create_netns(path: str) -> None:
    """Make a new network namespace, with ``lo`` up, kept alive by a bind mount on ``path``.

    Done in a short-lived thread: unshare(CLONE_NEWNET) changes only the calling thread, so the
    daemon's other threads stay in the host's namespace and nothing is forked."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)

    def make() -> None:
        unshare(CLONE_NEWNET)
        mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, MS_BIND)
        set_link_up("lo")

    try:
        in_thread(make)
    except BaseException:
        with contextlib.suppress(OSError):
            umount2(path, MNT_DETACH)
        os.unlink(path)
        raise


def remove_netns(path: str) -> None:
    """Unmount and delete a namespace file made by :func:`create_netns` (missing is fine).
    The kernel frees the namespace, and the interfaces in it, once nothing else holds it."""
    try:
        umount2(path, MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # not a mount point; gone
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def in_netns(path: str, fn: "Callable[..., T]", *args: Any) -> "T":
    """Call ``fn(*args)`` in a thread that has joined the network namespace at ``path``; sockets
    it creates (netlink included) stay in that namespace after it returns."""

    def run() -> "T":
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn(*args)

    return in_thread(run)
