"""Random access to the members of an archive file (``docker load`` reads its manifest first),
and the test ``ADD`` uses to decide whether a file is a tar.

Built on :class:`~.reader.TarReader`: the archive is checked as it is indexed.
"""

from __future__ import annotations

import io
import os
import posixpath
from typing import IO, Any

from ...errors import InvalidParameter
from .reader import _COPY, TarEntry, TarFormatError, TarReader


def is_tar(stream: IO[bytes]) -> bool:
    """Whether ``stream`` (uncompressed) starts with a tar header (its checksum right), as
    dockerd decides whether ``ADD`` unpacks a file: what follows is checked when it is
    unpacked. Reads one block."""
    try:
        return TarReader(stream)._header() is not None
    except InvalidParameter:
        return False


class _Slice(io.RawIOBase):
    """``length`` bytes of file descriptor ``fd`` from ``offset`` (pread: shareable by threads)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd, self._pos, self._end = fd, offset, offset + length

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._end - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise TarFormatError("archive: unexpected end of file (truncated archive)")
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


class TarIndex:
    """Random access to the members of an uncompressed tar file (a ``docker save`` archive).

    The whole archive is checked when the index is made (headers read, data skipped with
    ``seek``): a corrupt or truncated archive raises :class:`TarFormatError` here. Members are
    found by their normalised name (``./a//b`` is ``a/b``); symlinks and hard links between
    members are followed (``docker save`` links identical layers). :meth:`open` may be called
    from several threads at once.
    """

    def __init__(self, path: str, label: str = "archive") -> None:
        self.label = label
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.entries: dict[str, TarEntry] = {}
            with os.fdopen(os.dup(self._fd), "rb") as f:
                for e in TarReader(f, label=label, seekable=True):
                    self.entries[_norm(e.name)] = e
        except BaseException:
            os.close(self._fd)
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "TarIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get(self, name: str) -> TarEntry | None:
        """The regular-file member ``name`` (links followed), or None."""
        name = _norm(name)
        for _ in range(40):
            e = self.entries.get(name)
            if e is None or e.isreg():
                return e
            if e.issym():
                name = _norm(posixpath.join(posixpath.dirname(name), e.linkname))
            elif e.islnk():
                name = _norm(e.linkname)
            else:
                return None
        raise TarFormatError(f"{self.label}: too many links resolving {name!r}")

    def open(self, name: str) -> IO[bytes]:
        """A reader of member ``name``'s data; KeyError when there is no such file."""
        e = self.get(name)
        if e is None:
            raise KeyError(name)
        if e.sparse is not None:
            raise TarFormatError(
                f"{self.label}: {name!r} is a sparse file, which is not supported here"
            )
        return io.BufferedReader(_Slice(self._fd, e.offset, e.stored), buffer_size=_COPY)


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")
