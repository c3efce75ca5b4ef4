"""The default IPAM: subnets for networks, addresses for endpoints, persisted in the state DB.

An address is in use while its row exists in the ``ipam`` table (primary key: network, address),
so two endpoints never get the same address, even across daemon restarts or crashes: the row is
written before the address is handed out and removed only when the endpoint is deleted.
Subnets are chosen from address pools, skipping any that overlap a route of the host or another
network.
"""
from __future__ import annotations

import ipaddress
import logging
import sqlite3
from typing import Any, Iterable

from dockyard.hookspecs.errors import Conflict, InvalidParameter

log = logging.getLogger(__name__)

#: Docker's default pools: 172.17-31.0.0/16, then 192.168.0-240.0/20
DEFAULT_POOLS = [{"base": "172.17.0.0/12", "size": 16}, {"base": "192.168.0.0/16", "size": 20}]


def host_routes() -> list[ipaddress.IPv4Network]:
    """Destinations of the host's IPv4 routes (the default route excluded) and its addresses."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=2):
            dst, plen = r.get_attr("RTA_DST"), r["dst_len"]
            if dst and plen:
                out.append(ipaddress.ip_network(f"{dst}/{plen}", strict=False))
        for a in ipr.get_addr(family=2):
            out.append(ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}",
                                            strict=False))
    return out


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid subnet {subnet!r}") from None
    if net.version != 4:
        raise InvalidParameter(f"only IPv4 subnets are supported, not {subnet!r}")
    if net.prefixlen > 30:
        raise InvalidParameter(f"subnet {subnet} is too small (at most /30)")
    return net


def pick_subnet(pools: list[dict[str, Any]], taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first subnet of ``pools`` overlapping none of ``taken``."""
    taken = list(taken)
    for pool in pools or DEFAULT_POOLS:
        base = ipaddress.ip_network(pool["base"], strict=False)
        size = int(pool.get("size", base.prefixlen))
        if base.version != 4 or size < base.prefixlen:
            continue
        start = ipaddress.ip_address(str(pool["base"]).split("/")[0])
        for cand in base.subnets(new_prefix=size):
            if cand.network_address < start:
                continue
            if not any(cand.overlaps(t) for t in taken):
                return cand
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the "
                   "defaults to assign to the network")


class Ipam:
    def __init__(self, state: Any) -> None:
        self.state = state

    def reserve(self, network_id: str, address: str, owner: str) -> None:
        try:
            self.state.x("INSERT INTO ipam(network_id, address, owner) VALUES(?,?,?)",
                         network_id, address, owner)
        except sqlite3.IntegrityError:
            raise Conflict(f"address {address} is already in use on the network") from None

    def allocate(self, network_id: str, subnet: str, owner: str, wanted: str = "",
                 gateway: str = "") -> str:
        """Reserve ``wanted`` (or the lowest free host address of ``subnet`` other than
        ``gateway``) for ``owner``."""
        net = ipaddress.ip_network(subnet, strict=False)
        if wanted and wanted == gateway:
            raise Conflict(f"address {wanted} is the network's gateway")
        if wanted:
            if ipaddress.ip_address(wanted) not in net:
                raise InvalidParameter(f"address {wanted} is not in subnet {subnet}")
            self.reserve(network_id, wanted, owner)
            return wanted
        with self.state.tx() as db:
            used = {r[0] for r in db.execute("SELECT address FROM ipam WHERE network_id=?",
                                             (network_id,))}
            if gateway:
                used.add(gateway)
            for host in net.hosts():
                addr = str(host)
                if addr not in used:
                    db.execute("INSERT INTO ipam(network_id, address, owner) VALUES(?,?,?)",
                               (network_id, addr, owner))
                    return addr
        raise Conflict(f"no available IPv4 addresses on network {network_id[:12]} ({subnet})")

    def release(self, network_id: str, address: str) -> None:
        self.state.x("DELETE FROM ipam WHERE network_id=? AND address=?", network_id, address)

    def release_owner(self, owner: str) -> None:
        self.state.x("DELETE FROM ipam WHERE owner=?", owner)

    def release_network(self, network_id: str) -> None:
        self.state.x("DELETE FROM ipam WHERE network_id=?", network_id)

    def in_use(self, network_id: str) -> dict[str, str]:
        return {r["address"]: r["owner"]
                for r in self.state.q("SELECT address, owner FROM ipam WHERE network_id=?", network_id)}
