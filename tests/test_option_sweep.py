"""The option sweep: every field of API 1.45's ``HostConfig``, ``NetworkingConfig``, network create
and volume create bodies (the lists come from the request schemas, ``dockyard.core.schema``) is
sent with a non-default value through the API, and must be either

* **applied**: the request succeeds and the field's probe sees it — inspect shows it and, where
  it is observable, the container sees it from inside or the host sees it (cgroup files,
  links, mounts); or
* **refused**: a 400 whose message names the field.

A field that is accepted and dropped fails the sweep, as does a field the table does not list,
so a new field of the schema needs a row here. Two more kinds exist for what dockerd itself
does not apply: ``warned`` (what the host's kernel cannot do, discarded with dockerd's own
warning in the create answer; the probe checks inspect shows it discarded), ``output`` (a field of what inspect shows, ignored in a request by dockerd: the
sweep checks that inspect shows the real value, not the one sent) and ``ignored`` (dockerd
ignores it on Linux; the row says why).

The table is shared work: a feature that implements a refused field turns its row into an
``applied`` one with a probe. Rows are ``Row(path, value, kind, probe, ...)``; a probe gets a
:class:`Ctx` that created the object (container, network or volume) from the row and offers
``run``/``start``/``exec``/``inspect``/``cgroup`` and friends.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import tempfile
import time
import urllib.request
from typing import Any, Callable, Iterator

import msgspec
import pytest

from conftest import Daemon, running_daemon, unique_subnet, unique_subnet6
from dnsresponder import responder
from dockyard.core import schema

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

Probe = Callable[["Ctx"], None]


# -- the field lists, from the schema ------------------------------------------------------------
#: body -> (description, the path prefix rows use)
BODIES = {"container": (schema.containers.HostConfig, "HostConfig"),
          "endpoint": (schema.containers.NetworkingConfig, "NetworkingConfig"),
          "network": (schema.NetworkCreate, "NetworkCreate"),
          "volume": (schema.VolumeCreate, "VolumeCreate")}


def _walk(info: Any, path: tuple[str, ...], out: dict[str, bool]) -> None:
    """path -> whether it is a leaf (no field under it)."""
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            _walk(member, path, out)
    elif isinstance(info, msgspec.inspect.StructType):
        if path:
            out[".".join(path)] = False
        for f in info.fields:
            here = path + (f.encode_name,)
            out.setdefault(".".join(here), True)
            _walk(f.type, here, out)
    elif isinstance(info, msgspec.inspect.ListType):
        _walk(info.item_type, path + ("[]",), out)
    elif isinstance(info, msgspec.inspect.DictType):
        _walk(info.value_type, path + ("{}",), out)


def schema_fields() -> dict[str, bool]:
    out: dict[str, bool] = {}
    for body_type, prefix in BODIES.values():
        _walk(msgspec.inspect.type_info(body_type), (prefix,), out)
    # a path like "X.[]" is the list itself, not a field; a field with fields under it
    # (a struct, a list or map of structs) is not a leaf
    paths = [p for p in out if not p.endswith(("[]", "{}")) and p not in
             {prefix for _t, prefix in BODIES.values()}]
    return {p: not any(q.startswith(p + ".") for q in paths) for p in paths}


# -- the table ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    path: str
    value: Any = None
    kind: str = "applied"            # applied | refused | output | ignored
    probe: Probe | None = None
    cmd: tuple[str, ...] = ("true",)  # the container's command (container/endpoint rows)
    body: dict[str, Any] = dataclasses.field(default_factory=dict)  # more body keys
    host: dict[str, Any] = dataclasses.field(default_factory=dict)  # more HostConfig keys
    covers: bool = False             # the row covers the fields under its path
    why: str = ""

    @property
    def body_kind(self) -> str:
        return {prefix: kind for kind, (_t, prefix) in BODIES.items()}[self.path.split(".")[0]]

    @property
    def field(self) -> str:
        return [p for p in self.path.split(".") if p not in ("[]", "{}")][-1]


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def refused(path: str, value: Any = True, covers: bool = False, **kw: Any) -> Row:
    return Row(path, value, "refused", covers=covers, **kw)


def edge_refuses(path: str) -> bool:
    """Whether the request schemas refuse the field at ``path`` (a row's path)."""
    from dockyard.core.schema import unsupported
    kind = {prefix: t for t, prefix in BODIES.values()}
    prefix, _, rest = path.partition(".")
    want = tuple(None if p in ("[]", "{}") else p for p in rest.split("."))
    return any(p == want for p, _ in unsupported.rules(kind[prefix]))


def pending(path: str, value: Any, probe: Probe, **kw: Any) -> Row:
    """A field another branch is implementing: refused while the schema refuses it, then
    applied and probed (the probe is ready for the day the refusal goes)."""
    return Row(path, value, "refused" if edge_refuses(path) else "applied", probe, **kw)


# probes ------------------------------------------------------------------------------------------
def shown(key: str, want: Any = ...) -> Probe:
    """Inspect shows ``key`` (a dotted path) as the row's value (or ``want``)."""
    def probe(ctx: "Ctx") -> None:
        got = ctx.inspect(key)
        assert got == (ctx.row.value if want is ... else want), (key, got)
    return probe


def output(*words: str, key: str = "") -> Probe:
    """The container's output (it runs the row's command) holds ``words``; with ``key``, inspect
    shows it too."""
    def probe(ctx: "Ctx") -> None:
        if key:
            shown(key)(ctx)
        out = ctx.run()
        for w in words:
            assert w in out, (w, out)
    return probe


def cgroup_file(ctrl: str, name: str, want: str, key: str) -> Probe:
    """The running container's cgroup file (read on the host) holds ``want``."""
    def probe(ctx: "Ctx") -> None:
        shown(key)(ctx)
        ctx.start()
        assert ctx.cgroup(ctrl, name).strip() == want
    return probe


#: cgroup v1 with CONFIG_RT_GROUP_SCHED: containers can have a real-time CPU budget
REALTIME = os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")


def _realtime_probe(key: str) -> Probe:
    """Shown by inspect, and written to the container's cgroup: without a budget in its
    parents (the daemon's ``--cpu-rt-runtime``) the kernel refuses it and the start says so
    (tests/test_client_fidelity.py applies one)."""
    def probe(ctx: "Ctx") -> None:
        shown(key)(ctx)
        status, res = ctx.d.api.post(f"/containers/{ctx.cid}/start")
        assert status == 400 and "cpu-rt-runtime" in res["message"], (status, res)
    return probe


def both(*probes: Probe) -> Probe:
    def probe(ctx: "Ctx") -> None:
        for p in probes:
            p(ctx)
    return probe


def _real_endpoint(ctx: "Ctx") -> None:
    """Output-only endpoint fields: the request's bogus value is not what inspect shows."""
    ctx.start()
    ep = ctx.inspect(f"NetworkSettings.Networks.{ctx.env.net}")
    assert ep[ctx.row.field] != ctx.row.value, (ctx.row.field, ep)


def _endpoint_sysctl_probe(ctx: "Ctx") -> None:
    """The interface sysctl of ``com.docker.network.endpoint.sysctls`` is set (a container
    without the option, on the same network, shows the value it would have had)."""
    assert ctx.inspect(f"NetworkSettings.Networks.{ctx.env.net}.DriverOpts") == ctx.row.value
    got = ctx.run().strip()
    control = ctx._run_other({"Cmd": list(ctx.row.cmd), "HostConfig": {"NetworkMode": ctx.env.net}}).strip()
    assert (got, control) != (control, control) and got == "2", (got, control)


def _net_container(cmd: str, *words: str) -> Probe:
    """A container on the network the row created runs ``cmd``; its output holds ``words``
    (a format key ``{net}`` gives the network's inspect)."""
    def probe(ctx: "Ctx") -> None:
        net = ctx.network()
        out = ctx.run_on_network(cmd)
        for w in words:
            assert w.format(net=net) in out, (w.format(net=net), out)
    return probe


def _net_shown(key: str, want: Any) -> Probe:
    def probe(ctx: "Ctx") -> None:
        assert ctx.network()[key] == want, (key, ctx.network()[key])
    return probe


def _aux_probe(ctx: "Ctx") -> None:
    net = ctx.network()
    cfg = net["IPAM"]["Config"][0]
    assert cfg["AuxiliaryAddresses"] == ctx.row.value
    subnet = ipaddress.ip_network(cfg["Subnet"])
    out = ctx.run_on_network("ip -o -4 addr show eth0")
    # gateway .1, auxiliary .2 to .5 of the /29: the only address left is .6
    assert f"{subnet.network_address + 6}/29" in out, out


def _restart_probe(ctx: "Ctx") -> None:
    ctx.start()
    deadline = time.monotonic() + 60
    while ctx.inspect("RestartCount") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ctx.inspect("RestartCount") == 1
    assert ctx.inspect("HostConfig.RestartPolicy") == ctx.row.value


def _auto_remove_probe(ctx: "Ctx") -> None:
    ctx.start()
    deadline = time.monotonic() + 60
    while ctx.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ctx.exists(), "AutoRemove: the container should be gone after it exits"


def _ports_probe(ctx: "Ctx") -> None:
    ctx.start()
    port = int(ctx.row.value["80/tcp"][0]["HostPort"])
    assert ctx.inspect("NetworkSettings.Ports")["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                assert r.read() == b"swept\n"
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the published port never answered")


def _publish_all_probe(ctx: "Ctx") -> None:
    ctx.start()
    assert int(ctx.inspect("NetworkSettings.Ports")["80/tcp"][0]["HostPort"]) > 0


def _log_none_probe(ctx: "Ctx") -> None:
    shown("HostConfig.LogConfig.Type")(ctx)
    ctx.run(logs=False)
    status, _ = ctx.d.api.get(f"/containers/{ctx.cid}/logs?stdout=1")
    assert status != 200 or not os.path.exists(ctx.inspect("LogPath")) or \
        os.path.getsize(ctx.inspect("LogPath")) == 0


def _log_opts_probe(ctx: "Ctx") -> None:
    assert ctx.inspect("HostConfig.LogConfig.Config") == ctx.row.value
    ctx.run(logs=False)
    assert os.path.exists(ctx.inspect("LogPath") + ".1"), "max-size: the log is rotated"


def _container_id_file_probe(ctx: "Ctx") -> None:
    shown("HostConfig.ContainerIDFile")(ctx)
    ctx.run()
    assert not os.path.exists(ctx.row.value), "the client writes the file, never the daemon"


def _host_ns(kind: str) -> Probe:
    def probe(ctx: "Ctx") -> None:
        out = ctx.run()
        assert out.strip() == os.readlink(f"/proc/self/ns/{kind}"), out
    return probe


def _pid_host_probe(ctx: "Ctx") -> None:
    with open("/proc/1/comm") as f:
        assert ctx.run().strip() == f.read().strip()


def _uts_host_probe(ctx: "Ctx") -> None:
    assert ctx.run().strip() == socket.gethostname()


def _cgroup_parent_probe(ctx: "Ctx") -> None:
    shown("HostConfig.CgroupParent")(ctx)
    ctx.start()
    assert f"/{ctx.row.value}/{ctx.cid}" in ctx.exec("cat", "/proc/self/cgroup")
    assert os.path.isdir(f"/sys/fs/cgroup/memory/{ctx.row.value}/{ctx.cid}")


def _nocopy_probe(ctx: "Ctx") -> None:
    out = ctx.run()
    assert "passwd" not in out, "NoCopy: the volume gets none of the image's /etc"


def _volume_labels_probe(ctx: "Ctx") -> None:
    ctx.run()
    name = ctx.inspect("Mounts")[0]["Name"]
    status, vol = ctx.d.api.get(f"/volumes/{name}")
    assert status == 200 and vol["Labels"] == ctx.row.value, vol
    ctx.volumes.append(name)


def _volume_opts_probe(ctx: "Ctx") -> None:
    out = ctx.run()
    assert out.split()[1] == "2048", out
    ctx.volumes.append(ctx.inspect("Mounts")[0]["Name"])


def _check_duplicate_probe(ctx: "Ctx") -> None:
    status, res = ctx.d.api.post("/networks/create", {"Name": ctx.name, "CheckDuplicate": False})
    assert status == 409, ("dockerd refuses a duplicate whatever CheckDuplicate says", res)


def _vol_inspect(key: str) -> Probe:
    def probe(ctx: "Ctx") -> None:
        assert ctx.volume()[key] == ctx.row.value
    return probe


def _vol_mount_probe(ctx: "Ctx") -> None:
    out = ctx.run_with_volume("df -k /v | tail -1")
    assert out.split()[1] == "1024", out
    assert ctx.volume()["Options"] == ctx.row.value


def _bridge_name_probe(ctx: "Ctx") -> None:
    bridge = ctx.row.value["com.docker.network.bridge.name"]
    assert ctx.network()["Options"] == ctx.row.value
    assert os.path.exists(f"/sys/class/net/{bridge}")
    assert "mtu 1400" in ctx.run_on_network("ip link show eth0")


CAP_NET_ADMIN = sh("ip link set lo mtu 1400 && echo changed")
BLKIO_WEIGHT = any(os.path.exists(f"/sys/fs/cgroup/blkio/{n}") for n in ("blkio.weight", "blkio.bfq.weight"))
BLKIO_WEIGHT_DEVICE = any(os.path.exists(f"/sys/fs/cgroup/blkio/{n}")
                          for n in ("blkio.weight_device", "blkio.bfq.weight_device"))


def _block_device() -> tuple[str, str]:
    """(path, "major:minor") of the block device under / (the throttle rows' device)."""
    dev = os.stat("/").st_dev
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    return f"/dev/{name}", f"{os.major(dev)}:{os.minor(dev)}"


BLOCK_DEV, BLOCK_MM = _block_device()


def _oom_kill_disabled(ctx: "Ctx") -> None:
    shown("HostConfig.OomKillDisable")(ctx)
    ctx.start()
    ctx.assert_in("oom_kill_disable 1", ctx.cgroup("memory", "memory.oom_control"))


def _propagation_probe(ctx: "Ctx") -> None:
    output("bound")(ctx)
    ctx.assert_equal(ctx.inspect("Mounts")[0]["Propagation"], "private")
UNSET = object()


def container_rows(env: "Env") -> list[Row]:
    H = "HostConfig."
    sleep = ("sleep", "300")
    mb = 1 << 20
    return [
        # -- resources (cgroups, seen on the host) --
        Row(H + "CpuShares", 512, probe=cgroup_file("cpu", "cpu.shares", "512", H + "CpuShares"), cmd=sleep),
        Row(H + "Memory", 64 * mb, probe=cgroup_file("memory", "memory.limit_in_bytes", str(64 * mb), H + "Memory"),
            cmd=sleep),
        Row(H + "NanoCpus", 500_000_000, probe=cgroup_file("cpu", "cpu.cfs_quota_us", "50000", H + "NanoCpus"),
            cmd=sleep),
        Row(H + "CgroupParent", env.cgroup_parent, probe=_cgroup_parent_probe, cmd=sleep),
        # applied where the host's block I/O scheduler has weights; elsewhere discarded with
        # dockerd's warning, as dockerd does
        Row(H + "BlkioWeight", 300, cmd=sleep, kind="warned" if not BLKIO_WEIGHT else "applied",
            probe=cgroup_file("blkio", "blkio.weight", "300", H + "BlkioWeight") if BLKIO_WEIGHT
            else shown(H + "BlkioWeight", 0), why="no weight without the BFQ scheduler"),
        Row(H + "BlkioWeightDevice", [{"Path": BLOCK_DEV, "Weight": 300}], covers=True, cmd=sleep,
            kind="warned" if not BLKIO_WEIGHT_DEVICE else "applied",
            probe=cgroup_file("blkio", "blkio.weight_device", f"{BLOCK_MM} 300", H + "BlkioWeightDevice")
            if BLKIO_WEIGHT_DEVICE else shown(H + "BlkioWeightDevice", []),
            why="no weight without the BFQ scheduler"),
        *(Row(H + k, [{"Path": BLOCK_DEV, "Rate": 1000}], covers=True, cmd=sleep,
              probe=cgroup_file("blkio", f"blkio.throttle.{f}", f"{BLOCK_MM} 1000", H + k))
          for k, f in (("BlkioDeviceReadBps", "read_bps_device"), ("BlkioDeviceWriteBps", "write_bps_device"),
                       ("BlkioDeviceReadIOps", "read_iops_device"), ("BlkioDeviceWriteIOps", "write_iops_device"))),
        Row(H + "CpuPeriod", 50000, probe=cgroup_file("cpu", "cpu.cfs_period_us", "50000", H + "CpuPeriod"),
            cmd=sleep),
        Row(H + "CpuQuota", 25000, probe=cgroup_file("cpu", "cpu.cfs_quota_us", "25000", H + "CpuQuota"),
            cmd=sleep),
        # applied where cgroup v1 has real-time budgets (the sweep's daemon gives its parents
        # none: its own parent has none, so the kernel refuses the container's at start, as with
        # dockerd); refused elsewhere
        *(Row(H + k, v, cmd=sleep, kind="applied" if REALTIME else "refused",
              host={other: w, "CgroupParent": env.cgroup_parent}, probe=_realtime_probe(H + k))
          for k, v, other, w in (("CpuRealtimePeriod", 100000, "CpuRealtimeRuntime", 1000),
                                 ("CpuRealtimeRuntime", 1000, "CpuRealtimePeriod", 100000))),
        Row(H + "CpusetCpus", "0", probe=cgroup_file("cpuset", "cpuset.cpus", "0", H + "CpusetCpus"), cmd=sleep),
        # (on a host with one memory node "0" is also the default: the cgroup file is read anyway)
        Row(H + "CpusetMems", "0", probe=cgroup_file("cpuset", "cpuset.mems", "0", H + "CpusetMems"), cmd=sleep),
        Row(H + "Devices", [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/sweepnull",
                             "CgroupPermissions": "rwm"}], covers=True,
            cmd=sh("echo x > /dev/sweepnull && echo written"), probe=output("written")),
        Row(H + "DeviceCgroupRules", ["c 42:42 rw"], cmd=sleep,  # in no default rule
            probe=both(shown(H + "DeviceCgroupRules"),
                       lambda ctx: (ctx.start(), ctx.assert_in("c 42:42 rw", ctx.cgroup("devices", "devices.list"))))),
        refused(H + "DeviceRequests", [{"Driver": "nvidia", "Count": 1}], covers=True),
        refused(H + "KernelMemory", 64 * mb), refused(H + "KernelMemoryTCP", 64 * mb),
        Row(H + "MemoryReservation", 32 * mb, cmd=sleep, probe=cgroup_file(
            "memory", "memory.soft_limit_in_bytes", str(32 * mb), H + "MemoryReservation")),
        Row(H + "MemorySwap", 128 * mb, host={"Memory": 64 * mb}, cmd=sleep,
            probe=cgroup_file("memory", "memory.memsw.limit_in_bytes", str(128 * mb), H + "MemorySwap")),
        Row(H + "MemorySwappiness", 10, cmd=sleep,
            probe=cgroup_file("memory", "memory.swappiness", "10", H + "MemorySwappiness")),
        Row(H + "OomKillDisable", True, host={"Memory": 64 * mb}, cmd=sleep, probe=_oom_kill_disabled),
        Row(H + "Init", True, cmd=("cat", "/proc/1/cmdline"), probe=output("/dev/init", key=H + "Init")),
        Row(H + "PidsLimit", 50, probe=cgroup_file("pids", "pids.max", "50", H + "PidsLimit"), cmd=sleep),
        Row(H + "Ulimits", [{"Name": "nofile", "Soft": 1000, "Hard": 1000}], covers=True,
            cmd=sh("ulimit -n"), probe=output("1000", key=H + "Ulimits")),
        refused(H + "CpuCount", 1), refused(H + "CpuPercent", 50),
        refused(H + "IOMaximumIOps", 100), refused(H + "IOMaximumBandwidth", 100),
        # -- the rest of HostConfig --
        Row(H + "Binds", [f"{env.bind_dir}:/sweepbind:ro"], cmd=("cat", "/sweepbind/f"),
            probe=output("bound", key=H + "Binds")),
        Row(H + "ContainerIDFile", os.path.join(env.tmp, "cidfile"), probe=_container_id_file_probe,
            why="written by the client, not the daemon: dockerd keeps and shows it, as here"),
        Row(H + "LogConfig.Type", "none", cmd=("echo", "hidden"), probe=_log_none_probe),
        Row(H + "LogConfig.Config", {"max-size": "1k", "max-file": "2"}, cmd=("seq", "1", "3000"),
            probe=_log_opts_probe),
        Row(H + "NetworkMode", "none", cmd=("ls", "/sys/class/net"),
            probe=lambda ctx: ctx.assert_equal(ctx.run().split(), ["lo"])),
        Row(H + "PortBindings", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(env.free_port())}]},
            covers=True, cmd=sh("echo swept > /i.html; mkdir /w; mv /i.html /w/index.html; "
                                "exec httpd -f -p 80 -h /w"), probe=_ports_probe),
        Row(H + "RestartPolicy", {"Name": "on-failure", "MaximumRetryCount": 1}, covers=True,
            cmd=sh("exit 3"), probe=_restart_probe),
        Row(H + "AutoRemove", True, probe=_auto_remove_probe),
        # a volume plugin that is not found, for a container with a volume to make: a 400
        # naming the field (a real plugin serves the container: tests/test_docker_plugins.py)
        refused(H + "VolumeDriver", "othervd", host={"Binds": ["sweepvd:/v"]}),
        Row(H + "VolumesFrom", [f"{env.peer}:ro"], cmd=("cat", "/pv/peerfile"),
            probe=output("from-peer", key=H + "VolumesFrom")),
        Row(H + "ConsoleSize", [30, 100], body={"Tty": True}, cmd=("stty", "size"), probe=output("30 100")),
        refused(H + "Annotations", {"a": "b"}),
        Row(H + "CapAdd", ["NET_ADMIN"], cmd=CAP_NET_ADMIN, probe=output("changed", key=H + "CapAdd")),
        Row(H + "CapDrop", ["CHOWN"], cmd=sh("chown 1 /tmp || echo refused"),
            probe=output("refused", key=H + "CapDrop")),
        Row(H + "CgroupnsMode", "private", cmd=("cat", "/proc/self/cgroup"),
            probe=output(":memory:/\n", key=H + "CgroupnsMode")),
        Row(H + "Dns", [env.gateway], host={"NetworkMode": env.net},
            cmd=("nslookup", "-type=a", "asked.sweep.test", "127.0.0.11"),
            probe=lambda ctx: (output("10.9.8.7", key=H + "Dns")(ctx),
                               ctx.assert_in("asked.sweep.test", env.dns.asked))),
        Row(H + "DnsOptions", ["timeout:3"], cmd=("cat", "/etc/resolv.conf"),
            probe=output("timeout:3", key=H + "DnsOptions")),
        Row(H + "DnsSearch", ["sweep.test"], cmd=("cat", "/etc/resolv.conf"),
            probe=output("search sweep.test", key=H + "DnsSearch")),
        Row(H + "ExtraHosts", ["sweephost:10.1.1.1"], cmd=("cat", "/etc/hosts"),
            probe=output("10.1.1.1\tsweephost", key=H + "ExtraHosts")),
        Row(H + "GroupAdd", ["1234"], cmd=("id", "-G"), probe=output("1234", key=H + "GroupAdd")),
        Row(H + "IpcMode", "host", cmd=("readlink", "/proc/self/ns/ipc"), probe=_host_ns("ipc")),
        refused(H + "Cgroup", "container:x"),
        Row(H + "Links", [f"{env.peer}:pl"], cmd=sh("echo $PL_NAME; cat /etc/hosts"),
            probe=lambda ctx: (output("/pl", "\tpl ")(ctx),
                               ctx.assert_equal(ctx.inspect(H + "Links"), [f"/{env.peer}:{ctx.inspect('Name')}/pl"]))),
        Row(H + "OomScoreAdj", 321, cmd=("cat", "/proc/self/oom_score_adj"), probe=output("321", key=H + "OomScoreAdj")),
        Row(H + "PidMode", "host", cmd=("cat", "/proc/1/comm"), probe=_pid_host_probe),
        Row(H + "Privileged", True, cmd=sh("grep ' /sys ' /proc/mounts"), probe=output("sysfs rw", key=H + "Privileged")),
        Row(H + "PublishAllPorts", True, body={"ExposedPorts": {"80/tcp": {}}}, cmd=("sleep", "300"),
            probe=_publish_all_probe),
        Row(H + "ReadonlyRootfs", True, cmd=sh("touch /sweep 2>/dev/null; echo rc=$?"),
            probe=output("rc=1", key=H + "ReadonlyRootfs")),
        Row(H + "SecurityOpt", ["no-new-privileges=false"], cmd=("grep", "NoNewPrivs", "/proc/self/status"),
            probe=output("NoNewPrivs:\t0", key=H + "SecurityOpt")),
        refused(H + "StorageOpt", {"size": "1G"}),
        Row(H + "Tmpfs", {"/sweeptmp": "size=1m"}, cmd=sh("df -k /sweeptmp | tail -1"),
            probe=output(" 1024 ", key=H + "Tmpfs")),
        Row(H + "UTSMode", "host", cmd=("hostname",), probe=_uts_host_probe),
        # (without userns-remap the default is the host's too: the map is read anyway)
        Row(H + "UsernsMode", "host", cmd=("cat", "/proc/self/uid_map"),
            probe=output("4294967295", key=H + "UsernsMode")),
        Row(H + "ShmSize", 32 * mb, cmd=sh("df -k /dev/shm | tail -1"), probe=output(" 32768 ", key=H + "ShmSize")),
        # (a value no namespace inherits: a new one copies IPv4 settings from the host's)
        Row(H + "Sysctls", {"net.ipv4.tcp_keepalive_time": "1234"},
            cmd=("cat", "/proc/sys/net/ipv4/tcp_keepalive_time"), probe=output("1234", key=H + "Sysctls")),
        Row(H + "Runtime", "runc", probe=shown(H + "Runtime"), why="the runc driver (a real runc)"),
        refused(H + "Isolation", "hyperv"),
        # -- Mounts --
        Row(H + "Mounts.[].Type", [{"Type": "bind", "Source": env.bind_dir, "Target": "/m"}],
            cmd=("cat", "/m/f"), probe=output("bound")),
        Row(H + "Mounts.[].Source", [{"Type": "bind", "Source": env.bind_dir, "Target": "/m"}],
            cmd=("cat", "/m/f"), probe=output("bound")),
        Row(H + "Mounts.[].Target", [{"Type": "tmpfs", "Target": "/sweepmount"}],
            cmd=sh("grep ' /sweepmount ' /proc/mounts"), probe=output("tmpfs /sweepmount")),
        Row(H + "Mounts.[].ReadOnly", [{"Type": "bind", "Source": env.bind_dir, "Target": "/m", "ReadOnly": True}],
            cmd=sh("touch /m/x 2>/dev/null; echo rc=$?"), probe=output("rc=1")),
        Row(H + "Mounts.[].Consistency", [{"Type": "tmpfs", "Target": "/c", "Consistency": "cached"}],
            kind="ignored", probe=lambda ctx: ctx.assert_equal(ctx.inspect(H + "Mounts")[0]["Consistency"], "cached"),
            why="macOS only: dockerd on Linux keeps and ignores it"),
        *(refused(H + "Mounts.[].BindOptions." + k,
                  [{"Type": "bind", "Source": env.bind_dir, "Target": "/m", "BindOptions": {k: v}}])
          for k, v in (("NonRecursive", True), ("CreateMountpoint", True),
                       ("ReadOnlyNonRecursive", True), ("ReadOnlyForceRecursive", True))),
        Row(H + "Mounts.[].VolumeOptions.NoCopy", [{"Type": "volume", "Target": "/etc",
                                                    "VolumeOptions": {"NoCopy": True}}],
            cmd=("ls", "/etc"), probe=_nocopy_probe),
        Row(H + "Mounts.[].VolumeOptions.Labels", [{"Type": "volume", "Target": "/v",
                                                    "VolumeOptions": {"Labels": {"swept": "yes"}}}],
            probe=lambda ctx: _volume_labels_probe(dataclasses.replace(ctx, row=dataclasses.replace(
                ctx.row, value={"swept": "yes", "com.docker.volume.anonymous": ""})))),
        refused(H + "Mounts.[].VolumeOptions.DriverConfig.Name",  # the same: no such plugin
                [{"Type": "volume", "Target": "/v", "VolumeOptions": {"DriverConfig": {"Name": "nfsplugin"}}}]),
        Row(H + "Mounts.[].VolumeOptions.DriverConfig.Options",
            [{"Type": "volume", "Source": "sweepvo" + os.urandom(3).hex(), "Target": "/v", "VolumeOptions": {
                "DriverConfig": {"Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"}}}}],
            cmd=sh("df -k /v | tail -1"), probe=_volume_opts_probe),
        Row(H + "Mounts.[].VolumeOptions.Subpath",
            [{"Type": "volume", "Source": "sweepsub", "Target": "/v", "VolumeOptions": {"Subpath": "sub"}}],
            cmd=("cat", "/v/f"), probe=output("in-sub")),
        Row(H + "Mounts.[].BindOptions.Propagation",
            [{"Type": "bind", "Source": env.bind_dir, "Target": "/m", "BindOptions": {"Propagation": "private"}}],
            cmd=("cat", "/m/f"), probe=_propagation_probe),
        Row(H + "Mounts.[].TmpfsOptions.SizeBytes", [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": mb}}],
            cmd=sh("df -k /t | tail -1"), probe=output(" 1024 ")),
        Row(H + "Mounts.[].TmpfsOptions.Mode", [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": 0o700}}],
            cmd=("stat", "-c", "%a", "/t"), probe=output("700")),
        refused(H + "Mounts.[].ClusterOptions", [{"Type": "volume", "Target": "/v", "ClusterOptions": {}}]),
        refused(H + "MaskedPaths", []), refused(H + "ReadonlyPaths", []),
    ]


def endpoint_rows(env: "Env") -> list[Row]:
    E = "NetworkingConfig.EndpointsConfig.{}."
    ip4 = str(ipaddress.ip_network(env.subnet).network_address + 77)
    ip6 = str(ipaddress.ip_network(env.subnet6).network_address + 0x77)
    mac = "02:5e:e9:00:00:01"
    rows = [
        Row(E + "IPAMConfig.IPv4Address", {"IPv4Address": ip4}, cmd=("ip", "-o", "addr", "show", "eth0"),
            probe=output(f"{ip4}/24")),
        Row(E + "IPAMConfig.IPv6Address", {"IPv6Address": ip6}, cmd=("ip", "-o", "addr", "show", "eth0"),
            probe=output(f"{ip6}/64")),
        Row(E + "IPAMConfig.LinkLocalIPs", {"LinkLocalIPs": ["169.254.9.9"]}, cmd=("ip", "-o", "addr", "show", "eth0"),
            probe=output("169.254.9.9/16")),
        pending(E + "Links", [f"{env.peer}:pl"], cmd=("nslookup", "pl", "127.0.0.11"),
                probe=lambda ctx: (output(f"Address: {env.peer_ip}")(ctx),
                                   ctx.assert_equal(ctx.inspect(f"NetworkSettings.Networks.{env.net}.Links"),
                                                    ctx.row.value))),
        Row(E + "Aliases", ["sweepalias"], cmd=("nslookup", "sweepalias", "127.0.0.11"),
            probe=output("Name:\tsweepalias", "Address: " + str(ipaddress.ip_network(env.subnet).network_address)[:-1])),
        refused(E + "GwPriority", 10),
        Row(E + "MacAddress", mac, cmd=("cat", "/sys/class/net/eth0/address"), probe=output(mac)),
        Row(E + "DriverOpts", {"com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.arp_announce=2"},
            cmd=("cat", "/proc/sys/net/ipv4/conf/eth0/arp_announce"), probe=_endpoint_sysctl_probe),
    ]
    for key, bogus in (("NetworkID", "0" * 64), ("EndpointID", "1" * 64), ("Gateway", "10.99.99.1"),
                       ("IPAddress", "10.99.99.9"), ("IPPrefixLen", 7), ("IPv6Gateway", "fd99::1"),
                       ("GlobalIPv6Address", "fd99::9"), ("GlobalIPv6PrefixLen", 99),
                       ("DNSNames", ["bogus"])):
        rows.append(Row(E + key, bogus, kind="output", cmd=("sleep", "300"), probe=_real_endpoint,
                        why="shown by inspect; dockerd ignores it in a request"))
    return rows


def network_rows(env: "Env") -> list[Row]:
    N = "NetworkCreate."
    sub = ipaddress.ip_network(unique_subnet())
    small = ipaddress.ip_network(f"{sub.network_address}/29")
    return [
        Row(N + "Name", "", probe=lambda ctx: ctx.assert_equal(ctx.network()["Name"], ctx.name)),
        Row(N + "CheckDuplicate", False, kind="ignored", probe=_check_duplicate_probe,
            why="dockerd ignores it since API 1.44: a duplicate name is always refused"),
        Row(N + "Driver", "bridge", probe=_net_shown("Driver", "bridge")),
        refused(N + "Scope", "swarm"),
        Row(N + "Internal", True, probe=both(_net_shown("Internal", True),
                                             _net_container("ip route; echo end", "end"),
                                             lambda ctx: ctx.assert_not_in("default", ctx.run_on_network("ip route")))),
        Row(N + "Attachable", True, probe=_net_shown("Attachable", True)),
        refused(N + "Ingress", True), refused(N + "ConfigOnly", True),
        refused(N + "ConfigFrom.Network", {"Network": "other"}),
        refused(N + "IPAM.Driver", {"Driver": "ipamplugin"}),
        Row(N + "IPAM.Config.[].Subnet", {"Config": [{"Subnet": str(sub)}]},
            probe=_net_container("ip -o -4 addr show eth0", f"{sub.network_address + 2}/24")),
        Row(N + "IPAM.Config.[].IPRange", {"Config": [{"Subnet": str(sub), "IPRange": f"{sub.network_address + 128}/25"}]},
            probe=_net_container("ip -o -4 addr show eth0", f"{sub.network_address + 129}/24")),
        Row(N + "IPAM.Config.[].Gateway", {"Config": [{"Subnet": str(sub), "Gateway": str(sub.network_address + 254)}]},
            probe=_net_container("ip route", f"default via {sub.network_address + 254}")),
        Row(N + "IPAM.Config.[].AuxiliaryAddresses", {"Config": [{"Subnet": str(small), "AuxiliaryAddresses": {
            f"a{i}": str(small.network_address + i) for i in range(2, 6)}}]},
            probe=lambda ctx: _aux_probe(dataclasses.replace(ctx, row=dataclasses.replace(
                ctx.row, value={f"a{i}": str(small.network_address + i) for i in range(2, 6)})))),
        pending(N + "IPAM.Options", {"Config": [{"Subnet": str(sub)}], "Options": {"opt": "1"}},
                probe=lambda ctx: ctx.assert_equal(ctx.network()["IPAM"]["Options"], {"opt": "1"}),
                why="dockerd's default IPAM keeps and shows its options"),
        Row(N + "EnableIPv6", True, body={"IPAM": {"Config": [{"Subnet": str(sub)}, {"Subnet": unique_subnet6()}]}},
            probe=both(_net_shown("EnableIPv6", True), _net_container("ip -o -6 addr show eth0 scope global", "/64"))),
        Row(N + "Options", {"com.docker.network.bridge.name": "brsw" + os.urandom(3).hex(),
                            "com.docker.network.driver.mtu": "1400"}, probe=_bridge_name_probe),
        Row(N + "Labels", {"swept": "yes"}, probe=_net_shown("Labels", {"swept": "yes"})),
    ]


def volume_rows(env: "Env") -> list[Row]:
    V = "VolumeCreate."
    return [
        Row(V + "Name", "", probe=lambda ctx: ctx.assert_equal(ctx.volume()["Name"], ctx.name)),
        Row(V + "Driver", "local", probe=_vol_inspect("Driver")),
        Row(V + "DriverOpts", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}, probe=_vol_mount_probe),
        Row(V + "Labels", {"swept": "yes"}, probe=_vol_inspect("Labels")),
        refused(V + "ClusterVolumeSpec", {}),
    ]


# -- running a row ------------------------------------------------------------------------------
@dataclasses.dataclass
class Env:
    """What rows refer to: a dual-stack user network with a DNS responder on its gateway, a
    running peer container with a volume, a host directory to bind."""

    d: Daemon
    tmp: str
    net: str = ""
    subnet: str = ""
    subnet6: str = ""
    gateway: str = ""
    peer: str = ""
    bind_dir: str = ""
    cgroup_parent: str = ""
    dns: Any = None
    peer_ip: str = ""  # the peer's address on the user network

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


@dataclasses.dataclass
class Ctx:
    env: Env
    row: Row
    name: str = ""
    cid: str = ""
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    containers: list[str] = dataclasses.field(default_factory=list)
    volumes: list[str] = dataclasses.field(default_factory=list)

    @property
    def d(self) -> Daemon:
        return self.env.d

    # containers
    def inspect(self, key: str = "") -> Any:
        status, c = self.d.api.get(f"/containers/{self.cid}/json")
        assert status == 200, c
        for part in key.split(".") if key else ():
            c = c[part]
        return c

    def exists(self) -> bool:
        return self.d.api.get(f"/containers/{self.cid}/json")[0] == 200

    def start(self) -> None:
        if self.inspect("State.Running"):
            return
        status, res = self.d.api.post(f"/containers/{self.cid}/start")
        assert status == 204, res

    def run(self, logs: bool = True) -> str:
        """Start the row's container, wait for its exit, return its output."""
        self.start()
        status, res = self.d.api.post(f"/containers/{self.cid}/wait", timeout=120)
        assert status == 200, res
        if not logs:
            return ""
        status, out = self.d.api.get(f"/containers/{self.cid}/logs?stdout=1&stderr=1")
        assert status == 200, out
        return _demux(out)

    def exec(self, *cmd: str) -> str:
        r = self.d.cli("exec", self.cid, *cmd)
        assert r.returncode == 0, (cmd, r.stderr)
        return r.stdout.decode()

    def cgroup(self, ctrl: str, name: str) -> str:
        """A file of the running container's cgroup, read on the host."""
        with open(f"/proc/{self.inspect('State.Pid')}/cgroup") as f:
            rel = next(line.split(":", 2)[2].strip() for line in f
                       if ctrl in line.split(":", 2)[1].split(","))
        with open(os.path.join(os.path.realpath(f"/sys/fs/cgroup/{ctrl}") + rel, name)) as f:
            return f.read()

    # networks and volumes
    def network(self) -> dict[str, Any]:
        status, net = self.d.api.get(f"/networks/{self.name}")
        assert status == 200, net
        return net

    def volume(self) -> dict[str, Any]:
        status, vol = self.d.api.get(f"/volumes/{self.name}")
        assert status == 200, vol
        return vol

    def _run_other(self, body: dict[str, Any]) -> str:
        status, res = self.d.api.post("/containers/create", {"Image": "busybox", **body})
        assert status == 201, res
        self.containers.append(res["Id"])
        other = dataclasses.replace(self, cid=res["Id"])
        return other.run()

    def run_on_network(self, script: str) -> str:
        return self._run_other({"Cmd": list(sh(script)), "HostConfig": {"NetworkMode": self.name}})

    def run_with_volume(self, script: str) -> str:
        return self._run_other({"Cmd": list(sh(script)), "HostConfig": {"Binds": [f"{self.name}:/v"]}})

    # assertions usable in lambdas
    @staticmethod
    def assert_equal(a: Any, b: Any) -> None:
        assert a == b, (a, b)

    @staticmethod
    def assert_in(a: Any, b: Any) -> None:
        assert a in b, (a, b)

    @staticmethod
    def assert_not_in(a: Any, b: Any) -> None:
        assert a not in b, (a, b)


def _demux(raw: bytes) -> str:
    """Docker's multiplexed stream (8-byte frame headers) as text; raw text passes."""
    out, i = bytearray(), 0
    if raw[:1] not in (b"\x00", b"\x01", b"\x02") or len(raw) < 8:
        return raw.decode(errors="replace")
    while i + 8 <= len(raw):
        size = int.from_bytes(raw[i + 4:i + 8], "big")
        out += raw[i + 8:i + 8 + size]
        i += 8 + size
    return out.decode(errors="replace")


def _set(body: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        body = body.setdefault(part, {})
    body[path[-1]] = value


def request(ctx: Ctx) -> tuple[int, Any]:
    """Send the row's request: create a container (HostConfig or NetworkingConfig rows), a
    network or a volume with the row's field set."""
    row, env = ctx.row, ctx.env
    parts = [p for p in row.path.split(".") if p not in ("[]", "{}")]
    kind = row.body_kind
    if kind in ("container", "endpoint"):
        body: dict[str, Any] = {"Image": "busybox", "Cmd": list(row.cmd), **row.body,
                                "HostConfig": dict(row.host)}
        if kind == "container":
            top = parts[1]
            _set(body, ["HostConfig", top], row.value if len(parts) == 2 or top == "Mounts"
                 else {parts[2]: row.value} if top != "LogConfig" else {parts[2]: row.value})
        else:
            body["HostConfig"]["NetworkMode"] = env.net
            ep: dict[str, Any] = {}
            if parts[2] == "IPAMConfig":
                ep["IPAMConfig"] = row.value
            else:
                ep[parts[2]] = row.value
            body["NetworkingConfig"] = {"EndpointsConfig": {env.net: ep}}
        status, res = ctx.d.api.post("/containers/create", body)
        if status == 201:
            ctx.cid = res["Id"]
            ctx.containers.append(res["Id"])
        return status, res
    ctx.name = "sw" + os.urandom(4).hex()
    if kind == "network":
        body = {"Name": ctx.name, "IPAM": {"Config": [{"Subnet": unique_subnet()}]}, **row.body}
        if parts[1] == "IPAM":
            body["IPAM"] = row.value
        elif parts[1] != "Name":
            _set(body, parts[1:2], row.value)
        return ctx.d.api.post("/networks/create", body)
    body = {"Name": ctx.name, **row.body}
    if parts[1] != "Name":
        body[parts[1]] = row.value
    return ctx.d.api.post("/volumes/create", body)


def cleanup(ctx: Ctx) -> None:
    d = ctx.d
    for cid in ctx.containers:
        d.api.delete(f"/containers/{cid}?force=1&v=1")
    if ctx.row.body_kind == "network" and ctx.name:
        d.api.delete(f"/networks/{ctx.name}")
    if ctx.row.body_kind == "volume" and ctx.name:
        d.api.delete(f"/volumes/{ctx.name}?force=1")
    for name in ctx.volumes:
        d.api.delete(f"/volumes/{name}?force=1")


# -- fixtures and tests ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(busybox_tar: str) -> Iterator[Env]:
    with running_daemon(busybox_tar) as d, tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        e = Env(d, tmp, net="sweepnet", subnet=unique_subnet(), subnet6=unique_subnet6(),
                peer="sweeppeer", bind_dir=os.path.join(tmp, "bind"),
                cgroup_parent="sweepcg" + os.urandom(3).hex())
        e.gateway = str(ipaddress.ip_network(e.subnet).network_address + 1)
        os.makedirs(e.bind_dir)
        with open(os.path.join(e.bind_dir, "f"), "w") as f:
            f.write("bound\n")
        status, res = d.api.post("/networks/create", {"Name": e.net, "EnableIPv6": True, "IPAM": {
            "Config": [{"Subnet": e.subnet}, {"Subnet": e.subnet6}]}})
        assert status == 201, res
        status, res = d.api.post(f"/containers/create?name={e.peer}", {
            "Image": "busybox", "Cmd": ["sh", "-c", "echo from-peer > /pv/peerfile; exec sleep 3000"],
            "Volumes": {"/pv": {}}, "ExposedPorts": {"5432/tcp": {}}})
        assert status == 201 and d.api.post(f"/containers/{e.peer}/start")[0] == 204, res
        status, res = d.api.post("/volumes/create", {"Name": "sweepsub"})  # the Subpath row's
        assert status == 201, res
        os.makedirs(os.path.join(res["Mountpoint"], "sub"))
        with open(os.path.join(res["Mountpoint"], "sub", "f"), "w") as f:
            f.write("in-sub\n")
        assert d.api.post(f"/networks/{e.net}/connect", {"Container": e.peer})[0] == 200
        e.peer_ip = d.api.get(f"/containers/{e.peer}/json")[1]["NetworkSettings"]["Networks"][e.net]["IPAddress"]
        try:
            with responder(e.gateway) as dns:
                e.dns = dns
                yield e
        finally:
            for base in os.listdir("/sys/fs/cgroup"):  # the CgroupParent row's parent
                path = os.path.join("/sys/fs/cgroup", base, e.cgroup_parent)
                if os.path.isdir(path):
                    os.rmdir(path)


def all_rows(env: Env | None = None) -> list[Row]:
    env = env or Env(None, tempfile.gettempdir(), net="sweepnet", subnet=unique_subnet(),  # type: ignore[arg-type]
                     subnet6=unique_subnet6(), peer="sweeppeer", bind_dir="/nonexistent",
                     gateway="10.0.0.1", cgroup_parent="sweepcg")
    return container_rows(env) + endpoint_rows(env) + network_rows(env) + volume_rows(env)


ROW_PATHS = [r.path for r in all_rows()]


def test_every_field_of_the_schema_has_a_row() -> None:
    """The table covers each field of the four bodies (a row, or a row covering its parent),
    and names no field the schema does not have."""
    fields = schema_fields()
    rows = all_rows()
    covered = {r.path for r in rows}
    covering = [r.path for r in rows if r.covers]
    assert len(covered) == len(rows), "one row per field"
    assert not covered - set(fields), f"rows for fields the schema lacks: {sorted(covered - set(fields))}"
    missing = [p for p, leaf in fields.items() if leaf and p not in covered
               and not any(p.startswith(c + ".") for c in covering)]
    assert not missing, f"fields without a row in the sweep: {missing}"
    for r in rows:
        assert r.kind in ("applied", "refused", "output", "ignored", "warned"), r
        assert r.kind == "refused" or r.probe is not None, f"{r.path}: a row that is not refused needs a probe"
        assert r.kind not in ("output", "ignored", "warned") or r.why, \
            f"{r.path}: say why dockerd does not apply it"


@pytest.mark.parametrize("path", ROW_PATHS)
def test_field_is_applied_or_refused(env: Env, path: str) -> None:
    row = next(r for r in all_rows(env) if r.path == path)
    ctx = Ctx(env, row)
    try:
        status, res = request(ctx)
        if row.kind == "refused":
            assert status == 400, (f"{path} is accepted ({status}): it is listed as refused; if it is "
                                   f"implemented now, give its row a probe", res)
            assert row.field in res["message"], (f"{path}: the 400 must name the field", res)
            return
        assert status in (200, 201), (f"{path} was refused: {res}")
        if row.kind == "warned":  # discarded as dockerd does, with a warning naming it
            assert res.get("Warnings"), (f"{path}: discarded without a warning", res)
        assert row.probe is not None
        row.probe(ctx)
    finally:
        cleanup(ctx)


def test_refused_rows_match_the_schemas_refusals() -> None:
    """A field the schema refuses is a ``refused`` row (the edge refuses it, whatever a probe
    might say), so the table and the schema cannot drift apart."""
    from dockyard.core.schema import unsupported
    edge = set()
    for body_type, prefix in BODIES.values():
        for path, _ in unsupported.rules(body_type):
            edge.add(".".join([prefix] + ["[]" if p is None else p for p in path]))
    rows = {r.path: r for r in all_rows()}
    for path in edge:
        alt = path.replace("EndpointsConfig.[]", "EndpointsConfig.{}")
        row = rows.get(path) or rows.get(alt)
        if row is None:  # covered by a parent row
            parent = next(r for p, r in rows.items() if r.covers and path.startswith(p + "."))
            assert parent.kind == "refused", path
            continue
        assert row.kind == "refused", f"{path} is refused by the schema but its row says {row.kind}"
