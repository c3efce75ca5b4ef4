"""What changed between two directory trees: the walk behind ``docker diff`` and layer diffs.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). Learned from moby's
``pkg/archive/changes.go``; written from scratch. :func:`compute_changes` compares a layer's tree
with its parent's (or with nothing), :func:`changes_size` sizes the result as moby's
``ChangesSize``; :func:`~dockyard.hookspecs.host.layertar.write_layer_tar` turns it into a layer
tar.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Any

from .tarsafe import SKIP_XATTR_PREFIXES

__all__ = [
    "CHANGE_MODIFY",
    "CHANGE_ADD",
    "CHANGE_DELETE",
    "Change",
    "compute_changes",
    "changes_size",
    "xattrs_of",
]

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2


@dataclass
class Change:
    """One changed path, as ``docker diff`` and ``GET /containers/{id}/changes`` show it."""

    path: str  #: "/a/b", as docker diff prints it
    kind: int  #: CHANGE_MODIFY / CHANGE_ADD / CHANGE_DELETE
    opaque: bool = False  #: a directory whose every lower entry is gone (diff emits .wh..wh..opq)
    implied: bool = False  #: a directory listed only because something inside changed

    def as_dict(self) -> dict[str, Any]:
        return {"Path": self.path, "Kind": self.kind}


def xattrs_of(path: str) -> dict[str, bytes]:
    """The extended attributes of ``path`` (not following a symlink) that a layer carries:
    those of :data:`~dockyard.hookspecs.host.tarsafe.SKIP_XATTR_PREFIXES` left out; ``{}`` where
    the file system has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT, errno.EPERM):
            return {}
        raise
    out = {}
    for n in names:
        if n.startswith(SKIP_XATTR_PREFIXES):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
    return out


def _same_time(a: int, b: int) -> bool:
    # like moby's sameFsTime: a side with no sub-second part (tar, some file systems) compares
    # by seconds only
    if a == b:
        return True
    if a % 1_000_000_000 == 0 or b % 1_000_000_000 == 0:
        return a // 1_000_000_000 == b // 1_000_000_000
    return False


def _differs(new_path: str, ns: os.stat_result, old_path: str, os_: os.stat_result) -> bool:
    if (
        ns.st_mode != os_.st_mode
        or ns.st_uid != os_.st_uid
        or ns.st_gid != os_.st_gid
        or ns.st_rdev != os_.st_rdev
    ):
        return True
    if not stat.S_ISDIR(ns.st_mode):
        # size and mtime say nothing useful for directories (moby#9874)
        if ns.st_size != os_.st_size or not _same_time(ns.st_mtime_ns, os_.st_mtime_ns):
            return True
    if stat.S_ISLNK(ns.st_mode) and os.readlink(new_path) != os.readlink(old_path):
        return True
    return xattrs_of(new_path) != xattrs_of(old_path)


def _scan(path: str) -> dict[str, os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return {e.name: e for e in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _add_all(path: str, rel: str, out: list[Change]) -> None:
    for name in sorted(_scan(path)):
        e_path, e_rel = os.path.join(path, name), rel + "/" + name
        out.append(Change(e_rel, CHANGE_ADD))
        if stat.S_ISDIR(os.lstat(e_path).st_mode):
            _add_all(e_path, e_rel, out)


def _compare_dir(new: str, old: str, rel: str, out: list[Change]) -> None:
    new_entries, old_entries = _scan(new), _scan(old)
    for name in sorted(set(new_entries) | set(old_entries)):
        e_rel = rel + "/" + name
        n_path, o_path = os.path.join(new, name), os.path.join(old, name)
        if name not in new_entries:
            out.append(Change(e_rel, CHANGE_DELETE))
            continue
        nst = os.lstat(n_path)
        if name not in old_entries:
            out.append(Change(e_rel, CHANGE_ADD))
            if stat.S_ISDIR(nst.st_mode):
                _add_all(n_path, e_rel, out)
            continue
        ost = os.lstat(o_path)
        n_dir, o_dir = stat.S_ISDIR(nst.st_mode), stat.S_ISDIR(ost.st_mode)
        if n_dir and not o_dir:
            out.append(Change(e_rel, CHANGE_MODIFY))
            _add_all(n_path, e_rel, out)
            continue
        changed = _differs(n_path, nst, o_path, ost)
        if not n_dir:
            if changed:
                out.append(Change(e_rel, CHANGE_MODIFY))
            continue
        # a directory on both sides
        at = len(out)
        _compare_dir(n_path, o_path, e_rel, out)
        inner = out[at:]
        old_children = _scan(o_path)
        deleted = {
            c.path
            for c in inner
            if c.kind == CHANGE_DELETE and c.path.count("/") == e_rel.count("/") + 1
        }
        opaque = bool(old_children) and len(deleted) == len(old_children)
        if changed or inner:
            # moby lists a directory whenever something inside changed, so that its metadata
            # travels with the layer
            out.insert(at, Change(e_rel, CHANGE_MODIFY, opaque=opaque, implied=not changed))


def compute_changes(new_root: str, old_root: str | None) -> list[Change]:
    """The changes of tree ``new_root`` against ``old_root`` (``None``: against nothing), in
    walk order (a directory before its contents)."""
    out: list[Change] = []
    if old_root is None:
        _add_all(new_root, "", out)
    else:
        _compare_dir(new_root, old_root, "", out)
    return out


def changes_size(root: str, changes: list[Change]) -> int:
    """Bytes of the added/modified non-directories (hard links counted once), as moby's
    ``ChangesSize``."""
    seen: set[tuple[int, int]] = set()
    size = 0
    for c in changes:
        if c.kind == CHANGE_DELETE:
            continue
        try:
            st = os.lstat(root + c.path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        size += st.st_size
    return size
