"""Which mount holds a path, and its propagation: for drivers (pivot_root needs the rootfs's
mount private) and the daemon (dockerd's check of a shared / slave bind's source)."""
from __future__ import annotations

__all__ = ["mount_of"]


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, list[str]]:
    """(mount point, optional fields such as ``shared:3`` / ``master:1``) of the mount that
    holds absolute ``path`` in this mount namespace: the longest mount point that is a prefix,
    the last one mounted there when several are."""
    best, fields = "/", []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left = line.partition(" - ")[0].split()
            point = _unescape(left[4])
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fields = point, left[6:]
    return best, fields
