"""``create``/``run`` flags → the ``POST /containers/create`` body the docker CLI 28 sends."""
from __future__ import annotations

import json
import os
import re
from typing import Any

import click

from dockyard.hookspecs.host import units

from . import complete


class OptError(click.UsageError):
    """A bad flag value; ``run``/``create`` exit 125 on it, like docker."""


def ram_in_bytes(s: str) -> int:
    """:func:`dockyard.hookspecs.host.units.ram_in_bytes` for a flag: OptError on a bad size."""
    try:
        return units.ram_in_bytes(s)
    except ValueError as e:
        raise OptError(str(e)) from None


def parse_env_file(path: str) -> list[str]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise OptError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            out.append(line)
        else:
            val = os.environ.get(line.strip())
            out.append(f"{line.strip()}={val}" if val is not None else line.strip())
    return out


def parse_env(values: tuple[str, ...]) -> list[str]:
    out = []
    for v in values:
        if "=" in v:
            if v.startswith("="):
                raise OptError(f"invalid environment variable: {v}")
            out.append(v)
        else:
            val = os.environ.get(v)
            out.append(f"{v}={val}" if val is not None else v)
    return out


def _port_range(s: str) -> list[int]:
    if not s:
        return []
    a, _, b = s.partition("-")
    try:
        lo, hi = int(a), int(b or a)
    except ValueError:
        raise OptError(f"invalid containerPort: {s}") from None
    if not (0 <= lo <= 65535 and lo <= hi <= 65535):
        raise OptError(f"invalid port range: {s}")
    return list(range(lo, hi + 1))


def parse_publish(specs: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` (ranges allowed) → (ExposedPorts, PortBindings)."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        proto = "tcp"
        rest = spec
        if "/" in rest:
            rest, proto = rest.rsplit("/", 1)
            proto = proto.lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise OptError(f"invalid proto: {proto}")
        ip = ""
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise OptError(f"invalid IP address: {spec}")
            ip, rest = rest[1:end], rest[end + 1:].lstrip(":")
            parts = rest.split(":")
            host_port, cport = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        else:
            parts = rest.split(":")
            if len(parts) == 1:
                host_port, cport = "", parts[0]
            elif len(parts) == 2:
                host_port, cport = parts
            elif len(parts) == 3:
                ip, host_port, cport = parts
            else:
                raise OptError(f"invalid publish spec: {spec}")
        if not cport:
            raise OptError(f"no port specified: {spec}<empty>")
        cports = _port_range(cport)
        hports = _port_range(host_port)
        if hports and len(hports) != len(cports) and len(hports) != 1:
            raise OptError(f"invalid ranges specified for container and host Ports: {cport} and {host_port}")
        for i, p in enumerate(cports):
            key = f"{p}/{proto}"
            exposed[key] = {}
            if not hports:
                hp = ""
            elif len(hports) == len(cports):
                hp = str(hports[i])
            else:
                hp = host_port
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    return exposed, bindings


def go_duration_ns(value: str, flag: str) -> int:
    """A Go duration (``1m30s``, ``500ms``) in nanoseconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise OptError(f"invalid argument \"{value}\" for \"{flag}\" flag: time: invalid duration")
    scale = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
    return int(sum(float(n) * scale[u] for n, u in parts))


def parse_healthcheck(o: dict[str, Any]) -> dict[str, Any] | None:
    """``--health-cmd`` and friends, ``--no-healthcheck``: Config.Healthcheck or None."""
    if o.get("no_healthcheck"):
        if o.get("health_cmd"):
            raise OptError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    check: dict[str, Any] = {}
    if o.get("health_cmd"):
        check["Test"] = ["CMD-SHELL", o["health_cmd"]]
    for key, flag, name in (("health_interval", "--health-interval", "Interval"),
                            ("health_timeout", "--health-timeout", "Timeout"),
                            ("health_start_period", "--health-start-period", "StartPeriod")):
        if o.get(key):
            check[name] = go_duration_ns(o[key], flag)
    if o.get("health_retries"):
        check["Retries"] = int(o["health_retries"])
    return check or None


def parse_log_opts(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise OptError(f"invalid key value pair format in log options: {v}")
        out[k] = val
    return out


def parse_sysctls(values: tuple[str, ...]) -> dict[str, str] | None:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise OptError(f"invalid argument \"{v}\" for \"--sysctl\" flag: sysctl '{v}' is not "
                           "in the format key=value")
        out[k] = val
    return out or None


def parse_devices(values: tuple[str, ...]) -> list[dict[str, str]]:
    """``--device /dev/x[:/dev/y[:rwm]]``."""
    out = []
    for v in values:
        parts = v.split(":")
        if len(parts) > 3 or not parts[0]:
            raise OptError(f"invalid device specification: {v}")
        perms = "rwm"
        if len(parts) == 3:
            perms = parts[2]
        elif len(parts) == 2 and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
            perms, parts = parts[1], parts[:1]
        out.append({"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                    "CgroupPermissions": perms})
    return out


def parse_restart(s: str | None) -> dict[str, Any]:
    if not s:
        return {"Name": "no", "MaximumRetryCount": 0}
    name, _, count = s.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise OptError(f"invalid restart policy '{s}'")
    if count and name != "on-failure":
        raise OptError("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    try:
        n = int(count) if count else 0
    except ValueError:
        raise OptError("invalid restart policy: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": n}


def _cap(c: str) -> str:
    c = c.strip().upper()
    if c == "ALL" or c.startswith("CAP_"):
        return c
    return "CAP_" + c


def parse_security_opts(values: tuple[str, ...]) -> list[str] | None:
    """``--security-opt``, as the docker CLI sends it: ``seccomp=<file>`` is read here and sent as
    its JSON (the daemon may run on another host); ``seccomp=unconfined`` and the rest as given."""
    out = []
    for opt in values or ():
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "seccomp" and sep and value not in ("unconfined", "builtin", "") \
                and not value.lstrip().startswith("{"):
            try:
                with open(value, encoding="utf-8") as f:
                    text = f.read()
                opt = "seccomp=" + json.dumps(json.loads(text), separators=(",", ":"))
            except (OSError, ValueError) as e:
                raise click.BadParameter(f"opening seccomp profile ({value}) failed: {e}",
                                         param_hint="--security-opt") from None
        out.append(opt)
    return out or None


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise OptError(f"invalid label: '{v}'")
        out[k] = val
    return out


def _endpoint_defaults() -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
            "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None}


def build_create_body(o: dict[str, Any], image: str, cmd: tuple[str, ...], detach: bool = False,
                      console_size: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """The JSON docker CLI 28 sends to ``POST /containers/create`` for these flag values."""
    if o.get("rm") and o.get("restart") and o["restart"] not in ("no",):
        raise OptError("conflicting options: cannot specify both --restart and --rm")
    env: list[str] = []
    for f in o.get("env_file") or ():
        env += parse_env_file(f)
    env += parse_env(o.get("env") or ())
    exposed, bindings = parse_publish(o.get("publish") or ())
    for e in o.get("expose") or ():
        for p in _port_range(e.split("/")[0]):
            exposed[f"{p}/{e.split('/')[1] if '/' in e else 'tcp'}"] = {}
    binds, volumes = [], {}
    for v in o.get("volume") or ():
        if ":" in v:
            binds.append(v)
        else:
            volumes[v] = {}
    mounts = [parse_mount(m) for m in o.get("mount") or ()]
    tmpfs = {}
    for t in o.get("tmpfs") or ():
        path, _, topts = t.partition(":")
        tmpfs[path] = topts
    config = _config(o, image, cmd, detach, env, exposed, volumes)
    network = o.get("network") or "default"
    host = _host_config(o, network, console_size, binds=binds, mounts=mounts, tmpfs=tmpfs,
                        bindings=bindings)
    return {**config, "HostConfig": host,
            "NetworkingConfig": {"EndpointsConfig": _endpoints(o, network)}}


def _config(o: dict[str, Any], image: str, cmd: tuple[str, ...], detach: bool, env: list[str],
            exposed: dict[str, Any], volumes: dict[str, Any]) -> dict[str, Any]:
    """The container's own configuration (the body's top level, but ``HostConfig`` and
    ``NetworkingConfig``)."""
    interactive, tty = bool(o.get("interactive")), bool(o.get("tty"))
    attach_stdin = interactive and not detach
    config: dict[str, Any] = {
        "Hostname": o.get("hostname") or "", "Domainname": "", "User": o.get("user") or "",
        "AttachStdin": attach_stdin, "AttachStdout": not detach, "AttachStderr": not detach,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    config.update({
        "Tty": tty, "OpenStdin": interactive, "StdinOnce": attach_stdin,
        "Env": env or None, "Cmd": list(cmd) or None, "Image": image, "Volumes": volumes,
        "WorkingDir": o.get("workdir") or "",
        "Entrypoint": [o["entrypoint"]] if o.get("entrypoint") is not None else None,
        "OnBuild": None, "Labels": _labels(o.get("label") or ()),
    })
    if o.get("stop_signal"):
        config["StopSignal"] = o["stop_signal"]
    if o.get("stop_timeout") is not None:
        config["StopTimeout"] = o["stop_timeout"]
    check = parse_healthcheck(o)
    if check is not None:
        config["Healthcheck"] = check
    return config


def _host_config(o: dict[str, Any], network: str, console_size: tuple[int, int], *,
                 binds: list[str], mounts: list[dict[str, Any]], tmpfs: dict[str, str],
                 bindings: dict[str, Any]) -> dict[str, Any]:
    """``HostConfig``: every field the docker CLI sends, its default where no flag is given."""
    host: dict[str, Any] = {
        "Binds": binds or None, "Mounts": mounts or None, "Tmpfs": tmpfs or None, "ContainerIDFile": "",
        "LogConfig": {"Type": o.get("log_driver") or "", "Config": parse_log_opts(o.get("log_opt") or ())},
        "NetworkMode": network, "PortBindings": bindings,
        "RestartPolicy": parse_restart(o.get("restart")), "AutoRemove": bool(o.get("rm")),
        "VolumeDriver": o.get("volume_driver") or "", "ConsoleSize": list(console_size),
        "CapAdd": [_cap(c) for c in o.get("cap_add") or ()] or None,
        "CapDrop": [_cap(c) for c in o.get("cap_drop") or ()] or None,
        "CgroupnsMode": o.get("cgroupns") or "", "Dns": list(o.get("dns") or ()),
        "DnsOptions": list(o.get("dns_option") or ()), "DnsSearch": list(o.get("dns_search") or ()),
        "CgroupParent": o.get("cgroup_parent") or "", "Runtime": o.get("runtime") or "",
        "VolumesFrom": list(o.get("volumes_from") or ()) or None,
        "ExtraHosts": list(o.get("add_host") or ()) or None,
        "GroupAdd": list(o.get("group_add") or ()) or None, "IpcMode": o.get("ipc") or "",
        "Cgroup": "", "Links": list(o.get("link") or ()) or None, "OomScoreAdj": int(o.get("oom_score_adj") or 0),
        "PidMode": o.get("pid") or "",
        "Privileged": bool(o.get("privileged")), "PublishAllPorts": bool(o.get("publish_all")),
        "ReadonlyRootfs": bool(o.get("read_only")), "SecurityOpt": parse_security_opts(o.get("security_opt") or ()), "UTSMode": o.get("uts") or "",
        "UsernsMode": o.get("userns") or "",
        "ShmSize": ram_in_bytes(o["shm_size"]) if o.get("shm_size") else 0, "Isolation": "",
        "Sysctls": parse_sysctls(o.get("sysctl") or ()),
        "CpuShares": int(o.get("cpu_shares") or 0),
        "Memory": ram_in_bytes(o["memory"]) if o.get("memory") else 0,
        "NanoCpus": int(float(o["cpus"]) * 1e9) if o.get("cpus") else 0,
        "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": "", "CpusetMems": "", "Devices": parse_devices(o.get("device") or ()),
        "DeviceCgroupRules": list(o.get("device_cgroup_rule") or ()) or None,
        "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": -1,
        "OomKillDisable": False, "PidsLimit": int(o.get("pids_limit") or 0), "Ulimits": [],
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": None, "ReadonlyPaths": None,
    }
    if o.get("init"):
        host["Init"] = True
    return host


def _endpoints(o: dict[str, Any], network: str) -> dict[str, Any]:
    """``NetworkingConfig.EndpointsConfig``: the network's endpoint, with the aliases, addresses
    and MAC address given."""
    endpoints = {"default": _endpoint_defaults()} if network == "default" else {}
    aliases = list(o.get("network_alias") or ())
    ipam = {k: v for k, v in (("IPv4Address", o.get("ip")), ("IPv6Address", o.get("ip6")),
                              ("LinkLocalIPs", list(o.get("link_local_ip") or ()))) if v}
    if aliases or ipam or o.get("mac_address"):
        # as the docker CLI: the daemon decides what the network allows
        ep = _endpoint_defaults()
        ep["Aliases"] = aliases or None
        ep["IPAMConfig"] = ipam or None
        ep["MacAddress"] = o.get("mac_address") or ""
        endpoints = {network: ep}
    return endpoints


def container_options(f):
    """The flags shared by ``create`` and ``run`` (docker's names)."""
    opts = [
        click.option("--add-host", "add_host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"),
        click.option("--device", multiple=True, help="Add a host device to the container"),
        click.option("--device-cgroup-rule", "device_cgroup_rule", multiple=True,
                     help="Add a rule to the cgroup allowed devices list ('c 1:11 r')"),
        click.option("--dns", multiple=True, help="Set custom DNS servers"),
        click.option("--dns-option", "dns_option", multiple=True, help="Set DNS options"),
        click.option("--dns-search", "dns_search", multiple=True, help="Set custom DNS search domains"),
        click.option("--cgroupns", help="Cgroup namespace to use (host|private)"),
        click.option("--cgroup-parent", "cgroup_parent", help="Optional parent cgroup for the container"),
        click.option("--volume-driver", "volume_driver", metavar="DRIVER",
                     help="Optional volume driver for the container"),
        click.option("--runtime", help="Runtime to use for this container (see `dockyard info`)"),
        click.option("--volumes-from", "volumes_from", multiple=True, shell_complete=complete.containers,
                     help="Mount volumes from the specified container(s)"),
        click.option("--group-add", "group_add", multiple=True, help="Add additional groups to join"),
        click.option("--health-cmd", "health_cmd", help="Command to run to check health"),
        click.option("--health-interval", "health_interval", help="Time between running the check (ms|s|m|h)"),
        click.option("--health-retries", "health_retries", type=int, help="Consecutive failures needed to report unhealthy"),
        click.option("--health-start-period", "health_start_period", help="Start period for the container to initialize"),
        click.option("--health-timeout", "health_timeout", help="Maximum time to allow one check to run"),
        click.option("--no-healthcheck", "no_healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK"),
        click.option("--ipc", help="IPC mode to use (host, container:<name>)"),
        click.option("--oom-score-adj", "oom_score_adj", type=int, help="Tune host's OOM preferences (-1000 to 1000)"),
        click.option("--pid", help="PID namespace to use (host, container:<name>)"),
        click.option("--shm-size", "shm_size", help="Size of /dev/shm"),
        click.option("--sysctl", multiple=True, help="Sysctl options"),
        click.option("--uts", help="UTS namespace to use (host)"),
        click.option("--cap-add", "cap_add", multiple=True, help="Add Linux capabilities"),
        click.option("--cap-drop", "cap_drop", multiple=True, help="Drop Linux capabilities"),
        click.option("--cpu-shares", "cpu_shares", type=int, help="CPU shares (relative weight)"),
        click.option("--cpus", help="Number of CPUs"),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image"),
        click.option("-e", "--env", multiple=True, help="Set environment variables"),
        click.option("--env-file", "env_file", multiple=True, help="Read in a file of environment variables"),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports"),
        click.option("-h", "--hostname", help="Container host name"),
        click.option("--init", is_flag=True, help="Run an init inside the container"),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container"),
        click.option("--log-driver", "log_driver", help="Logging driver for the container"),
        click.option("--log-opt", "log_opt", multiple=True, help="Log driver options"),
        click.option("--link", multiple=True, help="Add link to another container"),
        click.option("-m", "--memory", help="Memory limit"),
        click.option("--name", help="Assign a name to the container"),
        click.option("--network", "--net", "network", shell_complete=complete.networks,
                     help="Connect a container to a network"),
        click.option("--network-alias", "network_alias", multiple=True, help="Add network-scoped alias for the container"),
        click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)"),
        click.option("--ip6", help="IPv6 address (e.g., 2001:db8::33)"),
        click.option("--link-local-ip", "link_local_ip", multiple=True, help="Container IPv4/IPv6 link-local addresses"),
        click.option("--mac-address", "mac_address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        click.option("--security-opt", "security_opt", multiple=True, help="Security Options"),
        click.option("--pids-limit", "pids_limit", type=int, help="Tune container pids limit (set -1 for unlimited)"),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container"),
        click.option("--userns", "userns", help="User namespace to use (host: not the daemon's remapping)"),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host"),
        click.option("-P", "--publish-all", "publish_all", is_flag=True, help="Publish all exposed ports to random ports"),
        click.option("--read-only", "read_only", is_flag=True, help="Mount the container's root filesystem as read only"),
        click.option("--restart", help="Restart policy to apply when a container exits"),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits"),
        click.option("--stop-signal", "stop_signal", help="Signal to stop the container"),
        click.option("--stop-timeout", "stop_timeout", type=int, help="Timeout (in seconds) to stop a container"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("-v", "--volume", multiple=True, help="Bind mount a volume"),
        click.option("--mount", multiple=True, help="Attach a filesystem mount to the container"),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory"),
        click.option("-w", "--workdir", help="Working directory inside the container"),
        click.option("--pull", type=click.Choice(["always", "missing", "never"]), default="missing",
                     help='Pull image before running ("always", "missing", "never")'),
        click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` → a HostConfig.Mounts entry."""
    m: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "destination", "dst"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = not sep or value.lower() in ("1", "true")
        elif key == "tmpfs-size":
            m.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            m.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        elif key == "volume-nocopy":
            m.setdefault("VolumeOptions", {})["NoCopy"] = True
        else:
            raise OptError(f"invalid field '{key}' must be a key=value pair")
    if "Target" not in m:
        raise OptError("target is required")
    return m
