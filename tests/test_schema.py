"""The request-body descriptions (dockyard.core.schema), without a daemon: what real clients
send passes, every wrong type is a 400 naming its path, and no field of API 1.45 is missing."""
from __future__ import annotations

import json

import msgspec
import pytest

from dockyard.core import schema
from dockyard.core.schema import unsupported
from dockyard.hookspecs.errors import InvalidParameter

#: what the docker CLI 28 sends for `docker create busybox true` (recorded)
CLI_CREATE = json.loads("""{"Hostname":"","Domainname":"","User":"","AttachStdin":false,
"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,
"Cmd":["true"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,
"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},
"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},
"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,
"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,
"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"",
"Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",
"UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"",
"BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],
"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,
"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],
"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,
"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,
"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},
"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,
"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"",
"IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,
"DNSNames":null}}}}""")
#: `docker update --memory 100m` (docker CLI 28)
CLI_UPDATE = json.loads("""{"CpuShares":0,"Memory":104857600,"NanoCpus":0,"CgroupParent":"",
"BlkioWeight":0,"BlkioWeightDevice":null,"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,
"BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":0,
"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":null,
"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,
"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,"Ulimits":null,"CpuCount":0,
"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,
"RestartPolicy":{"Name":"","MaximumRetryCount":0}}""")

#: the properties of each body in moby's api/docs/v1.45.yaml
SWAGGER_1_45 = {
    schema.ContainerCreate: """Hostname Domainname User AttachStdin AttachStdout AttachStderr
        ExposedPorts Tty OpenStdin StdinOnce Env Cmd Healthcheck ArgsEscaped Image Volumes
        WorkingDir Entrypoint NetworkDisabled MacAddress OnBuild Labels StopSignal StopTimeout
        Shell HostConfig NetworkingConfig""",
    schema.containers.HostConfig: """CpuShares Memory CgroupParent BlkioWeight BlkioWeightDevice
        BlkioDeviceReadBps BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuPeriod
        CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpusetCpus CpusetMems Devices
        DeviceCgroupRules DeviceRequests KernelMemoryTCP MemoryReservation MemorySwap
        MemorySwappiness NanoCpus OomKillDisable Init PidsLimit Ulimits CpuCount CpuPercent
        IOMaximumIOps IOMaximumBandwidth Binds ContainerIDFile LogConfig NetworkMode PortBindings
        RestartPolicy AutoRemove VolumeDriver VolumesFrom Mounts ConsoleSize Annotations CapAdd
        CapDrop CgroupnsMode Dns DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links
        OomScoreAdj PidMode Privileged PublishAllPorts ReadonlyRootfs SecurityOpt StorageOpt
        Tmpfs UTSMode UsernsMode ShmSize Sysctls Runtime Isolation MaskedPaths ReadonlyPaths""",
    schema.containers.Mount: "Target Source Type ReadOnly Consistency BindOptions VolumeOptions "
                             "TmpfsOptions",
    schema.containers.BindOptions: "Propagation NonRecursive CreateMountpoint "
                                   "ReadOnlyNonRecursive ReadOnlyForceRecursive",
    schema.containers.VolumeOptions: "NoCopy Labels DriverConfig Subpath",
    schema.containers.TmpfsOptions: "SizeBytes Mode",
    schema.containers.HealthConfig: "Test Interval Timeout Retries StartPeriod StartInterval",
    schema.containers.EndpointSettings: """IPAMConfig Links MacAddress Aliases NetworkID
        EndpointID Gateway IPAddress IPPrefixLen IPv6Gateway GlobalIPv6Address GlobalIPv6PrefixLen
        DriverOpts DNSNames""",
    schema.containers.EndpointIPAMConfig: "IPv4Address IPv6Address LinkLocalIPs",
    schema.containers.DeviceRequest: "Driver Count DeviceIDs Capabilities Options",
    schema.containers.ThrottleDevice: "Path Rate",
    schema.containers.DeviceMapping: "PathOnHost PathInContainer CgroupPermissions",
    schema.containers.RestartPolicy: "Name MaximumRetryCount",
    schema.ContainerUpdate: """CpuShares Memory CgroupParent BlkioWeight BlkioWeightDevice
        BlkioDeviceReadBps BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuPeriod
        CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpusetCpus CpusetMems Devices
        DeviceCgroupRules DeviceRequests KernelMemoryTCP MemoryReservation MemorySwap
        MemorySwappiness NanoCpus OomKillDisable Init PidsLimit Ulimits CpuCount CpuPercent
        IOMaximumIOps IOMaximumBandwidth RestartPolicy""",
    schema.ExecCreate: "AttachStdin AttachStdout AttachStderr ConsoleSize DetachKeys Tty Env Cmd "
                       "Privileged User WorkingDir",
    schema.ExecStart: "Detach Tty ConsoleSize",
    schema.NetworkCreate: "Name CheckDuplicate Driver Scope Internal Attachable Ingress "
                          "ConfigOnly ConfigFrom IPAM EnableIPv6 Options Labels",
    schema.bodies.IPAM: "Driver Config Options",
    schema.bodies.IPAMPool: "Subnet IPRange Gateway AuxiliaryAddresses",
    schema.NetworkConnect: "Container EndpointConfig",
    schema.NetworkDisconnect: "Container Force",
    schema.VolumeCreate: "Name Driver DriverOpts Labels ClusterVolumeSpec",
    schema.AuthConfig: "username password email serveraddress",
}


@pytest.mark.parametrize("body_type", list(SWAGGER_1_45), ids=lambda t: t.__name__)
def test_every_field_of_api_1_45_is_described(body_type: type) -> None:
    described = {f.encode_name for f in msgspec.inspect.type_info(body_type).fields}
    missing = set(SWAGGER_1_45[body_type].split()) - described
    assert not missing, f"{body_type.__name__} lacks {sorted(missing)}"


def _decode(body: object, body_type: type = schema.ContainerCreate) -> dict:
    return schema.decode(json.dumps(body).encode(), body_type)


def _refused(body: object, body_type: type = schema.ContainerCreate) -> str:
    with pytest.raises(InvalidParameter) as info:
        _decode(body, body_type)
    assert info.value.status == 400
    return info.value.message


def test_what_the_docker_cli_sends_passes_unchanged() -> None:
    out = _decode(CLI_CREATE)
    assert out["HostConfig"]["Privileged"] is False and out["Cmd"] == ["true"]
    assert out["NetworkingConfig"]["EndpointsConfig"]["default"]["GwPriority"] == 0
    assert out["HostConfig"]["MemorySwappiness"] == -1 and out["Env"] is None
    assert _decode(CLI_UPDATE, schema.ContainerUpdate)["Memory"] == 104857600


def test_absent_and_null_are_kept_apart() -> None:
    out = _decode({"Image": "x", "HostConfig": {"Privileged": None}})
    assert out == {"Image": "x", "HostConfig": {"Privileged": None}}


@pytest.mark.parametrize("body, path, words", [
    ({"HostConfig": {"Privileged": "false"}}, "HostConfig.Privileged", "expected a boolean, got a string"),
    ({"HostConfig": {"Memory": 2 ** 70}}, "HostConfig.Memory", "<= 9223372036854775807"),
    ({"HostConfig": {"Memory": -1}}, "HostConfig.Memory", ">= 0"),
    ({"HostConfig": {"Memory": 1.0}}, "HostConfig.Memory", "expected an integer, got a number"),
    ({"HostConfig": {"Memory": True}}, "HostConfig.Memory", "expected an integer, got a boolean"),
    ({"HostConfig": {"OomScoreAdj": 1001}}, "HostConfig.OomScoreAdj", "<= 1000"),
    ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "HostConfig.RestartPolicy.Name",
     "'unless-stopped'"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "ReadOnly": "yes"}]}},
     "HostConfig.Mounts[0].ReadOnly", "expected a boolean"),
    ({"HostConfig": {"ConsoleSize": [24, 70000]}}, "HostConfig.ConsoleSize[1]", "<= 65535"),
    ({"Labels": {"a": 1}}, "Labels[...]", "expected a string, got an integer"),
    ({"Cmd": 5}, "Cmd", "expected a string or an array"),
    ({"Env": "A=1"}, "Env", "expected an array, got a string"),
    ({"ExposedPorts": {"80/tcp": 1}}, "ExposedPorts[...]", "expected an object"),
    ({"NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "x"}}}},
     "NetworkingConfig.EndpointsConfig[...].Aliases", "expected an array"),
    ([], "request body", "expected an object, got an array"),
])
def test_a_wrong_field_is_named(body: object, path: str, words: str) -> None:
    msg = _refused(body)
    assert msg.startswith(path + ":") and words in msg, msg


def test_unsupported_fields_are_refused_only_when_set() -> None:
    assert "HostConfig.KernelMemory: not supported" in _refused(
        {"HostConfig": {"KernelMemory": 1 << 20}})
    assert "HostConfig.MaskedPaths" in _refused({"HostConfig": {"MaskedPaths": []}})
    assert "Mounts[0].BindOptions.NonRecursive" in _refused(
        {"HostConfig": {"Mounts": [{"Type": "bind", "BindOptions": {"NonRecursive": True}}]}})
    assert "ConfigFrom.Network" in _refused({"Name": "n", "ConfigFrom": {"Network": "other"}},
                                            schema.NetworkCreate)
    # their "not set" values pass
    _decode({"HostConfig": {"MemorySwappiness": -1, "Isolation": "default", "VolumeDriver": "local",
                            "MaskedPaths": None, "Mounts": [{"BindOptions": {"NonRecursive": False}}]}})
    # every listed field exists in its description
    for body_type in SWAGGER_1_45:
        for path, _ in unsupported.rules(body_type):
            assert path and all(step is None or isinstance(step, str) for step in path)


@pytest.mark.parametrize("raw, words", [
    (b'{"x":' + b"[" * 100000, "too deeply nested"),
    (b"[" * 100000, "expected an object"),
    (b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}", "too deeply nested"),
    (b'{"Env": ["a\\u0000b"]}', "NUL"),
    (b'{"Image": "\xff"}', "invalid JSON"),
    (b'{"Image": "x"} {}', "invalid JSON"),
])
def test_hostile_bytes_are_a_400(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        schema.decode(raw, schema.ContainerCreate)
    assert words in info.value.message


def test_loads_has_a_depth_limit() -> None:
    assert schema.loads(b"[" * 100 + b"]" * 100)
    for raw in (b"[" * 101 + b"]" * 101, b"[" * 200000):
        with pytest.raises(InvalidParameter, match="too deeply nested"):
            schema.loads(raw, "filters")
    with pytest.raises(InvalidParameter, match="invalid JSON in filters"):
        schema.loads(b"{", "filters")


def test_keys_match_fields_in_any_case_as_in_go() -> None:
    """Go's encoding/json: an exact match first, then one in another case; docker-py sends
    ``CPURealtimePeriod`` and exec ``detachKeys``. Unknown keys are still ignored, at any depth."""
    out = _decode({"image": "x", "HostConfig": {"CPURealtimePeriod": 1000, "cpurealtimeruntime": 500,
                                                "NoSuchField": 1, "LOGCONFIG": {"type": "none"}},
                   "networkingconfig": {"EndpointsConfig": {"Net": {"aliases": ["a"], "x": 1}}}})
    assert out == {"Image": "x", "HostConfig": {"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500,
                                                "LogConfig": {"Type": "none"}},
                   "NetworkingConfig": {"EndpointsConfig": {"Net": {"Aliases": ["a"]}}}}
    assert _decode({"detachKeys": "ctrl-p", "cmd": ["cat"]}, schema.ExecCreate) == \
        {"DetachKeys": "ctrl-p", "Cmd": ["cat"]}
    # map keys are data, never renamed; a later key for the same field wins; Go also folds
    # the long s and the Kelvin sign to s and k
    assert _decode({"labels": {"labels": "1"}, "Hostname": "a", "HOSTNAME": "b",
                    "\u017fhell": ["sh"], "HostConfig": {"\u212aernelMemoryTCP": 0}}) == \
        {"Labels": {"labels": "1"}, "Hostname": "b", "Shell": ["sh"],
         "HostConfig": {"KernelMemoryTCP": 0}}
    # types are still checked, and the path names the field
    assert _refused({"hostconfig": {"privileged": "yes"}}).startswith("HostConfig.Privileged:")
    # what is refused in one case is refused in any other
    assert "HostConfig.KernelMemory: not supported" in _refused({"HostConfig": {"kernelmemory": 1}})
    # struct{} values keep nothing, whatever their keys
    assert _decode({"ExposedPorts": {"80/tcp": {"X": 1}}}) == {"ExposedPorts": {"80/tcp": {}}}


def test_seccomp_profile_keys_match_in_any_case() -> None:
    from dockyard.core.schema.seccomp import SeccompProfile
    out = _decode({"DefaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"NAMES": ["mkdir"],
                   "action": "SCMP_ACT_ERRNO", "ErrnoRet": 1}]}, SeccompProfile)
    assert out == {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


@pytest.mark.parametrize("body_type, key, given, want", [
    (schema.ContainerCreate, "Cmd", "echo hi", ["echo hi"]),
    (schema.ContainerCreate, "Entrypoint", "/bin/sh", ["/bin/sh"]),
    (schema.ContainerCreate, "Shell", "bash", ["bash"]),
    (schema.CommitConfig, "Cmd", "ls -l", ["ls -l"]),
    (schema.ContainerCreate, "Cmd", ["a", "b"], ["a", "b"]),
])
def test_a_strslice_string_is_a_list_of_that_string(body_type: type, key: str, given: object,
                                                    want: list[str]) -> None:
    """moby's strslice.StrSlice: a string is one argument (never ``sh -c``)."""
    assert _decode({key: given}, body_type)[key] == want
    host = _decode({"HostConfig": {"CapAdd": "NET_ADMIN", "CapDrop": "MKNOD"}})["HostConfig"]
    assert host == {"CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"]}


def test_fields_that_are_string_lists_in_go_refuse_a_string() -> None:
    """Healthcheck.Test and exec's Cmd are Go ``[]string``: dockerd refuses a string."""
    assert _refused({"Healthcheck": {"Test": "true"}}).startswith("Healthcheck.Test: expected an array")
    assert _refused({"Cmd": "ls"}, schema.ExecCreate).startswith("Cmd: expected an array")
