"""Copying files in and out of a container's root file system (``docker cp``).

Paths are resolved inside the rootfs one component at a time, never following a symlink out of
it (:class:`~dockyard.hookspecs.host.tarsafe.SecureRoot`); ``..`` is resolved lexically against the
container's ``/``. Archives going in are unpacked by the one safe extractor
(:mod:`dockyard.hookspecs.host.tarsafe`, policy ``COPY_IN``), so nothing is ever written outside the
container.

With ``userns-remap`` the caller passes the graph driver's ``id_map``: archives going in are
chowned to host IDs (``to_host``; an owner without a mapping is refused), archives coming out
carry container IDs (``to_container``), as Docker's ``docker cp`` and ``docker export``.
"""
from __future__ import annotations

import base64
import datetime
import json
import os
import posixpath
import stat
import tarfile
from typing import IO, Any

from dockyard.hookspecs.errors import InvalidParameter, NotFound
from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.host.layertar import stream_from_writer
from dockyard.hookspecs.host.tarsafe import SecureRoot

# Go's os.FileMode bits, which the docker CLI reads from the stat header
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET, _GO_CHARDEV = (
    1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24, 1 << 21)
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


def _parts(path: str) -> list[str]:
    if not path:
        raise InvalidParameter("path must not be empty")
    if "\0" in path:
        raise InvalidParameter("path contains NUL")
    return [p for p in posixpath.normpath("/" + path).split("/") if p]


class Resolved:
    """``path`` inside ``rootfs``: an fd of its parent directory and its last name (an fd of
    the root and ``"."`` for ``/``)."""

    def __init__(self, rootfs: str, path: str) -> None:
        parts = _parts(path)
        self.name = parts[-1] if parts else "."
        with SecureRoot(rootfs) as sroot:
            try:
                self.dir_fd = sroot.open_dir(parts[:-1], what=path)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the file {path} in container") from None
        self.path = path

    def close(self) -> None:
        os.close(self.dir_fd)

    def __enter__(self) -> "Resolved":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def lstat(self) -> os.stat_result:
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {self.path} in container") from None

    @property
    def host_path(self) -> str:
        """A path the host can open, anchored at the securely resolved parent."""
        return f"/proc/self/fd/{self.dir_fd}/{self.name}"


def go_mode(st: os.stat_result) -> int:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    kind = stat.S_IFMT(st.st_mode)
    mode |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV}.get(kind, 0)
    if st.st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st.st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st.st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def stat_header(rootfs: str, path: str) -> str:
    """The ``X-Docker-Container-Path-Stat`` header: base64 of ``{name, size, mode, mtime,
    linkTarget}``."""
    with Resolved(rootfs, path) as r:
        st = r.lstat()
        link = os.readlink(r.name, dir_fd=r.dir_fd) if stat.S_ISLNK(st.st_mode) else ""
    mtime = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
    doc = {"name": posixpath.basename(posixpath.normpath("/" + path)) or "/", "size": st.st_size,
           "mode": go_mode(st), "mtime": mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
           "linkTarget": link}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def tar_out(rootfs: str, path: str, on_done: Any = None, id_map: IDMap | None = None) -> IO[bytes]:
    """A tar stream of ``path`` (named by its base name; symlinks inside are kept as links).
    Owners are written as ``id_map.to_container(uid, gid)`` (host IDs without a mapping as
    65534, with no user or group names)."""
    return tar_stream(resolve_out(rootfs, path), on_done, id_map)


def resolve_out(rootfs: str, path: str) -> Resolved:
    """``path`` resolved for :func:`tar_stream` (NotFound if it is not there)."""
    r = Resolved(rootfs, path)
    try:
        r.lstat()
    except BaseException:
        r.close()
        raise
    return r


def tar_stream(r: Resolved, on_done: Any = None, id_map: IDMap | None = None) -> IO[bytes]:
    """:func:`tar_out` of what ``r`` resolved (``r`` is closed once written). The writer thread
    reaches the files through ``r``'s descriptor, so it may be started in another mount
    namespace than the one ``r`` was resolved in (``docker cp`` resolves in a container's view,
    whose mounts the writer then sees, and releases the container from the host's)."""
    arcname = r.name if r.name != "." else "."
    shift = None
    if id_map is not None and not id_map.is_identity:
        def shift(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid, ti.gid = id_map.to_container(ti.uid, ti.gid)
            ti.uname = ti.gname = ""  # the host's names of shifted IDs mean nothing inside
            return ti

    def write(out: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(r.host_path, arcname=arcname, recursive=True, filter=shift)
        finally:
            r.close()

    return stream_from_writer(write, on_done)


def extract_in(rootfs: str, path: str, source: str | IO[bytes], id_map: IDMap | None = None, *,
               no_overwrite_dir_nondir: bool = False, check_first: bool = True) -> int:
    """Unpack a tar into directory ``path`` of the container: ``source`` is a file (maybe
    compressed; with ``check_first`` it is checked whole before anything is written) or an
    uncompressed stream. Entries are owned by ``id_map.to_host`` of their tar owner
    (InvalidParameter for one with no mapping); whiteout names are refused (they would act as
    whiteouts once the container is committed). ``no_overwrite_dir_nondir``: dockerd's
    ``noOverwriteDirNonDir`` (a directory is never replaced by a non-directory, nor the reverse)."""
    policy = tarsafe.COPY_IN
    if no_overwrite_dir_nondir:
        policy = tarsafe.replace_policy(policy, replace_dirs=False)
    with Resolved(rootfs, path) as r:
        st = r.lstat()
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            raise InvalidParameter(f"extraction point {path} is not a directory")
        # the directory itself, found by the safe walk (a symlink to a directory inside the
        # rootfs is followed inside it); unpacking goes on from this descriptor, never by path
        with SecureRoot(rootfs) as sroot:
            try:
                fd = sroot.open_dir(_parts(path), what=path)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the file {path} in container") from None
    try:
        if isinstance(source, str):
            return tarsafe.extract_file(source, fd, policy, id_map=id_map, check_first=check_first)
        return tarsafe.extract(source, fd, policy, id_map=id_map)
    finally:
        os.close(fd)
