"""The diff side for graph drivers that only know how to mount, and the layer-tar helpers.

Learned from moby's ``daemon/graphdriver/fsdiff.go`` and ``pkg/archive`` (changes, whiteouts,
``UnpackLayer``); written from scratch. Part of the contract because third-party drivers import it:
like the rest of :mod:`dockyard.hookspecs` it imports nothing else of dockyard.

* :class:`NaiveDiff` — mixin giving ``diff``, ``changes``, ``apply_diff`` and ``diff_size`` to any
  driver with ``get``/``put``: it compares the mounted trees of a layer and its parent.
* :func:`compute_changes` — the ``docker diff`` walk of two directory trees.
* :func:`write_layer_tar` — an uncompressed PAX tar of those changes with OCI whiteouts.
* :func:`apply_layer_tar` — unpack a layer tar into a directory, honouring whiteouts, without ever
  writing outside it.

Both tar functions take an optional ``id_map`` (:class:`~dockyard.hookspecs.idmap.IDMap`,
``userns-remap``): tar headers carry container IDs, the disk holds host IDs. Applying chowns every
entry to ``id_map.to_host(uid, gid)`` (and directories the tar implies without an entry of their
own to ``id_map.root``); writing puts ``id_map.to_container(st_uid, st_gid)`` in the headers.
``None`` or the identity map changes nothing.

Safety of :func:`apply_layer_tar`: every entry is resolved one component at a time with
``openat(O_NOFOLLOW|O_DIRECTORY)`` from a descriptor of the layer root; the final component is
never followed. Entries named with an absolute path or a ``..`` component, hard links whose target
is absolute, has ``..`` or does not resolve inside the layer, and parent paths that go through a
symlink whose (relative) target climbs above the layer root are refused with
:class:`~dockyard.hookspecs.errors.InvalidParameter`. A symlink with an *absolute* target met in a
parent path is resolved against the layer root, as the container will see it (moby applies layers
in a chroot for the same effect), so it can never lead outside either.

On a refused or truncated tar the entries before the bad one stay applied: the layer is left
partially written (never anything outside it) and the caller must remove the layer, as moby's layer
store does when ``ApplyDiff`` fails.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import stat
import tarfile
import threading
from dataclasses import dataclass
from typing import IO, Any, Iterator

from .errors import InvalidParameter
from .idmap import IDMap

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2

#: xattrs never carried in a layer: host labels and another driver's bookkeeping
_SKIP_XATTR_PREFIXES = ("security.selinux", "trusted.overlay.", "user.overlay.",
                        "user.fuseoverlayfs.")
_MAX_SYMLINKS = 40
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
        if n.startswith(_SKIP_XATTR_PREFIXES):
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
# tar application
# ------------------------------------------------------------------------------------------------
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean_parts(name: str, what: str = "entry") -> list[str]:
    """Split an archive path into components; refuse absolute paths and ``..``."""
    if name.startswith("/"):
        raise InvalidParameter(f"layer tar: {what} {name!r} is an absolute path")
    if "\0" in name:
        raise InvalidParameter(f"layer tar: {what} {name!r} contains NUL")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"layer tar: {what} {name!r} has a '..' component")
    return parts


class SecureRoot:
    """A directory opened once; paths below it are resolved one component at a time, never
    following a symlink out of it (openat + O_NOFOLLOW walk)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fd = os.open(root, _DIR_FLAGS)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "SecureRoot":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open_dir(self, parts: list[str], create: bool = False, what: str = "",
                 made: Any = None) -> int:
        """An O_DIRECTORY fd of ``parts`` below the root (caller closes it). Symlinks met on the
        way are followed inside the root: absolute targets from the root, relative ones from
        their directory; one that climbs above the root is refused. Missing directories are
        made (0755) when ``create``, else FileNotFoundError; ``made(parent_fd, name, parts)`` is then
        called for each directory made."""
        todo = list(parts)
        here: list[str] = []
        fd = os.dup(self.fd)
        links = 0
        try:
            while todo:
                name = todo.pop(0)
                if name in ("", "."):
                    continue
                if name == "..":
                    if not here:
                        raise InvalidParameter(
                            f"layer tar: {what or '/'.join(parts)!r} goes through a symlink "
                            "pointing outside the layer")
                    here.pop()
                    os.close(fd)
                    fd = os.dup(self.fd)
                    todo = here + todo
                    here = []
                    continue
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    else:
                        if made is not None:
                            made(fd, name, here + [name])
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise InvalidParameter(
                            f"layer tar: {what or '/'.join(parts)!r}: "
                            f"{'/'.join(here + [name])!r} is not a directory") from None
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise InvalidParameter(
                            f"layer tar: {what or '/'.join(parts)!r}: too many symlinks") from None
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith("/"):
                        os.close(fd)
                        fd = os.dup(self.fd)
                        here = []
                    todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                    continue
                os.close(fd)
                fd = nfd
                here.append(name)
            return fd
        except BaseException:
            os.close(fd)
            raise


def remove_at(dfd: int, name: str) -> None:
    """Remove ``name`` (a whole tree if a directory) in directory ``dfd``; gone already is fine."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


def _set_xattrs(target: Any, xattrs: dict[str, bytes], follow: bool) -> None:
    for k, v in xattrs.items():
        try:
            os.setxattr(target, k, v, follow_symlinks=follow)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (
                    e.errno == errno.EPERM and os.geteuid() != 0):
                log.warning("layer tar: cannot set xattr %s: %s", k, e)
                continue
            raise


def _chown(fn: Any, *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except PermissionError:
        if os.geteuid() == 0:
            raise


def _entry_xattrs(ti: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for k, v in ti.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            name = k[len("SCHILY.xattr."):]
            if name.startswith(_SKIP_XATTR_PREFIXES):
                continue
            out[name] = v.encode("utf-8", "surrogateescape")
    return out


def _write_sparse(fd: int, src: IO[bytes], size: int) -> None:
    """Copy ``size`` bytes, leaving holes where whole chunks are zero."""
    buf = bytearray(min(_COPY_CHUNK, max(size, 1)))
    view = memoryview(buf)
    zero = bytes(len(buf))
    left = size
    while left:
        want = min(left, len(buf))
        got = 0
        while got < want:
            n = src.readinto(view[got:want])  # type: ignore[attr-defined]
            if not n:
                raise InvalidParameter("layer tar: unexpected end of data")
            got += n
        chunk = view[:want]
        if want == len(buf) and chunk == zero:
            os.lseek(fd, want, os.SEEK_CUR)
        else:
            mv = chunk
            while mv:
                w = os.write(fd, mv)
                mv = mv[w:]
        left -= want
    os.ftruncate(fd, size)


def _opaque(sroot: SecureRoot, dir_parts: list[str], unpacked: set[tuple[str, ...]]) -> None:
    """Remove everything below ``dir_parts`` that this tar did not itself unpack."""
    try:
        dfd = sroot.open_dir(dir_parts, what="/".join(dir_parts))
    except FileNotFoundError:
        return
    try:
        with os.scandir(dfd) as it:
            names = [e.name for e in it]
        for name in names:
            key = tuple(dir_parts) + (name,)
            if key not in unpacked:
                remove_at(dfd, name)
            elif stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                _opaque(sroot, list(key), unpacked)
    finally:
        os.close(dfd)


def _iter_tar(stream: IO[bytes]) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    try:
        tf = tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape")
    except tarfile.ReadError as e:
        if "empty" in str(e):
            return
        raise InvalidParameter(f"layer tar: not a tar archive: {e}") from None
    try:
        while True:
            try:
                ti = tf.next()
            except tarfile.TarError as e:
                raise InvalidParameter(f"layer tar: {e}") from None
            if ti is None:
                return
            yield tf, ti
    finally:
        tf.close()


class WhiteoutFormat:
    """How :func:`apply_layer_tar` records the tar's OCI whiteouts in the directory it fills.

    The default suits a layer directory that holds the *whole* tree (vfs, btrfs, a mounted
    layer): a whiteout removes its victim, an opaque marker removes what the tar did not itself
    unpack in that directory. A driver that unpacks into an upper directory of a union (overlay)
    subclasses it to leave its own markers instead (a 0/0 character device, an xattr). Both
    methods receive the :class:`SecureRoot` of the layer and must write only through it."""

    def whiteout(self, sroot: "SecureRoot", parent: list[str], victim: str, what: str) -> None:
        """``parent/.wh.victim``: make ``parent/victim`` disappear."""
        try:
            dfd = sroot.open_dir(parent, what=what)
        except FileNotFoundError:
            return
        try:
            remove_at(dfd, victim)
        finally:
            os.close(dfd)

    def opaque(self, sroot: "SecureRoot", dir_parts: list[str], unpacked: set[tuple[str, ...]],
               what: str) -> None:
        """``dir/.wh..wh..opq``: hide everything below ``dir`` this tar did not unpack itself
        (``unpacked`` holds the path tuples unpacked so far)."""
        _opaque(sroot, dir_parts, unpacked)


    def dir_replaced(self, dfd: int, name: str, was: os.stat_result) -> None:
        """Directory ``name`` (in ``dfd``) was just made where ``was`` stood (removed first)."""

    def implied_dir(self, dfd: int, name: str, parts: list[str]) -> None:
        """Directory ``name`` (in ``dfd``, at ``parts``) was just made (0755, root) because an
        entry below it had no entry of its own in the tar."""


#: the OCI behaviour (remove what a whiteout names)
OCI_WHITEOUTS = WhiteoutFormat()


def _host_ids(id_map: IDMap, ti: tarfile.TarInfo) -> tuple[int, int]:
    try:
        return id_map.to_host(ti.uid, ti.gid)
    except ValueError as e:
        raise InvalidParameter(f"layer tar: {ti.name!r} is owned by {ti.uid}:{ti.gid}, which has "
                               f"no mapping in the user-namespace remapping ({id_map}): {e}") from None


def apply_layer_tar(root: str, stream: IO[bytes], whiteouts: WhiteoutFormat | None = None,
                    id_map: IDMap | None = None) -> int:
    """Unpack the uncompressed layer tar ``stream`` into directory ``root`` and return the sum of
    the sizes of its regular files. See the module docstring for what is refused. ``whiteouts``
    decides how whiteout entries are recorded (default: :data:`OCI_WHITEOUTS`).

    ``id_map``: every entry is chowned to ``id_map.to_host(uid, gid)`` of its header; an entry
    whose owner has no mapping is refused with InvalidParameter before anything of it is
    written (the entries before it stay, as for any refused entry). Directories made because
    an entry below them has none of its own are owned by ``id_map.root``. The tar's entry for
    the root itself (``./``) is not applied: ``root`` keeps its owner, mode and times."""
    wo = whiteouts or OCI_WHITEOUTS
    remap = id_map is not None and not id_map.is_identity
    host_root = id_map.root if id_map is not None and remap else None

    def made(dfd: int, name: str, parts: list[str]) -> None:
        if host_root is not None:
            _chown(os.chown, name, *host_root, dir_fd=dfd, follow_symlinks=False)
        wo.implied_dir(dfd, name, parts)
    size = 0
    unpacked: set[tuple[str, ...]] = set()
    dir_times: list[tuple[list[str], float, float]] = []
    with SecureRoot(root) as sroot:
        for tf, ti in _iter_tar(stream):
            parts = clean_parts(ti.name)
            if not parts:
                continue  # the root itself: the layer's root keeps its own metadata
            base, parent = parts[-1], parts[:-1]
            if base.startswith(WHITEOUT_PREFIX):
                if base == WHITEOUT_OPAQUE:
                    wo.opaque(sroot, parent, unpacked, ti.name)
                elif not base.startswith(WHITEOUT_META_PREFIX):
                    victim = base[len(WHITEOUT_PREFIX):]
                    if victim in ("", ".", ".."):
                        raise InvalidParameter(f"layer tar: bad whiteout {ti.name!r}")
                    wo.whiteout(sroot, parent, victim, ti.name)
                continue
            if remap:
                assert id_map is not None
                ti.uid, ti.gid = _host_ids(id_map, ti)
            link_src: tuple[int, str] | None = None
            if ti.islnk():
                lparts = clean_parts(ti.linkname, "hard link target")
                if not lparts:
                    raise InvalidParameter(f"layer tar: hard link {ti.name!r} to the root")
                try:
                    ldfd = sroot.open_dir(lparts[:-1], what=ti.linkname)
                    lst = os.stat(lparts[-1], dir_fd=ldfd, follow_symlinks=False)
                except FileNotFoundError:
                    raise InvalidParameter(
                        f"layer tar: hard link {ti.name!r} to missing {ti.linkname!r}") from None
                if stat.S_ISDIR(lst.st_mode):
                    os.close(ldfd)
                    raise InvalidParameter(f"layer tar: hard link {ti.name!r} to a directory")
                link_src = (ldfd, lparts[-1])
            try:
                dfd = sroot.open_dir(parent, create=True, what=ti.name, made=made)
                try:
                    size += _apply_entry(tf, ti, dfd, base, link_src, parts, dir_times, wo)
                except tarfile.TarError as e:  # truncated or corrupt data
                    raise InvalidParameter(f"layer tar: {ti.name!r}: {e}") from None
                finally:
                    os.close(dfd)
            finally:
                if link_src is not None:
                    os.close(link_src[0])
            unpacked.add(tuple(parts))
        # directory times last: creating their contents moved them
        for parts, atime, mtime in reversed(dir_times):
            try:
                dfd = sroot.open_dir(parts[:-1])
            except (FileNotFoundError, InvalidParameter):
                continue
            try:
                os.utime(parts[-1], (atime, mtime), dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(dfd)
    return size


def _apply_entry(tf: tarfile.TarFile, ti: tarfile.TarInfo, dfd: int, name: str,
                 link_src: tuple[int, str] | None, parts: list[str],
                 dir_times: list[tuple[list[str], float, float]],
                 whiteouts: WhiteoutFormat) -> int:
    try:
        old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        old = None
    replaced = None
    if old is not None and not (ti.isdir() and stat.S_ISDIR(old.st_mode)):
        remove_at(dfd, name)  # replace; never write through what was there
        replaced, old = old, None
    mode = ti.mode & 0o7777
    xattrs = _entry_xattrs(ti)
    mtime = ti.mtime
    atime = float(ti.pax_headers.get("atime", mtime))
    proc = f"/proc/self/fd/{dfd}/{name}"
    if ti.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            src = tf.extractfile(ti)
            assert src is not None
            _write_sparse(fd, src, ti.size)
            _chown(os.fchown, fd, ti.uid, ti.gid)
            os.fchmod(fd, mode)
            _set_xattrs(fd, xattrs, True)
            os.utime(fd, (atime, mtime))
        finally:
            os.close(fd)
        return ti.size
    if ti.islnk():
        assert link_src is not None
        os.link(link_src[1], name, src_dir_fd=link_src[0], dst_dir_fd=dfd, follow_symlinks=False)
        return 0
    if ti.isdir():
        if old is None:
            os.mkdir(name, 0o700, dir_fd=dfd)
            if replaced is not None:
                whiteouts.dir_replaced(dfd, name, replaced)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        try:
            _chown(os.fchown, fd, ti.uid, ti.gid)
            os.fchmod(fd, mode)
            _set_xattrs(fd, xattrs, True)
        finally:
            os.close(fd)
        dir_times.append((parts, atime, mtime))
        return 0
    if ti.issym():
        os.symlink(ti.linkname, name, dir_fd=dfd)
        _chown(os.chown, name, ti.uid, ti.gid, dir_fd=dfd, follow_symlinks=False)
        _set_xattrs(proc, xattrs, False)
        os.utime(name, (atime, mtime), dir_fd=dfd, follow_symlinks=False)
        return 0
    if ti.ischr() or ti.isblk() or ti.isfifo():
        kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
        dev = os.makedev(ti.devmajor, ti.devminor) if kind != stat.S_IFIFO else 0
        try:
            os.mknod(name, kind | 0o600, dev, dir_fd=dfd)
        except PermissionError:
            if os.geteuid() == 0 or kind == stat.S_IFIFO:
                raise
            log.warning("layer tar: not root, skipping device node %s", ti.name)
            return 0
        # just made by us and not a symlink: the name cannot lead elsewhere
        _chown(os.chown, name, ti.uid, ti.gid, dir_fd=dfd, follow_symlinks=False)
        os.chmod(name, mode, dir_fd=dfd)
        _set_xattrs(proc, xattrs, False)
        os.utime(name, (atime, mtime), dir_fd=dfd, follow_symlinks=False)
        return 0
    raise InvalidParameter(f"layer tar: unsupported entry type {ti.type!r} for {ti.name!r}")


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
