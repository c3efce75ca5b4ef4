"""Attaching to a container and reading its json-file log."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any, AsyncIterator

from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter
from dockyard.hookspecs.execdriver import AttachStreams

from ..attach import PendingAttach, check_attachable, exit_being_recorded, no_live_output
from .config import parse_time
from .running import Running

log = logging.getLogger(__name__)


class Logs(Running):
    # -- attach / logs --------------------------------------------------------------------------
    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
                     stream: bool = True, logs: bool = False) -> tuple[dict[str, Any], AttachStreams]:
        """An attach session; without ``stream`` (``logs=1`` alone) one with no live output.
        ``logs``: the log is to be replayed first (its driver must be readable)."""
        c = self.get(ref)
        if logs:
            _check_readable(c)
        check_attachable(c, ref)
        rt = self.rt(c["Id"])
        stdin = stdin and c["Config"]["OpenStdin"]
        self._event("attach", c)
        if not stream:
            return c, no_live_output()
        if c["State"]["Running"]:
            await exit_being_recorded(self.drv(c["Id"]), c, self._exit_future(c))
        async with rt.lock:
            if not c["State"]["Running"]:
                try:
                    await self._prepare(c)
                except DockyardError as exc:  # the start will say why (see core.attach)
                    log.info("attach to %s before a start that cannot work: %s", c["Id"][:12], exc)
                    pending = PendingAttach(stdin, stdout, stderr)
                    rt.pending.append(pending)
                    return c, pending
            streams = await self.drv(c["Id"]).attach(c["Id"], stdin=stdin, stdout=stdout, stderr=stderr)
        return c, streams

    async def resize(self, ref: str, h: int, w: int) -> None:
        c = self.get(ref)
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id'][:12]} is not running")
        await self.drv(c["Id"]).resize(c["Id"], h, w)
        self._event("resize", c, height=str(h), width=str(w))

    def logs(self, ref: str, *, stdout: bool, stderr: bool, follow: bool, tail: str,
             since: float, until: float, timestamps: bool) -> AsyncIterator[tuple[int, bytes]]:
        """``(stream, bytes)`` from the json-file log; with ``follow`` until the container
        stops. The container and its log driver are checked now, before anything is read."""
        c = self.get(ref)
        _check_readable(c)
        return self._log_records(c, stdout=stdout, stderr=stderr, follow=follow, tail=tail,
                                 since=since, until=until, timestamps=timestamps)

    async def _log_records(self, c: dict[str, Any], *, stdout: bool, stderr: bool, follow: bool,
                           tail: str, since: float, until: float,
                           timestamps: bool) -> AsyncIterator[tuple[int, bytes]]:
        path = c["LogPath"]
        want = {"stdout": stdout, "stderr": stderr}
        if c["State"]["Running"]:  # what the process printed so far is in the log first
            with contextlib.suppress(DockyardError):
                await self.drv(c["Id"]).sync_output(c["Id"])
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: f.close())
            # rotated files first, oldest first (max-file), then the current one
            lines = []
            for i in range(int((c["HostConfig"].get("LogConfig") or {}).get("Config", {})
                               .get("max-file") or 1) - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError), open(f"{path}.{i}", "rb") as old:
                    lines += [line for line in old.readlines() if line.endswith(b"\n")]
            lines += f.readlines()
            if not lines or lines[-1].endswith(b"\n"):
                partial = b""
            else:
                partial = lines.pop()
            if tail not in ("", "all"):
                try:
                    n = int(tail)
                except ValueError:
                    raise InvalidParameter(f"invalid tail value {tail!r}") from None
                lines = lines[-n:] if n > 0 else []
            for line in lines:
                item = self._log_item(line, want, since, until, timestamps)
                if item:
                    yield item
            if not follow:
                return
            buf = partial
            while True:
                chunk = f.read()
                if chunk:
                    buf += chunk
                    *complete, buf = buf.split(b"\n")
                    for line in complete:
                        item = self._log_item(line, want, since, until, timestamps)
                        if item:
                            yield item
                    continue
                try:  # rotated (renamed or truncated): go on with the file of that name
                    st = os.stat(path)
                    if st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell():
                        f.close()
                        f = open(path, "rb")
                        buf = b""
                        continue
                except FileNotFoundError:
                    pass
                cur = self._cache.get(c["Id"])
                if cur is None or not cur["State"]["Running"]:
                    break
                await asyncio.sleep(0.05)

    @staticmethod
    def _log_item(line: bytes, want: dict[str, bool], since: float, until: float,
                  timestamps: bool) -> tuple[int, bytes] | None:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        stream = rec.get("stream", "stdout")
        if not want.get(stream):
            return None
        ts = rec.get("time", "")
        if since or until:
            t = parse_time(ts)
            if (since and t < since) or (until and t > until):
                return None
        data = rec.get("log", "").encode("utf-8", "surrogateescape")
        if timestamps:
            data = ts.encode() + b" " + data
        return (1 if stream == "stdout" else 2), data


def _check_readable(c: dict[str, Any]) -> None:
    if (c["HostConfig"].get("LogConfig") or {}).get("Type") == "none":
        raise InvalidParameter("configured logging driver does not support reading")
