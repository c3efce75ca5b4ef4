"""Container health checks (``HEALTHCHECK``, ``docker run --health-*``), as dockerd runs them.

A running container with a check gets one asyncio task that runs the probe through the exec
driver every ``Interval`` (``StartInterval`` during ``StartPeriod``), ``Timeout`` each, and keeps
``State.Health``: ``starting`` until the first success, ``healthy``, or ``unhealthy`` after
``Retries`` failures in a row (failures inside the start period do not count, a success there
ends it), with the last five results in ``Log``. A change of status emits dockerd's
``health_status: <status>`` event. The task ends with the container.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from typing import Any

from dockyard.hookspecs.errors import DockyardError, InvalidParameter
from dockyard.hookspecs.host.streams import iter_frames
from dockyard.hookspecs.host.timefmt import rfc3339

log = logging.getLogger(__name__)

NS = 1_000_000_000
DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "StartPeriod": 0, "Retries": 3,
            "StartInterval": 5 * NS}
MAX_OUTPUT = 4096
LOG_KEEP = 5


def effective(image_check: dict[str, Any] | None, own: dict[str, Any] | None) -> dict[str, Any] | None:
    """The check a container runs: its own fields over the image's (zero means "inherit"),
    ``None`` for none or ``["NONE"]``. InvalidParameter for a malformed one."""
    merged = dict(image_check or {})
    for key, value in (own or {}).items():
        if key == "Test" and value:
            merged["Test"] = value
        elif key != "Test" and value:
            merged[key] = value
    test = merged.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise InvalidParameter(f"invalid healthcheck test {test!r}: CMD, CMD-SHELL or NONE")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        v = merged.get(key) or 0
        if not isinstance(v, int) or (v and v < NS // 1000):
            raise InvalidParameter(f"Healthcheck.{key} must be at least 1ms (in nanoseconds)")
    if not isinstance(merged.get("Retries") or 0, int) or (merged.get("Retries") or 0) < 0:
        raise InvalidParameter("Healthcheck.Retries must be a non-negative integer")
    return merged


class HealthMonitor:
    def __init__(self, service: Any, cid: str, check: dict[str, Any]) -> None:
        self.svc, self.cid = service, cid
        self.check = {k: check.get(k) or v for k, v in DEFAULTS.items()}
        self.check["Test"] = check["Test"]
        #: the end of the start period; a success inside it ends it at once
        self.period_end = time.time() + self.check["StartPeriod"] / NS

    def args(self, c: dict[str, Any]) -> list[str]:
        test = self.check["Test"]
        if test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", test[1]]
        return list(test[1:])

    async def run(self) -> None:
        c = self.svc.get(self.cid)
        c["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.svc.save(c)
        while True:
            in_start = time.time() < self.period_end
            await asyncio.sleep(self.check["StartInterval" if in_start else "Interval"] / NS)
            if not c["State"]["Running"]:
                return
            if c["State"].get("Paused"):
                continue
            result = await self.probe(c)
            self.record(c, result, time.time() < self.period_end)

    async def probe(self, c: dict[str, Any]) -> dict[str, Any]:
        from .execs import exec_event
        eid = secrets.token_hex(32)
        drv = self.svc.drv(c["Id"])
        start = time.time()
        user = c["Config"].get("User") or ""
        process: dict[str, Any] = {"args": self.args(c), "env": [],
                                   "cwd": c["Config"].get("WorkingDir") or "/",
                                   "user": {"username": user}}
        output, code = b"", -1
        pid = 0
        exec_event(self.svc.d, c, "exec_create", eid, process["args"])
        exec_event(self.svc.d, c, "exec_start", eid, process["args"])
        try:
            pid, streams = await drv.exec(self.cid, eid, process, tty=False, stdin=False)
            try:
                async def collect() -> bytes:
                    data = b""
                    while chunk := await streams.reader.read(65536):
                        data += chunk
                    return data
                raw = await asyncio.wait_for(collect(), self.check["Timeout"] / NS)
                code = await asyncio.wait_for(drv.exec_wait(eid), 5)
                output = _demux(raw)
                exec_event(self.svc.d, c, "exec_die", eid, [], exitCode=str(code))
            except asyncio.TimeoutError:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                output = (f"Health check exceeded timeout "
                          f"({self.check['Timeout'] / NS:g}s)").encode()
                code = -1
            finally:
                streams.close()
        except DockyardError as exc:
            output, code = exc.message.encode(), getattr(exc, "exit_code", 1) or 1
        finally:
            with contextlib.suppress(Exception):
                await drv.exec_forget(eid)
        return {"Start": rfc3339(start), "End": rfc3339(time.time()), "ExitCode": code,
                "Output": output[:MAX_OUTPUT].decode("utf-8", "replace")}

    def record(self, c: dict[str, Any], result: dict[str, Any], in_start: bool) -> None:
        health = c["State"].setdefault("Health", {"Status": "starting", "FailingStreak": 0, "Log": []})
        before = health["Status"]
        health["Log"] = (health.get("Log") or [])[-(LOG_KEEP - 1):] + [result]
        if result["ExitCode"] == 0:
            health["FailingStreak"] = 0
            health["Status"] = "healthy"
            self.period_end = 0.0
        elif not in_start or before != "starting":
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= self.check["Retries"]:
                health["Status"] = "unhealthy"
        self.svc.save(c)
        if health["Status"] != before:
            self.svc._event(f"health_status: {health['Status']}", c)


def _demux(raw: bytes) -> bytes:
    """The exec stream's frames, stdout and stderr in the order they came, as plain bytes (a
    probe killed in the middle of a write leaves a partial last frame: kept)."""
    return b"".join(data for _, data in iter_frames(raw, strict=False))
