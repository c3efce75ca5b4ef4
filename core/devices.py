"""The devices a container may use, as Docker gives them.

One place builds both halves of the runtime spec: ``linux.devices`` (the nodes made in the
container's ``/dev``) and ``linux.resources.devices`` (the device cgroup rules the exec driver
applies: a v1 ``devices`` cgroup or a v2 eBPF program, see ``dockyard.hookspecs.host.devices``).

* every container: dockerd's default rules (deny everything, then ``/dev/null``, ``zero``,
  ``urandom``, ``random``, ``tty``, ``console``; ``fuse`` stays closed), ``--device`` nodes with
  their cgroup permissions, ``--device-cgroup-rule`` rules, then the ones runc appends (``mknod``
  of any node, ``full``, ``ptmx``, ``/dev/pts/*``, ``/dev/net/tun``) — the rule set a container of
  dockerd + runc ends up with;
* ``--privileged``: every device of the host in ``/dev`` and a cgroup that allows all.
"""
from __future__ import annotations

import os
from typing import Any

from dockyard.hookspecs.host.devices import DeviceRules, devices_under, parse_rule
from dockyard.hookspecs.errors import InvalidParameter


def _rule(allow: bool, typ: str, major: int, minor: int, access: str = "rwm") -> dict[str, Any]:
    return {"allow": allow, "type": typ, "major": major, "minor": minor, "access": access}


#: dockerd's defaults (moby daemon/pkg/oci/defaults.go), in its order
DOCKER_RULES = [
    {"allow": False, "access": "rwm"},
    _rule(True, "c", 1, 5), _rule(True, "c", 1, 3), _rule(True, "c", 1, 9),
    _rule(True, "c", 1, 8), _rule(True, "c", 5, 0), _rule(True, "c", 5, 1),
    _rule(False, "c", 10, 229),  # /dev/fuse: not without --device or a rule
]
#: what runc appends to every spec's rules (libcontainer/specconv AllowedDevices)
RUNTIME_RULES = [
    _rule(True, "c", -1, -1, "m"), _rule(True, "b", -1, -1, "m"),
    _rule(True, "c", 1, 3), _rule(True, "c", 1, 8), _rule(True, "c", 1, 7),
    _rule(True, "c", 5, 0), _rule(True, "c", 1, 5), _rule(True, "c", 1, 9),
    _rule(True, "c", 136, -1), _rule(True, "c", 5, 2), _rule(True, "c", 10, 200),
]
ALLOW_ALL = [{"allow": True, "access": "rwm"}]


def _mappings(host: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``HostConfig.Devices`` (typed at the edge) as (path on host, path in container, cgroup
    permissions), checked: InvalidParameter naming what is wrong."""
    out = []
    for i, dev in enumerate(host.get("Devices") or []):
        where = f"HostConfig.Devices[{i}]"
        src = dev.get("PathOnHost")
        dst = dev.get("PathInContainer") or src
        perms = dev.get("CgroupPermissions") or "rwm"
        if not isinstance(src, str) or not src.startswith("/"):
            raise InvalidParameter(f"{where}.PathOnHost: {src!r} is not an absolute path")
        if not isinstance(dst, str) or not dst.startswith("/"):
            raise InvalidParameter(f"{where}.PathInContainer: {dst!r} is not an absolute path")
        if not isinstance(perms, str) or not set(perms) <= set("rwm"):
            raise InvalidParameter(f"{where}.CgroupPermissions: invalid device mode: {perms}")
        out.append((src, dst, perms))
    return out


def _cgroup_rules(host: dict[str, Any]) -> list[dict[str, Any]]:
    return [parse_rule(r) for r in host.get("DeviceCgroupRules") or []]


def nodes_at(src: str, dst: str) -> list[dict[str, Any]]:
    """``--device SRC:DST``: the node at host ``SRC`` (symlinks followed, as dockerd), or every
    device below the directory ``SRC``; dockerd's error when there is none."""
    try:
        found = devices_under(os.path.realpath(src), dst)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise InvalidParameter(f"error gathering device information while adding custom device "
                               f'"{src}": {reason}') from None
    if not found:
        raise InvalidParameter(f"error gathering device information while adding custom device "
                               f'"{src}": not a device node')
    return found


def check(host: dict[str, Any]) -> None:
    """At create: refuse what dockerd refuses at create or start — a malformed ``Devices``
    entry, a host path with no device, a ``DeviceCgroupRules`` entry not in Docker's syntax.
    (``DeviceRequests``, ``--gpus``, is refused at the edge: no device driver to select.)"""
    for src, dst, _ in _mappings(host):
        nodes_at(src, dst)
    DeviceRules(DOCKER_RULES + _cgroup_rules(host) + RUNTIME_RULES)


def for_container(host: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(linux.devices, linux.resources.devices)`` of a container, read from the host now
    (at each start, as dockerd: a device that went away since create fails the start)."""
    nodes: list[dict[str, Any]] = []
    if host.get("Privileged"):
        nodes = devices_under("/dev")
        for src, dst, _ in _mappings(host):
            if src != dst:  # dockerd: the same path is already there
                nodes += nodes_at(src, dst)
        return nodes, list(ALLOW_ALL)
    rules = list(DOCKER_RULES)
    for src, dst, perms in _mappings(host):
        for node in nodes_at(src, dst):
            nodes.append(node)
            rules.append(_rule(True, node["type"], node["major"], node["minor"], perms))
    rules += _cgroup_rules(host) + RUNTIME_RULES
    DeviceRules(rules)  # refuses a set no cgroup could hold, before anything is started
    return nodes, rules
