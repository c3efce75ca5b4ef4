"""Legacy links (``--link name[:alias]``, ``HostConfig.Links``), as dockerd keeps them.

A link makes the linked container (the *child*) known to the new one (the *parent*) under an
alias: an ``/etc/hosts`` line (:meth:`NetworkService.link_hosts`), and, when both are on the
default bridge network, environment variables describing the child (``DB_PORT_80_TCP=tcp://
172.17.0.2:80``, ``DB_NAME=/web/db``, ``DB_ENV_<var>``...), set when the parent starts (the
child must be running then). A link is named ``/<parent>/<alias>``: inspect shows
``HostConfig.Links`` as ``/<child>:/<parent>/<alias>``, and ``DELETE /containers/<parent>/
<alias>?link=1`` (``docker rm --link``) removes it.
"""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.errors import Conflict, InvalidParameter, NotFound


def parse(link: str) -> tuple[str, str]:
    """``name[:alias]`` or dockerd's stored ``/name:/parent/alias`` -> ``(name, alias)``."""
    name, _, alias = str(link).partition(":")
    name = name.strip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name or not alias:
        raise InvalidParameter(f"invalid link {link!r}: expected name or name:alias")
    return name, alias


def shown(child: dict[str, Any], parent_name: str, alias: str) -> str:
    """A link as inspect shows it: ``/db:/web/db``."""
    return f"{child['Name']}:{parent_name}/{alias}"


def _ports(exposed: dict[str, Any] | None) -> list[tuple[int, str]]:
    """Exposed ports as (number, protocol), TCP first, then by number (dockerd's order)."""
    out = []
    for key in exposed or {}:
        num, _, proto = key.partition("/")
        out.append((int(num), (proto or "tcp").lower()))
    return sorted(out, key=lambda p: (p[1] != "tcp", p[1], p[0]))


def env(link_name: str, child: dict[str, Any], child_ip: str) -> list[str]:
    """The variables a link named ``link_name`` (``/web/db``) to ``child`` (at ``child_ip``
    on the default bridge) sets in the parent."""
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    out: list[str] = []
    ports = _ports(child["Config"].get("ExposedPorts"))
    if ports:
        out.append(f"{alias}_PORT={ports[0][1]}://{child_ip}:{ports[0][0]}")
    run: list[tuple[int, str]] = []  # consecutive ports of one protocol
    for i, (num, proto) in enumerate(ports):
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        out += [f"{prefix}={proto}://{child_ip}:{num}", f"{prefix}_ADDR={child_ip}",
                f"{prefix}_PORT={num}", f"{prefix}_PROTO={proto}"]
        run = run + [(num, proto)] if run and run[-1] == (num - 1, proto) else [(num, proto)]
        following = ports[i + 1] if i + 1 < len(ports) else None
        if len(run) > 1 and following != (num + 1, proto):
            (start, _), (end, _) = run[0], run[-1]
            first = f"{alias}_PORT_{start}_{proto.upper()}"
            out += [f"{first}_START={proto}://{child_ip}:{start}", f"{first}_PORT_START={start}",
                    f"{first}_END={proto}://{child_ip}:{end}", f"{first}_PORT_END={end}"]
    out.append(f"{alias}_NAME={link_name}")
    for item in child["Config"].get("Env") or ():
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{key}={value}")
    return out


def split_link_name(name: str) -> tuple[str, str]:
    """``/web/db`` or ``web/db`` -> ``("web", "db")``; a name without a parent is the
    container's own name, which cannot be removed as a link."""
    parent, _, alias = ("/" + name.strip("/")).rpartition("/")
    if not parent.strip("/"):
        raise Conflict("Conflict, cannot remove the default link name of the container")
    return parent.strip("/"), alias


def remove(containers: Any, name: str) -> None:
    """``DELETE /containers/web/db?link=1``: container web no longer links to db under that
    alias; its /etc/hosts is written again if it runs (variables already set stay, as in
    dockerd). ``containers`` is the daemon's container service."""
    parent_name, alias = split_link_name(name)
    parent = containers._find_name(parent_name)
    if parent is None:
        raise NotFound(f"No such container: {name.strip('/')}")
    links = parent["HostConfig"].get("Links") or []
    kept = [link for link in links if parse(link)[1] != alias]
    if len(kept) == len(links):
        raise NotFound(f"No such container: {name.strip('/')}")
    parent["HostConfig"]["Links"] = kept or None
    containers.save(parent)
    if parent["State"]["Running"] and parent.get("_sandbox"):
        # in place: the container has this very file (inode) bind-mounted
        with open(parent["HostsPath"], "w", encoding="utf-8") as f:
            f.write(containers.d.networks.hosts_file(parent))


def environment(c: dict[str, Any], find: Any, bridge: str) -> list[str]:
    """The link variables of container ``c`` at its start: for each link, when ``c`` and the
    child (``find(name)``, or None) are both on the network ``bridge`` (the default bridge).
    Conflict when a child is not running, as dockerd refuses to start then."""
    mine = (c.get("_endpoints") or {}).get(bridge)
    if not mine:
        return []
    out: list[str] = []
    for link in c["HostConfig"].get("Links") or ():
        name, alias = parse(link)
        child = find(name)
        link_name = f"{c['Name']}/{alias}"
        if child is None or not child["State"]["Running"]:
            raise Conflict(f"Cannot link to a non running container: /{name} AS {link_name}")
        theirs = (child.get("_endpoints") or {}).get(bridge)
        if not theirs or not theirs.get("ip_address"):
            raise Conflict(f"Cannot link to /{name}, as it does not belong to the default network")
        out += env(link_name, child, theirs["ip_address"])
    return out
