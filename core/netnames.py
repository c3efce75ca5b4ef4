"""Names on networks: the ``/etc/hosts`` and ``/etc/resolv.conf`` a container gets, and the
addresses the embedded DNS server (:mod:`dockyard.core.dns`) answers for a name."""
from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter

from .dns import ADDRESS as DNS_ADDRESS
from .links import parse as parse_link
from .netsettings import ContainerLookup, container_networks, names_of
from .resolvconf import HostResolvConf

_LOCAL_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                "ff02::2\tip6-allrouters\n")


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


def _has_address(c: dict[str, Any]) -> bool:
    return any(ep.get("ip_address") for ep in (c.get("_endpoints") or {}).values())


def resolv_conf(c: dict[str, Any], on_host: bool, host_resolv: HostResolvConf) -> str:
    """The container's ``/etc/resolv.conf`` (``on_host``: it shares the host's network)."""
    if on_host:
        return host_resolv.text()
    host = c["HostConfig"]
    hostconf = host_resolv.get()
    domains = host.get("DnsSearch") or hostconf.search
    search = f"search {' '.join(domains)}\n" if domains else ""
    opts = list(host.get("DnsOptions") or hostconf.options)
    if not any(o.startswith("ndots:") for o in opts):
        opts.insert(0, "ndots:0")
    options = " ".join(opts)
    if _has_address(c):
        # the embedded server answers for the container's networks and forwards the rest
        # to the container's --dns servers (else the daemon's, else the host's)
        return f"nameserver {DNS_ADDRESS}\n{search}options {options}\n"
    return search  # no route out, no name servers


def hosts_file(c: dict[str, Any], on_host: bool, peers: ContainerLookup) -> str:
    """The container's ``/etc/hosts``: the host's when it shares the host's network, else
    localhost, its own address and name, its links and its ``--add-host`` entries."""
    if on_host:
        with contextlib.suppress(OSError), open("/etc/hosts", encoding="utf-8", errors="replace") as f:
            text = f.read()
            return text + ("" if text.endswith("\n") or not text else "\n") + extra_hosts(c)
    hosts = _LOCAL_HOSTS
    hostname = c["Config"]["Hostname"]
    for ep in (c.get("_endpoints") or {}).values():
        if ep.get("ip_address"):
            hosts += f"{ep['ip_address']}\t{hostname}\n"
            if ep.get("ipv6_address"):
                hosts += f"{ep['ipv6_address']}\t{hostname}\n"
            break
    return hosts + link_hosts(c, peers) + extra_hosts(c)


def link_hosts(c: dict[str, Any], peers: ContainerLookup) -> str:
    """``--link name[:alias]`` (legacy links): the linked container's address under the
    alias, its name and short ID, as dockerd writes them."""
    out = ""
    for link in c["HostConfig"].get("Links") or ():
        name, alias = parse_link(link)
        peer = peers.lookup(name)
        if peer is None:
            continue
        ip = next((ep["ip_address"] for ep in (peer.get("_endpoints") or {}).values()
                   if ep.get("ip_address")), "")
        if ip:
            names = dict.fromkeys([alias, peer["Name"][1:], peer["Id"][:12]])
            out += f"{ip}\t{' '.join(names)}\n"
    return out


def extra_hosts(c: dict[str, Any]) -> str:
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


def resolve(networks: dict[str, dict[str, Any]], peers: ContainerLookup, asker: str,
            qname: str) -> list[str] | None:
    """Addresses of ``qname`` on the user-defined networks container ``asker`` shares with
    it (both families: the DNS server answers A or AAAA from them); None if none."""
    me = peers.lookup(asker)
    if me is None:
        return None
    mine = {n for n in (me.get("_endpoints") or {}) if not networks.get(n, {}).get("_predefined")}
    # the asker's endpoint links on a network: an alias there names the linked container
    linked = {(n, alias.lower()): peer for n in mine
              for peer, alias in map(parse_link, (container_networks(me).get(n) or {}).get("Links") or [])}
    out: list[str] = []
    for c in peers.all():
        if not c["State"]["Running"] and c["Id"] != asker:
            continue
        for netname, ep in (c.get("_endpoints") or {}).items():
            if netname not in mine or not ep.get("ip_address"):
                continue
            names = {n.lower() for n in names_of(c, netname)}
            peer = linked.get((netname, qname))
            if peer is not None and peer in (c["Name"][1:], c["Id"], c["Id"][:12]):
                names.add(qname)
            if qname in names:
                out += [a for a in (ep["ip_address"], ep.get("ipv6_address")) if a and a not in out]
    return out or None
