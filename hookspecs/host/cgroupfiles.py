"""OCI ``linux.resources`` → cgroup file writes, for cgroup v1 and v2, in one place.

Every exec driver that manages cgroups itself (the native one; an OCI runtime does it from the
same spec) turns the same ``linux.resources`` into the same files, so the translation lives
here, in the driver toolkit, as pure functions: :func:`v1_writes` and :func:`v2_writes` return
the writes in the order they must happen, and never drop a field silently — a field a cgroup
version cannot express raises :class:`Untranslatable` naming it (the daemon refuses or discards
it with a warning first, as dockerd does, from :func:`host_support`).

Formats (the kernel's ``Documentation/admin-guide/cgroup-v2.rst`` and ``cgroup-v1/*.rst``; the
conversions are runc's, ``libcontainer/cgroups/fs2`` and ``cgroups/utils.go``):

=====================  ==============================  =======================================
OCI field              v1 file                          v2 file (value)
=====================  ==============================  =======================================
memory.limit           memory.limit_in_bytes            memory.max (bytes, or ``max``)
memory.swap            memory.memsw.limit_in_bytes      memory.swap.max (swap − limit, ``max``)
memory.reservation     memory.soft_limit_in_bytes       memory.low (bytes)
memory.swappiness      memory.swappiness                — (v2 has none)
memory.disableOOMKill  memory.oom_control (1)           — (v2 has none)
pids.limit             pids.max                         pids.max (``max`` for ≤ 0)
cpu.shares             cpu.shares                       cpu.weight (1 + (s−2)·9999/262142)
cpu.quota / period     cpu.cfs_quota_us / _period_us    cpu.max (``$MAX $PERIOD``)
cpu.cpus / mems        cpuset.cpus / cpuset.mems        cpuset.cpus / cpuset.mems
blockIO.weight         blkio.weight (blkio.bfq.weight)  io.weight ``default W'``
                                                        (W' = 1 + (W−10)·9999/990) or
                                                        io.bfq.weight ``default W``
blockIO.weightDevice   blkio.weight_device ``M:m W``    io.weight ``M:m W'``
blockIO.throttle*      blkio.throttle.{read,write}_     io.max ``M:m rbps=N`` (wbps, riops,
                       {bps,iops}_device ``M:m N``      wiops)
=====================  ==============================  =======================================

OOM kills are counted by ``oom_kill N`` in v1's ``memory.oom_control`` and v2's
``memory.events`` (:func:`oom_kills`); a v2 cgroup is empty when ``cgroup.events`` says
``populated 0`` (:func:`events`).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

__all__ = [
    "Write",
    "Untranslatable",
    "v1_writes",
    "v2_writes",
    "memory_swap_v2",
    "cpu_weight",
    "io_weight",
    "oom_kills",
    "events",
    "flat_keyed",
    "unsupported",
    "host_support",
    "Support",
]


class Write(NamedTuple):
    """One write: ``controller`` is the v1 hierarchy (``memory``, ``blkio``...) or ``""`` on
    v2 (one directory); ``file`` the name in the cgroup's directory; ``value`` the text."""

    controller: str
    file: str
    value: str


class Untranslatable(ValueError):
    """A field of ``linux.resources`` this cgroup version has no file for."""


def _s(v: Any) -> str:
    return str(int(v))


def memory_swap_v2(swap: int, limit: int) -> int:
    """v2's ``memory.swap.max`` counts swap alone, OCI's (and v1's memsw) memory + swap: runc's
    ``ConvertMemorySwapToCgroupV2Value``. -1: no limit; 0: not set (no write)."""
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise Untranslatable("memory.swap: a swap limit needs a memory limit")
    if swap < limit:
        raise Untranslatable("memory.swap: memory+swap must be at least the memory limit")
    return swap - limit


def cpu_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2..262144) → v2 ``cpu.weight`` (1..10000), as runc."""
    if not shares:
        return 0
    return max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142))


def io_weight(weight: int) -> int:
    """v1 blkio weight (10..1000) → v2 ``io.weight`` (1..10000), as runc."""
    if not weight:
        return 0
    return max(1, min(10000, 1 + (weight - 10) * 9999 // 990))


def _dev(d: dict[str, Any]) -> str:
    return f"{int(d['major'])}:{int(d['minor'])}"


#: OCI blockIO throttle lists → (v1 file, v2 io.max key)
THROTTLES = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)


def v1_writes(
    res: dict[str, Any], current_memsw: int | None = None, bfq: bool = False
) -> list[Write]:
    """The v1 writes of ``res``. ``current_memsw``: the cgroup's memsw limit now (the kernel
    keeps memory ≤ memsw at every step: memsw is raised first when it grows, the memory limit
    lowered first when it shrinks); ``bfq``: the weight files are ``blkio.bfq.*``."""
    out: list[Write] = []
    mem = res.get("memory") or {}
    if mem.get("kernel") or mem.get("kernelTCP"):
        raise Untranslatable("memory.kernel: kernel memory limits are not supported")
    if mem.get("limit") is not None:
        limit = Write("memory", "memory.limit_in_bytes", _s(mem["limit"]))
        if mem.get("swap"):
            memsw = Write("memory", "memory.memsw.limit_in_bytes", _s(mem["swap"]))
            grows = mem["swap"] < 0 or current_memsw is None or mem["swap"] >= current_memsw
            out += [memsw, limit] if grows else [limit, memsw]
        else:
            out.append(limit)
    elif mem.get("swap"):
        out.append(Write("memory", "memory.memsw.limit_in_bytes", _s(mem["swap"])))
    if mem.get("reservation"):
        out.append(Write("memory", "memory.soft_limit_in_bytes", _s(mem["reservation"])))
    if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
        out.append(Write("memory", "memory.swappiness", _s(mem["swappiness"])))
    if mem.get("disableOOMKiller"):
        out.append(Write("memory", "memory.oom_control", "1"))
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        out.append(Write("pids", "pids.max", "max" if pids["limit"] <= 0 else _s(pids["limit"])))
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        out.append(Write("cpu", "cpu.shares", _s(cpu["shares"])))
    if cpu.get("period"):
        out.append(Write("cpu", "cpu.cfs_period_us", _s(cpu["period"])))
    if cpu.get("quota"):
        out.append(Write("cpu", "cpu.cfs_quota_us", _s(cpu["quota"])))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            out.append(Write("cpuset", f"cpuset.{key}", str(cpu[key])))
    blk = res.get("blockIO") or {}
    prefix = "blkio.bfq." if bfq else "blkio."
    if blk.get("weight"):
        out.append(Write("blkio", prefix + "weight", _s(blk["weight"])))
    for d in blk.get("weightDevice") or ():
        if d.get("weight"):
            out.append(Write("blkio", prefix + "weight_device", f"{_dev(d)} {_s(d['weight'])}"))
    for key, v1file, _ in THROTTLES:
        for d in blk.get(key) or ():
            out.append(Write("blkio", v1file, f"{_dev(d)} {_s(d['rate'])}"))
    return out


def v2_writes(res: dict[str, Any], bfq: bool = False) -> list[Write]:
    """The v2 writes of ``res`` (all in the container's one directory). ``bfq``: the BFQ
    scheduler's ``io.bfq.weight`` (1..1000, v1's scale) is used instead of ``io.weight``.
    Untranslatable for swappiness, disableOOMKiller and kernel memory (v2 has no such file)."""
    out: list[Write] = []
    mem = res.get("memory") or {}
    for key in ("realtimePeriod", "realtimeRuntime"):
        if (res.get("cpu") or {}).get(key):
            raise Untranslatable(f"cpu.{key}: cgroup v2 has no real-time CPU budget")
    for key in ("swappiness", "disableOOMKiller", "kernel", "kernelTCP"):
        value = mem.get(key)
        if value not in (None, False, 0) and not (key == "swappiness" and value == -1):
            raise Untranslatable(f"memory.{key}: cgroup v2 has no equivalent")
    limit = mem.get("limit")
    if limit is not None:
        out.append(Write("", "memory.max", "max" if limit < 0 else _s(limit)))
    if mem.get("swap") is not None or limit == -1:
        given = int(mem.get("swap") or 0)
        swap = memory_swap_v2(given, int(limit or 0))
        if swap or given > 0:  # 0 from swap == limit: no swap at all (as runc)
            out.append(Write("", "memory.swap.max", "max" if swap < 0 else _s(swap)))
    if mem.get("reservation"):
        out.append(Write("", "memory.low", _s(mem["reservation"])))
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        out.append(Write("", "pids.max", "max" if pids["limit"] <= 0 else _s(pids["limit"])))
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        out.append(Write("", "cpu.weight", _s(cpu_weight(cpu["shares"]))))
    if cpu.get("quota") or cpu.get("period"):
        quota = cpu.get("quota") or 0
        text = _s(quota) if quota > 0 else "max"
        if cpu.get("period"):
            text += " " + _s(cpu["period"])
        out.append(Write("", "cpu.max", text))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            out.append(Write("", f"cpuset.{key}", str(cpu[key])))
    out += _io_v2(res.get("blockIO") or {}, bfq)
    return out


def _io_v2(blk: dict[str, Any], bfq: bool) -> list[Write]:
    out: list[Write] = []
    wfile = "io.bfq.weight" if bfq else "io.weight"
    conv = (lambda w: int(w)) if bfq else io_weight
    if blk.get("weight"):
        out.append(Write("", wfile, f"default {conv(blk['weight'])}"))
    for d in blk.get("weightDevice") or ():
        if d.get("weight"):
            out.append(Write("", wfile, f"{_dev(d)} {conv(d['weight'])}"))
    limits: dict[str, list[str]] = {}
    for key, _, v2key in THROTTLES:
        for d in blk.get(key) or ():
            limits.setdefault(_dev(d), []).append(f"{v2key}={_s(d['rate'])}")
    out += [Write("", "io.max", f"{dev} {' '.join(kv)}") for dev, kv in limits.items()]
    return out


def flat_keyed(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``key value`` lines: ``cpu.stat``, ``memory.stat``...); lines
    whose value is not a number are left out."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def oom_kills(text: str) -> int | None:
    """``oom_kill`` of a v1 ``memory.oom_control`` or v2 ``memory.events`` (flat keyed
    ``key value`` lines); None when the kernel does not count it."""
    return flat_keyed(text).get("oom_kill")


def events(text: str) -> dict[str, int]:
    """v2 ``cgroup.events``: ``{"populated": 0|1, "frozen": 0|1}``."""
    return flat_keyed(text)


class Support(NamedTuple):
    """What the host's cgroups can limit (dockerd's ``sysinfo``)."""

    v2: bool
    memory: bool
    swap: bool
    reservation: bool
    swappiness: bool
    oom_kill_disable: bool
    pids: bool
    cpu_shares: bool
    cpu_cfs: bool
    cpuset: bool
    blkio_weight: bool
    blkio_weight_device: bool
    blkio_throttle: bool


def host_support(root: str = "/sys/fs/cgroup") -> Support:
    """Probe the host's cgroup files: the v1 hierarchies' root files, or the v2 controllers
    the root offers its children."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        with open(os.path.join(root, "cgroup.controllers"), encoding="ascii") as f:
            ctrls = set(f.read().split())
        mem, io = "memory" in ctrls, "io" in ctrls
        # memory.swap.max exists in every non-root cgroup when the kernel accounts swap
        swap = mem and os.path.exists("/proc/sys/vm/swappiness") and _swap_accounted()
        return Support(
            True,
            mem,
            swap,
            mem,
            False,
            False,
            "pids" in ctrls,
            "cpu" in ctrls,
            "cpu" in ctrls,
            "cpuset" in ctrls,
            io,
            io,
            io,
        )

    def has(ctrl: str, name: str) -> bool:
        return os.path.exists(os.path.join(root, ctrl, name))

    weight = has("blkio", "blkio.weight") or has("blkio", "blkio.bfq.weight")
    return Support(
        False,
        has("memory", "memory.limit_in_bytes"),
        has("memory", "memory.memsw.limit_in_bytes"),
        has("memory", "memory.soft_limit_in_bytes"),
        has("memory", "memory.swappiness"),
        has("memory", "memory.oom_control"),
        has("pids", "cgroup.procs"),
        has("cpu", "cpu.shares"),
        has("cpu", "cpu.cfs_quota_us"),
        has("cpuset", "cpuset.cpus"),
        weight,
        has("blkio", "blkio.weight_device") or has("blkio", "blkio.bfq.weight_device"),
        has("blkio", "blkio.throttle.read_bps_device"),
    )


#: OCI field -> the Support field a host needs to apply it
NEEDS = {
    "memory.limit": "memory", "memory.swap": "swap", "memory.reservation": "reservation",
    "memory.swappiness": "swappiness", "memory.disableOOMKiller": "oom_kill_disable",
    "pids.limit": "pids", "cpu.shares": "cpu_shares", "cpu.quota": "cpu_cfs",
    "cpu.period": "cpu_cfs", "cpu.cpus": "cpuset", "cpu.mems": "cpuset",
    "blockIO.weight": "blkio_weight", "blockIO.weightDevice": "blkio_weight_device",
    **{f"blockIO.{key}": "blkio_throttle" for key, _, _ in THROTTLES},
}  # fmt: skip
#: values of a field that mean "not set"
_UNSET: tuple[object, ...] = (None, 0, False, [], -1)


def _set_fields(res: dict[str, Any]) -> list[str]:
    """The OCI fields ``res`` sets (``memory.limit`` -1 counts: it is written)."""
    out = []
    for name in NEEDS:
        group, _, key = name.partition(".")
        value = (res.get(group) or {}).get(key)
        if value not in _UNSET or (name == "memory.limit" and value == -1):
            out.append(name)
    return out


def unsupported(res: dict[str, Any], support: Support) -> list[str]:
    """The OCI fields set in ``res`` that a host of ``support`` cannot apply (to refuse them,
    naming them: never run a container without a limit it asked for)."""
    return [name for name in _set_fields(res) if not getattr(support, NEEDS[name])]


def _swap_accounted() -> bool:
    """cgroup v2 swap accounting (off with ``swapaccount=0`` / no CONFIG_MEMCG_SWAP)."""
    try:
        with open("/proc/cmdline", encoding="ascii") as f:
            return "swapaccount=0" not in f.read()
    except OSError:
        return True
