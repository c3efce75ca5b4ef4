"""The ``bridge`` network driver: a Linux bridge per network, a veth pair per endpoint.

All netlink work is pyroute2's. A network with IPv6 gets its IPv6 gateway on the bridge and each
endpoint its IPv6 address and default route (addresses are added without duplicate address
detection: the IPAM already guarantees they are unique); on an IPv4-only network the container's
interface has IPv6 disabled, as dockerd does. Firewall rules are nftables rules in one table per
daemon and family (:mod:`.bridge_nft`), regenerated whole and replaced atomically (``nft -f``)
at each change: what the kernel holds is always exactly what the driver's model says, so
reconciling after a crash is the same operation as any update.

Bridges this driver made carry an interface alias naming the driver's home, so ``restore`` can tell
them (and the veths plugged into them) from any other daemon's on the same host.
"""
from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import subprocess
import threading
from typing import Any

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import DockyardError, DriverNotSupported, InvalidParameter
from dockyard.hookspecs.netdriver import Endpoint, NetDriver

from . import bridge_nft

log = logging.getLogger(__name__)

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"
IFNAMSIZ = 15
IFA_F_NODAD = 0x02
AF_INET6 = 10


def _mtu(value: Any, default: int) -> int:
    """A network's MTU option (``com.docker.network.driver.mtu``): what an Ethernet bridge can
    take, or a 400 as dockerd's ``invalid MTU number``."""
    if value in (None, ""):
        return default
    try:
        mtu = int(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"invalid MTU number: {value!r} ({OPT_MTU})") from None
    if not 68 <= mtu <= 65535:
        raise InvalidParameter(f"invalid MTU number: {mtu} ({OPT_MTU}: 68 to 65535)")
    return mtu


def _truthy(v: Any, default: bool) -> bool:
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    return str(v).lower() in ("1", "true", "yes", "on")


def mac_for(ip: str) -> str:
    """Docker's rule: 02:42 followed by the four bytes of the IPv4 address."""
    b = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


class BridgeDriver(NetDriver):
    name = "bridge"
    namespace = "private"
    needs_ipam = True
    multiple_networks = True

    def __init__(self, home: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(home, options)
        if os.geteuid() != 0:
            raise DriverNotSupported("the bridge driver needs root (CAP_NET_ADMIN)")
        try:
            from pyroute2 import IPRoute  # noqa: F401
        except ImportError as e:  # pragma: no cover - a dependency
            raise DriverNotSupported(f"pyroute2 is not importable: {e}") from None
        o = self.options
        self.default_bridge = o.get("bridge") or "dockyard0"
        if len(self.default_bridge) > IFNAMSIZ:
            raise InvalidParameter(f"bridge name {self.default_bridge!r} is longer than 15 characters")
        self.iptables = _truthy(o.get("iptables"), True)
        self.ip6tables = self.iptables and _truthy(o.get("ip6tables"), True)
        self.ip_masq = _truthy(o.get("ip-masq"), True)
        self.ip_forward = _truthy(o.get("ip-forward"), True)
        self.icc = _truthy(o.get("icc"), True)
        self.mtu = int(o.get("mtu") or 1500)
        if self.iptables and not shutil.which("nft"):
            raise DriverNotSupported("nft (nftables) is not installed; install it or set iptables=false")
        os.makedirs(home, exist_ok=True)
        self.tag = "dockyard:" + hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:16]
        self.table = "dockyard_" + re.sub(r"[^A-Za-z0-9_]", "_", self.default_bridge)
        self._lock = threading.RLock()
        self.nets: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, list[bridge_nft.PortRow]] = {}
        self.joined: set[str] = set()
        #: bridge name -> host-side veths plugged into it (for ICC-off rules)
        self.members: dict[str, set[str]] = {}

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _ipr():  # noqa: ANN205
        from pyroute2 import IPRoute
        return IPRoute()

    def _net(self, network_id: str) -> dict[str, Any]:
        try:
            return self.nets[network_id]
        except KeyError:
            raise DockyardError(f"bridge driver: unknown network {network_id[:12]}") from None

    def _our_bridges(self, ipr: Any) -> dict[str, int]:
        out = {}
        for link in ipr.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            if info is None or info.get_attr("IFLA_INFO_KIND") != "bridge":
                continue
            if link.get_attr("IFLA_IFALIAS") == self.tag:
                out[link.get_attr("IFLA_IFNAME")] = link["index"]
        return out

    # -- networks -------------------------------------------------------------------------------
    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        drv = dict(options.get("Options") or {})
        if options.get("Default"):
            bridge = drv.get(OPT_BRIDGE_NAME) or self.default_bridge
        else:
            bridge = drv.get(OPT_BRIDGE_NAME) or "br-" + network_id[:12]
        if len(bridge) > IFNAMSIZ:
            raise InvalidParameter(f"bridge name {bridge!r} is longer than 15 characters")
        subnet = options.get("Subnet")
        gateway = options.get("Gateway")
        if not subnet or not gateway:
            raise InvalidParameter("the bridge driver needs a subnet and a gateway")
        net = ipaddress.ip_network(subnet, strict=False)
        net6 = ipaddress.ip_network(options["IPv6Subnet"], strict=False) if options.get("IPv6Subnet") else None
        gateway6 = options.get("IPv6Gateway") or ""
        if net6 is not None and not gateway6:
            raise InvalidParameter("the bridge driver needs a gateway for the IPv6 subnet")
        mtu = _mtu(drv.get(OPT_MTU), self.mtu)
        with self._lock, self._ipr() as ipr:
            for nid, other in self.nets.items():
                if nid != network_id and other["bridge"] == bridge:
                    raise InvalidParameter(f"bridge {bridge} is already used by another network")
            found = ipr.link_lookup(ifname=bridge)
            made, known = not found, network_id in self.nets
            if made:
                ipr.link("add", ifname=bridge, kind="bridge")
                found = ipr.link_lookup(ifname=bridge)
            try:
                self._set_up_bridge(ipr, found[0], network_id, bridge, mtu, options, drv,
                                    (net, gateway, net6, gateway6))
            except BaseException:
                # a bridge made here goes with the failure: nothing else would remove it
                # (without the alias it is not known as ours)
                if made:
                    with contextlib.suppress(Exception):
                        ipr.link("del", index=found[0])
                if not known:
                    self.nets.pop(network_id, None)
                raise
        return {OPT_BRIDGE_NAME: bridge}

    def _set_up_bridge(self, ipr: Any, idx: int, network_id: str, bridge: str, mtu: int,
                       options: dict[str, Any], drv: dict[str, Any], addrs: tuple[Any, ...]) -> None:
        """Tag bridge ``idx`` as ours, give it its gateways and MTU, bring it up, record the
        network and its firewall rules."""
        net, gateway, net6, gateway6 = addrs
        ipr.link("set", index=idx, ifalias=self.tag, mtu=mtu)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
        if (gateway, net.prefixlen) not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=net.prefixlen)
        if net6 is not None:
            _set_ipv6(bridge, True)
            if (str(ipaddress.ip_address(gateway6)), net6.prefixlen) not in have:
                ipr.addr("add", index=idx, address=gateway6, prefixlen=net6.prefixlen,
                         flags=IFA_F_NODAD)
        ipr.link("set", index=idx, state="up")
        self.nets[network_id] = {
            "bridge": bridge, "subnet": str(net), "gateway": gateway, "mtu": mtu,
            "subnet6": str(net6) if net6 is not None else "", "gateway6": gateway6,
            "internal": bool(options.get("Internal")),
            "icc": _truthy(drv.get(OPT_ICC), self.icc),
            "masq": _truthy(drv.get(OPT_MASQ), self.ip_masq),
        }
        if self.ip_forward and not options.get("Internal"):
            self._enable_forwarding(6 if net6 is not None else 4)
        self._apply_rules()

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            net = self.nets.pop(network_id, None)
            if net is None:
                return
            with self._ipr() as ipr:
                for idx in ipr.link_lookup(ifname=net["bridge"]):
                    ipr.link("del", index=idx)
            self._apply_rules()

    @staticmethod
    def _enable_forwarding(version: int) -> None:
        """IPv4 forwarding, and IPv6 forwarding too for a network with IPv6 (as dockerd with
        ``ip-forward``)."""
        paths = ["/proc/sys/net/ipv4/ip_forward"]
        if version == 6:
            paths += ["/proc/sys/net/ipv6/conf/all/forwarding",
                      "/proc/sys/net/ipv6/conf/default/forwarding"]
        for path in paths:
            with open(path) as f:
                if f.read().strip() == "1":
                    continue
            with open(path, "w") as f:
                f.write("1")
            log.info("enabled forwarding (ip-forward): %s", path)

    # -- endpoints ------------------------------------------------------------------------------
    def create_endpoint(self, network_id: str, endpoint_id: str, options: dict[str, Any]) -> Endpoint:
        net = self._net(network_id)
        ip = options.get("Address") or ""
        if not ip:
            raise InvalidParameter("the bridge driver needs an address for the endpoint")
        ip6 = options.get("IPv6Address") or ""
        if ip6 and not net.get("subnet6"):
            raise InvalidParameter(f"network {network_id[:12]} has no IPv6 subnet for {ip6}")
        return Endpoint(
            network_id=network_id, endpoint_id=endpoint_id, ip_address=ip,
            prefix_len=int(options.get("PrefixLen") or ipaddress.ip_network(net["subnet"]).prefixlen),
            gateway=options.get("Gateway") or net["gateway"],
            mac_address=(options.get("MacAddress") or mac_for(ip)).lower(),
            interface=options.get("Interface") or "eth0", mtu=net["mtu"],
            ipv6_address=ip6,
            ipv6_prefix_len=int(options.get("IPv6PrefixLen") or 0) if ip6 else 0,
            ipv6_gateway=(options.get("IPv6Gateway") or net.get("gateway6") or "") if ip6 else "",
            data={"veth": "veth" + endpoint_id[:11], "bridge": net["bridge"],
                  "internal": net["internal"],
                  "link_local": [str(ipaddress.ip_address(a)) for a in options.get("LinkLocalIPs") or ()]})

    @staticmethod
    def _index(ipr: Any, name: str) -> int | None:
        """The index of link ``name`` (one request, not a dump of every link), or None."""
        from pyroute2.netlink.exceptions import NetlinkError

        if not name:
            return None
        try:
            return ipr.link("get", ifname=name)[0]["index"]
        except NetlinkError:
            return None

    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        host_if = endpoint.data["veth"]
        mtu = endpoint.mtu or self.mtu
        with self._lock, self._ipr() as ipr:
            br = self._index(ipr, endpoint.data["bridge"])
            if br is None:
                raise DockyardError(f"bridge {endpoint.data['bridge']} is missing")
            stale = self._index(ipr, host_if)
            if stale is not None:  # a leftover of a failed attempt
                ipr.link("del", index=stale)
            # one request makes the pair, plugs the host end into the bridge and creates the
            # container end already inside the namespace, named and addressed (MAC) as it stays
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("add", ifname=host_if, kind="veth", master=br, mtu=mtu,
                         peer={"ifname": endpoint.interface, "net_ns_fd": fd,
                               "address": endpoint.mac_address, "mtu": mtu})
            finally:
                os.close(fd)
            try:
                ipr.link("set", index=self._index(ipr, host_if), state="up")
                host.in_netns(netns_path, self._configure_inside, endpoint)
            except BaseException:
                idx = self._index(ipr, host_if)
                if idx is not None:
                    ipr.link("del", index=idx)
                raise
            self.joined.add(endpoint.endpoint_id)
            self.members.setdefault(endpoint.data["bridge"], set()).add(host_if)
            if not self._net_of_bridge(endpoint.data["bridge"]).get("icc", True):
                self._apply_rules()

    def _net_of_bridge(self, bridge: str) -> dict[str, Any]:
        return next((n for n in self.nets.values() if n["bridge"] == bridge), {})

    def _configure_inside(self, ep: Endpoint) -> None:
        # IPv6 on the interface only when the network has it (no link-local address either)
        _set_ipv6(ep.interface, bool(ep.ipv6_address))
        with self._ipr() as ipr:
            idx = self._index(ipr, ep.interface)
            ipr.addr("add", index=idx, address=ep.ip_address, prefixlen=ep.prefix_len)
            if ep.ipv6_address:
                ipr.addr("add", index=idx, address=ep.ipv6_address, prefixlen=ep.ipv6_prefix_len,
                         flags=IFA_F_NODAD)
            for addr in ep.data.get("link_local") or ():  # /16 and /64, as dockerd
                v6 = ipaddress.ip_address(addr).version == 6
                if v6:
                    _set_ipv6(ep.interface, True)
                ipr.addr("add", index=idx, address=addr, prefixlen=64 if v6 else 16,
                         **({"flags": IFA_F_NODAD} if v6 else {}))
            ipr.link("set", index=idx, state="up")
            if ep.data.get("internal"):
                return
            for gw, family, dst in ((ep.gateway, 2, "0.0.0.0/0"), (ep.ipv6_gateway, AF_INET6, "::/0")):
                if gw and not any(r["dst_len"] == 0 for r in ipr.get_routes(family=family, table=254)):
                    ipr.route("add", dst=dst, gateway=gw, oif=idx, family=family)

    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        with self._lock:
            self.joined.discard(endpoint.endpoint_id)
            bridge = endpoint.data.get("bridge", "")
            if endpoint.data.get("veth") in self.members.get(bridge, set()):
                self.members[bridge].discard(endpoint.data["veth"])
                if not self._net_of_bridge(bridge).get("icc", True):
                    self._apply_rules()
            with self._ipr() as ipr:
                idx = self._index(ipr, endpoint.data.get("veth", ""))
                if idx is not None:
                    with contextlib.suppress(Exception):  # gone with its namespace meanwhile
                        ipr.link("del", index=idx)

    def delete_endpoint(self, endpoint: Endpoint) -> None:
        with self._lock:
            if self.ports.pop(endpoint.endpoint_id, None):
                self._apply_rules()

    # -- ports ----------------------------------------------------------------------------------
    def publish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            self.ports.setdefault(endpoint.endpoint_id, []).extend(bridge_nft.port_rows(
                ports, endpoint.ip_address, endpoint.ipv6_address, endpoint.data["bridge"]))
            self._apply_rules()
        return [dict(p) for p in ports]

    def unpublish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> None:
        with self._lock:
            cur = self.ports.get(endpoint.endpoint_id, [])
            drop = {(p["Proto"], (p.get("HostIp") or "").strip("[]"), int(p["HostPort"])) for p in ports}
            cur[:] = [r for r in cur if (r[0], r[1], r[2]) not in drop]
            if not cur:
                self.ports.pop(endpoint.endpoint_id, None)
            self._apply_rules()

    # -- restore / close ------------------------------------------------------------------------
    def restore(self, networks: dict[str, dict[str, Any]], endpoints: list[Endpoint],
                published: dict[str, list[dict[str, Any]]]) -> None:
        with self._lock, self._ipr() as ipr:
            ours = self._our_bridges(ipr)
            wanted = {n["bridge"] for n in self.nets.values()}
            for name, idx in ours.items():
                if name not in wanted:
                    log.info("removing leftover bridge %s", name)
                    ipr.link("del", index=idx)
            live = {ep.data.get("veth") for ep in endpoints}
            masters = {idx for name, idx in ours.items() if name in wanted}
            for link in ipr.get_links():
                if link.get_attr("IFLA_MASTER") in masters and link.get_attr("IFLA_IFNAME") not in live:
                    log.info("removing leftover veth %s", link.get_attr("IFLA_IFNAME"))
                    with contextlib.suppress(Exception):
                        ipr.link("del", index=link["index"])
            self.joined = {ep.endpoint_id for ep in endpoints}
            self.members = {}
            for ep in endpoints:
                self.members.setdefault(ep.data.get("bridge", ""), set()).add(ep.data.get("veth", ""))
            self.ports = {}
            by_id = {ep.endpoint_id: ep for ep in endpoints}
            for eid, plist in published.items():
                ep = by_id.get(eid)
                if ep is None:
                    continue
                self.ports[eid] = bridge_nft.port_rows(plist, ep.ip_address, ep.ipv6_address,
                                                       ep.data["bridge"])
            self._apply_rules()

    def close(self) -> None:
        """With no endpoint left, take down everything made in the kernel (bridges, rules); the
        next start's create_network calls make them again from the daemon's records."""
        with self._lock:
            if self.joined:
                return
            with self._ipr() as ipr:
                for idx in self._our_bridges(ipr).values():
                    with contextlib.suppress(Exception):
                        ipr.link("del", index=idx)
            self.nets.clear()
            self.ports.clear()
            self._apply_rules()

    def status(self) -> list[tuple[str, str]]:
        return [("Default bridge", self.default_bridge),
                ("Firewall", f"nftables table ip {self.table}" if self.iptables else "disabled"),
                ("Networks", str(len(self.nets)))]

    # -- firewall -------------------------------------------------------------------------------
    def ruleset(self) -> str:
        """The nftables script that makes the tables exactly what the model says."""
        return bridge_nft.ruleset(self.table, list(self.nets.values()),
                                  [r for rows in self.ports.values() for r in rows], self.members,
                                  self.ip6tables)

    def _apply_rules(self) -> None:
        if not self.iptables:
            return
        script = self.ruleset()
        res = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True)
        if res.returncode != 0:
            raise DockyardError("nft failed: " + res.stderr.decode(errors="replace").strip()
                                + "\n--- ruleset ---\n" + script)


def _set_ipv6(interface: str, enabled: bool) -> None:
    """IPv6 on or off for ``interface`` of the calling thread's network namespace."""
    path = f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"
    try:
        with open(path, "w") as f:
            f.write("0" if enabled else "1")
    except FileNotFoundError:
        if enabled:  # IPv6 disabled on the whole host (ipv6.disable=1)
            raise DockyardError("IPv6 is not available on this host (no "
                                "/proc/sys/net/ipv6): a network with IPv6 cannot be set up") from None
