"""Writing layer tars: an uncompressed PAX tar of a tree's changes, with OCI whiteouts.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). Our own PAX writer: :mod:`tarfile`
cannot write binary xattr values such as ``security.capability``. :func:`write_layer_tar` takes
the changes of :func:`~dockyard.hookspecs.host.changes.compute_changes` and an optional
``id_map`` (:class:`~dockyard.hookspecs.idmap.IDMap`, ``userns-remap``): the disk holds host
IDs, the headers get ``id_map.to_container(st_uid, st_gid)``. :func:`stream_from_writer` runs a
writer in a thread feeding a pipe, so a diff streams without touching disk or memory in full.
The reading side — unpacking a layer safely — is :mod:`dockyard.hookspecs.host.tarsafe`.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import stat
import threading
from typing import IO, Any

from ..idmap import IDMap
from .changes import CHANGE_DELETE, Change, xattrs_of
from .tarsafe import WHITEOUT_OPAQUE, WHITEOUT_PREFIX

log = logging.getLogger(__name__)

__all__ = ["tar_header", "write_layer_tar", "stream_from_writer"]

_BLOCK = 512
_COPY_CHUNK = 1 << 20


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


def _ustar(
    name: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    h = bytearray(_BLOCK)

    def put(off: int, width: int, data: bytes) -> None:
        h[off : off + len(data[:width])] = data[:width]

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


def tar_header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: int = 0,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: dict[str, bytes] | None = None,
) -> bytes:
    """One tar entry header (a PAX ``x`` header first when ustar cannot hold a field)."""
    pax: list[tuple[bytes, bytes]] = []
    if len(name) > 100 or not name.isascii():
        pax.append((b"path", name))
    if len(linkname) > 100 or not linkname.isascii():
        pax.append((b"linkpath", linkname))
    for key, val, width in (
        (b"uid", uid, 8),
        (b"gid", gid, 8),
        (b"size", size, 12),
        (b"mtime", mtime, 12),
    ):
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
    return out + _ustar(
        name[:100],
        typeflag,
        mode & 0o7777,
        uid,
        gid,
        size,
        max(mtime, 0),
        linkname[:100],
        devmajor,
        devminor,
    )


def _fsencode(rel: str) -> bytes:
    return os.fsencode(rel)


def write_layer_tar(
    out: IO[bytes], root: str, changes: list[Change], id_map: IDMap | None = None
) -> None:
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
            out.write(
                tar_header(_fsencode((parent + "/" + WHITEOUT_PREFIX + base).lstrip("/")), b"0")
            )
            continue
        path = root + c.path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # removed while we were diffing a live layer
        name = _fsencode(c.path.lstrip("/"))
        mode = stat.S_IMODE(st.st_mode)
        uid, gid = to_container(st.st_uid, st.st_gid) if to_container else (st.st_uid, st.st_gid)
        common: dict[str, Any] = dict(mode=mode, uid=uid, gid=gid, mtime=int(st.st_mtime))
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFSOCK:
            log.warning("layer diff: skipping socket %s", c.path)
            continue
        xattrs = xattrs_of(path)
        if fmt == stat.S_IFDIR:
            out.write(tar_header(name + b"/", b"5", xattrs=xattrs, **common))
            if c.opaque:
                opaque_dirs.add(c.path)
                out.write(tar_header(name + b"/" + WHITEOUT_OPAQUE.encode(), b"0"))
        elif fmt == stat.S_IFLNK:
            out.write(
                tar_header(
                    name, b"2", linkname=os.fsencode(os.readlink(path)), xattrs=xattrs, **common
                )
            )
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            flag = {stat.S_IFCHR: b"3", stat.S_IFBLK: b"4", stat.S_IFIFO: b"6"}[fmt]
            out.write(
                tar_header(
                    name,
                    flag,
                    devmajor=os.major(st.st_rdev),
                    devminor=os.minor(st.st_rdev),
                    xattrs=xattrs,
                    **common,
                )
            )
        elif fmt == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                out.write(tar_header(name, b"1", linkname=links[key], xattrs=xattrs, **common))
                continue
            if st.st_nlink > 1:
                links[key] = name
            _write_file(
                out, path, functools.partial(tar_header, name, b"0", xattrs=xattrs, **common)
            )
    out.write(b"\0" * (_BLOCK * 2))


def _write_file(out: IO[bytes], path: str, header: Any) -> None:
    """A regular file's header (``header(size)``, the size read from the open file) and data,
    padded to a block; a file that shrinks while it is read is padded with zeros."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as f:
        size = os.fstat(fd).st_size
        out.write(header(size=size))
        left = size
        buf = bytearray(min(_COPY_CHUNK, max(size, 1)))
        view = memoryview(buf)
        while left:
            n = f.readinto(view[: min(left, len(buf))])
            if not n:
                break  # shrank while reading: pad with zeros below
            out.write(view[:n])
            left -= n
        while left:
            n = min(left, len(buf))
            out.write(bytes(n))
            left -= n
        out.write(b"\0" * (-size % _BLOCK))


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
