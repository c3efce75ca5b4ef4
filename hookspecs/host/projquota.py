"""Project quotas: a size limit on one directory tree (``--storage-opt size=`` on overlay over
xfs or ext4 mounted with ``prjquota``, as dockerd's ``quota`` package does it). Through the
XFS quota interface, which the kernel's generic quota code offers for ext4 too.

A directory gets a project ID and the ``PROJINHERIT`` flag (``FS_IOC_FSSETXATTR``), so every file
made below it is counted in that project; ``quotactl(Q_XSETQLIM, PRJQUOTA)`` sets the project's
hard block limit. A write past it fails with EDQUOT (``Disk quota exceeded``).

:class:`ProjectQuota` is one file system's controller: :meth:`ProjectQuota.open` says why it
cannot work (not xfs, or project quotas not enforced) or gives one that hands out project IDs
above the base directory's (IDs found on the base's subdirectories are not reused). quotactl
needs the file system's block device: a device node made in the base directory
(``backingFsBlockDev``, as dockerd), so it works wherever the mount's source is not visible.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import struct
import threading

from .libc import check, fsencode, libc
from .mounts import statfs_magic

__all__ = ["ProjectQuota", "QuotaUnavailable", "get_project", "set_project"]

_PRJQUOTA = 2
_Q_XSETQLIM = (ord("X") << 8) + 4
_Q_XGETQSTAT = (ord("X") << 8) + 5
_FS_QUOTA_PDQ_ENFD = 1 << 5
_FS_DQUOT_VERSION = 1
_FS_PROJ_QUOTA = 2
_FS_DQ_BSOFT, _FS_DQ_BHARD = 1 << 2, 1 << 3
_FS_XFLAG_PROJINHERIT = 0x200
#: struct fsxattr: xflags, extsize, nextents, projid, cowextsize, 8 bytes of padding
_FSXATTR = struct.Struct("=IIIII8x")
_FS_IOC_FSGETXATTR = (2 << 30) | (_FSXATTR.size << 16) | (ord("X") << 8) | 31
_FS_IOC_FSSETXATTR = (1 << 30) | (_FSXATTR.size << 16) | (ord("X") << 8) | 32
#: the file systems with project quotas: xfs, and ext4 (made with ``-O quota,project``)
_QUOTA_FS = (0x58465342, 0xEF53)


class QuotaUnavailable(Exception):
    """Project quotas cannot limit sizes here; the message says why."""


class _DiskQuota(ctypes.Structure):
    """``struct fs_disk_quota`` (linux/dqblk_xfs.h)."""

    _fields_ = [
        ("d_version", ctypes.c_int8),
        ("d_flags", ctypes.c_int8),
        ("d_fieldmask", ctypes.c_uint16),
        ("d_id", ctypes.c_uint32),
        ("d_blk_hardlimit", ctypes.c_uint64),
        ("d_blk_softlimit", ctypes.c_uint64),
        ("d_ino_hardlimit", ctypes.c_uint64),
        ("d_ino_softlimit", ctypes.c_uint64),
        ("d_bcount", ctypes.c_uint64),
        ("d_icount", ctypes.c_uint64),
        ("d_itimer", ctypes.c_int32),
        ("d_btimer", ctypes.c_int32),
        ("d_iwarns", ctypes.c_uint16),
        ("d_bwarns", ctypes.c_uint16),
        ("d_timer_hi", ctypes.c_int8 * 4),
        ("d_rtb_hardlimit", ctypes.c_uint64),
        ("d_rtb_softlimit", ctypes.c_uint64),
        ("d_rtbcount", ctypes.c_uint64),
        ("d_rtbtimer", ctypes.c_int32),
        ("d_rtbwarns", ctypes.c_uint16),
        ("d_padding3", ctypes.c_int16),
        ("d_padding4", ctypes.c_char * 8),
    ]


def _qcmd(cmd: int) -> int:
    return (cmd << 8) | _PRJQUOTA


def _fsxattr(path: str) -> tuple[int, ...]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        buf = bytearray(_FSXATTR.size)
        fcntl.ioctl(fd, _FS_IOC_FSGETXATTR, buf)
        return _FSXATTR.unpack(buf)
    finally:
        os.close(fd)


def get_project(path: str) -> int:
    """The project ID of directory ``path``."""
    return _fsxattr(path)[3]


def set_project(path: str, projid: int) -> None:
    """Give ``path`` project ``projid``; a directory's is inherited by what is made in it."""
    xflags, extsize, nextents, _old, cow = _fsxattr(path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.ioctl(
            fd,
            _FS_IOC_FSSETXATTR,
            _FSXATTR.pack(xflags | _FS_XFLAG_PROJINHERIT, extsize, nextents, projid, cow),
        )
    finally:
        os.close(fd)


class ProjectQuota:
    """Size limits on directories below ``base`` (one xfs file system)."""

    def __init__(self, base: str, device: str, first: int) -> None:
        self.base, self.device = base, device
        self._next = first
        self._lock = threading.Lock()

    @classmethod
    def open(cls, base: str) -> "ProjectQuota":
        """The controller for ``base``'s file system; QuotaUnavailable naming what is missing."""
        if statfs_magic(base) not in _QUOTA_FS:
            raise QuotaUnavailable(f"{base} is not on xfs or ext4")
        device = os.path.join(base, "backingFsBlockDev")
        dev = os.stat(base).st_dev
        try:
            st = os.stat(device)
            fresh = not stat.S_ISBLK(st.st_mode) or st.st_rdev != dev
        except FileNotFoundError:
            fresh = True
        if fresh:
            if os.path.lexists(device):
                os.unlink(device)
            os.mknod(device, stat.S_IFBLK | 0o600, dev)
        buf = ctypes.create_string_buffer(256)
        if libc.quotactl(_qcmd(_Q_XGETQSTAT), fsencode(device), 0, buf) != 0:
            err = ctypes.get_errno()
            raise QuotaUnavailable(f"quotactl on {base}'s file system: {os.strerror(err)}")
        flags = struct.unpack_from("=H", buf.raw, 2)[0]
        if not flags & _FS_QUOTA_PDQ_ENFD:
            raise QuotaUnavailable(
                f"{base}'s file system does not enforce project quotas (mount it with prjquota)"
            )
        base_id = get_project(base)
        used = [base_id]
        for entry in os.scandir(base):
            if entry.is_dir(follow_symlinks=False):
                used += _projects_below(entry.path)
        return cls(base, device, max(used) + 1)

    def limit(self, path: str, size: int) -> int:
        """Give directory ``path`` (below base) and everything in it (files and directories;
        links and device nodes have no project) a project of its own limited to ``size`` bytes:
        moving a file between projects fails (EXDEV), so a layer's whole tree, overlay's work
        directory too, must be in one; returns the project ID."""
        with self._lock:
            projid, self._next = self._next, self._next + 1
        for top, _dirs, files in os.walk(path):  # every directory comes as a top
            set_project(top, projid)
            for name in files:
                if stat.S_ISREG(os.lstat(os.path.join(top, name)).st_mode):
                    set_project(os.path.join(top, name), projid)
        q = _DiskQuota(
            d_version=_FS_DQUOT_VERSION,
            d_flags=_FS_PROJ_QUOTA,
            d_fieldmask=_FS_DQ_BSOFT | _FS_DQ_BHARD,
            d_id=projid,
            d_blk_hardlimit=(size + 511) // 512,
            d_blk_softlimit=(size + 511) // 512,
        )
        check(
            libc.quotactl(_qcmd(_Q_XSETQLIM), fsencode(self.device), projid, ctypes.byref(q)),
            self.device,
        )
        return projid


def _projects_below(path: str) -> list[int]:
    """The project IDs of ``path`` and of its direct subdirectories (a layer and its upper)."""
    out = []
    for p in [path] + [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]:
        try:
            out.append(get_project(p))
        except OSError:
            continue
    return out
