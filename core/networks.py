"""Networks: the predefined one of each driver with ``predefined_network`` (bridge, host, none)
and user-defined ones; each container's *sandbox* (its network namespace) and endpoints.

The sandbox is made before the container's first process runs: a namespace file under
``<exec-root>/netns/<container id>`` (made by :func:`dockyard.core.ns.create_netns`), into
which each network's driver plumbs its endpoint; the runtime spec then names that file, so the
exec driver joins it instead of creating an empty namespace. Addresses come from the IPAM
(:mod:`dockyard.core.ipam`, rows in the state DB). Published ports are reserved by binding the
host socket (:mod:`dockyard.core.portproxy`) and handed to the driver for its kernel rules; names
are served by :mod:`dockyard.core.dns`. Everything is undone when the container stops, and
:meth:`NetworkService.reconcile` removes what a crash left behind.

Nothing here names a driver: what differs between drivers is read from their class attributes
(``namespace``, ``needs_ipam``, ``multiple_networks``).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import secrets
from typing import Any, Callable

from dockyard.hookspecs.errors import (Conflict, DockyardError, Forbidden, InvalidParameter,
                                       NotFound)
from dockyard.hookspecs.host import ns
from dockyard.hookspecs.host.timefmt import rfc3339
from dockyard.hookspecs.netdriver import Endpoint, NetDriver

from . import ipam as ipammod
from . import netdeferred, netipam, netnames, netplugins, netsettings
from .dns import DnsServer
from .links import parse as parse_link
from .netnames import parse_extra_hosts
from .netports import Publisher
from .netsettings import ContainerLookup, parse_port

#: re-exported: the container service parses ``ExtraHosts`` and ports at create
__all__ = ["DEFAULT_NETWORKS", "NetworkService", "driver_options", "parse_extra_hosts",
           "parse_port"]
from .resolvconf import HostResolvConf

log = logging.getLogger(__name__)

#: the network ``NetworkMode: default`` means, in Docker's order of preference
DEFAULT_NETWORKS = ("bridge", "none")
NETWORK_CONFIG_KEYS = ("bridge", "bip", "iptables", "ip6tables", "ip-masq", "ip-forward", "icc",
                       "mtu")


def driver_options(config: Any) -> dict[str, Any]:
    """What every network driver gets as ``options``: the daemon's network settings."""
    return {k: config.get(k) for k in NETWORK_CONFIG_KEYS if config.get(k) not in (None, "")}


#: how the service announces what happened: ``(type, action, id, attributes)``, the daemon's
#: event stream
Events = Callable[[str, str, str, "dict[str, str]"], None]


class NetworkService:
    """``state``: the daemon's database; ``drivers``: the network drivers by name;
    ``containers``: what the service may know of containers (:class:`ContainerLookup`);
    ``exec_root``: where the sandboxes' namespace files live; ``seed``: what default subnets
    are chosen from when the database has no daemon id yet."""

    def __init__(self, state: Any, config: Any, drivers: dict[str, NetDriver],
                 containers: ContainerLookup, events: Events, exec_root: str, seed: str,
                 find_remote: Callable[[str], NetDriver]) -> None:
        self.state = state
        self.config = config
        self.drivers = drivers
        self.containers = containers
        self.find_remote = find_remote
        self.event = events
        self.seed = seed
        self.ipam = ipammod.Ipam(self.state)
        self.netns_dir = os.path.join(exec_root, "netns")
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)
        self.host_resolv = HostResolvConf()
        self.dns = DnsServer(self._resolve, list(self.config.get("dns") or []), self.host_resolv)
        self.ports = Publisher(self.config)
        self._lock = asyncio.Lock()
        self.networks: dict[str, dict[str, Any]] = {}
        self.networks.update(self.state.networks())

    async def start(self) -> None:
        """At daemon start (drivers do netlink work, so in a thread: pyroute2's synchronous API
        cannot run on the event loop's thread)."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        # bring every known network up in its driver (re-made after a reboot or a clean stop)
        for name, net in list(self.networks.items()):
            drv = self.drivers.get(net["Driver"])
            if drv is None:
                log.warning("network %s: driver %s is not installed (a network plugin is looked up on first use)", name, net["Driver"])
                continue
            if net.get("_predefined") and drv.needs_ipam:
                self._update_predefined_subnet(net)
            try:
                data = drv.create_network(net["Id"], netsettings.driver_create_opts(net))
                net["Options"] = netsettings.shown_options(net, data)
            except DockyardError as e:
                log.error("network %s could not be brought up: %s", name, e.message)
        for name, drv in self.drivers.items():
            if name not in self.networks and drv.predefined_network:
                self._create(name, name, {}, predefined=True)

    # -- records --------------------------------------------------------------------------------


    def _save(self, net: dict[str, Any]) -> None:
        self.state.save_network(net)

    def _taken_subnets(self, but: dict[str, Any] | None = None) -> list[ipammod.Network]:
        taken = ipammod.host_routes(4) + ipammod.host_routes(6)
        for net in self.networks.values():
            if net is but:
                continue
            for cfg in net["IPAM"].get("Config") or []:
                if cfg.get("Subnet"):
                    taken.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
        return taken

    def _ipam_config(self, wanted: list[dict[str, Any]], ipv6: bool,
                     but: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``IPAM.Config`` of a network; subnets the daemon's configuration gives for the
        predefined network (``but``) are not checked for overlaps (dockerd does not either)."""
        return netipam.network_config(wanted, ipv6, self.config.get("default-address-pools") or [],
                                      self.state.get_meta("daemon-id") or self.seed,
                                      self._taken_subnets(but), check_overlap=but is None)

    def _predefined_ipam(self, current: list[dict[str, Any]], but: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The predefined network's ``IPAM.Config`` (:func:`netipam.predefined_wanted`)."""
        wanted, ipv6 = netipam.predefined_wanted(self.config, current)
        return self._ipam_config(wanted, ipv6, but=but or {})

    def _update_predefined_subnet(self, net: dict[str, Any]) -> None:
        new = self._predefined_ipam(net["IPAM"]["Config"], but=net)
        if new != net["IPAM"]["Config"] or net["EnableIPv6"] != bool(self.config.get("ipv6")):
            net["IPAM"]["Config"] = new
            net["EnableIPv6"] = bool(self.config.get("ipv6"))
            self._save(net)

    def _create(self, name: str, driver: str, body: dict[str, Any], predefined: bool = False) -> dict[str, Any]:
        drv = self.drivers[driver]
        nid = secrets.token_hex(32)
        ipam_cfg: list[dict[str, Any]] = []
        ipv6 = bool(self.config.get("ipv6")) and drv.needs_ipam if predefined else \
            netipam.wants_ipv6(body)
        if drv.needs_ipam:
            ipam_cfg = self._predefined_ipam([]) if predefined else \
                self._ipam_config((body.get("IPAM") or {}).get("Config") or [], ipv6)
        elif ipv6:
            raise InvalidParameter(f"the {driver} driver gives no addresses: IPv6 cannot be "
                                   f"enabled on its networks")
        net = {"Name": name, "Id": nid, "Created": rfc3339(), "Scope": getattr(drv, "scope", "local"),
               "Driver": driver, "EnableIPv6": ipv6 and drv.needs_ipam,
               "IPAM": {"Driver": "default", "Options": dict((body.get("IPAM") or {}).get("Options") or {}) or None,  # nil: null
                        "Config": ipam_cfg},
               "Internal": bool(body.get("Internal")), "Attachable": bool(body.get("Attachable")),
               "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
               "Containers": {}, "Options": {}, "Labels": dict(body.get("Labels") or {}),
               "_predefined": predefined, "_user_options": dict(body.get("Options") or {})}
        data = drv.create_network(nid, netsettings.driver_create_opts(net))
        net["Options"] = netsettings.shown_options(net, data)
        self.state.add_network(net)
        self.networks[name] = net
        return net

    # -- the /networks API ----------------------------------------------------------------------
    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("Name")
        if not name:
            raise InvalidParameter("network name must be given")
        # Docker's API default driver is its default network's: the first of DEFAULT_NETWORKS
        # installed that allows user-defined networks
        driver = body.get("Driver") or next(
            (n for n in DEFAULT_NETWORKS if n in self.drivers and self.drivers[n].multiple_networks),
            "")
        async with self._lock:
            if name in self.networks:
                raise Conflict(f"network with name {name} already exists")
            if not driver:
                raise NotFound("plugin \"default\" not found")
            if not (await asyncio.to_thread(self._driver, driver)).multiple_networks:
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            net = await asyncio.to_thread(self._create, name, driver, body)
        self.event("network", "create", net["Id"], {"name": name, "type": driver})
        return net

    def get(self, ref: str) -> dict[str, Any]:
        if ref in self.networks:
            return self.networks[ref]
        for net in self.networks.values():
            if net["Id"] == ref:
                return net
        matches = [n for n in self.networks.values() if n["Id"].startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def public(self, net: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in net.items() if not k.startswith("_")}
        members = {}
        for c in self.containers.all():
            ep = (c.get("_endpoints") or {}).get(net["Name"])
            if ep and c["State"]["Running"]:
                members[c["Id"]] = {"Name": c["Name"][1:], "EndpointID": ep["endpoint_id"],
                                    "MacAddress": ep["mac_address"],
                                    "IPv4Address": f"{ep['ip_address']}/{ep['prefix_len']}" if ep["ip_address"] else "",
                                    "IPv6Address": f"{ep['ipv6_address']}/{ep['ipv6_prefix_len']}"
                                    if ep.get("ipv6_address") else ""}
        out["Containers"] = members
        return out

    def users(self, net: dict[str, Any], running_only: bool) -> list[dict[str, Any]]:
        return [c for c in self.containers.all()
                if net["Name"] in self.container_networks(c)
                and (c["State"]["Running"] or not running_only)]

    async def remove(self, ref: str) -> None:
        net = self.get(ref)
        if net.get("_predefined"):
            raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
        async with self._lock:
            active = self.users(net, running_only=True)
            if active:
                raise Forbidden(f"error while removing network: network {net['Name']} id "
                                f"{net['Id']} has active endpoints")
            drv = await asyncio.to_thread(self._driver, net["Driver"])
            await asyncio.to_thread(drv.delete_network, net["Id"])
            self.ipam.release_network(net["Id"])
            self.state.delete_network(net["Id"])
            self.networks.pop(net["Name"], None)
        self.event("network", "destroy", net["Id"], {"name": net["Name"], "type": net["Driver"]})

    async def prune(self, args: Any) -> list[str]:
        """``docker network prune``: the networks no container uses, not predefined, that
        the ``until``/``label``/``label!`` filters (an ``Args``) select."""
        from .listing import networks as select
        removed = []
        for net in select(self, args, prune=True):
            with contextlib.suppress(DockyardError):
                await self.remove(net["Id"])
                removed.append(net["Name"])
        return removed

    def list(self) -> list[dict[str, Any]]:
        return [self.public(n) for n in self.networks.values()]

    # -- container configuration ----------------------------------------------------------------
    def resolve_mode(self, mode: str) -> dict[str, Any] | None:
        """The network a create's ``NetworkMode`` names, or None for a name no network has yet:
        as dockerd (``updateContainerNetworkSettings``), a user-defined network is looked up at
        start, not at create (compose creates containers before their project's network)."""
        if mode == "default":
            for name in DEFAULT_NETWORKS:
                if name in self.networks:
                    return self.networks[name]
            if self.networks:
                return next(iter(self.networks.values()))
            raise InvalidParameter("no network driver is installed")
        try:
            return self.get(mode)
        except NotFound:
            return None

    def _driver(self, name: str) -> NetDriver:
        """The driver ``name``: installed, else the Docker network plugin of that name, found
        and registered on first use (blocking then: call it from a thread)."""
        drv = self.drivers.get(name)
        if drv is None:
            drv = self.drivers[name] = self.find_remote(name)
        return drv

    def _driver_or_none(self, name: str) -> NetDriver | None:
        try:
            return self._driver(name)
        except DockyardError as e:
            log.warning("network driver %s: %s", name, e.message)
            return None

    def _traits(self, name: str) -> Any:
        """What the class attributes of driver ``name`` say, never waiting for a plugin: a
        network's driver not loaded yet is a network plugin (:mod:`.netplugins`)."""
        return self.drivers.get(name) or netplugins.RemoteNetDriver

    def driver_of(self, name: str) -> Any:
        return self._traits(self.networks[name]["Driver"])

    container_networks = staticmethod(netsettings.container_networks)

    def configure(self, c: dict[str, Any], network: dict[str, Any] | None,
                  body: dict[str, Any]) -> None:
        """At create: record the container's networks (NetworkMode plus EndpointsConfig; the
        docker CLI keys the primary network's settings by the NetworkMode it sent, ``default``
        too). The deprecated container-wide ``MacAddress`` is the primary endpoint's, as in
        dockerd since API 1.44."""
        eps = dict((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        mode = (body.get("HostConfig") or {}).get("NetworkMode") or "default"
        primary_cfg = dict(eps.pop(mode, None) or (network and (eps.pop(network["Name"], None)
                           or eps.pop(network["Id"], None))) or {})
        eps.pop("default", None)
        mac = body.get("MacAddress") or ""
        if mac:
            if primary_cfg.get("MacAddress") and \
                    netipam.normal_mac(primary_cfg["MacAddress"]) != netipam.normal_mac(mac):
                raise InvalidParameter("the container-wide MAC address must match the "
                                       "endpoint-specific MAC address for the main network, or "
                                       "be left empty")
            primary_cfg["MacAddress"] = mac
        c["_networks"] = netdeferred.at_create(self, network, mode, primary_cfg, eps)
        c["NetworkSettings"] = self.settings_for(c)

    def endpoint_config(self, net: dict[str, Any], cfg: dict[str, Any] | None) -> dict[str, Any]:
        """What is kept of a request's ``EndpointSettings`` for ``net`` (create, or network
        connect), checked as dockerd checks it: ``Aliases``, ``IPAMConfig`` (static IPv4/IPv6
        addresses, link-local addresses), ``MacAddress``, ``Links`` (``name[:alias]``: the alias
        resolves to that container on this network, for this container) and ``DriverOpts``
        (handed to the network driver). Types are checked at the edge (core.schema)."""
        cfg = cfg or {}
        netipam.check_endpoint(net, cfg, not net.get("_predefined"),
                               self._traits(net["Driver"]).needs_ipam)
        links = cfg.get("Links") or []
        for link in links:
            parse_link(link)
        return {"Aliases": list(cfg.get("Aliases") or []) or None, "IPAMConfig": cfg.get("IPAMConfig"),
                "MacAddress": netipam.normal_mac(cfg["MacAddress"]) if cfg.get("MacAddress") else "",
                "Links": list(links) or None, "DriverOpts": dict(cfg.get("DriverOpts") or {}) or None}



    def settings_for(self, c: dict[str, Any]) -> dict[str, Any]:
        """``NetworkSettings`` as ``GET /containers/{id}/json`` shows it."""
        return netsettings.settings_for(self.networks, c)



    port_summary = staticmethod(netsettings.port_summary)

    # -- /etc files -----------------------------------------------------------------------------
    def _is_host(self, c: dict[str, Any]) -> bool:
        primary = next(iter(self.container_networks(c)), "")
        return primary in self.networks and self.driver_of(primary).namespace == "host"

    def resolv_conf(self, c: dict[str, Any]) -> str:
        return netnames.resolv_conf(c, self._is_host(c), self.host_resolv)

    def hosts_file(self, c: dict[str, Any]) -> str:
        return netnames.hosts_file(c, self._is_host(c), self.containers)





    # -- names ----------------------------------------------------------------------------------


    def _resolve(self, asker: str, qname: str) -> list[str] | None:
        return netnames.resolve(self.networks, self.containers, asker, qname)

    # -- the sandbox ----------------------------------------------------------------------------
    def _sandbox_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid)

    async def setup(self, c: dict[str, Any]) -> list[dict[str, str]]:
        """Before the container's process exists: make its namespace, plumb every endpoint,
        publish its ports, serve its names. Return the spec's network namespace entries."""
        netdeferred.at_start(self, c)  # a network named at create that did not exist then
        if self._is_host(c):
            c["_sandbox"] = ""
            c["_endpoints"] = {}
            c["NetworkSettings"] = self.settings_for(c)
            c["_host_net"] = next(iter(self.container_networks(c)))
            self._event("connect", self.get(c["_host_net"]), c)
            return []
        cid = c["Id"]
        path = self._sandbox_path(cid)
        if os.path.exists(path):
            await asyncio.to_thread(ns.remove_netns, path)
        await asyncio.to_thread(ns.create_netns, path)
        c["_sandbox"] = path
        c["_endpoints"] = {}
        c["_ports"] = []
        try:
            for name in list(self.container_networks(c)):
                await self._attach(c, name)
            await self.ports.publish(c, self._driver_of_network_id)
            if any(ep.get("ip_address") for ep in c["_endpoints"].values()):
                await self.dns.add(cid, path, c["HostConfig"].get("Dns"))
        except BaseException:
            await self.teardown(c)
            raise
        c["NetworkSettings"] = self.settings_for(c)
        return [{"type": "network", "path": path}]

    async def _attach(self, c: dict[str, Any], name: str,
                      cfg: dict[str, Any] | None = None) -> None:
        """Make and join ``c``'s endpoint on network ``name`` (``cfg``: its endpoint settings,
        by default those recorded)."""
        net = self.get(name)
        drv = await asyncio.to_thread(self._driver, net["Driver"])
        cfg = cfg if cfg is not None else self.container_networks(c).get(name) or {}
        opts: dict[str, Any] = {"Interface": f"eth{sum(1 for e in c['_endpoints'].values() if e.get('interface'))}",
                                "DriverOpts": dict(cfg.get("DriverOpts") or {})}
        if cfg.get("MacAddress"):
            opts["MacAddress"] = cfg["MacAddress"]
        addresses: list[str] = []
        try:
            if drv.needs_ipam:
                addresses = netipam.allocate(self.ipam, net, c["Id"], cfg.get("IPAMConfig") or {}, opts)
            ep = await asyncio.to_thread(drv.create_endpoint, net["Id"], secrets.token_hex(32), opts)
            c["_endpoints"][name] = dataclasses.asdict(ep)
            await asyncio.to_thread(drv.join, ep, c["_sandbox"])
            c["_endpoints"][name] = dataclasses.asdict(ep)  # as join left it
            sysctls = netipam.endpoint_sysctls(cfg.get("DriverOpts"), ep.interface)
            if sysctls and ep.interface:  # dockerd's own endpoint option, for any driver
                await asyncio.to_thread(ns.in_netns, c["_sandbox"], netipam.apply_sysctls, sysctls)
        except BaseException:
            if name not in c["_endpoints"]:
                for address in addresses:
                    self.ipam.release(net["Id"], address)
            raise
        self._event("connect", net, c)

    def _event(self, action: str, net: dict[str, Any], c: dict[str, Any]) -> None:
        """``connect`` / ``disconnect``, as dockerd: when an endpoint joins (start, or connecting
        a running container) or leaves (stop, or disconnecting a running one)."""
        self.event("network", action, net["Id"], {"container": c["Id"], "name": net["Name"],
                                                     "type": net["Driver"]})

    async def _detach(self, c: dict[str, Any], name: str) -> None:
        epd = (c.get("_endpoints") or {}).pop(name, None)
        if epd is None:
            return
        net = self.networks.get(name)
        ep = Endpoint(**epd)
        drv = None if net is None else await asyncio.to_thread(self._driver_or_none, net["Driver"])
        if net is not None and drv is not None:
            mine = [p for p in c.get("_ports") or [] if p.get("_endpoint") == ep.endpoint_id]
            for step, args in (("unpublish", (ep, mine)), ("leave", (ep, c.get("_sandbox") or "")),
                               ("delete_endpoint", (ep,))):
                if step == "unpublish" and not mine:
                    continue
                try:
                    await asyncio.to_thread(getattr(drv, step), *args)
                except Exception:  # noqa: BLE001 - undo as much as possible
                    log.exception("%s of %s on %s failed", step, c["Id"][:12], name)
        for address in (ep.ip_address, ep.ipv6_address):
            if address:
                self.ipam.release(ep.network_id, address)
        if net is not None:
            self._event("disconnect", net, c)

    def _driver_of_network_id(self, nid: str) -> NetDriver:
        for net in self.networks.values():
            if net["Id"] == nid:
                return self._driver(net["Driver"])
        raise NotFound(f"network {nid} not found")

    async def teardown(self, c: dict[str, Any]) -> None:
        """After the container's process exited: undo :meth:`setup` (failures are logged)."""
        cid = c["Id"]
        self.dns.remove(cid)
        await self.ports.close(cid)
        host_net = self.networks.get(c.pop("_host_net", None) or "")
        if host_net is not None:
            self._event("disconnect", host_net, c)
        for name in list(reversed(list((c.get("_endpoints") or {})))):
            await self._detach(c, name)
        self.ipam.release_owner(cid)
        sandbox = c.get("_sandbox")
        if sandbox:
            try:
                await asyncio.to_thread(ns.remove_netns, sandbox)
            except OSError:
                log.exception("removing the network namespace of %s failed", cid[:12])
        c["_sandbox"] = ""
        c["_endpoints"] = {}
        c["_ports"] = []
        c["NetworkSettings"] = self.settings_for(c)

    @staticmethod
    def set_up(c: dict[str, Any]) -> bool:
        """Whether :meth:`setup` left something for :meth:`teardown` to undo."""
        return bool(c.get("_sandbox") or c.get("_endpoints") or c.get("_ports") or c.get("_host_net"))

    # -- connect / disconnect -------------------------------------------------------------------
    async def connect(self, ref: str, cref: str, cfg: dict[str, Any]) -> None:
        net = self.get(ref)
        c = self.containers.get(cref)
        if (c["HostConfig"].get("NetworkMode") or "").startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or host "
                            "cannot be connected to any other network")
        nets = self.container_networks(c)
        if net["Name"] in nets:
            raise Forbidden(f"endpoint with name {c['Name'][1:]} already exists in network {net['Name']}")
        if self._is_host(c) or self._traits(net["Driver"]).namespace == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if not self._traits(net["Driver"]).multiple_networks and len(nets) and \
                self._traits(net["Driver"]).namespace != "private":
            raise Forbidden(f"container cannot be connected to network {net['Name']}")
        nets = {**nets, net["Name"]: self.endpoint_config(net, cfg)}
        if c["State"]["Running"] and c.get("_sandbox"):
            await self._attach(c, net["Name"], nets[net["Name"]])
            if c["_endpoints"][net["Name"]].get("ip_address"):
                await self.dns.add(c["Id"], c["_sandbox"], c["HostConfig"].get("Dns"))
        self._record(c, nets)

    async def disconnect(self, ref: str, cref: str, force: bool = False) -> None:
        net = self.get(ref)
        c = self.containers.get(cref)
        nets = dict(self.container_networks(c))
        if net["Name"] not in nets:
            raise Forbidden(f"container {c['Id'][:12]} is not connected to network {net['Name']}")
        if self._is_host(c):
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        await self._detach(c, net["Name"])
        del nets[net["Name"]]
        self._record(c, nets)  # may be empty: the container then starts with loopback only

    def _record(self, c: dict[str, Any], nets: dict[str, dict[str, Any]]) -> None:
        """``c``'s networks are now ``nets``: recorded by the container service."""
        settings = netsettings.settings_for(self.networks, {**c, "_networks": nets})
        self.containers.set_network_settings(c, nets, settings)

    # -- daemon start / stop --------------------------------------------------------------------
    async def reconcile(self, running: list[dict[str, Any]]) -> None:
        """At daemon start, once the exec driver re-adopted ``running`` containers: serve their
        names and ports again, and remove what a crash left (namespace files, addresses,
        interfaces, firewall rules) that belongs to no running container."""
        live = {c["Id"] for c in running}
        for name in os.listdir(self.netns_dir):
            if name not in live:
                log.info("removing leftover network namespace %s", name[:12])
                await asyncio.to_thread(ns.remove_netns, os.path.join(self.netns_dir, name))
        for owner in self.state.address_owners():
            if owner not in live:
                self.ipam.release_owner(owner)
        per_driver: dict[str, tuple[list[Endpoint], dict[str, list[dict[str, Any]]]]] = {
            name: ([], {}) for name in self.drivers}
        for c in running:
            for netname, epd in (c.get("_endpoints") or {}).items():
                net = self.networks.get(netname)
                if net is None or net["Driver"] not in per_driver:
                    continue
                ep = Endpoint(**epd)
                eps, pub = per_driver[net["Driver"]]
                eps.append(ep)
                mine = [p for p in c.get("_ports") or [] if p.get("_endpoint") == ep.endpoint_id]
                if mine:
                    pub[ep.endpoint_id] = mine
            if c.get("_sandbox") and os.path.exists(c["_sandbox"]):
                if any(ep.get("ip_address") for ep in (c.get("_endpoints") or {}).values()):
                    with contextlib.suppress(OSError):
                        await self.dns.add(c["Id"], c["_sandbox"], c["HostConfig"].get("Dns"))
            await self.ports.rebind(c)
        for name, drv in self.drivers.items():
            nets = {n["Id"]: netsettings.driver_create_opts(n) for n in self.networks.values()
                    if n["Driver"] == name}
            eps, pub = per_driver[name]
            try:
                await asyncio.to_thread(drv.restore, nets, eps, pub)
            except Exception:  # noqa: BLE001
                log.exception("network driver %s could not restore its state", name)

    async def shutdown(self) -> None:
        self.dns.close()
        await self.ports.close_all()
        for name, drv in self.drivers.items():
            try:
                await asyncio.to_thread(drv.close)
            except Exception:  # noqa: BLE001
                log.exception("network driver %s failed to close", name)
