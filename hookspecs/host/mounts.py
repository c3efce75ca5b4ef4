"""Mounts: ``mount(2)``/``umount2(2)``, their flags and option words, mountinfo, file systems.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). Every call checks ``errno`` and
raises :class:`OSError` naming the path, so callers handle failures as they would for any ``os``
function. Paths may be ``str`` or ``bytes``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading

from .libc import check as _check
from .libc import fsencode as _b
from .libc import libc as _libc
from .libc import syscall

# fmt: off
__all__ = [
    "mount", "umount2", "mount_flags", "remount_bind", "parse_mount_options", "MOUNT_OPTIONS",
    "PROPAGATION_OPTIONS", "statfs_magic", "fs_name", "FS_MAGIC", "filesystems", "mountinfo", "mount_of",
    "supports_d_type", "secure_join", "open_tree", "move_mount", "OPEN_TREE_CLONE", "AT_FDCWD", "AT_EMPTY_PATH",
    "MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_SYNCHRONOUS", "MS_REMOUNT",
    "MS_MANDLOCK", "MS_DIRSYNC", "MS_NOSYMFOLLOW", "MS_NOATIME", "MS_NODIRATIME", "MS_BIND",
    "MS_MOVE", "MS_REC", "MS_SILENT", "MS_UNBINDABLE", "MS_PRIVATE", "MS_SLAVE", "MS_SHARED",
    "MS_RELATIME", "MS_STRICTATIME", "MS_LAZYTIME", "MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE",
    "UMOUNT_NOFOLLOW",
]
# fmt: on

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
# fmt: off
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
# fmt: on
#: propagation option word -> flags (applied by a separate mount(2) call)
# fmt: off
PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
# fmt: on


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


_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None = None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    """mount(2). ``source``/``fstype``/``data`` may be ``None``."""
    data_b = _b(data) or None
    _check(
        _libc.mount(
            _b(source), _b(target), _b(fstype), flags, ctypes.c_char_p(data_b) if data_b else None
        ),
        target,
    )


#: statvfs(3) ``f_flag`` bits -> the mount(2) flags a bind remount must repeat: inside a user
#: namespace, a mount inherited from the host has them locked, and a remount that drops one
#: (``nosuid``, ``nodev``, ``noexec``, the atime mode) fails with EPERM
# fmt: off
_ST_TO_MS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
             (os.ST_RELATIME, MS_RELATIME), (os.ST_RDONLY, MS_RDONLY))
# fmt: on


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


#: open_tree(2) / move_mount(2) flags (the new mount API, Linux 5.2)
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


def open_tree(path: str | bytes, flags: int = OPEN_TREE_CLONE, dirfd: int = AT_FDCWD) -> int:
    """open_tree(2): with ``OPEN_TREE_CLONE``, an fd of a detached copy of the mount at ``path``
    (in the caller's mount namespace), to attach elsewhere with :func:`move_mount`."""
    return syscall(
        "open_tree",
        ctypes.c_int(dirfd),
        ctypes.c_char_p(_b(path)),
        ctypes.c_uint(flags | os.O_CLOEXEC),
        paths=(path,),
    )


def move_mount(from_fd: int, to_fd: int) -> None:
    """move_mount(2) of the mount ``from_fd`` (from :func:`open_tree`) onto the file or directory
    ``to_fd`` (an ``O_PATH`` fd) refers to."""
    syscall(
        "move_mount",
        ctypes.c_int(from_fd),
        ctypes.c_char_p(b""),
        ctypes.c_int(to_fd),
        ctypes.c_char_p(b""),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    )


# -- statfs(2): which file system holds a path ----------------------------------------------------
#: f_type magic numbers of statfs(2) -> the names moby prints as "Backing Filesystem"
# fmt: off
FS_MAGIC: dict[int, str] = {
    0xEF53: "extfs", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
    0x794C7630: "overlayfs", 0x65735546: "fuse", 0x2FC12FC1: "zfs", 0x6969: "nfs",
    0xF2F52010: "f2fs", 0x73717368: "squashfs", 0xE0F5E1E2: "erofs", 0x858458F6: "ramfs",
    0x61756673: "aufs", 0x4D44: "msdos", 0xFF534D42: "cifs", 0x5346544E: "ntfs",
    0x6A656A63: "fakeowner", 0x01161970: "gfs2", 0x47504653: "gpfs",
}
# fmt: on


class _Statfs(ctypes.Structure):
    # fmt: off
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
                ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong),
                ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2),
                ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
                ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]
    # fmt: on


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
            out.append(
                (
                    _unescape(fields[4]),
                    rfields[0],
                    _unescape(rfields[1]) if len(rfields) > 1 else "",
                )
            )
    return out


def mount_of(path: str, mountinfo_file: str = "/proc/self/mountinfo") -> tuple[str, list[str]]:
    """(mount point, optional fields such as ``shared:3`` / ``master:1``) of the mount that
    holds absolute ``path`` in this mount namespace: the longest mount point that is a prefix,
    the last one mounted there when several are. For propagation: pivot_root needs the
    rootfs's mount private; a shared bind needs a shared source."""
    best, fields = "/", []
    with open(mountinfo_file, "rb") as f:
        for raw in f:
            left = raw.decode("utf-8", "surrogateescape").partition(" - ")[0].split()
            point = _unescape(left[4])
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(
                best
            ):
                best, fields = point, left[6:]
    return best, fields


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 1 and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


# -- readdir(3): does a file system fill in d_type? -----------------------------------------------
class _Dirent(ctypes.Structure):
    # fmt: off
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]
    # fmt: on


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


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with symbolic links resolved as if ``root`` were ``/`` (an absolute
    link stays under ``root``; ``..`` never leaves it): where a mount or a mask of a container
    lands. OSError ``ELOOP`` past 255 links."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cur = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), unsafe)
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        else:
            resolved.append(part)
    return os.path.join(root, *resolved)
