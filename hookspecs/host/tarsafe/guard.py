"""Bounds on unpacking: size limits, free space, cancellation; and decompression.

An archive is charged what it claims before anything of it is written: every regular file's
size (a sparse file's *real* size) is added up and refused, with a clear error, as soon as the
total would exceed

* ``max_size`` (daemon.json ``max-unpack-size``),
* the free space of the target file system, less a margin,
* ``max_ratio`` times the size of the archive as received, compressed or not (daemon.json
  ``max-unpack-ratio``), once the total is past ``ratio_floor``. When the input's size is
  unknown (a stream), the bytes read so far stand in for it.

Work stops at the next chunk (1 MiB) or entry when the cancel event of the current
:func:`cancel_scope` is set (a client that went away) or :func:`cancel_all` was called (the
daemon is stopping); it raises :class:`UnpackCancelled`.
"""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import gzip
import io
import logging
import lzma
import os
import stat
import threading
from dataclasses import dataclass
from typing import IO, Any, Iterator

from ...errors import DockyardError, InvalidParameter
from ..units import bytes_size

log = logging.getLogger(__name__)


class UnpackCancelled(DockyardError):
    """Unpacking stopped: its client went away or the daemon is stopping. HTTP 503."""

    status = 503


class UnpackLimitExceeded(InvalidParameter):
    """The archive would unpack to more than a limit allows. HTTP 400."""


@dataclass(frozen=True)
class Limits:
    """How much one archive may unpack to. 0 turns a limit off."""

    #: bytes of file data per archive
    max_size: int = 256 << 30
    #: bytes of file data per byte of archive (as received: a gzip bomb's ratio is ~1000)
    max_ratio: int = 1000
    #: totals below this never fail the ratio test (small archives of zeros are fine)
    ratio_floor: int = 1 << 30
    #: free space left on the target file system (at most 5% of its size)
    free_margin: int = 256 << 20


_limits = [Limits()]
_shutdown = threading.Event()
_cancel: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "dockyard_tarsafe_cancel", default=None
)
_source: contextvars.ContextVar["Meter | None"] = contextvars.ContextVar(
    "dockyard_tarsafe_source", default=None
)


def configure(limits: Limits) -> None:
    """Set the limits of every unpacking in this process (the daemon calls it at start-up)."""
    _limits[0] = limits


def current_limits() -> Limits:
    return _limits[0]


def cancel_all() -> None:
    """Stop every unpacking in this process, now and from now on (daemon shutdown)."""
    _shutdown.set()


@contextlib.contextmanager
def cancel_scope(event: threading.Event) -> Iterator[threading.Event]:
    """Unpacking done inside the block (in this thread, or in threads started from it with
    ``asyncio.to_thread``, which copies the context) stops once ``event`` is set."""
    token = _cancel.set(event)
    try:
        yield event
    finally:
        _cancel.reset(token)


def check_cancelled() -> None:
    """Raise :class:`UnpackCancelled` if the work of the current scope should stop."""
    if _shutdown.is_set():
        raise UnpackCancelled("unpacking stopped: the daemon is shutting down")
    ev = _cancel.get()
    if ev is not None and ev.is_set():
        raise UnpackCancelled("unpacking stopped: the client went away")


def input_size(raw: IO[bytes]) -> int | None:
    """The bytes left in ``raw`` when it is a regular file (None when that is unknown)."""
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        st = os.fstat(raw.fileno())
        if stat.S_ISREG(st.st_mode):
            return st.st_size - raw.tell()
    return None


class Meter(io.RawIOBase):
    """Counts the bytes read through it; ``total`` is the input's whole size when known."""

    def __init__(self, raw: IO[bytes], total: int | None = None) -> None:
        self.raw, self.count = raw, 0
        self.total = input_size(raw) if total is None else total

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        check_cancelled()
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def source(raw: IO[bytes], total: int | None = None) -> Iterator[Meter]:
    """Read the archive through the returned :class:`Meter` inside the block (decompress
    *it*): unpacking done in the block compares what it unpacks with what came in. ``total``:
    the input's size (found with ``fstat`` when ``raw`` is a regular file)."""
    meter = Meter(raw, total)
    token = _source.set(meter)
    try:
        yield meter
    finally:
        _source.reset(token)


class Budget:
    """The accounting of one pass over one archive (see the module docstring)."""

    def __init__(self, label: str, dest_fd: int | None = None) -> None:
        self.label, self.limits = label, current_limits()
        self.meter = _source.get()
        self.total = 0
        self.room: int | None = None
        if dest_fd is not None:
            st = os.fstatvfs(dest_fd)
            margin = min(self.limits.free_margin, st.f_blocks * st.f_frsize // 20)
            self.room = st.f_bavail * st.f_frsize - margin

    def charge(self, size: int, name: str, read_so_far: int) -> None:
        """Account for ``size`` bytes of entry ``name``; ``read_so_far``: tar bytes read,
        this entry's data included (the input's size when nothing better is known)."""
        check_cancelled()
        self.total += size
        lim, what = self.limits, f"{self.label}: {name!r} would make the archive unpack to"
        if lim.max_size and self.total > lim.max_size:
            raise UnpackLimitExceeded(
                f"{what} more than {bytes_size(lim.max_size)} (daemon.json max-unpack-size)"
            )
        if self.room is not None and self.total > self.room:
            raise UnpackLimitExceeded(
                f"{what} {bytes_size(self.total)}, more than the free space "
                f"of the target file system ({bytes_size(max(self.room, 0))})"
            )
        known = self.meter.total if self.meter is not None else None
        self._ratio(known if known is not None else read_so_far, what)

    def advance(self, nbytes: int, unpacked: int) -> None:
        """Called for every chunk read: stop when cancelled; check the ratio against the
        compressed bytes read so far when the input's size is unknown."""
        check_cancelled()
        if self.meter is not None and self.meter.total is None:
            self._ratio(self.meter.count, f"{self.label}: the archive unpacks to", unpacked)

    def _ratio(self, came_in: int, what: str, amount: int | None = None) -> None:
        lim = self.limits
        amount = self.total if amount is None else amount
        if lim.max_ratio and amount > max(lim.ratio_floor, lim.max_ratio * came_in):
            raise UnpackLimitExceeded(
                f"{what} {bytes_size(amount)} from {bytes_size(came_in)} of input, more than "
                f"{lim.max_ratio} times its size (daemon.json max-unpack-ratio)"
            )


# -- decompression ---------------------------------------------------------------------------
class _Peekable:
    def __init__(self, raw: IO[bytes] | io.RawIOBase) -> None:
        self.raw, self.head = raw, raw.read(6)

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            if len(data) < size:
                data += self.raw.read(size - len(data))
            return data
        return self.raw.read(size)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Nothing to release: the caller owns ``raw``."""


class _Decompressing(io.RawIOBase):
    """A decompressor's output; its errors become InvalidParameter naming the format."""

    def __init__(self, inner: Any, fmt: str) -> None:
        self._inner, self._fmt = inner, fmt

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except DockyardError:
            raise
        except (OSError, EOFError, ValueError, lzma.LZMAError, RuntimeError) as e:
            raise InvalidParameter(f"corrupt {self._fmt} data: {e or type(e).__name__}") from None
        except Exception as e:  # noqa: BLE001 - zlib/isal/zstd errors have no common base
            raise InvalidParameter(f"corrupt {self._fmt} data: {e or type(e).__name__}") from None

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._inner.close()
        super().close()


def _wrap(inner: Any, fmt: str) -> IO[bytes]:
    return _Decompressing(inner, fmt)  # type: ignore[return-value]  # a RawIOBase reads as IO


def decompressed(stream: IO[bytes] | io.RawIOBase) -> IO[bytes]:
    """The uncompressed view of ``stream``: gzip, bzip2, xz and zstd are recognised by their
    magic bytes, anything else is passed through. Corrupt compressed data reads as
    InvalidParameter. Close the result when done (a gzip reader runs a thread)."""
    peek = _Peekable(stream)
    head = peek.head
    p: Any = peek  # a file object for the decompressors; typeshed wants real files
    if head.startswith(b"\x1f\x8b"):
        try:
            # isal decompresses in its own thread (it releases the GIL): gunzip runs on one
            # core while the tar is unpacked on another
            from isal import igzip_threaded

            return _wrap(igzip_threaded.open(p, "rb", threads=1), "gzip")
        except ImportError:
            return _wrap(gzip.GzipFile(fileobj=p, mode="rb"), "gzip")
    if head.startswith(b"BZh"):
        return _wrap(bz2.BZ2File(p, "rb"), "bzip2")
    if head.startswith(b"\xfd7zXZ\x00"):
        return _wrap(lzma.LZMAFile(p, "rb"), "xz")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard
        except ImportError:
            raise InvalidParameter(
                "zstd-compressed data, but the zstandard module is not installed"
            ) from None
        return _wrap(zstandard.ZstdDecompressor().stream_reader(p), "zstd")
    return p


@contextlib.contextmanager
def uncompressed(raw: IO[bytes], total: int | None = None) -> Iterator[IO[bytes]]:
    """``raw`` — the archive as received, maybe compressed — as an uncompressed stream for the
    block, declared as its :func:`source` (for the ratio limit); the decompressor is closed
    after."""
    with source(raw, total) as meter:
        plain = decompressed(meter)
        try:
            yield plain
        finally:
            plain.close()
