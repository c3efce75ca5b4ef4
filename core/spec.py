"""Build the OCI runtime-spec shaped dict an exec driver runs, from a container's configuration."""
from __future__ import annotations

import os
from typing import Any

from dockyard.core import devices as devicesmod
from dockyard.core import seccomp as seccompmod
from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.caps import ALL_CAPS, DEFAULT_CAPS, normalize as normalize_cap
from dockyard.hookspecs.idmap import IDMap

from . import propagation
from .resources import resources_of
from .volumes import spec_mounts

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
#: ``--init``: a static reaper bind-mounted at /dev/init, as Docker does with docker-init (tini)
INIT_BINARY = next((p for p in ("/usr/bin/tini-static", "/usr/bin/docker-init")
                    if os.path.exists(p)), "/usr/bin/tini-static")
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def merge_env(image_env: list[str] | None, env: list[str] | None) -> list[str]:
    """A new container's ``Config.Env``, as dockerd merges it: the request's entries as given,
    then the image's whose name the request does not have. A bare ``NAME`` (``-e NAME`` with
    ``NAME`` unset on the client) stays bare: it unsets the variable (:func:`replace_or_append`)."""
    names = set()
    for item in env or []:
        key = item.partition("=")[0]
        if not key:
            raise InvalidParameter(f"invalid environment variable: {item!r}")
        names.add(key)
    return list(env or []) + [e for e in image_env or [] if e.partition("=")[0] not in names]


def replace_or_append(defaults: list[str], overrides: list[str] | None) -> list[str]:
    """dockerd's ``ReplaceOrAppendEnvValues``: each ``NAME=value`` of ``overrides`` replaces
    the entry of that name in ``defaults`` or is appended; a bare ``NAME`` removes it."""
    out: list[str | None] = list(defaults)
    where = {e.partition("=")[0]: i for i, e in enumerate(defaults)}
    for item in overrides or []:
        key, sep, _ = item.partition("=")
        if key in where:
            out[where[key]] = item if sep else None
        elif sep:
            where[key] = len(out)
            out.append(item)
    return [e for e in out if e is not None]


def process_env(cfg: dict[str, Any], linked: Any = ()) -> list[str]:
    """The environment of a container's process (dockerd's ``CreateDaemonEnvironment``):
    ``PATH``, ``HOSTNAME`` and, with a TTY, ``TERM``, then the legacy links' variables
    (``linked``, core.links), then ``Config.Env`` over them."""
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={cfg.get('Hostname', '')}"]
    if cfg.get("Tty"):
        defaults.append("TERM=xterm")
    return replace_or_append(defaults + list(linked), cfg.get("Env"))


def command(config: dict[str, Any]) -> list[str]:
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not args:
        raise InvalidParameter("no command specified")
    return args


#: ``--security-opt`` keys: ``seccomp`` (core.seccomp), ``no-new-privileges[=bool]``,
#: ``systempaths=unconfined``; ``label`` and ``apparmor`` are accepted and have no effect (this
#: engine has no SELinux or AppArmor support), as dockerd on a host without them
SECURITY_OPT_KEYS = ("seccomp", "no-new-privileges", "systempaths", "label", "apparmor")
_TRUE, _FALSE = ("", "true", "1", "yes"), ("false", "0", "no")


def security_options(opts: list[str] | None) -> dict[str, Any]:
    """Parse ``HostConfig.SecurityOpt`` (``key=value`` or the older ``key:value``) into
    ``{"no_new_privs": bool | None, "systempaths_unconfined": bool}``; InvalidParameter for
    a key or value Docker would refuse."""
    out: dict[str, Any] = {"no_new_privs": None, "systempaths_unconfined": False}
    for opt in opts or ():
        cut = min((i for i in (opt.find("="), opt.find(":")) if i >= 0), default=len(opt))
        key, value = opt[:cut], opt[cut + 1:]
        if key not in SECURITY_OPT_KEYS:
            raise InvalidParameter(f'invalid --security-opt: "{opt}" (valid keys: '
                                   f'{", ".join(SECURITY_OPT_KEYS)})')
        if key == "no-new-privileges":
            if value.lower() not in _TRUE + _FALSE:
                raise InvalidParameter(f'invalid --security-opt: "{opt}": no-new-privileges '
                                       f'takes true or false')
            out["no_new_privs"] = value.lower() in _TRUE
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidParameter(f'invalid --security-opt: "{opt}": systempaths takes '
                                       f'only unconfined')
            out["systempaths_unconfined"] = True
        elif key != "seccomp" and cut == len(opt):
            raise InvalidParameter(f'invalid --security-opt: "{opt}": {key} needs a value')
    return out


DEFAULT_SHM_SIZE = 64 << 20
#: sysctls a container may set, as dockerd: those of the namespaces it owns
_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def check_host_config(host: dict[str, Any]) -> None:
    """What dockerd refuses at create among the options the spec builder uses."""
    for key in host.get("Sysctls") or {}:
        ok = key in _SYSCTL_IPC or key.startswith("fs.mqueue.") or key.startswith("net.")
        if key.startswith("net.") and host.get("NetworkMode") == "host":
            raise InvalidParameter(f"sysctl {key!r} is not allowed: the container shares the "
                                   f"host's network namespace")
        if key in _SYSCTL_IPC or key.startswith("fs.mqueue."):
            if host.get("IpcMode") == "host":
                raise InvalidParameter(f"sysctl {key!r} is not allowed: the container shares "
                                       f"the host's IPC namespace")
        if not ok or "/" in key or ".." in key:
            raise InvalidParameter(f"sysctl {key!r} is not whitelisted")
    devicesmod.check(host)
    capabilities(host)
    for g in host.get("GroupAdd") or ():
        if not g or ":" in g:
            raise InvalidParameter(f"invalid group {g!r}")


def _cap_names(host: dict[str, Any], key: str) -> list[str]:
    try:
        return [normalize_cap(c, allow_all=True) for c in host.get(key) or ()]
    except ValueError as e:
        raise InvalidParameter(f"invalid {key}: {e}") from None


def capabilities(host: dict[str, Any]) -> list[str]:
    """A container's capability set without ``--privileged``, as moby's ``TweakCapabilities``:
    ``CapAdd`` ALL gives every capability but those dropped; ``CapDrop`` ALL keeps only those
    added; otherwise Docker's default set less ``CapDrop``, plus ``CapAdd``. InvalidParameter
    naming the key for an unknown capability, as dockerd answers at create."""
    add, drop = _cap_names(host, "CapAdd"), _cap_names(host, "CapDrop")
    if "CAP_ALL" in add:
        return [c for c in ALL_CAPS if c not in drop]
    caps = [] if "CAP_ALL" in drop else [c for c in DEFAULT_CAPS if c not in drop]
    return caps + [c for c in dict.fromkeys(add) if c not in caps]


def log_annotations(log_config: dict[str, Any]) -> dict[str, str]:
    """What an exec driver needs of ``LogConfig``, as annotations (documented in
    hookspecs.execdriver): ``io.dockyard.log.driver`` (``none``: write nothing),
    ``io.dockyard.log.max-size`` (bytes) and ``io.dockyard.log.max-file``."""
    from dockyard.hookspecs.host.units import ram_in_bytes
    out = {"io.dockyard.log.driver": log_config.get("Type") or "json-file"}
    opts = log_config.get("Config") or {}
    if opts.get("max-size"):
        out["io.dockyard.log.max-size"] = str(ram_in_bytes(opts["max-size"]))
        out["io.dockyard.log.max-file"] = str(int(opts.get("max-file") or 1))
    return out


def base_mounts(shm_size: int = DEFAULT_SHM_SIZE, sys_readonly: bool = True) -> list[dict[str, Any]]:
    """What every container (and managed plugin) gets mounted: /proc, /dev, /sys, ..."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", *(("ro",) if sys_readonly else ())]},
        # the container's own cgroups, as dockerd (read-write with --privileged)
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "ro" if sys_readonly else "rw"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size // 1024}k"]},
    ]


def _mounts(container: dict[str, Any], host: dict[str, Any]) -> list[dict[str, Any]]:
    """The spec's ``mounts``: :func:`base_mounts` (--privileged: /sys read-write, as dockerd),
    the files the daemon writes (resolv.conf, hostname, hosts), then the container's volumes
    and binds."""
    mounts = base_mounts(int(host.get("ShmSize") or DEFAULT_SHM_SIZE), not host.get("Privileged"))
    if host.get("IpcMode") == "host":  # the host's shared memory, as dockerd
        mounts[-1] = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                      "options": ["rbind", "nosuid", "noexec", "nodev"]}
    for dest, key in (("/etc/resolv.conf", "ResolvConfPath"), ("/etc/hostname", "HostnamePath"),
                      ("/etc/hosts", "HostsPath")):
        if container.get(key):
            mounts.append({"destination": dest, "type": "bind", "source": container[key],
                           "options": ["rbind", "rprivate"]})
    return mounts + spec_mounts(container)


def build(container: dict[str, Any], rootfs: str, namespaces: list[dict[str, str]],
          id_map: IDMap | None = None, no_new_privs: bool = True,
          rt_budget: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """The spec of ``container`` on ``rootfs``; ``namespaces`` are those it joins or creates
    (the network's with a path); a non-identity ``id_map`` adds a new user namespace with it;
    ``no_new_privs`` is the daemon's default (``no-new-privileges``), which
    ``--security-opt no-new-privileges=false`` turns off for one container; ``rt_budget`` the
    daemon's ``cpu-rt-period`` and ``cpu-rt-runtime`` for the container's parent cgroups."""
    cfg = container["Config"]
    userns: dict[str, Any] = {}
    if id_map is not None and not id_map.is_identity:
        namespaces = [*namespaces, {"type": "user"}]
        userns = id_map.to_spec()
    host = container["HostConfig"]
    args = [container["Path"], *container["Args"]]
    env = process_env(cfg, container.get("_link_env") or ())
    caps = capabilities(host)
    resources = resources_of(host)
    dev_nodes, resources["devices"] = devicesmod.for_container(host)
    mounts = _mounts(container, host)
    privileged = bool(host.get("Privileged"))
    secopts = security_options(host.get("SecurityOpt"))
    if secopts["no_new_privs"] is not None:
        no_new_privs = secopts["no_new_privs"]
    confined_paths = not privileged and not secopts["systempaths_unconfined"]
    rlimits = []
    for ul in host.get("Ulimits") or ():
        try:
            rlimits.append({"type": "RLIMIT_" + str(ul["Name"]).upper(),
                            "soft": int(ul["Soft"]), "hard": int(ul["Hard"])})
        except (KeyError, TypeError, ValueError):
            raise InvalidParameter(f"invalid ulimit {ul!r}") from None
    if privileged:
        caps = list(ALL_CAPS)
    # built for the final capability set: --cap-add SYS_ADMIN also opens mount, unshare, ...
    seccomp = seccompmod.for_container(list(host.get("SecurityOpt") or ()), caps, privileged)
    if host.get("Init"):
        args = ["/dev/init", "--", *args]
        mounts.append({"destination": "/dev/init", "type": "bind", "source": INIT_BINARY,
                       "options": ["bind", "ro"]})
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": bool(cfg.get("Tty")),
            **({"consoleSize": {"height": host["ConsoleSize"][0], "width": host["ConsoleSize"][1]}}
               if cfg.get("Tty") and len(host.get("ConsoleSize") or ()) == 2 and all(host["ConsoleSize"])
               else {}),
            "user": {"uid": 0, "gid": 0, "username": cfg.get("User") or "",
                     "additionalGroups": list(host.get("GroupAdd") or ())},
            **({"oomScoreAdj": int(host["OomScoreAdj"])} if host.get("OomScoreAdj") else {}),
            "args": args,
            "env": env,
            "cwd": cfg.get("WorkingDir") or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                             "inheritable": [], "ambient": []},
            "noNewPrivileges": no_new_privs and not privileged,
            "rlimits": rlimits,
        },
        "root": {"path": rootfs, "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": cfg.get("Hostname") or "",
        **({"domainname": cfg["Domainname"]} if cfg.get("Domainname") else {}),
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "devices": dev_nodes,
            "resources": resources,
            "maskedPaths": MASKED_PATHS if confined_paths else [],
            "readonlyPaths": READONLY_PATHS if confined_paths else [],
            "cgroupsPath": f"{(host.get('CgroupParent') or 'dockyard').strip('/')}/{container['Id']}",
            **({"sysctl": dict(host["Sysctls"])} if host.get("Sysctls") else {}),
            **({"rootfsPropagation": prop} if (prop := propagation.rootfs(
                container.get("Mounts") or [])) else {}),
            **userns,
            **({"seccomp": seccomp} if seccomp else {}),
        },
        "annotations": {"io.dockyard.stop-signal": cfg.get("StopSignal") or "SIGTERM",
                        **log_annotations(host.get("LogConfig") or {}),
                        **{f"io.dockyard.cpu-rt-{k}": str(v)
                           for k, v in zip(("period", "runtime"), rt_budget) if v}},
    }
