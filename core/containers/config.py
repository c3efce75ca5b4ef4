"""A container's create config, checked and merged without a daemon: pure functions of the create
body, the image's config and the daemon's settings (no I/O, no state). The service
(:mod:`.create`) looks up what these need (the image, the network, peers) and records the result.

Errors are :class:`InvalidParameter` (a 400) in dockerd's words where it has them.
"""
from __future__ import annotations

import datetime
import ipaddress
import signal as signal_mod
from typing import Any, Callable

from dockyard.hookspecs.errors import Conflict, InvalidParameter
from dockyard.hookspecs.host import units

from .. import health, names, spec as specmod

ZERO_TIME = "0001-01-01T00:00:00Z"

#: HostConfig key -> namespace type, for --pid/--ipc/--uts host|container:<name>
NS_MODES = (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts"))

#: json-file options dockerd accepts (max-size/max-file are applied; the rest are taken and have
#: no effect here)
LOG_OPTS = ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag")

#: dockerd's other log drivers: the same words, and which ones this engine has
DOCKERD_LOG_DRIVERS = ("local", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk",
                       "etwlogs", "gcplogs", "logentries")

#: the ``UpdateConfig`` fields this engine applies (dockerd's others are accepted at zero)
UPDATE_INT_KEYS = ("Memory", "MemorySwap", "CpuShares", "CpuQuota", "CpuPeriod", "NanoCpus",
                   "PidsLimit", "BlkioWeight", "MemoryReservation", "CpuRealtimePeriod",
                   "CpuRealtimeRuntime")

#: the options a container sharing another's network namespace cannot have: key -> its words
_NET_PEER_CONFLICTS = (("PortBindings", "port publishing"), ("PublishAllPorts", "port publishing"),
                       ("ExtraHosts", "--add-host"), ("Dns", "--dns"), ("Links", "--link"),
                       ("MacAddress", "mac-address"))

#: the ``Config`` keys a commit carries over into the new image's config
COMMIT_KEYS = ("User", "ExposedPorts", "Env", "Cmd", "WorkingDir", "Entrypoint", "Volumes",
               "Labels", "StopSignal", "OnBuild", "Shell")


def parse_signal(sig: str | int | None, default: int = signal_mod.SIGKILL) -> int:
    """A signal given by number or name (``KILL``, ``SIGKILL``, ``SIGRTMIN+3``); ``default``
    when none is given."""
    if sig in (None, ""):
        return int(default)
    if isinstance(sig, int) or str(sig).isdigit():
        num = int(sig)
        if not 0 < num < 65:
            raise InvalidParameter(f"Invalid signal: {sig}")
        return num
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base = signal_mod.SIGRTMIN if "MIN" in name else signal_mod.SIGRTMAX
        try:
            off = int(name[9:])
        except ValueError:
            raise InvalidParameter(f"Invalid signal: {sig}") from None
        return int(base) + off if "MIN" in name else int(base) - off
    try:
        return int(signal_mod.Signals[name])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


def parse_time(ts: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time as the records hold it; 0 if unreadable."""
    try:
        base, _, frac = ts.rstrip("Z").partition(".")
        dt = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp() + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return 0.0


# -- names -----------------------------------------------------------------------------------------
def full_name(name: str) -> str:
    """A container name as recorded (``/name``), after dockerd's check of its characters."""
    if not name or not names.VALID_NAME.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only "
                               "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return "/" + name.lstrip("/")


def name_in_use(full: str, holder_id: str) -> Conflict:
    """dockerd's 409 for a name another container holds."""
    return Conflict(f'Conflict. The container name "{full}" is already in use by container '
                    f'"{holder_id}". You have to remove (or rename) that container to be able to '
                    "reuse that name.")


# -- Config ----------------------------------------------------------------------------------------
def check_net_peer_options(body: dict[str, Any], host: dict[str, Any]) -> None:
    """What a container joining another's network namespace (``container:<x>``) cannot set."""
    for key, what in _NET_PEER_CONFLICTS:
        if host.get(key) or (key == "MacAddress" and body.get(key)):
            raise InvalidParameter(f"conflicting options: {what} and the container type network mode")
    if body.get("Hostname"):
        raise InvalidParameter("conflicting options: hostname and the network mode")


def container_config(body: dict[str, Any], img_cfg: dict[str, Any], hostname: str) -> dict[str, Any]:
    """The ``Config`` a container records: the create body over the image's config, with
    dockerd's defaults and rules (an Entrypoint given drops the image's Cmd; ``[""]`` clears
    it; labels, exposed ports and the environment merge; the health check inherits)."""
    cfg: dict[str, Any] = {
        "Hostname": body.get("Hostname") or hostname,
        "Domainname": body.get("Domainname") or "",
        # as dockerd: an empty User (what the docker CLI sends) means the image's
        "User": body.get("User") or img_cfg.get("User", ""),
        "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")), "Tty": bool(body.get("Tty")),
        "OpenStdin": bool(body.get("OpenStdin")), "StdinOnce": bool(body.get("StdinOnce")),
        "Env": specmod.merge_env(img_cfg.get("Env"), body.get("Env")),
        "Cmd": body.get("Cmd"),
        "Image": body.get("Image"),
        "Volumes": body.get("Volumes") or img_cfg.get("Volumes"),
        "WorkingDir": body.get("WorkingDir") or img_cfg.get("WorkingDir", ""),
        "Entrypoint": body.get("Entrypoint"),
        "OnBuild": None,
        "Labels": {**(img_cfg.get("Labels") or {}), **(body.get("Labels") or {})},
        "StopSignal": body.get("StopSignal") or img_cfg.get("StopSignal") or "SIGTERM",
    }
    if body.get("StopTimeout") is not None:
        cfg["StopTimeout"] = int(body["StopTimeout"])
    if body.get("Shell"):  # kept for commit, as dockerd (omitted when empty)
        cfg["Shell"] = body["Shell"]
    check = health.effective(img_cfg.get("Healthcheck"), body.get("Healthcheck"))
    if check is not None or body.get("Healthcheck"):
        # Go's omitempty: {"Test": ["NONE"]} stays just that
        cfg["Healthcheck"] = {k: v for k, v in (check or body["Healthcheck"]).items() if v}
    if body.get("ExposedPorts") or img_cfg.get("ExposedPorts"):
        cfg["ExposedPorts"] = {**(img_cfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})}
    # Docker's rule: an Entrypoint given at create drops the image's Cmd.
    if cfg["Entrypoint"] is None:
        cfg["Entrypoint"] = img_cfg.get("Entrypoint")
        if cfg["Cmd"] is None:
            cfg["Cmd"] = img_cfg.get("Cmd")
    if cfg["Entrypoint"] == [""]:
        cfg["Entrypoint"] = None
    specmod.command(cfg)  # "no command specified"
    parse_signal(cfg["StopSignal"])
    return cfg


# -- HostConfig ------------------------------------------------------------------------------------
def check_host_options(host: dict[str, Any], remapped: bool, peer: Callable[[str, str], Any]) -> None:
    """The HostConfig options checked on their own: DNS servers, the cgroup parent, the user
    namespace mode, the pid/ipc/uts modes (``peer(name, what)`` finds a container they name),
    and privileged mode under a daemon's user namespace (``remapped``: userns-remap is on)."""
    for server in host.get("Dns") or ():
        try:
            ipaddress.ip_address(server)
        except (ValueError, TypeError):
            raise InvalidParameter(f"{server!r} is not an IP address (--dns)") from None
    parent = host.get("CgroupParent") or ""
    if ".." in parent.split("/") or ":" in parent:
        raise InvalidParameter(f"invalid cgroup parent {parent!r}")
    userns_mode = host.get("UsernsMode") or ""
    if userns_mode not in ("", "host"):
        raise InvalidParameter(f"invalid USER mode: {userns_mode!r} (valid: host, or empty)")
    remapped = remapped and userns_mode != "host"
    check_ns_modes(host, remapped, peer)
    if host.get("Privileged") and remapped:
        raise InvalidParameter("privileged mode is incompatible with user namespaces.  You must "
                               "run the container in the host namespace when running "
                               "privileged mode (--userns=host)")


def check_ns_modes(host: dict[str, Any], remapped: bool, peer: Callable[[str, str], Any]) -> None:
    """``PidMode``/``IpcMode``/``UTSMode``: empty, ``private``, ``shareable``, ``host``, or
    (pid and ipc) ``container:<name>`` of a container ``peer`` finds."""
    for key, typ in NS_MODES:
        mode = host.get(key) or ""
        if mode in ("", "private", "shareable") or mode == "host":
            pass
        elif mode.startswith("container:") and typ != "uts":
            peer(mode[len("container:"):], f"join the {typ} namespace of")
        else:
            raise InvalidParameter(f"invalid {key[:-4].upper()} mode: {mode!r}")
        if remapped and mode and mode not in ("private", "shareable") and typ != "uts":
            raise InvalidParameter(f"--{typ}={mode} is not supported with user namespaces "
                                   f"(userns-remap); add --userns=host")


def host_config(host: dict[str, Any], network_mode: str, links: list[str], runtime: str) -> dict[str, Any]:
    """The ``HostConfig`` a container records: the given one over the defaults (an empty
    value given keeps the default), ``container:<name>`` recorded by id, the links as dockerd
    shows them (``/child:/parent/alias``), and the exec driver that runs it."""
    out: dict[str, Any] = {
        "NetworkMode": network_mode, "AutoRemove": bool(host.get("AutoRemove")),
        "LogConfig": {"Type": "json-file", "Config": {}},
        "RestartPolicy": host.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0}}
    out.update({k: v for k, v in host.items() if k not in out or v})
    out["ShmSize"] = host.get("ShmSize") or specmod.DEFAULT_SHM_SIZE
    out["NetworkMode"] = network_mode
    out["Links"] = links or None
    out["Runtime"] = runtime
    return out


def restart_policy(host_cfg: dict[str, Any]) -> dict[str, Any]:
    """``HostConfig.RestartPolicy`` with its defaults (null means the default; the name and
    count are checked by the schema); refused with ``AutoRemove``, as dockerd."""
    given = host_cfg.get("RestartPolicy") or {}
    policy = {"Name": given.get("Name") or "no", "MaximumRetryCount": given.get("MaximumRetryCount") or 0}
    if policy["Name"] != "no" and host_cfg.get("AutoRemove"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    return policy


def log_config(given: dict[str, Any], daemon_config: dict[str, Any]) -> dict[str, Any]:
    """``HostConfig.LogConfig``: ``json-file`` (the default, with the daemon's log-opts under
    the container's) or ``none``; InvalidParameter for anything else."""
    typ = given.get("Type") or daemon_config.get("log-driver") or "json-file"
    if typ not in ("json-file", "none"):  # dockerd's words (docker-py checks them)
        known = typ in DOCKERD_LOG_DRIVERS
        raise InvalidParameter(f"logger: no log driver named '{typ}' is registered"
                               + (" (this engine has json-file and none)" if known else ""))
    opts = {**(daemon_config.get("log-opts") or {} if typ == "json-file" else {}),
            **(given.get("Config") or {})}
    for key in opts:
        if typ == "none" or key not in LOG_OPTS:
            raise InvalidParameter(f"unknown log opt '{key}' for {typ} log driver")
    try:
        size = units.ram_in_bytes(opts["max-size"]) if "max-size" in opts else -1
    except ValueError:
        raise InvalidParameter(f"invalid max-size {opts['max-size']!r}") from None
    if size == 0:
        raise InvalidParameter("max-size must be a positive number")
    files = opts.get("max-file", "1")
    if not files.isdigit() or int(files) < 1:
        raise InvalidParameter("max-file cannot be less than 1")
    # as dockerd: max-file without max-size is taken, and rotates nothing (no size cap)
    if opts.get("compress", "false") not in ("false", "0"):
        raise InvalidParameter("compress is not supported by this engine's json-file driver")
    return {"Type": typ, "Config": opts}


# -- commit ---------------------------------------------------------------------------------------
def committed_config(cfg: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The config ``docker commit`` gives the new image: the container's (the keys an image
    config has, empty ones left out), with the ``overrides`` given that are not null."""
    out = {k: v for k, v in cfg.items() if k in COMMIT_KEYS and v not in (None, "", {}, [])}
    out.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return out


# -- update ----------------------------------------------------------------------------------------
def update_values(body: dict[str, Any], host: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``docker update``: ``(new, updated)``, the limits the body sets and the container's
    HostConfig with them (and its new restart policy) applied."""
    new: dict[str, Any] = {key: body[key] for key in UPDATE_INT_KEYS if body.get(key)}
    for key in ("CpusetCpus", "CpusetMems"):
        if body.get(key):
            new[key] = str(body[key])
    if new.get("NanoCpus") and (new.get("CpuQuota") or new.get("CpuPeriod")):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period/Quota cannot "
                               "both be set")
    policy = body.get("RestartPolicy")
    if policy and policy.get("Name") and policy["Name"] != "no" and host.get("AutoRemove"):
        raise InvalidParameter("Restart policy cannot be updated because AutoRemove is "
                               "enabled for the container")
    updated = {**host, **new}
    if new.get("NanoCpus"):
        updated.pop("CpuQuota", None)
        updated.pop("CpuPeriod", None)
    return new, updated


def updated_policy(body: dict[str, Any]) -> dict[str, Any] | None:
    """The restart policy an update body sets, or None when it sets none."""
    policy = body.get("RestartPolicy")
    if not policy or not policy.get("Name"):
        return None
    return {"Name": policy["Name"], "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
