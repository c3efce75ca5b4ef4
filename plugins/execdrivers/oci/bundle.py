"""dockyard's runtime spec → an OCI bundle's ``config.json`` (runtime-spec 1.0).

The spec the daemon builds is already shaped like ``config.json``; what dockyard adds beyond
OCI is resolved or dropped here, in one place:

* ``process.user.username`` and ``additionalGroups`` (Docker's ``--user`` and ``--group-add``,
  names to resolve in the container's own ``/etc/passwd`` and ``/etc/group``) become numeric
  ``uid``, ``gid`` and ``additionalGids``, and ``HOME`` is set from the user's entry, as
  dockerd does;
* a spec without ``mounts`` gets Docker's default ones; a mount namespace is always made;
* ``rlimits`` are held to the current hard limits (root here may lack CAP_SYS_RESOURCE);
* ``linux.cgroupsPath`` is made absolute: the supervisor has made and limited exactly those
  directories, and the runtime joins them;
* ``annotations`` stay (OCI allows any), ``io.dockyard.*`` included;
* in a new user namespace (``userns-remap``) whose network namespace is not its own (the network
  driver made it), sysfs cannot be mounted: the host's ``/sys`` is bound read-only instead, each
  file system mounted under it covered by an empty read-only tmpfs, as the native driver does;
  and ``linux.devices`` become bind mounts of the host's nodes (no ``mknod`` there), found by
  type and number rather than by the container's path.
"""
from __future__ import annotations

import copy
import resource
from typing import Any

from dockyard.hookspecs.host import devices, mounts
from dockyard.hookspecs.host.caps import CAPS
from dockyard.hookspecs.host.process import DEFAULT_PATH, merge_env, resolve_user_in

#: how a file system under the host's /sys is hidden in a bind of it, and how /sys is bound
_COVER = ["ro", "nosuid", "nodev", "noexec", "size=0", "mode=755"]
_HOST_SYS = ["rbind", "ro", "nosuid", "noexec", "nodev"]


def _clamped_rlimits(rlimits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rl in rlimits or ():
        kind = getattr(resource, str(rl.get("type")), None)
        if kind is None:
            raise ValueError(f"unknown rlimit {rl.get('type')}")
        hard_now = resource.getrlimit(kind)[1]
        hard = int(rl["hard"])
        if hard_now != resource.RLIM_INFINITY and (hard < 0 or hard > hard_now):
            hard = hard_now
        out.append({"type": rl["type"], "hard": hard, "soft": min(int(rl["soft"]), hard)})
    return out


def process(base: dict[str, Any], root: str, *, terminal: bool,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OCI ``process`` of a container (``extra`` None) or of an exec in it: ``extra``
    brings the exec's ``args``, ``env`` (added to the container's), ``cwd``, ``user`` and
    ``privileged``; ``root`` is where the user is resolved."""
    proc = copy.deepcopy(base)
    extra = extra or {}
    user = extra.get("user") or proc.get("user") or {}
    if extra.get("user") is not None and not (extra["user"].get("username") or ""):
        user = proc.get("user") or {}  # an exec with no user: the container's
    uid, gid, groups, home = resolve_user_in(root, user)
    env = merge_env(proc.get("env"), extra.get("env"))
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    if terminal:
        env.setdefault("TERM", "xterm")
    proc["env"] = [f"{k}={v}" for k, v in env.items()]
    proc["user"] = {"uid": uid, "gid": gid,
                    "additionalGids": [g for g in groups if g != gid] or [gid]}
    proc["terminal"] = terminal
    proc["args"] = list(extra.get("args") or proc.get("args") or [])
    proc["cwd"] = extra.get("cwd") or proc.get("cwd") or "/"
    proc["rlimits"] = _clamped_rlimits(proc.get("rlimits") or [])
    if extra.get("privileged"):
        proc["capabilities"] = {k: sorted(CAPS, key=CAPS.__getitem__)
                                for k in ("bounding", "effective", "permitted")}
        proc["noNewPrivileges"] = False
    if proc.get("capabilities") is None:
        proc.pop("capabilities", None)
    else:  # none the runtime itself lacks (here: CAP_SYS_RESOURCE), or it fails to set them
        held = _bounding()
        proc["capabilities"] = {k: [c for c in v if CAPS.get(c, 99) in held]
                                for k, v in proc["capabilities"].items()}
    return proc


def _bounding() -> set[int]:
    """The capability numbers in this process's bounding set."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return {n for n in range(64) if mask >> n & 1}
    return set()


def new_namespaces(spec: dict[str, Any]) -> set[str]:
    """The namespace types ``spec`` creates (those without a ``path``)."""
    return {str(ns.get("type")) for ns in (spec.get("linux") or {}).get("namespaces") or ()
            if not ns.get("path")}


def _host_sys() -> list[dict[str, Any]]:
    """The host's /sys bound read-only, and a cover over each top file system mounted in it."""
    out = [{"destination": "/sys", "type": "bind", "source": "/sys", "options": list(_HOST_SYS)}]
    covered: list[str] = []
    for path in sorted({p for p, _, _ in mounts.mountinfo() if p.startswith("/sys/")}):
        if not any(path.startswith(c + "/") for c in covered):
            covered.append(path)
            out.append({"destination": path, "type": "tmpfs", "source": "tmpfs",
                        "options": list(_COVER)})
    return out


def _in_user_namespace(cfg: dict[str, Any], own_netns: bool) -> None:
    """``cfg``'s mounts and devices made to work in its new user namespace."""
    out: list[dict[str, Any]] = []
    for m in cfg["mounts"]:
        if m.get("type") == "sysfs" and not own_netns:
            out += _host_sys()
        else:
            out.append(m)
    lin = cfg["linux"]
    out += [{"destination": dev["path"], "type": "bind", "source": devices.host_node(dev),
             "options": ["bind"]} for dev in lin.pop("devices", None) or ()]
    cfg["mounts"] = out


def config(spec: dict[str, Any], *, terminal: bool, cgroups_path: str,
           default_mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The bundle's ``config.json`` for ``spec``."""
    cfg = copy.deepcopy(spec)
    cfg["ociVersion"] = "1.0.2"
    root = cfg["root"]["path"]
    cfg["process"] = process(cfg.get("process") or {}, root, terminal=terminal)
    if "mounts" not in cfg:
        cfg["mounts"] = default_mounts
    lin = cfg.setdefault("linux", {})
    namespaces = list(lin.get("namespaces") or ())
    if not any(ns.get("type") == "mount" for ns in namespaces):
        namespaces.append({"type": "mount"})
    lin["namespaces"] = namespaces
    made = new_namespaces(cfg)
    if "user" in made:
        _in_user_namespace(cfg, "network" in made)
    lin["cgroupsPath"] = "/" + cgroups_path.strip("/")
    res = lin.get("resources") or {}
    if res.get("devices"):  # dockyard writes a wildcard number as -1, OCI leaves it out
        res["devices"] = [{k: v for k, v in rule.items() if not (k in ("major", "minor") and v == -1)}
                          for rule in res["devices"]]
    for key in ("seccomp",):
        if lin.get(key) is None:
            lin.pop(key, None)
    return cfg
