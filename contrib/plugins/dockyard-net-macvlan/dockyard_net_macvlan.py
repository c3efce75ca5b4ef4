"""``macvlan``: a dockyard network driver giving each container a macvlan interface.

    docker network create -d macvlan --subnet 192.168.50.0/24 -o parent=eth1 lan
    docker network create -d macvlan --subnet 10.77.0.0/24 sandbox      # no parent: internal

Each endpoint is a macvlan link (mode ``bridge`` unless ``-o macvlan_mode=private|vepa|
passthru``) on the network's *parent* interface, created directly inside the container's
network namespace with the address and MAC address the daemon's IPAM chose. With ``-o parent``
the parent is an existing host interface (containers then appear on that link's network
segment). Without one the network is internal, as dockerd's macvlan networks without a parent
are: the driver makes a private parent, a veth pair named ``dm-<network id>`` (dockerd uses a
``dummy`` link; kernels without the dummy module have veth), and containers reach only each
other.

A third-party driver: it imports ``dockyard.hookspecs`` (the contract and its toolkit) and
pyroute2, nothing else of dockyard.
"""
from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import threading
from typing import Any

from dockyard.hookspecs import (DockyardError, DriverNotSupported, Endpoint, InvalidParameter,
                                NetDriver, NotFound, host)

MODES = ("bridge", "private", "vepa", "passthru")
IFA_F_NODAD = 0x02  # linux/if_addr.h: the address is usable at once (no duplicate detection)
AF_INET6 = 10
OPTIONS = ("parent", "macvlan_mode")


class MacvlanDriver(NetDriver):
    name = "macvlan"
    needs_ipam = True
    multiple_networks = True
    predefined_network = False  # as dockerd: macvlan networks are made by network create only

    def __init__(self, home: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(home, options)
        try:
            import pyroute2  # noqa: F401
        except ImportError:
            raise DriverNotSupported("macvlan: pyroute2 is not installed") from None
        #: the alias marking the private parents this driver (this home) made
        self.tag = "dockyard-macvlan:" + hashlib.sha256(
            os.path.realpath(home).encode()).hexdigest()[:16]
        self.records = os.path.join(home, "endpoints")
        os.makedirs(self.records, mode=0o700, exist_ok=True)
        self.nets: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _ipr():  # noqa: ANN205
        from pyroute2 import IPRoute
        return IPRoute()

    @staticmethod
    def _index(ipr: Any, name: str) -> int | None:
        found = ipr.link_lookup(ifname=name) if name else []
        return found[0] if found else None

    # -- networks -------------------------------------------------------------------------------
    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        opts = dict(options.get("Options") or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise InvalidParameter(f"macvlan: unknown option(s) {', '.join(unknown)}; "
                                   f"valid: {', '.join(OPTIONS)}")
        mode = opts.get("macvlan_mode") or "bridge"
        if mode not in MODES:
            raise InvalidParameter(f"macvlan: macvlan_mode {mode!r} is not one of {', '.join(MODES)}")
        parent = opts.get("parent") or ""
        with self._lock, self._ipr() as ipr:
            if parent:
                if self._index(ipr, parent) is None:
                    raise InvalidParameter(f"macvlan: -o parent={parent}: no such interface")
            else:
                parent = self._private_parent(ipr, network_id)
        self.nets[network_id] = {"parent": parent, "mode": mode,
                                 "internal": bool(options.get("Internal")) or not opts.get("parent")}
        return {"parent": parent, "macvlan_mode": mode}

    def _private_parent(self, ipr: Any, network_id: str) -> str:
        name = "dm-" + network_id[:12]
        if self._index(ipr, name) is None:
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": "dp-" + network_id[:12]})
        for end in (name, "dp-" + network_id[:12]):
            ipr.link("set", index=self._index(ipr, end), ifalias=self.tag, state="up")
        return name

    def delete_network(self, network_id: str) -> None:
        self.nets.pop(network_id, None)
        with self._lock, self._ipr() as ipr:
            idx = self._index(ipr, "dm-" + network_id[:12])
            if idx is not None and ipr.link("get", index=idx)[0].get_attr("IFLA_IFALIAS") == self.tag:
                ipr.link("del", index=idx)  # its peer goes with it

    # -- endpoints ------------------------------------------------------------------------------
    def create_endpoint(self, network_id: str, endpoint_id: str,
                        options: dict[str, Any]) -> Endpoint:
        net = self.nets.get(network_id)
        if net is None:
            raise NotFound(f"macvlan: network {network_id[:12]} not found")
        ip6 = options.get("IPv6Address") or ""
        link_local = [str(ipaddress.ip_address(a)) for a in options.get("LinkLocalIPs") or ()]
        return Endpoint(network_id, endpoint_id, ip_address=options.get("Address", ""),
                        prefix_len=int(options.get("PrefixLen") or 0),
                        gateway=options.get("Gateway", ""),
                        mac_address=options.get("MacAddress", ""),
                        interface=options.get("Interface") or "eth0",
                        ipv6_address=ip6,
                        ipv6_prefix_len=int(options.get("IPv6PrefixLen") or 0) if ip6 else 0,
                        ipv6_gateway=(options.get("IPv6Gateway") or "") if ip6 else "",
                        data={**net, "link_local": link_local})

    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        data = endpoint.data
        with self._lock, self._ipr() as ipr:
            parent = self._index(ipr, data["parent"])
            if parent is None:
                raise DockyardError(f"macvlan: parent interface {data['parent']} is missing")
            self._record(endpoint, netns_path)
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:  # made inside the namespace, with its final name and MAC
                link: dict[str, Any] = {"ifname": endpoint.interface, "kind": "macvlan",
                                        "link": parent, "macvlan_mode": data["mode"],
                                        "net_ns_fd": fd}
                if endpoint.mac_address:
                    link["address"] = endpoint.mac_address
                ipr.link("add", **link)
            except Exception:
                self._forget(endpoint.endpoint_id)
                raise
            finally:
                os.close(fd)
        try:
            host.in_netns(netns_path, self._configure_inside, endpoint)
        except BaseException:
            self.leave(endpoint, netns_path)
            raise

    @classmethod
    def _configure_inside(cls, ep: Endpoint) -> None:
        link_local = ep.data.get("link_local") or []
        # IPv6 on the interface only when the endpoint has an IPv6 address (as dockerd)
        _set_ipv6(ep.interface, bool(ep.ipv6_address) or any(":" in a for a in link_local))
        with cls._ipr() as ipr:
            idx = cls._index(ipr, ep.interface)
            if ep.ip_address:
                ipr.addr("add", index=idx, address=ep.ip_address, prefixlen=ep.prefix_len)
            if ep.ipv6_address:
                ipr.addr("add", index=idx, address=ep.ipv6_address, prefixlen=ep.ipv6_prefix_len,
                         flags=IFA_F_NODAD)
            for addr in link_local:  # /16 and /64, as dockerd
                v6 = ":" in addr
                ipr.addr("add", index=idx, address=addr, prefixlen=64 if v6 else 16,
                         **({"flags": IFA_F_NODAD} if v6 else {}))
            ipr.link("set", index=idx, state="up")
            if ep.data.get("internal"):
                return
            for gw, family, dst in ((ep.gateway, 2, "0.0.0.0/0"), (ep.ipv6_gateway, AF_INET6, "::/0")):
                if gw:
                    ipr.route("add", dst=dst, gateway=gw, oif=idx, family=family)

    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        self._remove_inside(netns_path, endpoint.interface)
        self._forget(endpoint.endpoint_id)

    def delete_endpoint(self, endpoint: Endpoint) -> None:
        self._forget(endpoint.endpoint_id)

    def _remove_inside(self, netns_path: str, interface: str) -> None:
        def remove() -> None:
            with self._ipr() as ipr:
                idx = self._index(ipr, interface)
                if idx is not None:
                    ipr.link("del", index=idx)

        if os.path.exists(netns_path):  # gone with its namespace otherwise
            with contextlib.suppress(OSError):
                host.in_netns(netns_path, remove)

    # -- what a crash leaves: endpoints recorded in home ---------------------------------------
    def _record(self, ep: Endpoint, netns_path: str) -> None:
        path = os.path.join(self.records, ep.endpoint_id + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump({"netns": netns_path, "interface": ep.interface}, f)
        os.replace(path + ".tmp", path)

    def _forget(self, endpoint_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.records, endpoint_id + ".json"))

    def restore(self, networks: dict[str, dict[str, Any]], endpoints: list[Endpoint],
                published: dict[str, list[dict[str, Any]]]) -> None:
        alive = {ep.endpoint_id for ep in endpoints}
        for name in os.listdir(self.records):
            eid = name.removesuffix(".json")
            if not name.endswith(".json") or eid in alive:
                continue
            try:
                with open(os.path.join(self.records, name)) as f:
                    rec = json.load(f)
                self._remove_inside(rec["netns"], rec["interface"])
            except (OSError, ValueError, KeyError):
                pass
            self._forget(eid)
        keep = {"dm-" + nid[:12] for nid in networks}
        self._delete_parents(lambda link: link not in keep)

    def _delete_parents(self, which: Any) -> None:
        with self._lock, self._ipr() as ipr:
            for link in ipr.get_links():
                name = link.get_attr("IFLA_IFNAME") or ""
                if (name.startswith("dm-") and link.get_attr("IFLA_IFALIAS") == self.tag
                        and which(name)):
                    with contextlib.suppress(Exception):
                        ipr.link("del", index=link["index"])

    def close(self) -> None:
        """With no endpoint joined, the private parents go (create_network makes them again at
        the next start); with some, everything stays for the containers still running."""
        if not os.listdir(self.records):
            self._delete_parents(lambda link: True)

    def status(self) -> list[tuple[str, str]]:
        return [("Networks", str(len(self.nets)))]


def _set_ipv6(interface: str, enabled: bool) -> None:
    """IPv6 on or off for ``interface`` in the calling thread's network namespace."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6", "w") as f:
            f.write("0" if enabled else "1")
    except FileNotFoundError:
        if enabled:
            raise DockyardError("macvlan: IPv6 is not available on this host") from None
