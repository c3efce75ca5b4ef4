"""Docker's multiplexed stream format, the bytes of an attach, logs or exec stream without a TTY.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). Each frame is an 8-byte header —
the stream number (0 stdin, 1 stdout, 2 stderr, 3 an error of the daemon's), three zero bytes,
the payload's size as a big-endian uint32 — then the payload. With a TTY a stream is raw bytes
and has no frames.
"""

from __future__ import annotations

import struct
from typing import Iterator

# fmt: off
__all__ = ["STDIN", "STDOUT", "STDERR", "SYSTEMERR", "HEADER_SIZE", "frame", "frame_header",
           "parse_header", "iter_frames", "demux"]
# fmt: on

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = _HEADER.size


def frame_header(stream: int, size: int) -> bytes:
    """The 8-byte header of a frame of ``size`` bytes on ``stream``."""
    return _HEADER.pack(stream, size)


def frame(stream: int, data: bytes) -> bytes:
    """``data`` as one frame on ``stream``."""
    return _HEADER.pack(stream, len(data)) + data


def parse_header(header: bytes | bytearray | memoryview) -> tuple[int, int]:
    """``(stream, size)`` of an 8-byte frame header; ValueError for a short one."""
    if len(header) < HEADER_SIZE:
        raise ValueError(f"truncated stream frame header: {bytes(header)!r}")
    stream, size = _HEADER.unpack_from(header)
    return stream, size


def iter_frames(data: bytes, strict: bool = True) -> Iterator[tuple[int, bytes]]:
    """The ``(stream, payload)`` frames of a whole multiplexed stream, in order. A stream that
    ends inside a header or a payload is a ValueError when ``strict``; otherwise its last,
    partial payload is given as it is (a process killed in the middle of a write)."""
    view, pos = memoryview(data), 0
    while pos < len(view):
        if len(view) - pos < HEADER_SIZE and not strict:
            return
        stream, size = parse_header(view[pos : pos + HEADER_SIZE])
        pos += HEADER_SIZE
        if pos + size > len(view) and strict:
            raise ValueError(
                f"truncated stream frame: {size} bytes announced, {len(view) - pos} left"
            )
        yield stream, bytes(view[pos : pos + size])
        pos += size


def demux(data: bytes) -> dict[int, bytes]:
    """A whole multiplexed stream split by stream number (``{1: stdout, 2: stderr}``, only the
    streams present); ValueError when it ends inside a header or a payload."""
    parts: dict[int, list[bytes]] = {}
    for stream, payload in iter_frames(data):
        parts.setdefault(stream, []).append(payload)
    return {stream: b"".join(chunks) for stream, chunks in parts.items()}
