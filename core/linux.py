"""Small ctypes wrappers over the Linux system calls Python 3.11 does not expose.

Every wrapper checks ``errno`` and raises :class:`OSError` (with the path, where there is one), so
callers handle failures as they would for any ``os`` function. Only generic primitives live here:
exec drivers, graph drivers and network drivers all import them.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import platform
import socket
import struct
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")

__all__ = [
    "mount", "umount2", "unshare", "setns", "pivot_root", "sethostname", "setdomainname", "prctl",
    "set_child_subreaper", "set_name", "set_pdeathsig", "set_no_new_privs", "set_link_up",
    "NAMESPACE_FLAGS", "NAMESPACE_FILES", "statfs_magic", "fs_name", "filesystems", "mountinfo",
    "call_in_dir", "in_thread", "mount_flags", "remount_bind", "create_netns", "remove_netns", "in_netns",
    "open_tree", "move_mount", "set_fs_ids",
]

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

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
NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS, "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER, "time": CLONE_NEWTIME,
}
#: OCI runtime-spec namespace type -> name under /proc/<pid>/ns/
NAMESPACE_FILES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "cgroup": "cgroup", "user": "user", "time": "time",
}

# -- mount(2) flags -------------------------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

#: mount option word -> (flags to set, flags to clear); what ``mount -o`` and OCI specs use
MOUNT_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0), "remount": (MS_REMOUNT, 0), "mand": (MS_MANDLOCK, 0),
    "noatime": (MS_NOATIME, 0), "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0), "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
    "nosymfollow": (MS_NOSYMFOLLOW, 0), "lazytime": (MS_LAZYTIME, 0),
    "defaults": (0, 0),
}
#: propagation option word -> flags (applied by a separate mount(2) call)
PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}


def parse_mount_options(options: list[str] | tuple[str, ...] | None) -> tuple[int, int, str]:
    """Split mount option words into ``(flags, propagation_flags, data)``."""
    flags = prop = 0
    data: list[str] = []
    for opt in options or ():
        if opt in MOUNT_OPTIONS:
            set_, clear = MOUNT_OPTIONS[opt]
            flags = (flags | set_) & ~clear
        elif opt in PROPAGATION_OPTIONS:
            prop |= PROPAGATION_OPTIONS[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


# -- prctl(2) -------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
SECBIT_NO_SETUID_FIXUP = 1 << 2
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

_SYSCALLS = {  # machine -> (pivot_root, )
    "x86_64": {"pivot_root": 155},
    "aarch64": {"pivot_root": 41},
    "arm64": {"pivot_root": 41},
    "riscv64": {"pivot_root": 41},
    "ppc64le": {"pivot_root": 203},
    "s390x": {"pivot_root": 217},
    "i686": {"pivot_root": 217},
    "armv7l": {"pivot_root": 218},
}
SYS_pivot_root = _SYSCALLS.get(platform.machine(), {}).get("pivot_root", 155)

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setfsuid.argtypes = [ctypes.c_uint]
_libc.setfsgid.argtypes = [ctypes.c_uint]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def _check(ret: int, *paths: str | bytes | None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        names = [os.fsdecode(p) for p in paths if p is not None]
        if len(names) >= 2:
            raise OSError(err, os.strerror(err), names[0], None, names[1])
        raise OSError(err, os.strerror(err), *names[:1])
    return ret


def mount(source: str | bytes | None, target: str | bytes, fstype: str | bytes | None = None,
          flags: int = 0, data: str | bytes | None = None) -> None:
    """mount(2). ``source``/``fstype``/``data`` may be ``None``."""
    data_b = _b(data) or None
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags,
                       ctypes.c_char_p(data_b) if data_b else None), target)


#: statvfs(3) ``f_flag`` bits -> the mount(2) flags a bind remount must repeat: inside a user
#: namespace, a mount inherited from the host has them locked, and a remount that drops one
#: (``nosuid``, ``nodev``, ``noexec``, the atime mode) fails with EPERM
_ST_TO_MS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
             (os.ST_RELATIME, MS_RELATIME), (os.ST_RDONLY, MS_RDONLY))


def mount_flags(path: str | bytes) -> int:
    """The per-mount flags of the mount ``path`` is on, as ``MS_*`` bits (for a bind remount
    that must keep them)."""
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if f & st)


def remount_bind(path: str | bytes, flags: int) -> None:
    """Remount the bind mount at ``path`` adding ``flags`` (e.g. ``MS_RDONLY``) to the ones it
    has: the only form a user namespace allows on a mount it did not make."""
    mount(None, path, None, MS_BIND | MS_REMOUNT | mount_flags(path) | flags)


def umount2(target: str | bytes, flags: int = 0) -> None:
    """umount2(2), e.g. ``umount2(path, MNT_DETACH)``."""
    _check(_libc.umount2(_b(target), flags), target)


def unshare(flags: int) -> None:
    """unshare(2) with ``CLONE_NEW*`` flags."""
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace ``fd`` refers to (an open ``/proc/<pid>/ns/<x>`` file)."""
    _check(_libc.setns(fd, nstype))


#: the new mount API (Linux 5.2): one number on every architecture
SYS_open_tree, SYS_move_mount = 428, 429
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


def open_tree(path: str | bytes, flags: int = OPEN_TREE_CLONE, dirfd: int = AT_FDCWD) -> int:
    """open_tree(2): with ``OPEN_TREE_CLONE``, an fd of a detached copy of the mount at ``path``
    (in the caller's mount namespace), to attach elsewhere with :func:`move_mount`."""
    return _check(_libc.syscall(ctypes.c_long(SYS_open_tree), ctypes.c_int(dirfd),
                                ctypes.c_char_p(_b(path)),
                                ctypes.c_uint(flags | os.O_CLOEXEC)), path)


def move_mount(from_fd: int, to_fd: int) -> None:
    """move_mount(2) of the mount ``from_fd`` (from :func:`open_tree`) onto the file or directory
    ``to_fd`` (an ``O_PATH`` fd) refers to."""
    _check(_libc.syscall(ctypes.c_long(SYS_move_mount), ctypes.c_int(from_fd), ctypes.c_char_p(b""),
                         ctypes.c_int(to_fd), ctypes.c_char_p(b""),
                         ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)))


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    """pivot_root(2) through syscall(2) (glibc has no wrapper)."""
    _check(_libc.syscall(ctypes.c_long(SYS_pivot_root), ctypes.c_char_p(_b(new_root)),
                         ctypes.c_char_p(_b(put_old))), new_root, put_old)


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
        raise OSError(1, f"setfsuid({uid})/setfsgid({gid}) refused")


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
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", ifname.encode(),
                                                              flags | IFF_UP))


# -- statfs(2): which file system holds a path ----------------------------------------------------
#: f_type magic numbers of statfs(2) -> the names moby prints as "Backing Filesystem"
FS_MAGIC: dict[int, str] = {
    0xEF53: "extfs", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
    0x794C7630: "overlayfs", 0x65735546: "fuse", 0x2FC12FC1: "zfs", 0x6969: "nfs",
    0xF2F52010: "f2fs", 0x73717368: "squashfs", 0xE0F5E1E2: "erofs", 0x858458F6: "ramfs",
    0x61756673: "aufs", 0x4D44: "msdos", 0xFF534D42: "cifs", 0x5346544E: "ntfs",
    0x6A656A63: "fakeowner", 0x01161970: "gfs2", 0x47504653: "gpfs",
}


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
                ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong),
                ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2),
                ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
                ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def statfs_magic(path: str | bytes) -> int:
    """The ``f_type`` magic number of the file system holding ``path``."""
    buf = _Statfs()
    _check(_libc.statfs(_b(path), ctypes.byref(buf)), path)
    return buf.f_type & 0xFFFFFFFF


def fs_name(path: str | bytes) -> str:
    """A short name of the file system holding ``path`` (``extfs``, ``btrfs``, ``xfs``...), or
    ``<unknown> (0x...)``."""
    magic = statfs_magic(path)
    return FS_MAGIC.get(magic, f"<unknown> ({magic:#x})")


def filesystems() -> set[str]:
    """The file-system types the running kernel knows (``/proc/filesystems``)."""
    try:
        with open("/proc/filesystems") as f:
            return {line.split()[-1] for line in f if line.strip()}
    except OSError:
        return set()


def mountinfo() -> list[tuple[str, str, str]]:
    """``(mount point, fs type, source)`` of every mount in this mount namespace, in order."""
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for raw in f:
            left, _, right = raw.decode("utf-8", "surrogateescape").partition(" - ")
            fields, rfields = left.split(), right.split()
            out.append((_unescape(fields[4]), rfields[0], _unescape(rfields[1]) if len(rfields) > 1 else ""))
    return out


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 1 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


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


# -- readdir(3): does a file system fill in d_type? -----------------------------------------------
class _Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


_libc.opendir.argtypes = [ctypes.c_char_p]
_libc.opendir.restype = ctypes.c_void_p
_libc.readdir.argtypes = [ctypes.c_void_p]
_libc.readdir.restype = ctypes.POINTER(_Dirent)
_libc.closedir.argtypes = [ctypes.c_void_p]
DT_UNKNOWN = 0


def supports_d_type(path: str) -> bool:
    """Whether the file system holding directory ``path`` reports entry types in ``readdir``
    (overlayfs needs it: xfs made with ``ftype=0`` does not)."""
    probe = os.path.join(path, f".d_type-probe-{os.getpid()}-{threading.get_ident()}")
    open(probe, "wb").close()
    try:
        d = _libc.opendir(_b(path))
        if not d:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        try:
            while True:
                ent = _libc.readdir(d)
                if not ent:
                    return True
                if ent.contents.d_name not in (b".", b"..") and ent.contents.d_type == DT_UNKNOWN:
                    return False
        finally:
            _libc.closedir(d)
    finally:
        os.unlink(probe)


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
        if e.errno not in (22, 2):  # EINVAL: not a mount point; ENOENT
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def in_netns(path: str, fn, *args):  # noqa: ANN001, ANN201
    """Call ``fn(*args)`` in a thread that has joined the network namespace at ``path``; sockets
    it creates (netlink included) stay in that namespace after it returns."""
    def run():  # noqa: ANN202
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn(*args)

    return in_thread(run)
