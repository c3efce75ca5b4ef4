"""Writing below one directory and never outside it: an fd-anchored, one-component-at-a-time walk.

Every path is resolved from a descriptor of the root with ``openat(O_NOFOLLOW|O_DIRECTORY)``, one
component at a time; a symlink met on the way is followed *inside* the root (an absolute target
from the root, as the container will see it; a relative one from its directory) and one that
climbs above the root is refused. The final component of a path is never followed.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from typing import Any, Callable

from ...errors import InvalidParameter

log = logging.getLogger(__name__)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 40
#: Linux's limits: a name component, and a whole path or symlink target (PATH_MAX less the NUL)
NAME_MAX, PATH_MAX = 255, 4095


def clean_parts(
    name: str, what: str = "entry", label: str = "layer tar", utf8: bool = False
) -> list[str]:
    """Split an archive path into components; refuse absolute paths, ``..``, NUL, names too
    long for Linux and (``utf8``) names that are not valid UTF-8."""
    if name.startswith("/"):
        raise InvalidParameter(f"{label}: {what} {name!r} is an absolute path")
    if "\0" in name:
        raise InvalidParameter(f"{label}: {what} {name!r} contains NUL")
    raw = os.fsencode(name)
    if len(raw) > PATH_MAX:
        raise InvalidParameter(
            f"{label}: {what} {name[:64]!r}... is {len(raw)} bytes long (the limit is {PATH_MAX})"
        )
    if utf8 and not is_utf8(name):
        raise InvalidParameter(f"{label}: {what} {raw!r} is not valid UTF-8")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"{label}: {what} {name!r} has a '..' component")
    for p in parts:
        if len(os.fsencode(p)) > NAME_MAX:
            raise InvalidParameter(
                f"{label}: {what} {name[:64]!r}...: the name {p[:32]!r}... is "
                f"{len(os.fsencode(p))} bytes long (the limit is {NAME_MAX})"
            )
    return parts


def is_utf8(name: str) -> bool:
    """Whether ``name`` (decoded with surrogateescape) was valid UTF-8 in the archive."""
    try:
        os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class SecureRoot:
    """A directory opened once (from a path, or a dup of an O_DIRECTORY descriptor); paths below
    it are resolved one component at a time, never following a symlink out of it."""

    def __init__(self, root: str | int, label: str = "layer tar") -> None:
        self.root, self.label = root, label
        self.fd = os.dup(root) if isinstance(root, int) else os.open(root, DIR_FLAGS)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "SecureRoot":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open_dir(
        self,
        parts: list[str],
        create: bool = False,
        what: str = "",
        made: Callable[[int, str, list[str]], None] | None = None,
    ) -> int:
        """An O_DIRECTORY fd of ``parts`` below the root (caller closes it). Missing
        directories are made (0755) when ``create``, else FileNotFoundError;
        ``made(parent_fd, name, parts)`` is then called for each directory made."""
        return self.resolve(parts, create, what, made)[0]

    def resolve(
        self,
        parts: list[str],
        create: bool = False,
        what: str = "",
        made: Callable[[int, str, list[str]], None] | None = None,
    ) -> tuple[int, list[str]]:
        """:meth:`open_dir`, and the components of where it really is (symlinks followed)."""
        todo = list(parts)
        here: list[str] = []
        fd = os.dup(self.fd)
        links = 0
        what = what or "/".join(parts)
        try:
            while todo:
                name = todo.pop(0)
                if name in ("", "."):
                    continue
                if name == "..":
                    if not here:
                        raise InvalidParameter(
                            f"{self.label}: {what!r} goes through a symlink "
                            "pointing outside the destination"
                        )
                    here.pop()
                    os.close(fd)
                    fd = os.dup(self.fd)
                    todo = here + todo
                    here = []
                    continue
                try:
                    nfd = self._step(fd, name, create, here, made)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    links += 1
                    target = self._link(fd, name, here, what, links)
                    if target.startswith("/"):
                        os.close(fd)
                        fd = os.dup(self.fd)
                        here = []
                    todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                    continue
                os.close(fd)
                fd = nfd
                here.append(name)
            return fd, here
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _step(
        fd: int,
        name: str,
        create: bool,
        here: list[str],
        made: Callable[[int, str, list[str]], None] | None,
    ) -> int:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=fd)
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
            return os.open(name, DIR_FLAGS, dir_fd=fd)

    def _link(self, fd: int, name: str, here: list[str], what: str, links: int) -> str:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            raise InvalidParameter(
                f"{self.label}: {what!r}: {'/'.join(here + [name])!r} is not a directory"
            ) from None
        if links > MAX_SYMLINKS:
            raise InvalidParameter(f"{self.label}: {what!r}: too many symlinks") from None
        return os.readlink(name, dir_fd=fd)


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


def set_xattrs(target: Any, xattrs: dict[str, bytes], follow: bool) -> None:
    """Set ``xattrs`` on ``target`` (a path or fd); file systems without them only warn."""
    for k, v in xattrs.items():
        try:
            os.setxattr(target, k, v, follow_symlinks=follow)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (
                e.errno == errno.EPERM and os.geteuid() != 0
            ):
                log.warning("cannot set xattr %s: %s", k, e)
                continue
            raise


def chown(fn: Any, *args: Any, **kw: Any) -> None:
    """``fn(*args)`` (a chown); refused ownership changes only matter to root."""
    try:
        fn(*args, **kw)
    except PermissionError:
        if os.geteuid() == 0:
            raise
