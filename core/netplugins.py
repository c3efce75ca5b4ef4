"""Networks served by Docker network plugins (libnetwork's remote driver protocol).

A plugin that activates with ``"NetworkDriver"`` in its ``Implements`` becomes a network driver
of that name (:func:`find`, on the first ``network create -d NAME`` or use of such a network):
:class:`RemoteNetDriver` maps dockyard's :class:`~dockyard.hookspecs.netdriver.NetDriver`
contract onto the plugin's calls, as dockerd's ``drivers/remote`` does:

- ``GetCapabilities`` once (its ``Scope``, ``local`` or ``global``, is the network's);
- ``CreateNetwork {NetworkID, Options, IPv4Data, IPv6Data}`` / ``DeleteNetwork``: addresses come
  from dockyard's IPAM (dockerd's default IPAM driver; ``IpamDriver`` plugins are refused);
- ``CreateEndpoint {NetworkID, EndpointID, Interface: {Address, AddressIPv6, MacAddress},
  Options}``: the plugin may answer a MAC address (or addresses) the request left empty;
- ``Join {NetworkID, EndpointID, SandboxKey, Options}``: the daemon moves the interface the
  plugin names (``InterfaceName.SrcName``) into the container's namespace, renames it
  ``DstPrefix`` + its index (``eth0``...), gives it its MAC and addresses, brings it up and adds
  the default route through the answer's ``Gateway``/``GatewayIPv6`` and its ``StaticRoutes``
  (``RouteType`` 0: through ``NextHop``; 1: on the link); then ``ProgramExternalConnectivity``
  when it has a gateway, and ``EndpointOperInfo`` (its ``Value`` is kept with the endpoint);
- published ports: ``ProgramExternalConnectivity`` with ``com.docker.network.portmap`` and
  ``com.docker.network.endpoint.exposedports``;
- ``RevokeExternalConnectivity``, ``Leave`` (the interface goes back to the host under its
  ``SrcName``), ``DeleteEndpoint``. The connectivity calls and ``EndpointOperInfo`` are optional
  (a 404 is no error), as in dockerd. ``DiscoverNew``/``DiscoverDelete`` are swarm node events
  dockerd sends only in a cluster: never sent here.

An ``Err`` answer fails the operation with ``remote: <Err>``, dockerd's words.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
from typing import Any

from dockyard.hookspecs.errors import DockyardError, NotFound
from dockyard.hookspecs.host import ns
from dockyard.hookspecs.netdriver import Endpoint, NetDriver

from .dockerplugins import Plugin, PluginDirs, PluginError

IMPLEMENTS = "NetworkDriver"
#: a static route's RouteType: through a next hop, or straight onto the interface
NEXTHOP, CONNECTED = 0, 1
_PROTO = {"tcp": 6, "udp": 17}


def find(dirs: PluginDirs, name: str) -> NetDriver:
    """The network driver plugin ``name`` (NotFound, dockerd's ``plugin "NAME" not found``)."""
    try:
        plugin = dirs.get(name, IMPLEMENTS)
    except NotFound:
        raise NotFound(f'plugin "{name}" not found') from None
    caps = _call(plugin, "GetCapabilities", None)
    scope = caps.get("Scope")
    if scope not in ("local", "global"):
        raise DockyardError(f"invalid capability: expecting 'local' or 'global', got {scope}")
    return RemoteNetDriver(plugin, scope)


def _call(plugin: Plugin, method: str, body: Any, optional: bool = False) -> dict[str, Any]:
    try:
        return plugin.call(f"{IMPLEMENTS}.{method}", body)
    except PluginError as e:
        if optional and e.http_status == 404:
            return {}
        raise DockyardError(f"remote: {e.message}") from None


def _ipam_data(subnet: str | None, gateway: str | None) -> list[dict[str, Any]]:
    if not subnet:
        return []
    net = ipaddress.ip_network(subnet, strict=False)
    gw = f"{gateway}/{net.prefixlen}" if gateway else ""
    return [{"AddressSpace": "LocalDefault", "Pool": str(net), "Gateway": gw, "AuxAddresses": {}}]


class RemoteNetDriver(NetDriver):
    """One network plugin, as a dockyard network driver."""

    needs_ipam = True
    predefined_network = False

    def __init__(self, plugin: Plugin, scope: str) -> None:
        super().__init__("", {})
        self.plugin = plugin
        self.name = plugin.name  # type: ignore[misc]  # one instance per plugin, named by it
        self.scope = scope

    def _call(self, method: str, body: Any, optional: bool = False) -> dict[str, Any]:
        return _call(self.plugin, method, body, optional)

    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        opts = {"com.docker.network.enable_ipv6": bool(options.get("IPv6Subnet")),
                "com.docker.network.internal": bool(options.get("Internal")),
                "com.docker.network.generic": dict(options.get("Options") or {})}
        self._call("CreateNetwork", {
            "NetworkID": network_id, "Options": opts,
            "IPv4Data": _ipam_data(options.get("Subnet"), options.get("Gateway")),
            "IPv6Data": _ipam_data(options.get("IPv6Subnet"), options.get("IPv6Gateway"))})
        return {}

    def delete_network(self, network_id: str) -> None:
        self._call("DeleteNetwork", {"NetworkID": network_id})

    def create_endpoint(self, network_id: str, endpoint_id: str,
                        options: dict[str, Any]) -> Endpoint:
        ep = Endpoint(network_id, endpoint_id, ip_address=options.get("Address") or "",
                      prefix_len=options.get("PrefixLen") or 0,
                      mac_address=options.get("MacAddress") or "",
                      interface=options.get("Interface") or "eth0",
                      ipv6_address=options.get("IPv6Address") or "",
                      ipv6_prefix_len=options.get("IPv6PrefixLen") or 0)
        asked = {"Address": f"{ep.ip_address}/{ep.prefix_len}" if ep.ip_address else "",
                 "AddressIPv6": f"{ep.ipv6_address}/{ep.ipv6_prefix_len}" if ep.ipv6_address else "",
                 "MacAddress": ep.mac_address}
        answer = self._call("CreateEndpoint", {"NetworkID": network_id, "EndpointID": endpoint_id,
                                               "Interface": asked,
                                               "Options": dict(options.get("DriverOpts") or {})})
        try:
            _take_interface(ep, asked, answer.get("Interface") or {})
        except BaseException:
            self.delete_endpoint(ep)
            raise
        return ep

    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        answer = self._call("Join", {"NetworkID": endpoint.network_id,
                                     "EndpointID": endpoint.endpoint_id,
                                     "SandboxKey": netns_path, "Options": {}})
        try:
            self._plumb(endpoint, netns_path, answer)
        except BaseException:
            self.leave(endpoint, netns_path)
            raise

    def _plumb(self, ep: Endpoint, netns_path: str, answer: dict[str, Any]) -> None:
        names = answer.get("InterfaceName") or {}
        ep.gateway = answer.get("Gateway") or ""
        ep.ipv6_gateway = answer.get("GatewayIPv6") or ""
        routes = _routes(answer.get("StaticRoutes") or [])
        if not names.get("SrcName"):  # the plugin plumbs nothing: no interface (as dockerd)
            ep.interface = ""
            return
        index = "".join(ch for ch in ep.interface if ch.isdigit()) or "0"
        ep.data = {"src": names["SrcName"]}
        ep.interface = (names.get("DstPrefix") or "eth") + index
        _move_in(names["SrcName"], netns_path)
        ep.data["joined"] = True
        ep.mac_address = ns.in_netns(netns_path, _configure, names["SrcName"], ep, routes)
        if ep.gateway or ep.ipv6_gateway:
            self._call("ProgramExternalConnectivity", {"NetworkID": ep.network_id,
                                                       "EndpointID": ep.endpoint_id,
                                                       "Options": {}}, optional=True)
        info = self._call("EndpointOperInfo", {"NetworkID": ep.network_id,
                                               "EndpointID": ep.endpoint_id}, optional=True)
        ep.data["oper_info"] = info.get("Value") or {}

    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        ids = {"NetworkID": endpoint.network_id, "EndpointID": endpoint.endpoint_id}
        self._call("RevokeExternalConnectivity", ids, optional=True)
        self._call("Leave", ids)
        if endpoint.data.pop("joined", False) and netns_path and os.path.exists(netns_path):
            with contextlib.suppress(Exception):  # gone with its namespace meanwhile
                host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    ns.in_netns(netns_path, _move_out, endpoint.interface, endpoint.data["src"], host)
                finally:
                    os.close(host)

    def delete_endpoint(self, endpoint: Endpoint) -> None:
        self._call("DeleteEndpoint", {"NetworkID": endpoint.network_id,
                                      "EndpointID": endpoint.endpoint_id})

    def publish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        portmap = [{"Proto": _PROTO[p["Proto"]], "IP": endpoint.ip_address, "Port": p["ContainerPort"],
                    "HostIP": p["HostIp"], "HostPort": p["HostPort"], "HostPortEnd": p["HostPort"]}
                   for p in ports]
        exposed = [{"Proto": _PROTO[p["Proto"]], "Port": p["ContainerPort"]} for p in ports]
        self._call("ProgramExternalConnectivity", {
            "NetworkID": endpoint.network_id, "EndpointID": endpoint.endpoint_id,
            "Options": {"com.docker.network.portmap": portmap,
                        "com.docker.network.endpoint.exposedports": exposed}}, optional=True)
        return ports

    def unpublish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> None:
        """Nothing of its own: :meth:`leave` revokes the endpoint's connectivity, ports too."""

    def status(self) -> list[tuple[str, str]]:
        return [("Plugin", self.plugin.addr), ("Scope", self.scope)]


def _take_interface(ep: Endpoint, asked: dict[str, str], given: dict[str, Any]) -> None:
    """What the plugin's ``CreateEndpoint`` answered: it may fill what the request left empty,
    never change what it gave (dockerd: ``driver modified interface ...``)."""
    for key, what in (("Address", "address"), ("AddressIPv6", "address"), ("MacAddress", "MAC address")):
        value = given.get(key) or ""
        if value and asked[key] and value.lower() != asked[key].lower():
            raise DockyardError(f"driver modified interface {what}: {value} (was {asked[key]})")
    if given.get("MacAddress") and not ep.mac_address:
        ep.mac_address = str(given["MacAddress"]).lower()
    for key, v6 in (("Address", False), ("AddressIPv6", True)):
        if given.get(key) and not asked[key]:
            iface = ipaddress.ip_interface(given[key])
            if v6:
                ep.ipv6_address, ep.ipv6_prefix_len = str(iface.ip), iface.network.prefixlen
            else:
                ep.ip_address, ep.prefix_len = str(iface.ip), iface.network.prefixlen


def _routes(raw: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    out = []
    for r in raw:
        kind = int(r.get("RouteType") or NEXTHOP)
        dst, hop = str(ipaddress.ip_network(r.get("Destination") or "", strict=False)), r.get("NextHop") or ""
        if kind not in (NEXTHOP, CONNECTED) or (kind == NEXTHOP and not hop):
            raise DockyardError(f"remote: invalid static route {r!r}")
        out.append((dst, kind, str(ipaddress.ip_address(hop)) if hop else ""))
    return out


def _ipr():  # noqa: ANN202
    from pyroute2 import IPRoute
    return IPRoute()


def _move_in(src: str, netns_path: str) -> None:
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _ipr() as ipr:
            found = ipr.link_lookup(ifname=src)
            if not found:
                raise DockyardError(f"remote: the plugin's interface {src} does not exist")
            ipr.link("set", index=found[0], net_ns_fd=fd)
    finally:
        os.close(fd)


def _configure(src: str, ep: Endpoint, routes: list[tuple[str, int, str]]) -> str:
    """Inside the container's namespace: name, MAC, addresses, up, routes; the MAC it has."""
    from socket import AF_INET, AF_INET6
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=src)[0]
        ipr.link("set", index=idx, ifname=ep.interface, **({"address": ep.mac_address} if ep.mac_address else {}))
        for addr, plen in ((ep.ip_address, ep.prefix_len), (ep.ipv6_address, ep.ipv6_prefix_len)):
            if addr:
                ipr.addr("add", index=idx, address=addr, prefixlen=plen)
        ipr.link("set", index=idx, state="up")
        for gw, family, dst in ((ep.gateway, AF_INET, "0.0.0.0/0"), (ep.ipv6_gateway, AF_INET6, "::/0")):
            # one default route per container, as dockerd's sandbox: the first network's
            if gw and not any(r["dst_len"] == 0 for r in ipr.get_routes(family=family, table=254)):
                ipr.route("add", dst=dst, gateway=gw, oif=idx, family=family)
        for dst, kind, hop in routes:
            family = AF_INET6 if ":" in dst else AF_INET
            ipr.route("add", dst=dst, oif=idx, family=family, **({"gateway": hop} if kind == NEXTHOP else {}))
        return str(ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS"))


def _move_out(name: str, src: str, host_fd: int) -> None:
    """Inside the container's namespace: the interface back to the host under its own name."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("set", index=found[0], state="down")
            ipr.link("set", index=found[0], ifname=src)
            ipr.link("set", index=found[0], net_ns_fd=host_fd)
