"""The default IPAM: subnets for networks, addresses for endpoints, persisted in the state DB.

An address is in use while its row exists in the ``ipam`` table (primary key: network, address),
so two endpoints never get the same address, even across daemon restarts or crashes: the row is
written before the address is handed out and removed only when the endpoint is deleted.
Subnets are chosen from address pools, skipping any that overlap a route of the host or another
network.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
from typing import Any, Iterable

from dockyard.hookspecs.errors import Conflict, Forbidden, InvalidParameter

log = logging.getLogger(__name__)

#: Docker's default pools: 172.17-31.0.0/16, then 192.168.0-240.0/20
DEFAULT_POOLS = [{"base": "172.17.0.0/12", "size": 16}, {"base": "192.168.0.0/16", "size": 20}]
#: the smallest subnets a network may have: room for a gateway and one endpoint
MAX_PREFIX = {4: 30, 6: 126}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_routes(version: int = 4) -> list[Network]:
    """Destinations of the host's routes of IP ``version`` (default routes and link-local
    ones excluded) and the subnets of its addresses."""
    from pyroute2 import IPRoute

    family = 2 if version == 4 else 10
    out: list[Network] = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=family):
            dst, plen = r.get_attr("RTA_DST"), r["dst_len"]
            if dst and plen:
                out.append(ipaddress.ip_network(f"{dst}/{plen}", strict=False))
        for a in ipr.get_addr(family=family):
            out.append(ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}",
                                            strict=False))
    return [n for n in out if not n.is_link_local and not n.is_loopback]


def parse_subnet(subnet: str, ipv6: bool = False) -> Network:
    """``subnet`` as a network; IPv6 only when the network has IPv6 enabled."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid subnet {subnet!r}") from None
    if net.version == 6 and not ipv6:
        raise InvalidParameter(f"IPv6 subnet {subnet} given but IPv6 is not enabled on the "
                               f"network (EnableIPv6, --ipv6)")
    if ipaddress.ip_interface(subnet.strip()).ip != net.network_address:
        raise InvalidParameter(f"invalid subnet {subnet}: it should be {net}")
    if net.prefixlen > MAX_PREFIX[net.version]:
        raise InvalidParameter(f"subnet {subnet} is too small (at most /{MAX_PREFIX[net.version]})")
    return net


def ula_pool(seed: str) -> dict[str, Any]:
    """The IPv6 pool dockerd adds when no IPv6 pool is configured: a /48 of fd00::/8 whose
    40-bit global ID is derived from ``seed`` (RFC 4193's idea; dockerd seeds with its host ID),
    split into /64s."""
    gid = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    base = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00::")) + (gid << 80))
    return {"base": f"{base}/48", "size": 64}


def pick_subnet(pools: list[dict[str, Any]], taken: Iterable[Network], version: int = 4) -> Network:
    """The first subnet of IP ``version`` in ``pools`` overlapping none of ``taken``."""
    taken = [t for t in taken if t.version == version]
    for pool in pools or (DEFAULT_POOLS if version == 4 else ()):
        base = ipaddress.ip_network(pool["base"], strict=False)
        size = int(pool.get("size", base.prefixlen))
        if base.version != version or size < base.prefixlen:
            continue
        start = ipaddress.ip_address(str(pool["base"]).split("/")[0])
        for cand in base.subnets(new_prefix=size):
            if cand.network_address < start:
                continue
            if not any(cand.overlaps(t) for t in taken):
                return cand
    raise Conflict(f"could not find an available, non-overlapping IPv{version} address pool "
                   f"among the defaults to assign to the network")


class Ipam:
    def __init__(self, state: Any) -> None:
        self.state = state

    def reserve(self, network_id: str, address: str, owner: str) -> None:
        if not self.state.reserve_address(network_id, address, owner):
            raise Forbidden(f"Address already in use: {address}")

    def allocate(self, network_id: str, subnet: str, owner: str, wanted: str = "",
                  gateway: str = "", pool: str = "", reserved: Iterable[str] = ()) -> str:
        """Reserve ``wanted`` (anywhere in ``subnet``, as dockerd allows) or else the lowest
        free address of ``pool`` (``--ip-range``; the whole subnet by default) that is not the
        ``gateway`` nor one of ``reserved`` (auxiliary addresses) for ``owner``."""
        net = ipaddress.ip_network(subnet, strict=False)
        taken = {str(ipaddress.ip_address(a)) for a in reserved}
        if gateway:
            taken.add(str(ipaddress.ip_address(gateway)))
        if wanted:
            try:
                addr = ipaddress.ip_address(wanted)
            except ValueError:
                raise InvalidParameter(f"invalid IP address {wanted!r}") from None
            if addr not in net:
                raise InvalidParameter(f"no configured subnet contains IP address {wanted}")
            if str(addr) in taken or addr == net.network_address or \
                    (net.version == 4 and addr == net.broadcast_address):
                raise Forbidden(f"Address already in use: {addr} is reserved on the network")
            self.reserve(network_id, str(addr), owner)
            return str(addr)
        space = ipaddress.ip_network(pool, strict=False) if pool else net
        candidates = (str(host) for host in space.hosts() if host != net.network_address and
                      not (net.version == 4 and host == net.broadcast_address))
        claimed = self.state.claim_first_free(network_id, owner, candidates, taken)
        if claimed is not None:
            return claimed
        raise Conflict(f"no available IPv{net.version} addresses on network {network_id[:12]} "
                       f"({pool or subnet})")

    def release(self, network_id: str, address: str) -> None:
        self.state.release_address(network_id, address)

    def release_owner(self, owner: str) -> None:
        self.state.release_owner(owner)

    def release_network(self, network_id: str) -> None:
        self.state.release_network(network_id)

    def in_use(self, network_id: str) -> dict[str, str]:
        return self.state.addresses_in_use(network_id)
