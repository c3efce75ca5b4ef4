"""The one extractor: a tar into a directory, never anything outside it.

A :class:`Policy` says what one kind of destination accepts (see the presets below); the walk is
:class:`~.secureroot.SecureRoot`'s, the archive is read by :class:`~.reader.TarReader` and charged
to a :class:`~.guard.Budget`. What every policy enforces:

* names: no absolute path, no ``..`` component, no NUL, no component over 255 bytes, no path or
  link target over 4095 bytes (Linux's limits, refused before the kernel sees them);
* an existing entry is replaced, never written through (a file replacing a symlink replaces
  the link; a directory entry over a symlink replaces the link);
* symlinks: a relative target that climbs above the destination (counted from where the link
  really lands) is refused; an absolute target is kept, it means the destination's root to
  every reader that follows it through :class:`SecureRoot` (and to the container);
* hard links: the target is an archive path, resolved inside the destination, never a
  directory; a missing target is an error;
* modes are the archive's (``& 0o7777``), times are set last for directories.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import IO

from ...errors import DockyardError, InvalidParameter
from ...idmap import IDMap
from .guard import Budget, uncompressed
from .policy import (
    LAYER,
    OCI_WHITEOUTS,
    SKIP_XATTR_PREFIXES,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    Policy,
    WhiteoutFormat,
)
from .reader import TarEntry, TarReader
from .secureroot import (
    DIR_FLAGS,
    PATH_MAX,
    SecureRoot,
    chown,
    clean_parts,
    is_utf8,
    remove_at,
    set_xattrs,
)

log = logging.getLogger(__name__)

_COPY = 1 << 20
_ZEROS = bytes(_COPY)
#: errors of the file system that the archive's content caused (HTTP 400)
_CLIENT_ERRNOS = {
    errno.ENAMETOOLONG,
    errno.EINVAL,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOENT,
    errno.EMLINK,
    errno.ELOOP,
    errno.EPERM,
    errno.EXDEV,
    errno.ENOTEMPTY,
    errno.EOVERFLOW,
    errno.ERANGE,
    errno.E2BIG,
}


def _rebased(name: str, rebase: tuple[str, str] | None) -> str:
    if rebase is None:
        return name
    old, new = rebase
    stripped = name
    while stripped.startswith("./"):
        stripped = stripped[2:]
    if old in ("", "."):
        return new + "/" + stripped if stripped.strip("./") else new
    if stripped == old or stripped.rstrip("/") == old:
        return new
    if stripped.startswith(old + "/"):
        return new + stripped[len(old) :]
    return name


def _check_symlink(p: Policy, e: TarEntry, depth: int) -> None:
    target = e.linkname
    if not target or "\0" in target:
        raise InvalidParameter(f"{p.label}: symlink {e.name!r} has an empty or NUL-holding target")
    if len(os.fsencode(target)) > PATH_MAX:
        raise InvalidParameter(
            f"{p.label}: the target of symlink {e.name!r} is "
            f"{len(os.fsencode(target))} bytes long (the limit is {PATH_MAX})"
        )
    if target.startswith("/"):
        return
    named = False
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp != "..":
            depth, named = depth + 1, True
            continue
        if named and p.strict_links:
            raise InvalidParameter(
                f"{p.label}: symlink {e.name!r} -> {target!r}: '..' after a "
                "name cannot be checked without following links"
            )
        depth -= 1
        if depth < 0:
            raise InvalidParameter(
                f"{p.label}: symlink {e.name!r} -> {target!r} points outside the destination"
            )


def check_entry(
    e: TarEntry, p: Policy, rebase: tuple[str, str] | None = None
) -> tuple[list[str], list[str] | None]:
    """``(name components, hard link target components)`` of ``e`` once every check that needs
    no file system passed (``[]``: the root itself)."""
    parts = clean_parts(_rebased(e.name, rebase), "entry", p.label, p.utf8_names)
    base = parts[-1] if parts else ""
    if base.startswith(WHITEOUT_PREFIX) and p.whiteouts != "plain":
        if p.whiteouts == "refuse":
            raise InvalidParameter(
                f"{p.label}: {e.name!r} is a whiteout name; whiteouts belong in image layers only"
            )
        victim = base[len(WHITEOUT_PREFIX) :]
        if not base.startswith(WHITEOUT_META_PREFIX) and victim in ("", ".", ".."):
            raise InvalidParameter(f"{p.label}: bad whiteout {e.name!r}")
        return parts, None
    if (e.isdev() and not p.devices) or (e.isfifo() and not p.fifos):
        raise InvalidParameter(f"{p.label}: {e.name!r} is a {e.kind}, which is not allowed here")
    if e.issym():
        _check_symlink(p, e, len(parts) - 1)
        if p.utf8_names and not is_utf8(e.linkname):
            raise InvalidParameter(
                f"{p.label}: the target of symlink {e.name!r} is not valid UTF-8"
            )
    if e.islnk():
        lparts = clean_parts(
            _rebased(e.linkname, rebase), "hard link target", p.label, p.utf8_names
        )
        if not lparts:
            raise InvalidParameter(f"{p.label}: hard link {e.name!r} to the root")
        return parts, lparts
    return parts, None


def validate(
    stream: IO[bytes], policy: Policy = LAYER, *, rebase: tuple[str, str] | None = None
) -> int:
    """Read the uncompressed tar ``stream`` to its end, doing every check :func:`extract`
    does that needs no file system (format, names, types, limits); write nothing. Returns the
    size it would unpack to."""
    budget = Budget(policy.label)
    reader = TarReader(stream, label=policy.label, tick=lambda n: budget.advance(n, reader.pos))
    for e in reader:
        check_entry(e, policy, rebase)
        if e.isreg():
            budget.charge(e.size, e.name, reader.pos + e.stored)
    return budget.total


# -- extraction -------------------------------------------------------------------------------------
class _Extraction:
    def __init__(
        self,
        sroot: SecureRoot,
        policy: Policy,
        whiteouts: WhiteoutFormat,
        id_map: IDMap | None,
        budget: Budget,
    ) -> None:
        self.sroot, self.p, self.wo, self.budget = sroot, policy, whiteouts, budget
        self.remap = id_map if id_map is not None and not id_map.is_identity else None
        self.unpacked: set[tuple[str, ...]] = set()
        self.dir_times: list[tuple[list[str], float, float]] = []
        self.size = 0

    def made(self, dfd: int, name: str, parts: list[str]) -> None:
        if self.remap is not None:
            chown(os.chown, name, *self.remap.root, dir_fd=dfd, follow_symlinks=False)
        self.wo.implied_dir(dfd, name, parts)

    def run(self, reader: TarReader, rebase: tuple[str, str] | None) -> int:
        for e in reader:
            parts, lparts = check_entry(e, self.p, rebase)
            if not parts:
                continue  # the root itself keeps its own metadata
            if e.isreg():
                self.budget.charge(e.size, e.name, reader.pos + e.stored)
            try:
                self.entry(reader, e, parts, lparts)
            except OSError as exc:
                raise _os_error(self.p, e, exc) from None
            except (OverflowError, ValueError) as exc:
                raise InvalidParameter(f"{self.p.label}: {e.name!r}: {exc}") from None
            self.unpacked.add(tuple(parts))
        self.finish()
        return self.size

    def entry(
        self, reader: TarReader, e: TarEntry, parts: list[str], lparts: list[str] | None
    ) -> None:
        base, parent = parts[-1], parts[:-1]
        if base.startswith(WHITEOUT_PREFIX) and self.p.whiteouts == "apply":
            if base == WHITEOUT_OPAQUE:
                self.wo.opaque(self.sroot, parent, self.unpacked, e.name)
            elif not base.startswith(WHITEOUT_META_PREFIX):
                self.wo.whiteout(self.sroot, parent, base[len(WHITEOUT_PREFIX) :], e.name)
            return
        if self.remap is not None:
            try:
                e.uid, e.gid = self.remap.to_host(e.uid, e.gid)
            except ValueError as exc:
                raise InvalidParameter(
                    f"{self.p.label}: {e.name!r} is owned by {e.uid}:{e.gid}, which has no "
                    f"mapping in the user-namespace remapping ({self.remap}): {exc}"
                ) from None
        link_src = self.link_source(e, lparts) if lparts is not None else None
        try:
            dfd, real = self.sroot.resolve(parent, create=True, what=e.name, made=self.made)
            try:
                if e.issym():
                    _check_symlink(self.p, e, len(real))
                self.apply(reader, e, dfd, base, link_src, parts)
            finally:
                os.close(dfd)
        finally:
            if link_src is not None:
                os.close(link_src[0])

    def link_source(self, e: TarEntry, lparts: list[str]) -> tuple[int, str, os.stat_result]:
        try:
            ldfd = self.sroot.open_dir(lparts[:-1], what=e.linkname)
        except (FileNotFoundError, NotADirectoryError):
            ldfd = -1
        try:
            if ldfd < 0:
                raise FileNotFoundError
            lst = os.stat(lparts[-1], dir_fd=ldfd, follow_symlinks=False)
        except FileNotFoundError:
            if ldfd >= 0:
                os.close(ldfd)
            raise InvalidParameter(
                f"{self.p.label}: hard link {e.name!r} to missing {e.linkname!r}"
            ) from None
        if stat.S_ISDIR(lst.st_mode):
            os.close(ldfd)
            raise InvalidParameter(f"{self.p.label}: hard link {e.name!r} to a directory")
        return ldfd, lparts[-1], lst

    def replace(
        self, e: TarEntry, dfd: int, name: str
    ) -> tuple[os.stat_result | None, os.stat_result | None]:
        """Clear the way for ``e`` at ``name``: ``(kept old directory, removed old entry)``."""
        try:
            old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None, None
        if e.isdir() and stat.S_ISDIR(old.st_mode):
            return old, None
        if not self.p.replace_dirs and (e.isdir() or stat.S_ISDIR(old.st_mode)):
            a, b = ("non-directory", "directory") if e.isdir() else ("directory", "non-directory")
            raise InvalidParameter(f"{self.p.label}: cannot overwrite {a} {e.name!r} with {b}")
        remove_at(dfd, name)  # replace; never write through what was there
        return None, old

    def apply(
        self,
        reader: TarReader,
        e: TarEntry,
        dfd: int,
        name: str,
        link_src: tuple[int, str, os.stat_result] | None,
        parts: list[str],
    ) -> None:
        if e.islnk():
            assert link_src is not None
            try:
                old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if (old.st_dev, old.st_ino) == (link_src[2].st_dev, link_src[2].st_ino):
                    return  # already this very file (a link to itself, or a repeated entry)
            except FileNotFoundError:
                pass
        kept, replaced = self.replace(e, dfd, name)
        mode = e.mode if self.p.setuid else e.mode & ~0o6000
        xattrs = {
            k: v
            for k, v in e.xattrs.items()
            if not k.startswith(SKIP_XATTR_PREFIXES)
            and (self.p.all_xattrs or k.startswith("user."))
        }
        times = (e.mtime if e.atime is None else e.atime, e.mtime)
        owner = (e.uid, e.gid) if self.p.owners else None
        if e.isreg():
            self.write_file(reader, e, dfd, name, mode, xattrs, times, owner)
        elif e.islnk():
            assert link_src is not None
            os.link(
                link_src[1], name, src_dir_fd=link_src[0], dst_dir_fd=dfd, follow_symlinks=False
            )
        elif e.isdir():
            if kept is None:
                os.mkdir(name, 0o700, dir_fd=dfd)
                if replaced is not None:
                    self.wo.dir_replaced(dfd, name, replaced)
            fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
            try:
                _set_meta(fd, mode, xattrs, None, owner)
            finally:
                os.close(fd)
            self.dir_times.append((parts, *times))
        else:
            self.special(e, dfd, name, mode, xattrs, times, owner)

    def write_file(
        self,
        reader: TarReader,
        e: TarEntry,
        dfd: int,
        name: str,
        mode: int,
        xattrs: dict[str, bytes],
        times: tuple[float, float],
        owner: tuple[int, int] | None,
    ) -> None:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dfd,
        )
        try:
            for off, n in e.sparse if e.sparse is not None else [(0, e.stored)]:
                os.lseek(fd, off, os.SEEK_SET)
                _copy(reader, fd, n)
            os.ftruncate(fd, e.size)
            _set_meta(fd, mode, xattrs, times, owner)
        finally:
            os.close(fd)
        self.size += e.size

    def special(
        self,
        e: TarEntry,
        dfd: int,
        name: str,
        mode: int,
        xattrs: dict[str, bytes],
        times: tuple[float, float],
        owner: tuple[int, int] | None,
    ) -> None:
        """A symlink, device node or fifo."""
        if e.issym():
            os.symlink(e.linkname, name, dir_fd=dfd)
        else:
            kind = {b"3": stat.S_IFCHR, b"4": stat.S_IFBLK}.get(e.type, stat.S_IFIFO)
            dev = os.makedev(e.devmajor, e.devminor) if kind != stat.S_IFIFO else 0
            try:
                os.mknod(name, kind | 0o600, dev, dir_fd=dfd)
            except PermissionError:
                if os.geteuid() == 0 or kind == stat.S_IFIFO:
                    raise
                log.warning("%s: not root, skipping device node %s", self.p.label, e.name)
                return
        if owner is not None:
            chown(os.chown, name, *owner, dir_fd=dfd, follow_symlinks=False)
        if not e.issym():
            # just made by us and not a symlink: the name cannot lead elsewhere
            os.chmod(name, mode, dir_fd=dfd)
        set_xattrs(f"/proc/self/fd/{dfd}/{name}", xattrs, False)
        os.utime(name, times, dir_fd=dfd, follow_symlinks=False)

    def finish(self) -> None:
        # directory times last: creating their contents moved them
        for parts, atime, mtime in reversed(self.dir_times):
            try:
                dfd = self.sroot.open_dir(parts[:-1])
            except (FileNotFoundError, InvalidParameter):
                continue
            try:
                os.utime(parts[-1], (atime, mtime), dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(dfd)


def _set_meta(
    fd: int,
    mode: int,
    xattrs: dict[str, bytes],
    times: tuple[float, float] | None,
    owner: tuple[int, int] | None,
) -> None:
    if owner is not None:
        chown(os.fchown, fd, *owner)
    os.fchmod(fd, mode)  # after chown, which clears setuid bits
    set_xattrs(fd, xattrs, True)
    if times is not None:
        os.utime(fd, times)


def _copy(reader: TarReader, fd: int, n: int) -> None:
    """Copy ``n`` bytes of the current entry to ``fd``, leaving holes for whole zero chunks."""
    while n:
        chunk = reader.read(min(n, _COPY))
        if len(chunk) == _COPY and chunk == _ZEROS:
            os.lseek(fd, _COPY, os.SEEK_CUR)
        else:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        n -= len(chunk)


def _os_error(p: Policy, e: TarEntry, exc: OSError) -> DockyardError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DockyardError(f"{p.label}: no space left on the device while unpacking {e.name!r}")
    if exc.errno in _CLIENT_ERRNOS:
        return InvalidParameter(
            f"{p.label}: cannot unpack {e.kind} {e.name!r}: {exc.strerror or exc}"
        )
    return DockyardError(f"{p.label}: unpacking {e.name!r} failed: {exc}")


def extract(
    stream: IO[bytes],
    dest: str | int,
    policy: Policy = LAYER,
    *,
    whiteouts: WhiteoutFormat | None = None,
    id_map: IDMap | None = None,
    rebase: tuple[str, str] | None = None,
) -> int:
    """Unpack the uncompressed tar ``stream`` into ``dest`` (a directory path, or an
    O_DIRECTORY descriptor, which is not closed) as ``policy`` says; return the bytes of file
    data written. ``id_map``: entries are chowned to ``id_map.to_host`` of their owners (an owner
    without a mapping is refused) and directories made for entries that have none of their own
    to ``id_map.root``. ``rebase=(old, new)``: names (and hard link targets) whose first
    component is ``old`` start with ``new`` instead (``docker cp`` to another name).

    A refused archive leaves what was unpacked before the bad entry: the caller discards the
    destination (a layer, a build context) or uses :func:`extract_file`, which checks first.
    """
    with SecureRoot(dest, policy.label) as sroot:
        log.debug("%s: unpacking into %s", policy.label, dest)
        budget = Budget(policy.label, sroot.fd)
        reader = TarReader(stream, label=policy.label, tick=lambda n: budget.advance(n, reader.pos))
        return _Extraction(sroot, policy, whiteouts or OCI_WHITEOUTS, id_map, budget).run(
            reader, rebase
        )


def extract_file(
    path: str,
    dest: str | int,
    policy: Policy = LAYER,
    *,
    check_first: bool = True,
    whiteouts: WhiteoutFormat | None = None,
    id_map: IDMap | None = None,
    rebase: tuple[str, str] | None = None,
) -> int:
    """:func:`extract` the archive file ``path``, which may be compressed. ``check_first``:
    :func:`validate` the whole archive before writing anything, so that a corrupt, truncated,
    too large or refused archive leaves the destination untouched (a refusal that depends on
    what is on disk — a hard link to a file that is not there, a symlink loop — can still
    leave the entries before it, as with dockerd)."""
    with open(path, "rb") as f:
        if check_first:
            with uncompressed(f) as src:
                validate(src, policy, rebase=rebase)
            f.seek(0)
        with uncompressed(f) as src:
            return extract(src, dest, policy, whiteouts=whiteouts, id_map=id_map, rebase=rebase)


def apply_layer_tar(
    root: str | int,
    stream: IO[bytes],
    whiteouts: WhiteoutFormat | None = None,
    id_map: IDMap | None = None,
) -> int:
    """Unpack the uncompressed layer tar ``stream`` into directory ``root`` and return the sum of
    the sizes of its regular files: :func:`extract` with the :data:`LAYER` policy. The tar's
    entry for the root itself (``./``) is not applied: ``root`` keeps its owner, mode and times.
    On a refused or truncated tar the layer is left partly written (never anything outside it)
    and the caller must remove it, as moby's layer store does when ``ApplyDiff`` fails."""
    return extract(stream, root, LAYER, whiteouts=whiteouts, id_map=id_map)
