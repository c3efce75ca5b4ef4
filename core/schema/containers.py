"""The container bodies of API 1.45: ``POST /containers/create`` (Config + HostConfig +
NetworkingConfig), ``POST /containers/{id}/update`` (Resources + RestartPolicy) and the config of
``POST /commit``. Field types follow moby's Go structs (``api/types/container``,
``api/types/network``, ``api/types/mount``), which the swagger file (``api/docs/v1.45.yaml``)
describes; ranges are those dockerd refuses at create.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from msgspec import UNSET, Meta

from .types import (INT64_MAX, Body, Empty, Int, Int64, NonNegative, Opt, StrList, StrMap,
                    StrSlice, Uint16, Uint32, Uint64, str_slices)

#: only ``null`` (or no key) means "not set": an empty list has a meaning of its own
NULL_ONLY = ("null only",)


# -- Config ------------------------------------------------------------------------------------
class HealthConfig(Body):
    Test: Opt[StrList] = UNSET
    Interval: Opt[NonNegative] = UNSET
    Timeout: Opt[NonNegative] = UNSET
    StartPeriod: Opt[NonNegative] = UNSET
    StartInterval: Opt[NonNegative] = UNSET
    Retries: Opt[Annotated[int, Meta(ge=0, le=INT64_MAX)]] = UNSET


class ContainerConfig(Body):
    """``container.Config``: what ``GET /containers/{id}/json`` shows as ``Config``."""

    Hostname: Opt[str] = UNSET
    Domainname: Opt[str] = UNSET
    User: Opt[str] = UNSET
    AttachStdin: Opt[bool] = UNSET
    AttachStdout: Opt[bool] = UNSET
    AttachStderr: Opt[bool] = UNSET
    ExposedPorts: Opt[dict[str, Opt[Empty]]] = UNSET
    Tty: Opt[bool] = UNSET
    OpenStdin: Opt[bool] = UNSET
    StdinOnce: Opt[bool] = UNSET
    Env: Opt[StrList] = UNSET
    Cmd: Opt[StrSlice] = UNSET
    Healthcheck: Opt[HealthConfig] = UNSET
    #: Windows only; dockerd on Linux ignores it too
    ArgsEscaped: Opt[bool] = UNSET
    Image: Opt[str] = UNSET
    Volumes: Opt[dict[str, Opt[Empty]]] = UNSET
    WorkingDir: Opt[str] = UNSET
    Entrypoint: Opt[StrSlice] = UNSET
    NetworkDisabled: Opt[bool] = UNSET
    MacAddress: Opt[str] = UNSET
    OnBuild: Opt[StrList] = UNSET
    Labels: Opt[StrMap] = UNSET
    StopSignal: Opt[str] = UNSET
    StopTimeout: Opt[Int] = UNSET
    Shell: Opt[StrSlice] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"NetworkDisabled": ()}

    def __post_init__(self) -> None:
        str_slices(self, "Cmd", "Entrypoint", "Shell")


# -- HostConfig --------------------------------------------------------------------------------
class WeightDevice(Body):
    Path: Opt[str] = UNSET
    Weight: Opt[Uint16] = UNSET


class ThrottleDevice(Body):
    Path: Opt[str] = UNSET
    Rate: Opt[Uint64] = UNSET


class DeviceMapping(Body):
    PathOnHost: Opt[str] = UNSET
    PathInContainer: Opt[str] = UNSET
    CgroupPermissions: Opt[str] = UNSET


class DeviceRequest(Body):
    Driver: Opt[str] = UNSET
    Count: Opt[Int] = UNSET
    DeviceIDs: Opt[StrList] = UNSET
    Capabilities: Opt[list[StrList]] = UNSET
    Options: Opt[StrMap] = UNSET


class Ulimit(Body):
    Name: Opt[str] = UNSET
    Hard: Opt[Int64] = UNSET
    Soft: Opt[Int64] = UNSET


class Resources(Body):
    """``container.Resources``: part of HostConfig, and the body of ``update``."""

    CpuShares: Opt[NonNegative] = UNSET
    Memory: Opt[NonNegative] = UNSET
    NanoCpus: Opt[NonNegative] = UNSET
    CgroupParent: Opt[str] = UNSET
    BlkioWeight: Opt[Annotated[int, Meta(ge=0, le=1000)]] = UNSET
    BlkioWeightDevice: Opt[list[WeightDevice]] = UNSET
    BlkioDeviceReadBps: Opt[list[ThrottleDevice]] = UNSET
    BlkioDeviceWriteBps: Opt[list[ThrottleDevice]] = UNSET
    BlkioDeviceReadIOps: Opt[list[ThrottleDevice]] = UNSET
    BlkioDeviceWriteIOps: Opt[list[ThrottleDevice]] = UNSET
    CpuPeriod: Opt[NonNegative] = UNSET
    #: -1: no limit (the cgroup's own value)
    CpuQuota: Opt[Annotated[int, Meta(ge=-1, le=INT64_MAX)]] = UNSET
    #: cgroup v1 ``cpu.rt_period_us`` / ``cpu.rt_runtime_us`` (-1: no limit)
    CpuRealtimePeriod: Opt[NonNegative] = UNSET
    CpuRealtimeRuntime: Opt[Annotated[int, Meta(ge=-1, le=INT64_MAX)]] = UNSET
    CpusetCpus: Opt[str] = UNSET
    CpusetMems: Opt[str] = UNSET
    Devices: Opt[list[DeviceMapping]] = UNSET
    DeviceCgroupRules: Opt[StrList] = UNSET
    DeviceRequests: Opt[list[DeviceRequest]] = UNSET
    KernelMemory: Opt[Int64] = UNSET
    KernelMemoryTCP: Opt[Int64] = UNSET
    MemoryReservation: Opt[NonNegative] = UNSET
    #: -1: unlimited
    MemorySwap: Opt[Annotated[int, Meta(ge=-1, le=INT64_MAX)]] = UNSET
    #: -1: the host's (what the docker CLI sends when not given)
    MemorySwappiness: Opt[Annotated[int, Meta(ge=-1, le=100)]] = UNSET
    OomKillDisable: Opt[bool] = UNSET
    Init: Opt[bool] = UNSET
    #: 0 or less: no limit
    PidsLimit: Opt[Int64] = UNSET
    Ulimits: Opt[list[Ulimit]] = UNSET
    CpuCount: Opt[NonNegative] = UNSET
    CpuPercent: Opt[Annotated[int, Meta(ge=0, le=100)]] = UNSET
    IOMaximumIOps: Opt[Uint64] = UNSET
    IOMaximumBandwidth: Opt[Uint64] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {
        key: () for key in (
            "KernelMemory", "KernelMemoryTCP", "CpuCount", "CpuPercent", "IOMaximumIOps",
            "IOMaximumBandwidth")}


class LogConfig(Body):
    Type: Opt[str] = UNSET
    Config: Opt[StrMap] = UNSET


class PortBinding(Body):
    HostIp: Opt[str] = UNSET
    HostPort: Opt[str] = UNSET


class RestartPolicy(Body):
    Name: Opt[Literal["", "no", "always", "unless-stopped", "on-failure"]] = UNSET
    MaximumRetryCount: Opt[Annotated[int, Meta(ge=0, le=INT64_MAX)]] = UNSET


#: [height, width] of a TTY (TIOCSWINSZ takes 16-bit sizes)
ConsoleSize = Annotated[list[Uint16], Meta(max_length=2)]
Propagation = Literal["", "private", "rprivate", "shared", "rshared", "slave", "rslave"]


class BindOptions(Body):
    Propagation: Opt[Propagation] = UNSET
    NonRecursive: Opt[bool] = UNSET
    CreateMountpoint: Opt[bool] = UNSET
    ReadOnlyNonRecursive: Opt[bool] = UNSET
    ReadOnlyForceRecursive: Opt[bool] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {
        "NonRecursive": (), "CreateMountpoint": (),
        "ReadOnlyNonRecursive": (), "ReadOnlyForceRecursive": ()}


class VolumeDriverConfig(Body):
    Name: Opt[str] = UNSET
    Options: Opt[StrMap] = UNSET


class VolumeOptions(Body):
    NoCopy: Opt[bool] = UNSET
    Labels: Opt[StrMap] = UNSET
    DriverConfig: Opt[VolumeDriverConfig] = UNSET
    #: a directory inside the volume to mount instead of all of it (core.subpath)
    Subpath: Opt[str] = UNSET


class TmpfsOptions(Body):
    SizeBytes: Opt[NonNegative] = UNSET
    #: an os.FileMode, in decimal (493 for 0755)
    Mode: Opt[Uint32] = UNSET


class Mount(Body):
    Type: Opt[Literal["bind", "volume", "tmpfs", "npipe", "cluster"]] = UNSET
    Source: Opt[str] = UNSET
    Target: Opt[str] = UNSET
    ReadOnly: Opt[bool] = UNSET
    #: macOS only; dockerd on Linux ignores it too
    Consistency: Opt[Literal["", "default", "consistent", "cached", "delegated"]] = UNSET
    BindOptions: Opt[BindOptions] = UNSET
    VolumeOptions: Opt[VolumeOptions] = UNSET
    TmpfsOptions: Opt[TmpfsOptions] = UNSET
    ClusterOptions: Opt[Empty] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"ClusterOptions": NULL_ONLY}


class HostConfig(Resources):
    """``container.HostConfig`` (Resources included, as Go embeds it)."""

    Binds: Opt[StrList] = UNSET
    #: written by the client, not the daemon (dockerd ignores it too)
    ContainerIDFile: Opt[str] = UNSET
    LogConfig: Opt[LogConfig] = UNSET
    NetworkMode: Opt[str] = UNSET
    PortBindings: Opt[dict[str, Opt[list[Opt[PortBinding]]]]] = UNSET
    RestartPolicy: Opt[RestartPolicy] = UNSET
    AutoRemove: Opt[bool] = UNSET
    VolumeDriver: Opt[str] = UNSET
    VolumesFrom: Opt[StrList] = UNSET
    #: the TTY's size at start
    ConsoleSize: Opt[ConsoleSize] = UNSET
    Annotations: Opt[StrMap] = UNSET
    CapAdd: Opt[StrSlice] = UNSET
    CapDrop: Opt[StrSlice] = UNSET
    CgroupnsMode: Opt[Literal["", "private", "host"]] = UNSET
    Dns: Opt[StrList] = UNSET
    DnsOptions: Opt[StrList] = UNSET
    DnsSearch: Opt[StrList] = UNSET
    ExtraHosts: Opt[StrList] = UNSET
    GroupAdd: Opt[StrList] = UNSET
    IpcMode: Opt[str] = UNSET
    Cgroup: Opt[str] = UNSET
    Links: Opt[StrList] = UNSET
    OomScoreAdj: Opt[Annotated[int, Meta(ge=-1000, le=1000)]] = UNSET
    PidMode: Opt[str] = UNSET
    Privileged: Opt[bool] = UNSET
    PublishAllPorts: Opt[bool] = UNSET
    ReadonlyRootfs: Opt[bool] = UNSET
    SecurityOpt: Opt[StrList] = UNSET
    StorageOpt: Opt[StrMap] = UNSET
    Tmpfs: Opt[StrMap] = UNSET
    UTSMode: Opt[str] = UNSET
    UsernsMode: Opt[str] = UNSET
    ShmSize: Opt[NonNegative] = UNSET
    Sysctls: Opt[StrMap] = UNSET
    Runtime: Opt[str] = UNSET
    Isolation: Opt[Literal["", "default", "process", "hyperv"]] = UNSET
    Mounts: Opt[list[Mount]] = UNSET
    MaskedPaths: Opt[StrList] = UNSET
    ReadonlyPaths: Opt[StrList] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {
        **Resources.unsupported, "Annotations": (), "Cgroup": (),
        "Isolation": ("default",), "MaskedPaths": NULL_ONLY,
        "ReadonlyPaths": NULL_ONLY}

    def __post_init__(self) -> None:
        str_slices(self, "CapAdd", "CapDrop")


# -- NetworkingConfig --------------------------------------------------------------------------
class EndpointIPAMConfig(Body):
    IPv4Address: Opt[str] = UNSET
    IPv6Address: Opt[str] = UNSET
    LinkLocalIPs: Opt[StrList] = UNSET


class EndpointSettings(Body):
    """``network.EndpointSettings``. ``Links`` (aliases for this container on the network) and
    ``DriverOpts`` (handed to the network driver) are applied (core.networks.endpoint_config).
    Past ``DriverOpts`` its fields are what inspect shows; dockerd ignores them in a request,
    and so does this engine."""

    IPAMConfig: Opt[EndpointIPAMConfig] = UNSET
    Links: Opt[StrList] = UNSET
    Aliases: Opt[StrList] = UNSET
    MacAddress: Opt[str] = UNSET
    DriverOpts: Opt[StrMap] = UNSET
    #: API 1.48 (the docker CLI 28 sends it, 0): which network's gateway is the default route
    GwPriority: Opt[Int] = UNSET
    NetworkID: Opt[str] = UNSET
    EndpointID: Opt[str] = UNSET
    Gateway: Opt[str] = UNSET
    IPAddress: Opt[str] = UNSET
    IPPrefixLen: Opt[Int] = UNSET
    IPv6Gateway: Opt[str] = UNSET
    GlobalIPv6Address: Opt[str] = UNSET
    GlobalIPv6PrefixLen: Opt[Int64] = UNSET
    DNSNames: Opt[StrList] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"GwPriority": ()}


class NetworkingConfig(Body):
    EndpointsConfig: Opt[dict[str, Opt[EndpointSettings]]] = UNSET


# -- bodies ------------------------------------------------------------------------------------
class ContainerCreate(ContainerConfig):
    """``POST /containers/create``."""

    HostConfig: Opt[HostConfig] = UNSET
    NetworkingConfig: Opt[NetworkingConfig] = UNSET
    #: docker-py's ``create_container(runtime=)`` sends it here, beside the config, where dockerd
    #: drops it (its default being runc, docker-py's test cannot tell); applied here as
    #: ``HostConfig.Runtime`` when that is not given, so the runtime asked for is the one used
    Runtime: Opt[str] = UNSET


class ContainerUpdate(Resources):
    """``POST /containers/{id}/update``: what ``docker update`` changes. Resources it cannot
    change on a container are refused when set."""

    RestartPolicy: Opt[RestartPolicy] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {
        **Resources.unsupported, "CgroupParent": (), "Devices": (), "DeviceCgroupRules": (),
        "Ulimits": (), "Init": (), "DeviceRequests": (), "OomKillDisable": (), "MemorySwappiness": (-1,),
        "BlkioWeightDevice": (), "BlkioDeviceReadBps": (), "BlkioDeviceWriteBps": (),
        "BlkioDeviceReadIOps": (), "BlkioDeviceWriteIOps": ()}


#: ``POST /commit``: the new image's config overrides
CommitConfig = ContainerConfig
