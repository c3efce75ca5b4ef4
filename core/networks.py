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
import json
import logging
import os
import secrets
from typing import Any

from dockyard.hookspecs.errors import (Conflict, DockyardError, Forbidden, InvalidParameter,
                                       NotFound)
from dockyard.hookspecs.host import ns
from dockyard.hookspecs.host.timefmt import rfc3339
from dockyard.hookspecs.netdriver import Endpoint, NetDriver

from . import ipam as ipammod
from . import netdeferred, netipam
from .dns import ADDRESS as DNS_ADDRESS, DnsServer
from .links import parse as parse_link
from .portproxy import Proxy, proxy_target
from .resolvconf import HostResolvConf

log = logging.getLogger(__name__)

#: the network ``NetworkMode: default`` means, in Docker's order of preference
DEFAULT_NETWORKS = ("bridge", "none")
NETWORK_CONFIG_KEYS = ("bridge", "bip", "iptables", "ip6tables", "ip-masq", "ip-forward", "icc",
                       "mtu")


def driver_options(config: Any) -> dict[str, Any]:
    """What every network driver gets as ``options``: the daemon's network settings."""
    return {k: config.get(k) for k in NETWORK_CONFIG_KEYS if config.get(k) not in (None, "")}


def parse_port(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    try:
        return int(port), (proto or "tcp").lower()
    except ValueError:
        raise InvalidParameter(f"invalid port {key!r}") from None


def parse_extra_hosts(entries: Any) -> list[tuple[str, str]]:
    """``["name:ip", ...]`` (``ExtraHosts``; ``name=ip`` too, and ``host-gateway``) as
    ``(name, ip)``; InvalidParameter names a bad entry."""
    out = []
    for entry in entries or ():
        cut = min((i for i in (entry.find(":"), entry.find("=")) if i > 0), default=-1)
        name, ip = (entry[:cut], entry[cut + 1:].strip("[]")) if cut > 0 else ("", "")
        if not name or not ip:
            raise InvalidParameter(f"invalid extra host {entry!r}: expected name:ip")
        if ip != "host-gateway":
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidParameter(f"invalid IP address in add-host: {ip!r}") from None
        out.append((name, ip))
    return out


class NetworkService:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.state = daemon.state
        self.config = daemon.config
        self.drivers: dict[str, NetDriver] = daemon.netdrivers
        self.ipam = ipammod.Ipam(self.state)
        self.netns_dir = os.path.join(daemon.exec_root, "netns")
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)
        self.host_resolv = HostResolvConf()
        self.dns = DnsServer(self._resolve, list(self.config.get("dns") or []), self.host_resolv)
        self._proxies: dict[str, list[Proxy]] = {}
        self._lock = asyncio.Lock()
        self.networks: dict[str, dict[str, Any]] = {}
        for row in self.state.q("SELECT * FROM networks"):
            self.networks[row["name"]] = json.loads(row["data"])

    async def start(self) -> None:
        """At daemon start (drivers do netlink work, so in a thread: pyroute2's synchronous API
        cannot run on the event loop's thread)."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        # bring every known network up in its driver (re-made after a reboot or a clean stop)
        for name, net in list(self.networks.items()):
            drv = self.drivers.get(net["Driver"])
            if drv is None:
                log.warning("network %s: driver %s is not available", name, net["Driver"])
                continue
            if net.get("_predefined") and drv.needs_ipam:
                self._update_predefined_subnet(net)
            try:
                data = drv.create_network(net["Id"], self._driver_create_opts(net))
                net["Options"] = self._shown_options(net, data)
            except DockyardError as e:
                log.error("network %s could not be brought up: %s", name, e.message)
        for name, drv in self.drivers.items():
            if name not in self.networks and drv.predefined_network:
                self._create(name, name, {}, predefined=True)

    # -- records --------------------------------------------------------------------------------
    @staticmethod
    def _driver_create_opts(net: dict[str, Any]) -> dict[str, Any]:
        v4, v6 = netipam.by_version(net, 4), netipam.by_version(net, 6)
        return {"Name": net["Name"], "Internal": net["Internal"], "Default": bool(net.get("_predefined")),
                "Options": dict(net.get("_user_options") or {}),
                "Subnet": v4.get("Subnet"), "Gateway": v4.get("Gateway"),
                "IPv6Subnet": v6.get("Subnet") or "", "IPv6Gateway": v6.get("Gateway") or ""}

    @staticmethod
    def _shown_options(net: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
        """``Options`` as dockerd shows them: what the user gave; for a predefined network also
        what the driver chose (``com.docker.network.bridge.name``...). docker-compose compares a
        user network's Options with its file and recreates the network on any extra key."""
        user = dict(net.get("_user_options") or {})
        return {**user, **(data or {})} if net.get("_predefined") else user

    def _save(self, net: dict[str, Any]) -> None:
        self.state.x("INSERT INTO networks(id, name, driver, data) VALUES(?,?,?,?) "
                     "ON CONFLICT(id) DO UPDATE SET data=excluded.data",
                     net["Id"], net["Name"], net["Driver"], json.dumps(net))

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
                                      self.state.get_meta("daemon-id") or self.d.data_root,
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
        net = {"Name": name, "Id": nid, "Created": rfc3339(), "Scope": "local",
               "Driver": driver, "EnableIPv6": ipv6 and drv.needs_ipam,
               "IPAM": {"Driver": "default", "Options": dict((body.get("IPAM") or {}).get("Options") or {}) or None,  # nil: null
                        "Config": ipam_cfg},
               "Internal": bool(body.get("Internal")), "Attachable": bool(body.get("Attachable")),
               "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
               "Containers": {}, "Options": {}, "Labels": dict(body.get("Labels") or {}),
               "_predefined": predefined, "_user_options": dict(body.get("Options") or {})}
        data = drv.create_network(nid, self._driver_create_opts(net))
        net["Options"] = self._shown_options(net, data)
        self.state.x("INSERT INTO networks(id, name, driver, data) VALUES(?,?,?,?)",
                     nid, name, driver, json.dumps(net))
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
            if driver not in self.drivers:
                raise NotFound(f"plugin \"{driver or 'default'}\" not found")
            if not self.drivers[driver].multiple_networks:
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            net = await asyncio.to_thread(self._create, name, driver, body)
        self.d.event("network", "create", net["Id"], {"name": name, "type": driver})
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
        for c in self.d.containers.all():
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
        return [c for c in self.d.containers.all()
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
            await asyncio.to_thread(self.drivers[net["Driver"]].delete_network, net["Id"])
            self.ipam.release_network(net["Id"])
            self.state.x("DELETE FROM networks WHERE id=?", net["Id"])
            self.networks.pop(net["Name"], None)
        self.d.event("network", "destroy", net["Id"], {"name": net["Name"], "type": net["Driver"]})

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

    def driver_of(self, name: str) -> NetDriver:
        return self.drivers[self.networks[name]["Driver"]]

    @staticmethod
    def container_networks(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The networks a container is attached to, primary first: name → endpoint settings."""
        nets = c.get("_networks")
        if nets is None:
            nets = {c["_network"]: {}}
        return nets

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
                               self.drivers[net["Driver"]].needs_ipam)
        links = cfg.get("Links") or []
        for link in links:
            parse_link(link)
        return {"Aliases": list(cfg.get("Aliases") or []) or None, "IPAMConfig": cfg.get("IPAMConfig"),
                "MacAddress": netipam.normal_mac(cfg["MacAddress"]) if cfg.get("MacAddress") else "",
                "Links": list(links) or None, "DriverOpts": dict(cfg.get("DriverOpts") or {}) or None}

    def _endpoint_settings(self, c: dict[str, Any], name: str) -> dict[str, Any]:
        net = self.networks.get(name)
        cfg = self.container_networks(c).get(name) or {}
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
                "DNSNames": self._names_of(c, name) if ep.get("ip_address") else None}

    def settings_for(self, c: dict[str, Any]) -> dict[str, Any]:
        """``NetworkSettings`` as ``GET /containers/{id}/json`` shows it."""
        nets = self.container_networks(c)
        primary = next(iter(nets), "")
        first = self._endpoint_settings(c, primary) if primary else {}
        sandbox = c.get("_sandbox") or ""
        net = self.networks.get(primary) or {}
        return {"Bridge": "", "SandboxID": c["Id"] if sandbox else "", "SandboxKey": sandbox,
                "Ports": self._ports_view(c), "HairpinMode": False, "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None,
                "EndpointID": first["EndpointID"] if net.get("_predefined") else "",
                "Gateway": first["Gateway"] if net.get("_predefined") else "",
                "GlobalIPv6Address": first["GlobalIPv6Address"] if net.get("_predefined") else "",
                "GlobalIPv6PrefixLen": first["GlobalIPv6PrefixLen"] if net.get("_predefined") else 0,
                "IPAddress": first["IPAddress"] if net.get("_predefined") else "",
                "IPPrefixLen": first["IPPrefixLen"] if net.get("_predefined") else 0,
                "IPv6Gateway": first["IPv6Gateway"] if net.get("_predefined") else "",
                "MacAddress": first["MacAddress"] if net.get("_predefined") else "",
                "Networks": {name: self._endpoint_settings(c, name) for name in nets}}

    @staticmethod
    def _ports_view(c: dict[str, Any]) -> dict[str, Any]:
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

    @staticmethod
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

    # -- /etc files -----------------------------------------------------------------------------
    def _is_host(self, c: dict[str, Any]) -> bool:
        primary = next(iter(self.container_networks(c)), "")
        return primary in self.networks and self.driver_of(primary).namespace == "host"

    def resolv_conf(self, c: dict[str, Any]) -> str:
        if self._is_host(c):
            return self.host_resolv.text()
        host = c["HostConfig"]
        hostconf = self.host_resolv.get()
        domains = host.get("DnsSearch") or hostconf.search
        search = f"search {' '.join(domains)}\n" if domains else ""
        opts = list(host.get("DnsOptions") or hostconf.options)
        if not any(o.startswith("ndots:") for o in opts):
            opts.insert(0, "ndots:0")
        options = " ".join(opts)
        if any(ep.get("ip_address") for ep in (c.get("_endpoints") or {}).values()):
            # the embedded server answers for the container's networks and forwards the rest
            # to the container's --dns servers (else the daemon's, else the host's)
            return f"nameserver {DNS_ADDRESS}\n{search}options {options}\n"
        return search  # no route out, no name servers

    def hosts_file(self, c: dict[str, Any]) -> str:
        if self._is_host(c):
            with contextlib.suppress(OSError), open("/etc/hosts", encoding="utf-8", errors="replace") as f:
                text = f.read()
                return text + ("" if text.endswith("\n") or not text else "\n") + self.extra_hosts(c)
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n")
        hostname = c["Config"]["Hostname"]
        for ep in (c.get("_endpoints") or {}).values():
            if ep.get("ip_address"):
                hosts += f"{ep['ip_address']}\t{hostname}\n"
                if ep.get("ipv6_address"):
                    hosts += f"{ep['ipv6_address']}\t{hostname}\n"
                break
        return hosts + self.link_hosts(c) + self.extra_hosts(c)

    def link_hosts(self, c: dict[str, Any]) -> str:
        """``--link name[:alias]`` (legacy links): the linked container's address under the
        alias, its name and short ID, as dockerd writes them."""
        out = ""
        for link in c["HostConfig"].get("Links") or ():
            name, alias = parse_link(link)
            peer = self.d.containers._cache.get(name) or next(
                (p for p in self.d.containers._cache.values() if p["Name"][1:] == name), None)
            if peer is None:
                continue
            ip = next((ep["ip_address"] for ep in (peer.get("_endpoints") or {}).values()
                       if ep.get("ip_address")), "")
            if ip:
                names = dict.fromkeys([alias, peer["Name"][1:], peer["Id"][:12]])
                out += f"{ip}\t{' '.join(names)}\n"
        return out

    def extra_hosts(self, c: dict[str, Any]) -> str:
        """``--add-host name:ip`` lines (``host-gateway``: the gateway of the container's
        first network that has one, as dockerd's default)."""
        out = ""
        for name, ip in parse_extra_hosts(c["HostConfig"].get("ExtraHosts")):
            if ip == "host-gateway":
                ip = next((ep["gateway"] for ep in (c.get("_endpoints") or {}).values()
                           if ep.get("gateway")), "")
                if not ip:
                    continue
            out += f"{ip}\t{name}\n"
        return out

    # -- names ----------------------------------------------------------------------------------
    def _names_of(self, c: dict[str, Any], netname: str) -> list[str]:
        cfg = self.container_networks(c).get(netname) or {}
        return [c["Name"][1:], *(cfg.get("Aliases") or []), c["Id"][:12]]

    def _resolve(self, asker: str, qname: str) -> list[str] | None:
        """Addresses of ``qname`` on the networks container ``asker`` shares with it."""
        me = self.d.containers._cache.get(asker)
        if me is None:
            return None
        mine = {n for n in (me.get("_endpoints") or {}) if not self.networks.get(n, {}).get("_predefined")}
        # the asker's endpoint links on a network: an alias there names the linked container
        linked = {(n, alias.lower()): peer for n in mine
                  for peer, alias in map(parse_link, (self.container_networks(me).get(n) or {}).get("Links") or [])}
        out: list[str] = []
        for c in self.d.containers.all():
            if not c["State"]["Running"] and c["Id"] != asker:
                continue
            for netname, ep in (c.get("_endpoints") or {}).items():
                if netname not in mine or not ep.get("ip_address"):
                    continue
                names = {n.lower() for n in self._names_of(c, netname)}
                peer = linked.get((netname, qname))
                if peer is not None and peer in (c["Name"][1:], c["Id"], c["Id"][:12]):
                    names.add(qname)
                if qname in names:
                    # both families: the DNS server answers A or AAAA from them
                    out += [a for a in (ep["ip_address"], ep.get("ipv6_address")) if a and a not in out]
        return out or None

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
            await self._publish(c)
            if any(ep.get("ip_address") for ep in c["_endpoints"].values()):
                await self.dns.add(cid, path, c["HostConfig"].get("Dns"))
        except BaseException:
            await self.teardown(c)
            raise
        c["NetworkSettings"] = self.settings_for(c)
        return [{"type": "network", "path": path}]

    async def _attach(self, c: dict[str, Any], name: str) -> None:
        net = self.get(name)
        drv = self.drivers[net["Driver"]]
        cfg = self.container_networks(c).get(name) or {}
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
        self.d.event("network", action, net["Id"], {"container": c["Id"], "name": net["Name"],
                                                     "type": net["Driver"]})

    async def _detach(self, c: dict[str, Any], name: str) -> None:
        epd = (c.get("_endpoints") or {}).pop(name, None)
        if epd is None:
            return
        net = self.networks.get(name)
        ep = Endpoint(**epd)
        if net is not None and net["Driver"] in self.drivers:
            drv = self.drivers[net["Driver"]]
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

    async def _publish(self, c: dict[str, Any]) -> None:
        host = c["HostConfig"]
        bindings: dict[str, list[dict[str, str]]] = dict(host.get("PortBindings") or {})
        if host.get("PublishAllPorts"):
            for key in (c["Config"].get("ExposedPorts") or {}):
                bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
        if not bindings:
            return
        target = next((ep for ep in c["_endpoints"].values() if ep.get("ip_address")), None)
        if target is None:
            return  # none: nothing to publish to (Docker ignores -p there too)
        ep = Endpoint(**target)
        userland = self.config.get("userland-proxy", True)
        proxies: list[Proxy] = self._proxies.setdefault(c["Id"], [])
        ports = []
        for key, lst in bindings.items():
            cport, proto = parse_port(key)
            if proto not in ("tcp", "udp"):
                raise InvalidParameter(f"unsupported protocol {proto}")
            for b in lst or [{"HostIp": "", "HostPort": ""}]:
                hp = str((b or {}).get("HostPort") or "")
                lo, _, hi = hp.partition("-")
                host_ip = ((b or {}).get("HostIp") or "").strip("[]")
                px = Proxy(proto, host_ip, int(lo) if lo else 0, proxy_target(target, host_ip, cport))
                px.bind()
                proxies.append(px)
                if userland:
                    await px.start()
                ports.append({"Proto": proto, "HostIp": host_ip, "HostPort": px.host_port,
                              "ContainerPort": cport})
        drv = self.drivers[self.networks[self._name_of_net(ep.network_id)]["Driver"]]
        await asyncio.to_thread(drv.publish, ep, ports)
        c["_ports"] = [{**p, "_endpoint": ep.endpoint_id} for p in ports]

    def _name_of_net(self, nid: str) -> str:
        for name, net in self.networks.items():
            if net["Id"] == nid:
                return name
        raise NotFound(f"network {nid} not found")

    async def teardown(self, c: dict[str, Any]) -> None:
        """After the container's process exited: undo :meth:`setup` (failures are logged)."""
        cid = c["Id"]
        self.dns.remove(cid)
        for px in self._proxies.pop(cid, []):
            await px.close()
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

    # kept for callers of the first version of this service
    async def left(self, c: dict[str, Any]) -> None:
        await self.teardown(c)

    # -- connect / disconnect -------------------------------------------------------------------
    async def connect(self, ref: str, cref: str, cfg: dict[str, Any]) -> None:
        net = self.get(ref)
        c = self.d.containers.get(cref)
        if (c["HostConfig"].get("NetworkMode") or "").startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or host "
                            "cannot be connected to any other network")
        nets = self.container_networks(c)
        if net["Name"] in nets:
            raise Forbidden(f"endpoint with name {c['Name'][1:]} already exists in network {net['Name']}")
        if self._is_host(c) or self.drivers[net["Driver"]].namespace == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if not self.drivers[net["Driver"]].multiple_networks and len(nets) and \
                self.drivers[net["Driver"]].namespace != "private":
            raise Forbidden(f"container cannot be connected to network {net['Name']}")
        nets = dict(nets)
        nets[net["Name"]] = self.endpoint_config(net, cfg)
        c["_networks"] = nets
        if c["State"]["Running"] and c.get("_sandbox"):
            try:
                await self._attach(c, net["Name"])
            except BaseException:
                nets.pop(net["Name"], None)
                raise
            if c["_endpoints"][net["Name"]].get("ip_address"):
                await self.dns.add(c["Id"], c["_sandbox"], c["HostConfig"].get("Dns"))
        c["NetworkSettings"] = self.settings_for(c)
        self.d.containers.save(c)

    async def disconnect(self, ref: str, cref: str, force: bool = False) -> None:
        net = self.get(ref)
        c = self.d.containers.get(cref)
        nets = dict(self.container_networks(c))
        if net["Name"] not in nets:
            raise Forbidden(f"container {c['Id'][:12]} is not connected to network {net['Name']}")
        if self._is_host(c):
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        await self._detach(c, net["Name"])
        del nets[net["Name"]]
        c["_networks"] = nets  # may be empty: the container then starts with loopback only
        c["NetworkSettings"] = self.settings_for(c)
        self.d.containers.save(c)

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
        for row in self.state.q("SELECT DISTINCT owner FROM ipam"):
            if row["owner"] not in live:
                self.ipam.release_owner(row["owner"])
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
            await self._rebind(c)
        for name, drv in self.drivers.items():
            nets = {n["Id"]: self._driver_create_opts(n) for n in self.networks.values()
                    if n["Driver"] == name}
            eps, pub = per_driver[name]
            try:
                await asyncio.to_thread(drv.restore, nets, eps, pub)
            except Exception:  # noqa: BLE001
                log.exception("network driver %s could not restore its state", name)

    async def _rebind(self, c: dict[str, Any]) -> None:
        target = {ep["endpoint_id"]: ep for ep in (c.get("_endpoints") or {}).values()}
        userland = self.config.get("userland-proxy", True)
        for p in c.get("_ports") or []:
            ep = target.get(p.get("_endpoint"))
            if ep is None:
                continue
            px = Proxy(p["Proto"], p["HostIp"], p["HostPort"], proxy_target(ep, p["HostIp"], p["ContainerPort"]))
            try:
                px.bind()
                if userland:
                    await px.start()
            except DockyardError as e:
                log.warning("port %s of %s could not be bound again: %s", p["HostPort"], c["Id"][:12], e)
                continue
            self._proxies.setdefault(c["Id"], []).append(px)

    async def shutdown(self) -> None:
        self.dns.close()
        for cid in list(self._proxies):
            for px in self._proxies.pop(cid):
                await px.close()
        for name, drv in self.drivers.items():
            try:
                await asyncio.to_thread(drv.close)
            except Exception:  # noqa: BLE001
                log.exception("network driver %s failed to close", name)
