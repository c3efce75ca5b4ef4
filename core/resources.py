"""A container's resource limits: checked, defaulted and discarded as dockerd does
(``verifyPlatformContainerResources`` and ``adaptContainerSettings``), then turned into OCI
``linux.resources`` for the exec driver (which writes the cgroup files through
:mod:`dockyard.hookspecs.host.cgroupfiles`).

Rules kept from dockerd:
* ``--memory`` without ``--memory-swap`` gives swap = 2 × memory (``MemorySwap`` shows it).
* What the host's cgroups cannot do is discarded with dockerd's warning (the create answer's
  ``Warnings``; the docker CLI prints them), never dropped in silence: swap limit,
  swappiness, soft limit, OOM-kill-disable, blkio weight / weight_device / throttles.
* ``KernelMemory`` / ``KernelMemoryTCP`` are refused (the schema's refusal list): Docker 25+
  no longer applies them and the kernel deprecated kmem limits in 5.4.
"""
from __future__ import annotations

import functools
import os
import stat
from typing import Any

from dockyard.hookspecs.host import cgroupfiles
from dockyard.hookspecs.errors import InvalidParameter

from . import storageopt

MIN_MEMORY = 6 * 1024 * 1024

#: HostConfig key -> OCI blockIO list
THROTTLE_KEYS = (("BlkioDeviceReadBps", "throttleReadBpsDevice"),
                 ("BlkioDeviceWriteBps", "throttleWriteBpsDevice"),
                 ("BlkioDeviceReadIOps", "throttleReadIOPSDevice"),
                 ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice"))
#: (HostConfig key, Support field, dockerd's warning) for the blkio lists
_BLKIO_WARN = (
    ("BlkioWeightDevice", "blkio_weight_device", "Your kernel does not support Block I/O "
     "weight_device or the cgroup is not mounted. Weight-device discarded."),
    ("BlkioDeviceReadBps", "blkio_throttle", "Your kernel does not support BPS Block I/O read "
     "limit or the cgroup is not mounted. Block I/O BPS read limit discarded."),
    ("BlkioDeviceWriteBps", "blkio_throttle", "Your kernel does not support BPS Block I/O write "
     "limit or the cgroup is not mounted. Block I/O BPS write limit discarded."),
    ("BlkioDeviceReadIOps", "blkio_throttle", "Your kernel does not support IOPS Block read "
     "limit or the cgroup is not mounted. Block I/O IOPS read limit discarded."),
    ("BlkioDeviceWriteIOps", "blkio_throttle", "Your kernel does not support IOPS Block write "
     "limit or the cgroup is not mounted. Block I/O IOPS write limit discarded."),
)


@functools.cache
def support() -> cgroupfiles.Support:
    """This host's cgroup abilities (probed once)."""
    return cgroupfiles.host_support()


def host_warnings(sup: cgroupfiles.Support) -> list[str]:
    """What ``info`` warns about the host's cgroups, in dockerd's words and order
    (``fillPlatformInfo``): what a limit flag would be discarded for. On v1 the blkio weights
    are not warned about (the kernel dropped them in 5.0: nothing to do), as dockerd."""
    out = [text for ok, text in (
        (sup.memory, "No memory limit support"), (sup.swap, "No swap limit support"),
        (sup.oom_kill_disable or sup.v2, "No oom kill disable support"),
        (sup.cpu_cfs, "No cpu cfs quota support"), (sup.cpu_cfs, "No cpu cfs period support"),
        (sup.cpu_shares, "No cpu shares support"), (sup.cpuset, "No cpuset support"),
        (sup.blkio_weight or not sup.v2, "No io.weight support"),
        (sup.blkio_weight_device or not sup.v2, "No io.weight (per device) support")) if not ok]
    if not sup.blkio_throttle:
        out += [f"No io.max ({v2}) support" if sup.v2 else f"No blkio throttle.{v1}_device support"
                for v2, v1 in (("rbps", "read_bps"), ("wbps", "write_bps"),
                               ("riops", "read_iops"), ("wiops", "write_iops"))]
    return ["WARNING: " + text for text in out]


def check(host: dict[str, Any], sup: cgroupfiles.Support | None = None,
          update: bool = False) -> list[str]:
    """Check and adapt the resources of ``host`` in place (a HostConfig, or the resources of
    an update merged over one); return dockerd's warnings. InvalidParameter with dockerd's
    words for what it refuses."""
    sup = sup or support()
    warnings = _check_memory(host, sup, update)
    if host.get("BlkioWeight") and not sup.blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
        host["BlkioWeight"] = 0
    if host.get("BlkioWeight") and not 10 <= host["BlkioWeight"] <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    for key, field, text in _BLKIO_WARN:
        if host.get(key) and not getattr(sup, field):
            warnings.append(text)
            host[key] = []
    for key in ("BlkioWeightDevice",) + tuple(k for k, _ in THROTTLE_KEYS):
        for d in host.get(key) or ():
            device_numbers(d.get("Path") or "", key)
            if key == "BlkioWeightDevice" and not 10 <= int(d.get("Weight") or 0) <= 1000:
                raise InvalidParameter(f"invalid weight for device: {d.get('Path')} (Range of "
                                       f"blkio weight is from 10 to 1000)")
    return warnings


#: an OCI ``linux.resources`` field -> the HostConfig field that sets it
RESOURCE_FIELDS = {"memory.limit": "Memory", "memory.swap": "MemorySwap", "pids.limit": "PidsLimit",
                   "cpu.shares": "CpuShares", "cpu.quota": "CpuQuota", "cpu.period": "CpuPeriod",
                   "cpu.cpus": "CpusetCpus", "cpu.mems": "CpusetMems", "blockIO.weight": "BlkioWeight",
                   "memory.reservation": "MemoryReservation", "memory.swappiness": "MemorySwappiness",
                   "memory.disableOOMKiller": "OomKillDisable",
                   "blockIO.weightDevice": "BlkioWeightDevice",
                   "blockIO.throttleReadBpsDevice": "BlkioDeviceReadBps",
                   "blockIO.throttleWriteBpsDevice": "BlkioDeviceWriteBps",
                   "blockIO.throttleReadIOPSDevice": "BlkioDeviceReadIOps",
                   "blockIO.throttleWriteIOPSDevice": "BlkioDeviceWriteIOps",
                   "cpu.realtimePeriod": "CpuRealtimePeriod",
                   "cpu.realtimeRuntime": "CpuRealtimeRuntime"}


def check_driver(host: dict[str, Any], execdrv: Any) -> None:
    """InvalidParameter naming the first resource of ``host`` the exec driver cannot apply on
    this host (never run a container without a limit it asked for)."""
    period, runtime = host.get("CpuRealtimePeriod") or 0, host.get("CpuRealtimeRuntime") or 0
    if period and runtime > period:
        raise InvalidParameter(f"HostConfig.CpuRealtimeRuntime ({runtime}) cannot be higher than "
                               f"HostConfig.CpuRealtimePeriod ({period})")
    for name in execdrv.unsupported_resources(resources_of(host)):
        field = RESOURCE_FIELDS.get(name, name)
        raise InvalidParameter(f"HostConfig.{field}: not supported on this host by the "
                               f"{execdrv.name} exec driver ({name})")


def adapt(host: dict[str, Any], execdrv: Any, graph: Any) -> list[str]:
    """At create, dockerd's ``adaptContainerSettings`` and resource checks on a new container's
    HostConfig (in place): the cgroup namespace default (the host's on v1, a private one on
    v2), :func:`check`, what no driver here can do, then what the exec driver cannot apply.
    Returns the warnings."""
    host["CgroupnsMode"] = host.get("CgroupnsMode") or ("private" if support().v2 else "host")
    warnings = check(host)
    refuse_devices(host)
    storageopt.size_of(host, graph)
    check_driver(host, execdrv)
    return warnings


def check_update(host: dict[str, Any], new: dict[str, Any], updated: dict[str, Any],
                 execdrv: Any) -> list[str]:
    """``docker update``: ``new`` limits over the container's ``host``, merged as ``updated``
    (adapted in place); dockerd's rule for a memory limit above the swap limit already set."""
    if (new.get("Memory") and not new.get("MemorySwap") and (host.get("MemorySwap") or 0) > 0
            and new["Memory"] > host["MemorySwap"]):
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap "
                               "limit, update the memoryswap at the same time")
    warnings = check(updated, update=True)
    check_driver(updated, execdrv)
    return warnings


def refuse_devices(host: dict[str, Any]) -> None:
    """``--gpus`` / ``DeviceRequests``: no device driver (nvidia...) is installed, so each
    request is refused with dockerd's words."""
    for req in host.get("DeviceRequests") or ():
        caps = "[" + " ".join("[" + " ".join(c) + "]" for c in req.get("Capabilities") or ()) + "]"
        raise InvalidParameter(f"HostConfig.DeviceRequests: could not select device driver "
                               f"\"{req.get('Driver') or ''}\" with capabilities: {caps} (no "
                               f"device driver is installed)")


def _check_memory(host: dict[str, Any], sup: cgroupfiles.Support, update: bool) -> list[str]:
    warnings: list[str] = []
    memory = int(host.get("Memory") or 0)
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and not host.get("MemorySwap"):
        host["MemorySwap"] = memory * 2  # dockerd's default: as much swap as memory
    swap = int(host.get("MemorySwap") or 0)
    if memory > 0 and swap != -1 and not sup.swap:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is "
                        "not mounted. Memory limited without swap.")
        host["MemorySwap"] = swap = -1
    if memory > 0 and 0 < swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if not memory and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap "
                               "limit, see usage")
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not sup.swappiness:
        warnings.append("Your kernel does not support memory swappiness capabilities or the "
                        "cgroup is not mounted. Memory swappiness discarded.")
        host["MemorySwappiness"] = None
    reservation = int(host.get("MemoryReservation") or 0)
    if reservation and not sup.reservation:
        warnings.append("Your kernel does not support memory soft limit capabilities or the "
                        "cgroup is not mounted. Limitation discarded.")
        host["MemoryReservation"] = reservation = 0
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory and reservation and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation "
                               "limit, see usage")
    if host.get("OomKillDisable") and not sup.oom_kill_disable:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        host["OomKillDisable"] = False
    if host.get("OomKillDisable") and not memory:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, "
                        "this can result in the system running out of resources.")
    return warnings


def device_numbers(path: str, key: str) -> tuple[int, int]:
    """(major, minor) of block device ``path``; InvalidParameter naming ``key`` otherwise."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidParameter(f"{key}: cannot stat {path!r}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidParameter(f"{key}: {path!r} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _memory(host: dict[str, Any]) -> dict[str, Any]:
    mem: dict[str, Any] = {}
    if host.get("Memory"):
        mem["limit"] = int(host["Memory"])
        if host.get("MemorySwap") and support().swap:
            mem["swap"] = int(host["MemorySwap"])
    if host.get("MemoryReservation"):
        mem["reservation"] = int(host["MemoryReservation"])
    if host.get("MemorySwappiness") is not None and host["MemorySwappiness"] != -1:
        mem["swappiness"] = int(host["MemorySwappiness"])
    if host.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    return mem


def _block_io(host: dict[str, Any]) -> dict[str, Any]:
    blk: dict[str, Any] = {}
    if host.get("BlkioWeight"):
        blk["weight"] = int(host["BlkioWeight"])
    for d in host.get("BlkioWeightDevice") or ():
        major, minor = device_numbers(d["Path"], "BlkioWeightDevice")
        blk.setdefault("weightDevice", []).append(
            {"major": major, "minor": minor, "weight": int(d["Weight"])})
    for key, oci in THROTTLE_KEYS:
        for d in host.get(key) or ():
            major, minor = device_numbers(d["Path"], key)
            blk.setdefault(oci, []).append({"major": major, "minor": minor, "rate": int(d["Rate"])})
    return blk


def resources_of(host: dict[str, Any]) -> dict[str, Any]:
    """OCI ``linux.resources`` from a HostConfig (at create, and again for ``docker update``)."""
    resources: dict[str, Any] = {}
    if mem := _memory(host):
        resources["memory"] = mem
    if host.get("PidsLimit"):
        resources["pids"] = {"limit": int(host["PidsLimit"])}
    cpu: dict[str, Any] = {}
    for key, oci in (("CpuShares", "shares"), ("CpuQuota", "quota"), ("CpuPeriod", "period")):
        if host.get(key):
            cpu[oci] = int(host[key])
    for key, oci in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if host.get(key):
            cpu[oci] = host[key]
    if host.get("NanoCpus"):
        cpu["quota"] = int(host["NanoCpus"]) * 100000 // 1_000_000_000
        cpu["period"] = 100000
    for key, oci in (("CpuRealtimePeriod", "realtimePeriod"), ("CpuRealtimeRuntime", "realtimeRuntime")):
        if host.get(key):
            cpu[oci] = int(host[key])
    if cpu:
        resources["cpu"] = cpu
    if blk := _block_io(host):
        resources["blockIO"] = blk
    return resources
