"""Looking at containers: listing and inspecting them (with their sizes), their processes
(``docker top``) and their resource use (``docker stats``)."""
from __future__ import annotations

import asyncio
import shlex
import time
from typing import Any, AsyncIterator

from dockyard.hookspecs.errors import Conflict, DockyardError, NotFound

from .. import stats as stats_doc
from ..filters import Args
from .base import ServiceBase
from .summary import summary

#: seconds between two samples of ``docker stats``'s stream, and before the one a non-streamed
#: answer compares with
STATS_INTERVAL, STATS_PRE_SAMPLE = 1.0, 0.25


class Monitor(ServiceBase):
    async def list_summaries(self, args: Args, all_: bool, limit: int, size: bool) -> list[dict[str, Any]]:
        """``GET /containers/json``: the containers the filters select, newest first; with
        ``size`` (``docker ps -s``) the bytes their writable layers and root file systems hold."""
        from .. import listing
        chosen = listing.containers(self.d, args, all_, limit)
        out = [summary(c, None) for c in chosen]
        if size:
            for s, c in zip(out, chosen):
                s["SizeRw"], s["SizeRootFs"] = await self._sizes(c)
        return out

    async def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        """``GET /containers/{id}/json``: the record's public part; with ``size`` its sizes."""
        c = self.get(ref)
        out = self.public(c)
        if size:  # docker inspect -s / docker container inspect --size
            out["SizeRw"], out["SizeRootFs"] = await self._sizes(c)
        return out

    async def _sizes(self, c: dict[str, Any]) -> tuple[int, int]:
        from ..usage import container_sizes
        return await asyncio.to_thread(container_sizes, self.d, c)

    async def top(self, ref: str, ps_args: str = "") -> dict[str, Any]:
        """Docker's shape: run ``ps`` (``ps_args``, default ``-ef``) on the host and keep the
        rows whose PID is in the container."""
        c = self.get(ref)
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id']} is not running")
        pids = set(await self.drv(c["Id"]).pids(c["Id"]))
        proc = await asyncio.create_subprocess_exec(
            "ps", *shlex.split(ps_args or "-ef"), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise DockyardError(f"Error running ps: {err.decode(errors='replace').strip()}")
        titles, rows = _ps_table(out.decode(errors="replace"))
        col = titles.index("PID")
        procs = []
        for fields in rows:
            try:
                pid = int(fields[col])
            except (IndexError, ValueError):
                continue
            if pid in pids:
                procs.append(fields)
        return {"Titles": titles, "Processes": procs}

    def stats(self, ref: str, stream: bool = True, one_shot: bool = False) -> AsyncIterator[dict[str, Any]]:
        """``docker stats``: the container's samples in dockerd's shape, one a second while it
        runs (``stream``), else one; a single answer compares with a sample taken a moment
        before unless ``one_shot``. The container is looked up now (a 404 before any sample)."""
        c = self.get(ref)
        return _samples(c, self.drv(c["Id"]), stream, one_shot)


async def _samples(c: dict[str, Any], drv: Any, stream: bool, one_shot: bool) -> AsyncIterator[dict[str, Any]]:
    pre, pre_time = None, None
    if not stream and not one_shot:
        pre, pre_time = await _sample(c, drv), time.time()
        await asyncio.sleep(STATS_PRE_SAMPLE)
    while True:
        raw, now = await _sample(c, drv), time.time()
        yield stats_doc.docker_stats(c, raw, pre, now, pre_time, _network_stats(c)) if raw else \
            stats_doc.docker_stats(c, {}, None, now, None, None)
        if not stream or not c["State"]["Running"]:
            return
        pre, pre_time = raw, now
        await asyncio.sleep(STATS_INTERVAL)


async def _sample(c: dict[str, Any], drv: Any) -> Any:
    if not c["State"]["Running"]:
        return {}
    try:
        return await drv.stats(c["Id"])
    except (NotFound, Conflict):
        return {}


def _ps_table(text: str) -> tuple[list[str], list[list[str]]]:
    """``ps``'s output as ``(titles, rows)``; each row split into as many fields as titles (the
    last, the command, keeps its spaces)."""
    lines = text.splitlines()
    if not lines:
        raise DockyardError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise DockyardError("Couldn't find PID field in ps output")
    return titles, [line.split(None, len(titles) - 1) for line in lines[1:]]


def _network_stats(c: dict[str, Any]) -> dict[str, Any] | None:
    if not c["State"]["Running"] or not c["State"].get("Pid") or c.get("_host_net"):
        return None  # the host's interfaces are not the container's (dockerd shows none)
    return stats_doc.network_stats(c["State"]["Pid"])
