"""The translation of Docker's resource flags (through OCI ``linux.resources``) to cgroup v1 and
v2 files, against the formats of the kernel's ``Documentation/admin-guide/cgroup-v2.rst``:

* ``memory.max`` / ``memory.swap.max`` / ``memory.low``: "a single value file": bytes or ``max``;
* ``pids.max``: a number or ``max``;
* ``cpu.max``: "``$MAX $PERIOD``", ``max`` for no limit, the period optional on write;
* ``cpu.weight``: 1..10000 (default 100); ``io.weight``: "``default W``" or "``MAJ:MIN W``", 1..10000;
* ``io.max``: "``MAJ:MIN rbps=N wbps=N riops=N wiops=N``" (keys may be given alone);
* ``cpuset.cpus`` / ``cpuset.mems``: the list format (``0-2,4``);
* ``memory.events`` / ``cgroup.events``: flat keyed ("``key value``" lines).
"""
from __future__ import annotations

import pytest

from dockyard.core import resources
from dockyard.hookspecs.host import cgroupfiles as cf
from dockyard.hookspecs.host.cgroupfiles import Write

MiB = 1 << 20


def v2(host: dict) -> dict[str, list[str]]:
    """HostConfig → the v2 writes, grouped by file."""
    out: dict[str, list[str]] = {}
    for w in cf.v2_writes(resources.resources_of(host)):
        assert w.controller == ""
        out.setdefault(w.file, []).append(w.value)
    return out


def test_memory_flags_to_v2() -> None:
    # --memory 64m (dockerd made --memory-swap 128m): swap.max counts the swap alone
    assert cf.v2_writes({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}}) == [
        Write("", "memory.max", str(64 * MiB)), Write("", "memory.swap.max", str(64 * MiB))]
    # --memory-swap -1: unlimited swap
    assert cf.v2_writes({"memory": {"limit": 64 * MiB, "swap": -1}})[1] == \
        Write("", "memory.swap.max", "max")
    # --memory == --memory-swap: no swap at all
    assert cf.v2_writes({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}})[1] == \
        Write("", "memory.swap.max", "0")
    # docker update --memory -1 (no limit): both unlimited
    assert cf.v2_writes({"memory": {"limit": -1}}) == [
        Write("", "memory.max", "max"), Write("", "memory.swap.max", "max")]
    # --memory-reservation: memory.low
    assert cf.v2_writes({"memory": {"reservation": 32 * MiB}}) == [
        Write("", "memory.low", str(32 * MiB))]


def test_memory_swap_v2_rules() -> None:
    assert cf.memory_swap_v2(0, 0) == 0           # nothing set: no write
    assert cf.memory_swap_v2(0, -1) == -1         # memory unlimited: swap too
    assert cf.memory_swap_v2(-1, 10) == -1
    assert cf.memory_swap_v2(30, 10) == 20
    with pytest.raises(cf.Untranslatable, match="needs a memory limit"):
        cf.memory_swap_v2(30, 0)
    with pytest.raises(cf.Untranslatable, match="at least"):
        cf.memory_swap_v2(5, 10)


@pytest.mark.parametrize("field, value", [("swappiness", 7), ("disableOOMKiller", True),
                                          ("kernel", 64 * MiB)])
def test_v2_refuses_what_it_cannot_express(field: str, value: object) -> None:
    with pytest.raises(cf.Untranslatable, match=f"memory.{field}"):
        cf.v2_writes({"memory": {field: value}})
    assert cf.v2_writes({"memory": {"swappiness": -1}}) == []  # -1: "not set"


def test_pids_and_cpu_flags_to_v2() -> None:
    assert v2({"PidsLimit": 77}) == {"pids.max": ["77"]}
    assert cf.v2_writes({"pids": {"limit": -1}}) == [Write("", "pids.max", "max")]
    # --cpus 1.5: quota 150000 over the 100000 period
    assert v2({"NanoCpus": 1_500_000_000}) == {"cpu.max": ["150000 100000"]}
    assert v2({"CpuQuota": 50000, "CpuPeriod": 200000}) == {"cpu.max": ["50000 200000"]}
    assert v2({"CpuPeriod": 200000}) == {"cpu.max": ["max 200000"]}  # period alone
    assert cf.v2_writes({"cpu": {"quota": -1}}) == [Write("", "cpu.max", "max")]
    # --cpu-shares: 1024 (the v1 default) is close to v2's default weight of 100
    assert v2({"CpuShares": 1024}) == {"cpu.weight": ["39"]}
    assert cf.cpu_weight(2) == 1 and cf.cpu_weight(262144) == 10000
    assert v2({"CpusetCpus": "0-1", "CpusetMems": "0"}) == {"cpuset.cpus": ["0-1"],
                                                            "cpuset.mems": ["0"]}


def test_blkio_flags_to_v2_io() -> None:
    res = {"blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": MiB}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2 * MiB}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}]}}
    assert cf.v2_writes(res) == [
        Write("", "io.weight", "default 4950"),      # 1 + (500-10)*9999/990
        Write("", "io.weight", "8:0 1920"),
        Write("", "io.max", f"8:0 rbps={MiB} wbps={2 * MiB}"),
        Write("", "io.max", "8:16 riops=100 wiops=200")]
    assert cf.io_weight(10) == 1 and cf.io_weight(1000) == 10000
    # with BFQ: io.bfq.weight takes v1's scale as it is
    assert cf.v2_writes({"blockIO": {"weight": 500}}, bfq=True) == [
        Write("", "io.bfq.weight", "default 500")]


def test_flags_to_v1() -> None:
    res = {"memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB,
                      "swappiness": 7, "disableOOMKiller": True},
           "pids": {"limit": 0}, "cpu": {"shares": 512, "quota": 50000, "period": 100000},
           "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                                  "rate": 5}]}}
    writes = cf.v1_writes(res, current_memsw=None)
    assert writes == [
        # a fresh cgroup: memsw raised first (the kernel keeps memory <= memsw)
        Write("memory", "memory.memsw.limit_in_bytes", str(128 * MiB)),
        Write("memory", "memory.limit_in_bytes", str(64 * MiB)),
        Write("memory", "memory.soft_limit_in_bytes", str(32 * MiB)),
        Write("memory", "memory.swappiness", "7"),
        Write("memory", "memory.oom_control", "1"),
        Write("pids", "pids.max", "max"),
        Write("cpu", "cpu.shares", "512"),
        Write("cpu", "cpu.cfs_period_us", "100000"),
        Write("cpu", "cpu.cfs_quota_us", "50000"),
        Write("blkio", "blkio.weight", "300"),
        Write("blkio", "blkio.throttle.read_bps_device", "8:0 5")]
    # shrinking (docker update): the memory limit goes down first
    shrink = cf.v1_writes({"memory": {"limit": 16 * MiB, "swap": 32 * MiB}},
                          current_memsw=128 * MiB)
    assert [w.file for w in shrink] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    assert cf.v1_writes({"blockIO": {"weight": 300}}, bfq=True) == [
        Write("blkio", "blkio.bfq.weight", "300")]
    with pytest.raises(cf.Untranslatable, match="kernel"):
        cf.v1_writes({"memory": {"kernel": 64 * MiB}})


def test_events_files() -> None:
    # memory.events as the kernel writes it (cgroup-v2.rst, "memory.events")
    text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"
    assert cf.oom_kills(text) == 2
    assert cf.oom_kills("low 0\nhigh 0\n") is None  # a kernel that does not count kills
    # v1 memory.oom_control
    assert cf.oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n") == 0
    assert cf.events("populated 1\nfrozen 0\n") == {"populated": 1, "frozen": 0}


V1_HOST = cf.Support(v2=False, memory=True, swap=True, reservation=True, swappiness=True,
                     oom_kill_disable=True, pids=True, cpu_shares=True, cpu_cfs=True,
                     cpuset=True, blkio_weight=False, blkio_weight_device=False,
                     blkio_throttle=True)
V2_HOST = V1_HOST._replace(v2=True, swappiness=False, oom_kill_disable=False,
                           blkio_weight=True, blkio_weight_device=True)


def test_daemon_discards_what_v2_cannot_do_with_dockerds_warnings() -> None:
    host = {"Memory": 64 * MiB, "MemorySwappiness": 7, "OomKillDisable": True}
    warnings = resources.check(host, V2_HOST)
    assert host["MemorySwap"] == 128 * MiB
    assert host["MemorySwappiness"] is None and host["OomKillDisable"] is False
    assert any("memory swappiness" in w for w in warnings)
    assert any("OomKillDisable discarded" in w for w in warnings)
    # what is left translates to v2 without error
    assert cf.v2_writes(resources.resources_of(host))[0] == Write("", "memory.max", str(64 * MiB))


def test_daemon_checks_as_dockerd() -> None:
    with pytest.raises(Exception, match="Minimum memoryswap limit"):
        resources.check({"Memory": 64 * MiB, "MemorySwap": 32 * MiB}, V1_HOST)
    with pytest.raises(Exception, match="always set the Memory limit"):
        resources.check({"MemorySwap": 64 * MiB}, V1_HOST)
    host = {"BlkioWeight": 300}
    assert "Weight discarded" in resources.check(host, V1_HOST)[0] and host["BlkioWeight"] == 0
    host = {"BlkioWeight": 5}
    with pytest.raises(Exception, match="Range of blkio weight"):
        resources.check(host, V2_HOST)
    host = {"Memory": 64 * MiB}
    nosw = V1_HOST._replace(swap=False)
    assert "Memory limited without swap" in resources.check(host, nosw)[0]
    assert host["MemorySwap"] == -1


def test_info_warns_what_the_hosts_cgroups_lack_in_dockerds_words() -> None:
    assert resources.host_warnings(V1_HOST) == []  # v1 blkio weights: no warning, as dockerd
    bare = V1_HOST._replace(swap=False, oom_kill_disable=False, cpu_cfs=False, blkio_throttle=False)
    assert resources.host_warnings(bare) == [
        "WARNING: No swap limit support", "WARNING: No oom kill disable support",
        "WARNING: No cpu cfs quota support", "WARNING: No cpu cfs period support",
        "WARNING: No blkio throttle.read_bps_device support",
        "WARNING: No blkio throttle.write_bps_device support",
        "WARNING: No blkio throttle.read_iops_device support",
        "WARNING: No blkio throttle.write_iops_device support"]
    # v2: no OOM-kill-disable warning (nothing to be done), io.* names
    assert resources.host_warnings(V2_HOST._replace(blkio_weight=False, blkio_throttle=False,
                                                    memory=False)) == [
        "WARNING: No memory limit support", "WARNING: No io.weight support",
        "WARNING: No io.max (rbps) support", "WARNING: No io.max (wbps) support",
        "WARNING: No io.max (riops) support", "WARNING: No io.max (wiops) support"]
