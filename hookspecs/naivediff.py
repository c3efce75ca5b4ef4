"""The diff side for graph drivers that only know how to mount, and the layer-tar helpers.

Learned from moby's ``daemon/graphdriver/fsdiff.go`` and ``pkg/archive`` (changes, whiteouts,
``UnpackLayer``); written from scratch. Part of the contract because third-party drivers import it:
like the rest of :mod:`dockyard.hookspecs` it imports nothing else of dockyard.

* :class:`NaiveDiff` — mixin giving ``diff``, ``changes``, ``apply_diff`` and ``diff_size`` to any
  driver with ``get``/``put``: it compares the mounted trees of a layer and its parent.
* :func:`compute_changes` — the ``docker diff`` walk of two directory trees.
* :func:`write_layer_tar` — an uncompressed PAX tar of those changes with OCI whiteouts.
* :func:`~dockyard.hookspecs.tarsafe.apply_layer_tar` (from :mod:`dockyard.hookspecs.tarsafe`,
  re-exported here) — unpack a layer tar into a directory, honouring whiteouts, without ever
  writing outside it.

Both tar functions take an optional ``id_map`` (:class:`~dockyard.hookspecs.idmap.IDMap`,
``userns-remap``): tar headers carry container IDs, the disk holds host IDs. Applying chowns every
entry to ``id_map.to_host(uid, gid)`` (and directories the tar implies without an entry of their
own to ``id_map.root``); writing puts ``id_map.to_container(st_uid, st_gid)`` in the headers.
``None`` or the identity map changes nothing.

Safety of :func:`apply_layer_tar`: see :mod:`dockyard.hookspecs.tarsafe`.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import stat
import threading
from dataclasses import dataclass
from typing import IO, Any

from .idmap import IDMap
# the safe tar application lives in tarsafe; these names stay importable from here
from .tarsafe import (OCI_WHITEOUTS, SKIP_XATTR_PREFIXES, WHITEOUT_META_PREFIX,  # noqa: F401
                      WHITEOUT_OPAQUE, WHITEOUT_PREFIX, SecureRoot, WhiteoutFormat,
                      apply_layer_tar, clean_parts, remove_at)

log = logging.getLogger(__name__)

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2

_BLOCK = 512
_COPY_CHUNK = 1 << 20


# ------------------------------------------------------------------------------------------------
# changes
# ------------------------------------------------------------------------------------------------
@dataclass
class Change:
    path: str                 #: "/a/b", as docker diff prints it
    kind: int                 #: CHANGE_MODIFY / CHANGE_ADD / CHANGE_DELETE
    opaque: bool = False      #: a directory whose every lower entry is gone (diff emits .wh..wh..opq)
    implied: bool = False     #: a directory listed only because something inside changed

    def as_dict(self) -> dict[str, Any]:
        return {"Path": self.path, "Kind": self.kind}


def _xattrs(path: str) -> dict[str, bytes]:
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
    if (ns.st_mode != os_.st_mode or ns.st_uid != os_.st_uid or ns.st_gid != os_.st_gid
            or ns.st_rdev != os_.st_rdev):
        return True
    if not stat.S_ISDIR(ns.st_mode):
        # size and mtime say nothing useful for directories (moby#9874)
        if ns.st_size != os_.st_size or not _same_time(ns.st_mtime_ns, os_.st_mtime_ns):
            return True
    if stat.S_ISLNK(ns.st_mode) and os.readlink(new_path) != os.readlink(old_path):
        return True
    return _xattrs(new_path) != _xattrs(old_path)


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
        deleted = {c.path for c in inner if c.kind == CHANGE_DELETE and c.path.count("/") == e_rel.count("/") + 1}
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


# ------------------------------------------------------------------------------------------------
# tar writing (our own PAX writer: tarfile cannot write binary xattr values such as
# security.capability)
# ------------------------------------------------------------------------------------------------
def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _octal(value: int, width: int) -> bytes | None:
    s = b"%o" % value
    if value < 0 or len(s) > width - 1:
        return None
    return s.rjust(width - 1, b"0") + b"\0"


def _ustar(name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           linkname: bytes, devmajor: int, devminor: int) -> bytes:
    h = bytearray(_BLOCK)

    def put(off: int, width: int, data: bytes) -> None:
        h[off:off + len(data[:width])] = data[:width]

    put(0, 100, name)
    put(100, 8, _octal(mode, 8) or b"0000000\0")
    put(108, 8, _octal(uid, 8) or b"0000000\0")
    put(116, 8, _octal(gid, 8) or b"0000000\0")
    put(124, 12, _octal(size, 12) or b"00000000000\0")
    put(136, 12, _octal(mtime, 12) or b"00000000000\0")
    put(148, 8, b" " * 8)
    put(156, 1, typeflag)
    put(157, 100, linkname)
    put(257, 8, b"ustar\x0000")
    put(329, 8, _octal(devmajor, 8) or b"0000000\0")
    put(337, 8, _octal(devminor, 8) or b"0000000\0")
    chk = sum(h)
    put(148, 8, b"%06o\0 " % chk)
    return bytes(h)


def tar_header(name: bytes, typeflag: bytes, *, mode: int = 0, uid: int = 0, gid: int = 0,
               size: int = 0, mtime: int = 0, linkname: bytes = b"", devmajor: int = 0,
               devminor: int = 0, xattrs: dict[str, bytes] | None = None) -> bytes:
    """One tar entry header (a PAX ``x`` header first when ustar cannot hold a field)."""
    pax: list[tuple[bytes, bytes]] = []
    if len(name) > 100 or not name.isascii():
        pax.append((b"path", name))
    if len(linkname) > 100 or not linkname.isascii():
        pax.append((b"linkpath", linkname))
    for key, val, width in ((b"uid", uid, 8), (b"gid", gid, 8), (b"size", size, 12),
                            (b"mtime", mtime, 12)):
        if _octal(val, width) is None:
            pax.append((key, str(val).encode()))
    for k in sorted(xattrs or {}):
        pax.append((b"SCHILY.xattr." + k.encode("utf-8", "surrogateescape"), xattrs[k]))  # type: ignore[index]
    out = b""
    if pax:
        data = b"".join(_pax_record(k, v) for k, v in pax)
        base = os.path.basename(name.rstrip(b"/"))[:80] or b"root"
        out += _ustar(b"PaxHeaders/" + base, b"x", 0o644, 0, 0, len(data), max(mtime, 0), b"", 0, 0)
        out += data + b"\0" * (-len(data) % _BLOCK)
    return out + _ustar(name[:100], typeflag, mode & 0o7777, uid, gid, size,
                        max(mtime, 0), linkname[:100], devmajor, devminor)


def _fsencode(rel: str) -> bytes:
    return os.fsencode(rel)


def write_layer_tar(out: IO[bytes], root: str, changes: list[Change],
                    id_map: IDMap | None = None) -> None:
    """Write the uncompressed tar of ``changes`` (from :func:`compute_changes`) taken from
    ``root`` to ``out``: deletions become ``.wh.<name>``, a directory whose lower entries are all
    gone gets one ``.wh..wh..opq`` instead of a whiteout per entry. Owners are written as
    ``id_map.to_container(st_uid, st_gid)`` (host IDs without a mapping as 65534)."""
    to_container = None if id_map is None or id_map.is_identity else id_map.to_container
    links: dict[tuple[int, int], bytes] = {}
    opaque_dirs: set[str] = set()
    for c in changes:
        parent, base = c.path.rsplit("/", 1)
        if c.kind == CHANGE_DELETE:
            if parent in opaque_dirs:
                continue
            out.write(tar_header(_fsencode((parent + "/" + WHITEOUT_PREFIX + base).lstrip("/")), b"0"))
            continue
        path = root + c.path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # removed while we were diffing a live layer
        name = _fsencode(c.path.lstrip("/"))
        mode = stat.S_IMODE(st.st_mode)
        uid, gid = to_container(st.st_uid, st.st_gid) if to_container else (st.st_uid, st.st_gid)
        common = dict(mode=mode, uid=uid, gid=gid, mtime=int(st.st_mtime))
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFSOCK:
            log.warning("layer diff: skipping socket %s", c.path)
            continue
        xattrs = _xattrs(path)
        if fmt == stat.S_IFDIR:
            out.write(tar_header(name + b"/", b"5", xattrs=xattrs, **common))
            if c.opaque:
                opaque_dirs.add(c.path)
                out.write(tar_header(name + b"/" + WHITEOUT_OPAQUE.encode(), b"0"))
        elif fmt == stat.S_IFLNK:
            out.write(tar_header(name, b"2", linkname=os.fsencode(os.readlink(path)),
                                 xattrs=xattrs, **common))
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            flag = {stat.S_IFCHR: b"3", stat.S_IFBLK: b"4", stat.S_IFIFO: b"6"}[fmt]
            out.write(tar_header(name, flag, devmajor=os.major(st.st_rdev),
                                 devminor=os.minor(st.st_rdev), xattrs=xattrs, **common))
        elif fmt == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                out.write(tar_header(name, b"1", linkname=links[key], xattrs=xattrs, **common))
                continue
            if st.st_nlink > 1:
                links[key] = name
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb", buffering=0) as f:
                size = os.fstat(fd).st_size
                out.write(tar_header(name, b"0", size=size, xattrs=xattrs, **common))
                left = size
                buf = bytearray(min(_COPY_CHUNK, max(size, 1)))
                view = memoryview(buf)
                while left:
                    n = f.readinto(view[:min(left, len(buf))])
                    if not n:
                        break  # shrank while reading: pad with zeros below
                    out.write(view[:n])
                    left -= n
                while left:
                    n = min(left, len(buf))
                    out.write(bytes(n))
                    left -= n
                out.write(b"\0" * (-size % _BLOCK))
    out.write(b"\0" * (_BLOCK * 2))


class _PipeReader(io.RawIOBase):
    """The read end of a pipe filled by a writer thread; the writer's error, if any, is raised
    at EOF instead of handing out a silently truncated tar."""

    def __init__(self, fd: int, thread: threading.Thread, state: dict[str, Any]) -> None:
        self._fd, self._thread, self._state = fd, thread, state

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = os.readv(self._fd, [b])
        if n == 0:
            self._thread.join()
            if self._state.get("error") is not None:
                err = self._state.pop("error")
                raise err
        return n

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)  # a writer still running gets EPIPE and stops
            finally:
                self._thread.join()
                super().close()


def stream_from_writer(write: Any, on_done: Any = None) -> IO[bytes]:
    """Run ``write(fileobj)`` in a thread feeding a pipe; return the reading end (buffered).

    ``on_done()`` runs in the thread once writing stopped (for any reason)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        import fcntl
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ; best effort
    except OSError:
        pass
    state: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(w, "wb", buffering=_COPY_CHUNK) as out:
                write(out)
        except BrokenPipeError:
            pass  # the reader went away
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            state["error"] = e
        finally:
            if on_done is not None:
                try:
                    on_done()
                except Exception:  # noqa: BLE001
                    log.exception("layer diff: release failed")

    t = threading.Thread(target=run, name="layer-diff", daemon=True)
    t.start()
    return io.BufferedReader(_PipeReader(r, t, state), buffer_size=_COPY_CHUNK)


# ------------------------------------------------------------------------------------------------
# the mixin
# ------------------------------------------------------------------------------------------------
class NaiveDiff:
    """``diff``/``changes``/``apply_diff``/``diff_size`` for a driver that only mounts.

    Put it first in the bases: ``class MyDriver(NaiveDiff, GraphDriver)``. It relies only on
    ``self.get(id) -> path`` and ``self.put(id)``, and passes ``self.id_map`` (when there is one)
    to the tar helpers: the diff carries container IDs, an applied layer is stored with host IDs.

    :meth:`diff` returns the read end of a pipe filled by a thread while it walks the mounted
    layer: the tar streams without touching disk or memory in full (a layer may be gigabytes),
    and the first bytes flow at once (a digest can be computed as it goes). The layer stays
    mounted until the stream is read to the end or closed; an error in the writer is raised by
    ``read`` at the end of the stream instead of a silently short tar.
    """

    def changes(self, id: str, parent: str | None) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self._naive_changes(id, parent)]

    def _naive_changes(self, id: str, parent: str | None) -> list[Change]:
        new = self.get(id)  # type: ignore[attr-defined]
        try:
            if parent is None:
                return compute_changes(new, None)
            old = self.get(parent)  # type: ignore[attr-defined]
            try:
                return compute_changes(new, old)
            finally:
                self.put(parent)  # type: ignore[attr-defined]
        finally:
            self.put(id)  # type: ignore[attr-defined]

    def diff(self, id: str, parent: str | None) -> IO[bytes]:
        changes = self._naive_changes(id, parent)
        root = self.get(id)  # type: ignore[attr-defined]
        try:
            id_map = getattr(self, "id_map", None)
            return stream_from_writer(lambda out: write_layer_tar(out, root, changes, id_map),
                                      on_done=lambda: self.put(id))  # type: ignore[attr-defined]
        except BaseException:
            self.put(id)  # type: ignore[attr-defined]
            raise

    def diff_size(self, id: str, parent: str | None) -> int:
        changes = self._naive_changes(id, parent)
        root = self.get(id)  # type: ignore[attr-defined]
        try:
            return changes_size(root, changes)
        finally:
            self.put(id)  # type: ignore[attr-defined]

    def apply_diff(self, id: str, parent: str | None, stream: IO[bytes]) -> int:
        root = self.get(id)  # type: ignore[attr-defined]
        try:
            return apply_layer_tar(root, stream, id_map=getattr(self, "id_map", None))
        finally:
            self.put(id)  # type: ignore[attr-defined]
