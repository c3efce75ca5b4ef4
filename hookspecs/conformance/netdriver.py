"""The network-driver conformance suite.

As for the graph and exec suites, the suite owns the tests and a driver supplies only a factory
``factory(home, options) -> NetDriver``. Each test gets a fresh ``home`` and fresh daemon options
(a unique default bridge name and address, IPv4 forwarding left alone), real network namespaces
(files bind-mounted by ``unshare --net=FILE``) and real traffic, sent only between the namespaces
the test made. After each test the driver's ``close()`` runs, then the suite checks that no
interface the test added is left on the host and that every namespace it made is gone.

A third-party driver runs the whole suite with one line::

    from dockyard.hookspecs.conformance.netdriver import netdriver_suite
    TestMyNetDriver = netdriver_suite(MyDriver)

and every installed driver (entry-point group ``dockyard.netdrivers``) with::

    from dockyard.hookspecs.conformance.netdriver import installed_netdriver_suite
    TestInstalledNetDrivers = installed_netdriver_suite()

Needs root; :class:`~dockyard.hookspecs.errors.DriverNotSupported` from the factory skips.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from importlib.metadata import entry_points
from typing import Any, Callable

import pytest

from ..errors import DriverNotSupported
from ..host import ns as host_ns
from ..netdriver import Endpoint, NetDriver
from .subnets import free_subnet, free_subnet6

GROUP = "dockyard.netdrivers"
Factory = Callable[[str, dict], NetDriver]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# ------------------------------------------------------------------------------------------------
# helpers: namespaces, links, traffic
# ------------------------------------------------------------------------------------------------
def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def ns_links(path: str) -> dict[str, list[str]]:
    """Interface name → its IPv4 and global IPv6 addresses (``a.b.c.d/len``), inside the
    namespace at ``path``."""
    out = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "addr", "show"],
                         capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link", "show"],
                           capture_output=True, text=True, check=True).stdout
    res: dict[str, list[str]] = {line.split(":")[1].strip().split("@")[0]: []
                                 for line in links.splitlines() if ":" in line}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and (parts[2] == "inet" or parts[2] == "inet6" and "scope global" in line):
            res.setdefault(parts[1], []).append(parts[3])
    return res


#: network namespaces as files, and calls made inside one: the driver toolkit's
make_netns = host_ns.create_netns
remove_netns = host_ns.remove_netns
in_netns = host_ns.in_netns


class Env:
    """A driver under test, its networks, namespaces and the host's links before the test."""

    def __init__(self, factory: Factory, top: str) -> None:
        self.factory = factory
        self.top = top
        self.home = os.path.join(top, "home")
        self.bridge = "dyc" + secrets.token_hex(4)
        subnet = free_subnet()
        self.options = {"bridge": self.bridge, "bip": f"{subnet.network_address + 1}/24",
                        "iptables": True, "ip-masq": True, "ip-forward": False, "icc": True}
        self.links_before = host_links()
        self.driver = factory(self.home, dict(self.options))
        self.namespaces: list[str] = []
        self._next_ip: dict[str, int] = {}
        self.subnets: dict[str, ipaddress.IPv4Network] = {}
        self.subnets6: dict[str, ipaddress.IPv6Network] = {}
        self.endpoint_ids: list[str] = []

    def network(self, internal: bool = False, default: bool = False, ipv6: bool = False) -> str:
        nid = secrets.token_hex(32)
        subnet = free_subnet() if self.subnets or not default else ipaddress.ip_network(
            self.options["bip"], strict=False)
        while any(subnet.overlaps(s) for s in self.subnets.values()):
            subnet = free_subnet()
        self.subnets[nid] = subnet
        opts: dict[str, Any] = {"Name": "n" + nid[:6], "Internal": internal, "Default": default,
                                "Options": {}}
        if self.driver.needs_ipam:
            opts.update(Subnet=str(subnet), Gateway=str(subnet.network_address + 1))
            if ipv6:
                self.subnets6[nid] = subnet6 = free_subnet6()
                opts.update(IPv6Subnet=str(subnet6), IPv6Gateway=str(subnet6.network_address + 1))
        data = self.driver.create_network(nid, opts)
        assert isinstance(data, dict)
        self.net_opts = getattr(self, "net_opts", {})
        self.net_opts[nid] = opts
        return nid

    def endpoint(self, nid: str, interface: str = "eth0") -> Endpoint:
        opts: dict[str, Any] = {"Interface": interface}
        if self.driver.needs_ipam:
            n = self._next_ip.get(nid, 2)
            self._next_ip[nid] = n + 1
            subnet = self.subnets[nid]
            opts.update(Address=str(subnet.network_address + n), PrefixLen=subnet.prefixlen,
                        Gateway=str(subnet.network_address + 1))
            if nid in self.subnets6:
                subnet6 = self.subnets6[nid]
                opts.update(IPv6Address=str(subnet6.network_address + n),
                            IPv6PrefixLen=subnet6.prefixlen,
                            IPv6Gateway=str(subnet6.network_address + 1))
        eid = secrets.token_hex(32)
        self.endpoint_ids.append(eid)
        ep = self.driver.create_endpoint(nid, eid, opts)
        assert isinstance(ep, Endpoint) and ep.network_id == nid
        if self.driver.needs_ipam:
            assert ep.ip_address == opts["Address"], "the driver must use the address IPAM chose"
            assert ep.ipv6_address == opts.get("IPv6Address", ""), \
                "the driver must use the IPv6 address IPAM chose (and none on an IPv4 network)"
        return ep

    def own(self, links: set[str]) -> set[str]:
        """Those of ``links`` this test's driver made, as far as names tell: named after the
        default bridge, or holding a prefix of one of the test's network or endpoint ids (the
        host may be running other tests that add links meanwhile)."""
        ids = [i[:8] for i in list(self.subnets) + self.endpoint_ids]
        return {n for n in links if n == self.bridge or any(i in n for i in ids)}

    def join_one(self, why: str) -> tuple[str, Endpoint, str]:
        """A network, and an endpoint on it joined to a fresh namespace: ``(network id,
        endpoint, namespace path)``. Skips, saying ``why``, for a driver whose endpoints live in
        the host's namespace."""
        nid = self.network(default=True)
        ep = self.endpoint(nid)
        if self.driver.namespace == "host":
            pytest.skip(f"{self.driver.name} endpoints live in the host's namespace: {why}")
        ns = self.netns()
        self.driver.join(ep, ns)
        return nid, ep, ns

    def netns(self) -> str:
        path = os.path.join(self.top, f"ns{len(self.namespaces)}")
        make_netns(path)
        self.namespaces.append(path)
        return path

    def joined(self, *nids: str) -> list[tuple[Endpoint, str]]:
        """An endpoint on each of ``nids``, joined to a namespace of its own."""
        out = []
        for nid in nids:
            ep, ns = self.endpoint(nid), self.netns()
            self.driver.join(ep, ns)
            out.append((ep, ns))
        return out

    def leave(self, joined: list[tuple[Endpoint, str]]) -> None:
        for ep, ns in joined:
            self.driver.leave(ep, ns)
            self.driver.delete_endpoint(ep)

    def close(self) -> None:
        for p in self.namespaces:
            remove_netns(p)
        self.driver.close()


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def tcp_roundtrip(server_ns: str, client_ns: str, address: str, payload: bytes = b"ping") -> bytes:
    """Listen in ``server_ns`` on ``address`` (IPv4 or IPv6), connect from ``client_ns``, echo
    once."""
    family = _family(address)
    srv = in_netns(server_ns, lambda: socket.create_server((address, 0), family=family))
    port = srv.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        srv.settimeout(10)
        conn, _ = srv.accept()
        with conn:
            data = conn.recv(100)
            conn.sendall(data.upper())
        got.append(data)

    t = threading.Thread(target=serve)
    t.start()
    try:
        cli = in_netns(client_ns, lambda: socket.socket(family, socket.SOCK_STREAM))
        with cli:
            cli.settimeout(10)
            cli.connect((address, port))
            cli.sendall(payload)
            return cli.recv(100)
    finally:
        t.join(15)
        srv.close()


def tcp_blocked(server_ns: str, client_ns: str, address: str) -> bool:
    """True when a connection from ``client_ns`` to a listener in ``server_ns`` cannot be made."""
    family = _family(address)
    srv = in_netns(server_ns, lambda: socket.create_server((address, 0), family=family))
    try:
        cli = in_netns(client_ns, lambda: socket.socket(family, socket.SOCK_STREAM))
        with cli:
            cli.settimeout(2)
            try:
                cli.connect((address, srv.getsockname()[1]))
            except OSError:
                return True
            return False
    finally:
        srv.close()


# ------------------------------------------------------------------------------------------------
# the suite
# ------------------------------------------------------------------------------------------------
@needs_root
class NetDriverSuite:
    """The tests. Subclasses provide the ``netdriver_factory`` fixture (see
    :func:`netdriver_suite`); the class is not collected itself (no ``Test`` prefix)."""

    @pytest.fixture
    def netdriver_factory(self) -> Factory:  # pragma: no cover - overridden
        raise NotImplementedError("subclass NetDriverSuite with a netdriver_factory fixture")

    @pytest.fixture
    def env(self, netdriver_factory: Factory, request: Any) -> Any:
        if shutil.which("nsenter") is None or shutil.which("unshare") is None:
            pytest.skip("needs util-linux's nsenter and unshare")
        top = tempfile.mkdtemp(prefix="dockyard-nd-")
        e = None
        try:
            try:
                e = Env(netdriver_factory, top)
            except DriverNotSupported as exc:
                pytest.skip(f"driver not supported here: {exc.reason}")
            yield e
            e.close()
            left = e.own(host_links() - e.links_before)
            assert not left, f"interfaces left on the host after close(): {sorted(left)}"
        finally:
            if e is not None:
                for p in e.namespaces:
                    remove_netns(p)
                for name in e.own(host_links() - e.links_before):
                    subprocess.run(["ip", "link", "del", name], capture_output=True)
                for fam in ("ip", "bridge"):
                    subprocess.run(["nft", "delete", "table", fam, "dockyard_" + e.bridge],
                                   capture_output=True)
            shutil.rmtree(top, ignore_errors=True)

    def test_class_attributes(self, env: Env) -> None:
        d = env.driver
        assert d.name
        assert d.namespace in ("private", "host")
        assert isinstance(d.needs_ipam, bool) and isinstance(d.multiple_networks, bool)
        assert isinstance(d.status(), list)

    def test_network_lifecycle(self, env: Env) -> None:
        nid = env.network(default=True)
        # daemon start calls create_network again for every known network: must not fail
        env.driver.create_network(nid, env.net_opts[nid])
        env.driver.delete_network(nid)

    def test_endpoint_join_and_leave(self, env: Env) -> None:
        nid = env.network(default=True)
        ep = env.endpoint(nid)
        if env.driver.namespace == "host":
            env.driver.delete_endpoint(ep)
            pytest.skip(f"{env.driver.name} endpoints live in the host's namespace: nothing to join")
        ns = env.netns()
        before_host = host_links()
        env.driver.join(ep, ns)
        links = ns_links(ns)
        assert "lo" in links
        if ep.ip_address:
            assert ep.interface in links, links
            assert f"{ep.ip_address}/{ep.prefix_len}" in links[ep.interface]
        env.driver.leave(ep, ns)
        env.driver.delete_endpoint(ep)
        assert set(ns_links(ns)) == {"lo"}, "leave() must take the interface out of the namespace"
        assert not env.own(host_links() - before_host), "leave() must remove the host side"
        env.driver.delete_network(nid)

    def test_two_endpoints_talk(self, env: Env) -> None:
        nid = env.network(default=True)
        a, b = env.endpoint(nid), env.endpoint(nid)
        if env.driver.namespace == "host" or not a.ip_address:
            pytest.skip(f"{env.driver.name} endpoints have no address")
        na, nb = env.netns(), env.netns()
        env.driver.join(a, na)
        env.driver.join(b, nb)
        assert tcp_roundtrip(na, nb, a.ip_address) == b"PING"
        assert tcp_roundtrip(nb, na, b.ip_address) == b"PING"
        env.leave([(a, na), (b, nb)])
        env.driver.delete_network(nid)

    def test_networks_are_isolated(self, env: Env) -> None:
        if not env.driver.multiple_networks or env.driver.namespace == "host":
            pytest.skip(f"{env.driver.name} has one network only")
        n1, n2 = env.network(default=True), env.network()
        a, b = env.endpoint(n1), env.endpoint(n2)
        if not a.ip_address:
            pytest.skip(f"{env.driver.name} endpoints have no address")
        na, nb = env.netns(), env.netns()
        env.driver.join(a, na)
        env.driver.join(b, nb)
        assert tcp_blocked(na, nb, a.ip_address)
        env.leave([(a, na), (b, nb)])

    def test_leave_after_namespace_is_gone(self, env: Env) -> None:
        _, ep, ns = env.join_one("nothing to leave")
        remove_netns(ns)
        env.driver.leave(ep, ns)
        env.driver.delete_endpoint(ep)

    def test_publish_and_unpublish(self, env: Env) -> None:
        nid = env.network(default=True)
        ep = env.endpoint(nid)
        ports = [{"Proto": "tcp", "HostIp": "127.0.0.1", "HostPort": 1, "ContainerPort": 80}]
        made = env.driver.publish(ep, ports)
        assert isinstance(made, list)
        env.driver.unpublish(ep, ports)
        env.driver.delete_endpoint(ep)

    # -- IPv6 -----------------------------------------------------------------------------------
    def _ipv6_env(self, env: Env) -> None:
        if not env.driver.needs_ipam or env.driver.namespace == "host":
            pytest.skip(f"{env.driver.name} endpoints have no addresses")
        if not os.path.exists("/proc/sys/net/ipv6"):
            pytest.skip("IPv6 is disabled on this host")

    def test_ipv6_endpoints_talk(self, env: Env) -> None:
        """A dual-stack network: each endpoint has the IPv6 address IPAM chose, on its
        interface, and two endpoints talk over IPv6 as over IPv4."""
        self._ipv6_env(env)
        nid = env.network(default=True, ipv6=True)
        joined = env.joined(nid, nid)
        (a, na), (b, nb) = joined
        for ep, ns in joined:
            assert f"{ep.ipv6_address}/{ep.ipv6_prefix_len}" in ns_links(ns)[ep.interface]
            assert ep.ipv6_gateway == str(env.subnets6[nid].network_address + 1)
        assert tcp_roundtrip(na, nb, a.ipv6_address) == b"PING"
        assert tcp_roundtrip(nb, na, b.ipv6_address) == b"PING"
        assert tcp_roundtrip(na, nb, a.ip_address) == b"PING"
        env.leave(joined)
        env.driver.delete_network(nid)

    def test_ipv6_networks_are_isolated(self, env: Env) -> None:
        self._ipv6_env(env)
        if not env.driver.multiple_networks:
            pytest.skip(f"{env.driver.name} has one network only")
        joined = env.joined(env.network(default=True, ipv6=True), env.network(ipv6=True))
        (a, na), (_b, nb) = joined
        assert tcp_blocked(na, nb, a.ipv6_address)
        env.leave(joined)

    def test_ipv6_network_is_made_again_at_start(self, env: Env) -> None:
        """create_network on an existing IPv6 network (daemon start) does not fail."""
        self._ipv6_env(env)
        nid = env.network(default=True, ipv6=True)
        env.driver.create_network(nid, env.net_opts[nid])
        joined = env.joined(nid)
        ep, ns = joined[0]
        assert f"{ep.ipv6_address}/{ep.ipv6_prefix_len}" in ns_links(ns)[ep.interface]
        env.leave(joined)

    def test_restore_removes_leftovers_of_a_crash(self, env: Env) -> None:
        nid, ep, ns = env.join_one("no plumbing to leave behind")
        before = host_links()
        # the daemon died: a new driver on the same home, told no endpoint is alive
        env.driver = env.factory(env.home, dict(env.options))
        env.driver.create_network(nid, env.net_opts[nid])
        env.driver.restore({nid: env.net_opts[nid]}, [], {})
        assert ep.interface not in ns_links(ns) or not ep.ip_address, \
            "restore() must remove the plumbing of endpoints that are not alive"
        assert not env.own(host_links() - before)


# ------------------------------------------------------------------------------------------------
# builders
# ------------------------------------------------------------------------------------------------
def netdriver_suite(factory: Factory | type, name: str | None = None) -> type:
    """A test class running the suite against ``factory(home, options)`` (a driver class or any
    callable). Assign it to a ``Test*`` name in a test module."""
    cls_name = name or f"NetDriverConformance_{getattr(factory, 'name', '') or 'driver'}"

    @pytest.fixture
    def netdriver_factory(self: Any) -> Factory:
        return factory  # type: ignore[return-value]

    return type(cls_name, (NetDriverSuite,), {"netdriver_factory": netdriver_factory})


def installed_netdrivers() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def installed_netdriver_suite() -> type:
    """A test class running the suite once per installed network driver."""
    eps = installed_netdrivers()

    @pytest.fixture(params=sorted(eps))
    def netdriver_factory(self: Any, request: Any) -> Factory:
        wanted = request.config.getoption("dockyard_netdriver", None)
        if wanted and request.param not in wanted:
            pytest.skip(f"network driver {request.param} not selected (--dockyard-netdriver)")
        cls = eps[request.param].load()
        assert getattr(cls, "name", None) == request.param, \
            f"entry point {request.param!r} loads a driver named {getattr(cls, 'name', None)!r}"
        return cls

    return type("InstalledNetDrivers", (NetDriverSuite,), {"netdriver_factory": netdriver_factory})
