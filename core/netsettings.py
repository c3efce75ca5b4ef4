"""What a container's network configuration looks like from outside: the narrow view the network
service has of containers (:class:`ContainerLookup`), and ``NetworkSettings`` and ``Ports`` as
the API shows them, computed from a container record and the network records; and what a
network record gives its driver and shows as its ``Options``."""
from __future__ import annotations

from typing import Any, Protocol

from dockyard.hookspecs.errors import InvalidParameter

from . import netipam


class ContainerLookup(Protocol):
    """What the network service may know of containers (the container service satisfies it).
    Records are the container service's dicts; the network service writes only the keys it owns
    (``_sandbox``, ``_endpoints``, ``_ports``, ``_host_net`` during setup/teardown of the record
    it is handed) and changes a container's networks through :meth:`set_network_settings`."""

    def all(self) -> list[dict[str, Any]]:
        """Every container record."""
        ...

    def get(self, ref: str) -> dict[str, Any]:
        """A container by full id, name or unique id prefix; NotFound otherwise."""
        ...

    def lookup(self, name_or_id: str) -> dict[str, Any] | None:
        """A container by full id or exact name (with or without ``/``), or None."""
        ...

    def set_network_settings(self, c: dict[str, Any], networks: dict[str, dict[str, Any]],
                             settings: dict[str, Any]) -> None:
        """Record ``c``'s networks (name → endpoint settings, primary first) and its
        ``NetworkSettings``, and persist the record."""
        ...


def container_networks(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The networks a container is attached to, primary first: name → endpoint settings."""
    nets = c.get("_networks")
    if nets is None:
        nets = {c["_network"]: {}}
    return nets


def names_of(c: dict[str, Any], netname: str) -> list[str]:
    """The names a container answers to on a network: its name, its aliases, its short id."""
    cfg = container_networks(c).get(netname) or {}
    return [c["Name"][1:], *(cfg.get("Aliases") or []), c["Id"][:12]]


def parse_port(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    try:
        return int(port), (proto or "tcp").lower()
    except ValueError:
        raise InvalidParameter(f"invalid port {key!r}") from None


def endpoint_settings(networks: dict[str, dict[str, Any]], c: dict[str, Any],
                      name: str) -> dict[str, Any]:
    """One entry of ``NetworkSettings.Networks``."""
    net = networks.get(name)
    cfg = container_networks(c).get(name) or {}
    ep = (c.get("_endpoints") or {}).get(name) or {}
    aliases = list(cfg.get("Aliases") or [])
    return {"IPAMConfig": cfg.get("IPAMConfig"), "Links": cfg.get("Links"),
            "Aliases": aliases or None, "MacAddress": ep.get("mac_address") or cfg.get("MacAddress") or "",
            "DriverOpts": cfg.get("DriverOpts"), "NetworkID": net["Id"] if net else "",
            "EndpointID": ep.get("endpoint_id", ""), "Gateway": ep.get("gateway", ""),
            "IPAddress": ep.get("ip_address", ""), "IPPrefixLen": ep.get("prefix_len", 0),
            "IPv6Gateway": ep.get("ipv6_gateway", ""),
            "GlobalIPv6Address": ep.get("ipv6_address", ""),
            "GlobalIPv6PrefixLen": ep.get("ipv6_prefix_len", 0),
            "DNSNames": names_of(c, name) if ep.get("ip_address") else None}


#: the top-level ``NetworkSettings`` keys that repeat the primary network's endpoint when that
#: network is a predefined one (dockerd's deprecated fields), with their empty values
_PRIMARY_KEYS = {"EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                 "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                 "MacAddress": ""}


def settings_for(networks: dict[str, dict[str, Any]], c: dict[str, Any]) -> dict[str, Any]:
    """``NetworkSettings`` as ``GET /containers/{id}/json`` shows it."""
    nets = container_networks(c)
    primary = next(iter(nets), "")
    first = endpoint_settings(networks, c, primary) if primary else {}
    sandbox = c.get("_sandbox") or ""
    predefined = bool((networks.get(primary) or {}).get("_predefined"))
    out = {"Bridge": "", "SandboxID": c["Id"] if sandbox else "", "SandboxKey": sandbox,
           "Ports": ports_view(c), "HairpinMode": False, "LinkLocalIPv6Address": "",
           "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
           "SecondaryIPv6Addresses": None}
    out.update({k: first[k] if predefined else empty for k, empty in _PRIMARY_KEYS.items()})
    out["Networks"] = {name: endpoint_settings(networks, c, name) for name in nets}
    return out


def ports_view(c: dict[str, Any]) -> dict[str, Any]:
    """``NetworkSettings.Ports``: every exposed or bound port, with its host bindings."""
    out: dict[str, Any] = {}
    for key in (c["Config"].get("ExposedPorts") or {}):
        out[key] = None
    for key in (c["HostConfig"].get("PortBindings") or {}):
        out.setdefault(key, None)
    for p in c.get("_ports") or []:
        key = f"{p['ContainerPort']}/{p['Proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": p["HostIp"] or "0.0.0.0",
                                            "HostPort": str(p["HostPort"])}]
    return out


def port_summary(c: dict[str, Any]) -> list[dict[str, Any]]:
    """``Ports`` of ``GET /containers/json``."""
    out = []
    published = set()
    for p in c.get("_ports") or []:
        out.append({"IP": p["HostIp"] or "0.0.0.0", "PrivatePort": p["ContainerPort"],
                    "PublicPort": p["HostPort"], "Type": p["Proto"]})
        published.add(f"{p['ContainerPort']}/{p['Proto']}")
    if c["State"]["Running"]:
        for key in (c["Config"].get("ExposedPorts") or {}):
            if key not in published:
                port, proto = parse_port(key)
                out.append({"PrivatePort": port, "Type": proto})
    return out


def driver_create_opts(net: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` a network record gives its driver's ``create_network``."""
    v4, v6 = netipam.by_version(net, 4), netipam.by_version(net, 6)
    return {"Name": net["Name"], "Internal": net["Internal"], "Default": bool(net.get("_predefined")),
            "Options": dict(net.get("_user_options") or {}),
            "Subnet": v4.get("Subnet"), "Gateway": v4.get("Gateway"),
            "IPv6Subnet": v6.get("Subnet") or "", "IPv6Gateway": v6.get("Gateway") or ""}


def shown_options(net: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """``Options`` as dockerd shows them: what the user gave; for a predefined network also
    what the driver chose (``com.docker.network.bridge.name``...). docker-compose compares a
    user network's Options with its file and recreates the network on any extra key."""
    user = dict(net.get("_user_options") or {})
    return {**user, **(data or {})} if net.get("_predefined") else user
