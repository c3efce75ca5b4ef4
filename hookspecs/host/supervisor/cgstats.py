"""``docker stats``'s raw counters from a container's cgroups, the same keys on v1 and v2 (see
``ExecDriver.stats``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dockyard.hookspecs.host import cgroupfiles

from dockyard.hookspecs.host.supervisor.cgroups import _read

if TYPE_CHECKING:
    from dockyard.hookspecs.host.supervisor.cgroups import Cgroups

__all__ = ["stats"]


def kv(path: str) -> dict[str, int]:
    try:
        return cgroupfiles.flat_keyed(_read(path))
    except OSError:
        return {}


def num(path: str) -> int | None:
    try:
        v = _read(path).strip()
    except OSError:
        return None
    return None if v == "max" else int(v)


def stats(cg: Cgroups, dirs: list[str]) -> dict:
    """Raw usage figures of the cgroups ``dirs`` (of ``cg``'s tree)."""
    out: dict = {"cpu": {}, "memory": {}, "pids": {}, "blkio": {}}
    if cg.v2:
        d = cg._dir(dirs, "unified")
        if d is not None:
            _v2(d, out)
        return out
    _v1(cg, dirs, out)
    return out


def _v2(d: str, out: dict) -> None:
    cs = kv(f"{d}/cpu.stat")
    out["cpu"] = {
        "usage_ns": cs.get("usage_usec", 0) * 1000,
        "user_ns": cs.get("user_usec", 0) * 1000,
        "system_ns": cs.get("system_usec", 0) * 1000,
        "throttling": {
            "periods": cs.get("nr_periods", 0),
            "throttled_periods": cs.get("nr_throttled", 0),
            "throttled_time": cs.get("throttled_usec", 0) * 1000,
        },
    }
    out["memory"] = {
        "usage": num(f"{d}/memory.current") or 0,
        "max_usage": num(f"{d}/memory.peak") or 0,
        "limit": num(f"{d}/memory.max"),
        "stats": kv(f"{d}/memory.stat"),
    }
    out["pids"] = {"current": num(f"{d}/pids.current") or 0, "limit": num(f"{d}/pids.max")}
    try:  # as dockerd on cgroup v2: bytes read and written only
        entries = []
        for line in _read(f"{d}/io.stat").splitlines():
            dev, *fields = line.split()
            major, minor = (int(x) for x in dev.split(":"))
            f = dict(x.split("=", 1) for x in fields if "=" in x)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                entries.append(
                    {"major": major, "minor": minor, "op": op, "value": int(f.get(key, 0))}
                )
        out["blkio"]["io_service_bytes_recursive"] = entries
    except OSError:
        pass


def _v1(cg: Cgroups, dirs: list[str], out: dict) -> None:
    d = cg._dir(dirs, "cpuacct")
    if d:
        st = kv(f"{d}/cpuacct.stat")
        hz = os.sysconf("SC_CLK_TCK")
        out["cpu"] = {
            "usage_ns": num(f"{d}/cpuacct.usage") or 0,
            "user_ns": st.get("user", 0) * 1_000_000_000 // hz,
            "system_ns": st.get("system", 0) * 1_000_000_000 // hz,
        }
        try:
            out["cpu"]["percpu_ns"] = [int(x) for x in _read(f"{d}/cpuacct.usage_percpu").split()]
        except OSError:
            pass
    d = cg._dir(dirs, "cpu")
    if d:
        cs = kv(f"{d}/cpu.stat")
        out["cpu"]["throttling"] = {
            "periods": cs.get("nr_periods", 0),
            "throttled_periods": cs.get("nr_throttled", 0),
            "throttled_time": cs.get("throttled_time", 0),
        }
    d = cg._dir(dirs, "memory")
    if d:
        out["memory"] = {
            "usage": num(f"{d}/memory.usage_in_bytes") or 0,
            "max_usage": num(f"{d}/memory.max_usage_in_bytes") or 0,
            "failcnt": num(f"{d}/memory.failcnt") or 0,
            "limit": num(f"{d}/memory.limit_in_bytes"),
            "stats": kv(f"{d}/memory.stat"),
        }
    d = cg._dir(dirs, "pids")
    if d:
        out["pids"] = {"current": num(f"{d}/pids.current") or 0, "limit": num(f"{d}/pids.max")}
    d = cg._dir(dirs, "blkio")
    if d:
        out["blkio"] = _blkio_v1(d)


#: Docker's blkio lists, from the CFQ/BFQ files (when the kernel has them)
BLKIO_V1 = (
    ("io_service_bytes_recursive", "blkio.io_service_bytes_recursive"),
    ("io_serviced_recursive", "blkio.io_serviced_recursive"),
    ("io_queue_recursive", "blkio.io_queued_recursive"),
    ("io_service_time_recursive", "blkio.io_service_time_recursive"),
    ("io_wait_time_recursive", "blkio.io_wait_time_recursive"),
    ("io_merged_recursive", "blkio.io_merged_recursive"),
    ("io_time_recursive", "blkio.time_recursive"),
    ("sectors_recursive", "blkio.sectors_recursive"),
)


def _blkio_v1(d: str) -> dict[str, list[dict]]:
    """As containerd for dockerd: every list (empty when nothing was counted), from the
    CFQ/BFQ files, or, when those count nothing, the throttle files (the only ones most
    devices fill in); entries as the kernel writes them (op ``Read``, ``Write``...)."""

    def entries(fname: str) -> list[dict]:
        out: list[dict] = []
        try:
            text = _read(f"{d}/{fname}")
        except OSError:
            return out
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:  # "Total N" has 2 fields
                major, minor = (int(x) for x in parts[0].split(":"))
                out.append({"major": major, "minor": minor, "op": parts[1], "value": int(parts[2])})
            elif len(parts) == 2 and ":" in parts[0]:  # time / sectors: "maj:min value"
                major, minor = (int(x) for x in parts[0].split(":"))
                out.append({"major": major, "minor": minor, "op": "", "value": int(parts[1])})
        return out

    lists = {key: entries(fname) for key, fname in BLKIO_V1}
    if not any(lists.values()):
        lists["io_service_bytes_recursive"] = entries("blkio.throttle.io_service_bytes_recursive")
        lists["io_serviced_recursive"] = entries("blkio.throttle.io_serviced_recursive")
    return lists
