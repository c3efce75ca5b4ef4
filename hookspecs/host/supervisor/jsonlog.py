"""Docker's ``json-file`` log, as the supervisor writes it for every container (``local`` is
taken as ``json-file``; ``none`` writes nothing): one JSON object per line of output, lines
longer than 16 KiB split, rotation by size over ``max-file`` files as dockerd's."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from dockyard.hookspecs.host.timefmt import rfc3339nano

__all__ = ["JsonLog", "LOG_LINE_MAX", "STREAM_NAMES", "write_all"]

log = logging.getLogger("dockyard.supervisor")

LOG_LINE_MAX = 16 * 1024
STREAM_NAMES = {1: "stdout", 2: "stderr"}


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a blocking ``fd``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class JsonLog:
    """Docker's json-file log: one object per line of output (lines longer than 16 KiB split)."""

    def __init__(
        self, path: str, max_size: int = 0, max_files: int = 1, enabled: bool = True
    ) -> None:
        self.path, self.max_size, self.max_files, self.enabled = (
            path,
            max_size,
            max(1, max_files),
            enabled,
        )
        self.partial = {1: b"", 2: b""}
        self.fd = -1
        self.size = 0
        if enabled:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._open()

    @classmethod
    def for_spec(cls, path: str, spec: dict[str, Any]) -> "JsonLog":
        ann = spec.get("annotations") or {}
        return cls(
            path,
            int(ann.get("io.dockyard.log.max-size") or 0),
            int(ann.get("io.dockyard.log.max-file") or 1),
            ann.get("io.dockyard.log.driver", "json-file") != "none",
        )

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        """``<log>`` becomes ``<log>.1`` (``.1`` becomes ``.2``... the oldest goes); with one
        file the log starts over. Readers follow the name (dockerd's json-file)."""
        os.close(self.fd)
        self.fd = -1
        try:
            if self.max_files > 1:
                for i in range(self.max_files - 1, 1, -1):
                    older = f"{self.path}.{i - 1}"
                    if os.path.exists(older):
                        os.replace(older, f"{self.path}.{i}")
                os.replace(self.path, f"{self.path}.1")
            else:
                os.truncate(self.path, 0)
        finally:
            self._open()

    def write(self, stream: int, data: bytes) -> None:
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        out = [line + b"\n" for line in lines]
        while len(rest) >= LOG_LINE_MAX:
            out.append(rest[:LOG_LINE_MAX])
            rest = rest[LOG_LINE_MAX:]
        self.partial[stream] = rest
        if out:
            self._emit(stream, out)

    def _emit(self, stream: int, chunks: list[bytes]) -> None:
        if self.fd < 0:
            return
        ts = rfc3339nano(time.time_ns())
        name = STREAM_NAMES[stream]
        entries = [
            (
                json.dumps(
                    {"log": c.decode("utf-8", "replace"), "stream": name, "time": ts},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                + "\n"
            ).encode()
            for c in chunks
        ]
        try:
            if not self.max_size:
                data = b"".join(entries)
                write_all(self.fd, data)
                self.size += len(data)
                return
            # rotation is decided per entry, as dockerd's: a large burst spreads over files
            batch: list[bytes] = []
            pending = 0
            for entry in entries:
                batch.append(entry)
                pending += len(entry)
                if self.size + pending >= self.max_size:
                    write_all(self.fd, b"".join(batch))
                    self.size += pending
                    batch, pending = [], 0
                    self._rotate()
            if batch:
                write_all(self.fd, b"".join(batch))
                self.size += pending
        except OSError as e:
            log.error("writing log %s: %s", self.path, e)

    def flush(self) -> None:
        for stream in (1, 2):
            if self.partial[stream]:
                self._emit(stream, [self.partial[stream]])
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
