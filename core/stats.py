"""``GET /containers/{id}/stats``: Docker's stats document, from what the exec driver measures
(cgroup figures, see ``ExecDriver.stats``) and the container's network interfaces."""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.host.timefmt import rfc3339

#: Docker's blkio lists (cgroup v1 has them all; v2 only the first)
BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
              "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
              "io_time_recursive", "sectors_recursive")
#: ``/proc/net/dev`` columns -> Docker's names (``rx_*`` then ``tx_*``)
_NET_FIELDS = {0: "rx_bytes", 1: "rx_packets", 2: "rx_errors", 3: "rx_dropped",
               8: "tx_bytes", 9: "tx_packets", 10: "tx_errors", 11: "tx_dropped"}


def mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def network_stats(pid: int) -> dict[str, dict[str, int]] | None:
    """Per interface counters of the network namespace process ``pid`` is in (its
    ``/proc/<pid>/net/dev``), loopback left out as dockerd does; None when there are none."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    out = {}
    for line in lines:
        name, _, data = line.partition(":")
        name = name.strip()
        cols = data.split()
        if name == "lo" or len(cols) < 16:
            continue
        out[name] = {key: int(cols[i]) for i, key in _NET_FIELDS.items()}
    return out or None


def _cpu(r: dict[str, Any] | None) -> dict[str, Any]:
    if not r:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    cp = r.get("cpu") or {}
    usage = {"total_usage": cp.get("usage_ns", 0), "usage_in_kernelmode": cp.get("system_ns", 0),
             "usage_in_usermode": cp.get("user_ns", 0)}
    if cp.get("percpu_ns"):
        usage["percpu_usage"] = cp["percpu_ns"]
    return {"cpu_usage": usage, "system_cpu_usage": r.get("system_ns", 0),
            "online_cpus": r.get("online_cpus", 0),
            "throttling_data": cp.get("throttling") or {
                "periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _blkio(blk: dict[str, Any] | None) -> dict[str, Any]:
    """As dockerd: the lists the driver measured (empty when nothing was read or written yet),
    null for those it cannot measure (all of them for a container that does not run)."""
    blk = blk or {}
    return {key: (list(blk[key]) if blk.get(key) is not None else None) for key in BLKIO_KEYS}


def docker_stats(c: dict[str, Any], raw: dict[str, Any], pre: dict[str, Any] | None, now: float,
                 pre_time: float | None, networks: dict[str, Any] | None) -> dict[str, Any]:
    """One stats document: ``raw`` (and ``pre``, the sample before, for CPU percentages) as the
    exec driver gave them, ``networks`` from :func:`network_stats`."""
    from .containers import ZERO_TIME

    mem = raw.get("memory") or {}
    total = mem_total()
    limit = mem.get("limit")
    if limit is None or (total and limit > total):
        limit = total
    memory = {"usage": mem.get("usage", 0), "stats": mem.get("stats") or {}, "limit": limit}
    if mem.get("max_usage"):
        memory["max_usage"] = mem["max_usage"]
    if "failcnt" in mem:
        memory["failcnt"] = mem["failcnt"]
    pids = raw.get("pids") or {}
    out = {
        "read": rfc3339(now), "preread": rfc3339(pre_time) if pre_time else ZERO_TIME,
        "pids_stats": {k: v for k, v in (("current", pids.get("current", 0)),
                                         ("limit", pids.get("limit"))) if v is not None},
        "blkio_stats": _blkio(raw.get("blkio")),
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(raw), "precpu_stats": _cpu(pre), "memory_stats": memory,
        "name": c["Name"], "id": c["Id"],
    }
    if networks:
        out["networks"] = networks
    return out
