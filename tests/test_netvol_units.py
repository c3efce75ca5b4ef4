"""Unit tests (no daemon) of the pieces behind network and volume options: network address
configuration, the IPAM's ranges and reserved addresses, AAAA replies, the host's resolv.conf,
link variables, local volume options."""
from __future__ import annotations

import ipaddress
import os
import struct

import pytest

from dockyard.core import dns, ipam, links, localvolumes, netipam, resolvconf
from dockyard.core.state import State
from dockyard.hookspecs.errors import Conflict, Forbidden, InvalidParameter


def test_network_config_checks_and_completes_entries() -> None:
    cfg = netipam.network_config([{"Subnet": "10.50.0.0/24", "IPRange": "10.50.0.128/25",
                                   "AuxiliaryAddresses": {"r": "10.50.0.2"}},
                                  {"Subnet": "fd12:3456:789a:1::/64"}], True, [], "seed", [])
    assert cfg == [{"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.1", "IPRange": "10.50.0.128/25",
                    "AuxiliaryAddresses": {"r": "10.50.0.2"}},
                   {"Subnet": "fd12:3456:789a:1::/64", "Gateway": "fd12:3456:789a:1::1"}]
    for wanted, ipv6, words in (
            ([{"Subnet": "fd00::/64"}], False, "IPv6 is not enabled"),
            ([{"Subnet": "10.50.0.5/24"}], False, "it should be 10.50.0.0/24"),
            ([{"Subnet": "10.50.0.0/24", "IPRange": "10.51.0.0/25"}], False, "doesn't contain ip-range"),
            ([{"Subnet": "10.50.0.0/24", "IPRange": "10.50.0.0/23"}], False, "bigger than its parent"),
            ([{"Subnet": "10.50.0.0/24", "IPRange": "fd00::/64"}], False, "IPv4 block"),
            ([{"Subnet": "10.50.0.0/24", "Gateway": "10.60.0.1"}], False, "not in subnet"),
            ([{"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.0"}], False, "network address"),
            ([{"Subnet": "10.50.0.0/24", "AuxiliaryAddresses": {"a": "x"}}], False, "not an IP"),
            ([{"Gateway": "10.50.0.1"}], False, "corresponding subnet"),
            ([{"Subnet": "10.50.0.0/24"}, {"Subnet": "10.51.0.0/24"}], False, "only one IPv4"),
            ([{"Subnet": "10.50.0.0/31"}], False, "too small")):
        with pytest.raises(InvalidParameter, match=words):
            netipam.network_config(wanted, ipv6, [], "seed", [])
    with pytest.raises(Forbidden, match="overlaps"):
        netipam.network_config([{"Subnet": "10.50.0.0/24"}], False, [], "seed",
                               [ipaddress.ip_network("10.50.0.128/25")])


def test_ipv6_subnets_come_from_a_ula_pool_derived_from_the_seed() -> None:
    a = netipam.network_config([], True, [], "daemon-a", [])[1]["Subnet"]
    b = netipam.network_config([], True, [], "daemon-b", [])[1]["Subnet"]
    assert a != b and all(ipaddress.ip_network(s).subnet_of(ipaddress.ip_network("fd00::/8")) for s in (a, b))
    assert ipaddress.ip_network(a).prefixlen == 64
    # the next one skips what is taken; a configured IPv6 pool is used instead of the ULA
    nxt = netipam.network_config([], True, [], "daemon-a", [ipaddress.ip_network(a)])[1]["Subnet"]
    assert nxt != a and ipaddress.ip_network(nxt).supernet(16) == ipaddress.ip_network(a).supernet(16)
    pools = [{"base": "10.70.0.0/16", "size": 24}, {"base": "fd77::/56", "size": 64}]
    assert [c["Subnet"] for c in netipam.network_config([], True, pools, "x", [])] == ["10.70.0.0/24", "fd77::/64"]


def test_allocation_uses_the_range_and_skips_reserved_addresses(tmp_path) -> None:
    state = State(str(tmp_path / "db"))
    pool = ipam.Ipam(state)
    net = {"Id": "n1", "IPAM": {"Config": [
        {"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.1", "IPRange": "10.50.0.64/29",
         "AuxiliaryAddresses": {"a": "10.50.0.65"}},
        {"Subnet": "fd12::/64", "Gateway": "fd12::1"}]}}
    opts: dict = {}
    got = netipam.allocate(pool, net, "c1", {}, opts)
    assert got == ["10.50.0.66", "fd12::2"]
    assert opts == {"Address": "10.50.0.66", "Gateway": "10.50.0.1", "PrefixLen": 24,
                    "IPv6Address": "fd12::2", "IPv6Gateway": "fd12::1", "IPv6PrefixLen": 64}
    assert netipam.allocate(pool, net, "c2", {"IPv4Address": "10.50.0.9", "IPv6Address": "FD12::0009"},
                            {}) == ["10.50.0.9", "fd12::9"]
    with pytest.raises(Forbidden, match="in use"):
        netipam.allocate(pool, net, "c3", {"IPv4Address": "10.50.0.65"}, {})
    with pytest.raises(Forbidden, match="in use"):
        netipam.allocate(pool, net, "c3", {"IPv4Address": "10.50.0.9"}, {})
    assert set(pool.in_use("n1")) == {"10.50.0.66", "fd12::2", "10.50.0.9", "fd12::9"}  # c3: nothing
    for owner in range(4):  # .67 .. .70: the range's last addresses
        netipam.allocate(pool, net, f"r{owner}", {}, {})
    with pytest.raises(Conflict, match="no available IPv4"):
        netipam.allocate(pool, net, "full", {}, {})


def test_endpoint_settings_are_checked_as_dockerd_checks_them() -> None:
    user = {"Name": "u", "IPAM": {"Config": [{"Subnet": "10.50.0.0/24"}]}}
    netipam.check_endpoint(user, {"IPAMConfig": {"IPv4Address": "10.50.0.7"}, "MacAddress": "02:00:00:00:00:01",
                                  "Aliases": ["a"]}, True)
    for cfg, user_defined, words in (
            ({"IPAMConfig": {"IPv4Address": "10.50.0.7"}}, False, "user defined networks only"),
            ({"Aliases": ["a"]}, False, "network-scoped aliases"),
            ({"IPAMConfig": {"IPv4Address": "10.60.0.7"}}, True, "no configured subnet contains"),
            ({"IPAMConfig": {"IPv6Address": "fd00::7"}}, True, "no configured subnet contains"),
            ({"IPAMConfig": {"IPv4Address": "fd00::7"}}, True, "invalid IPv4 address"),
            ({"IPAMConfig": {"LinkLocalIPs": ["nope"]}}, True, "invalid link-local"),
            ({"MacAddress": "01:00:00:00:00:01"}, True, "multicast")):
        with pytest.raises(InvalidParameter, match=words):
            netipam.check_endpoint(user, cfg, user_defined)
    with pytest.raises(InvalidParameter, match="mac-address"):
        netipam.check_endpoint(user, {"MacAddress": "02:00:00:00:00:01"}, False, addressed=False)
    assert netipam.normal_mac("02-AB-00-00-00-01") == "02:ab:00:00:00:01"
    # dockerd's own endpoint option: interface sysctls
    opt = {netipam.OPT_SYSCTLS: "net.ipv4.conf.IFNAME.forwarding=1,net.ipv6.conf.ifname.mtu=1300"}
    assert netipam.endpoint_sysctls(opt, "eth1") == [("/proc/sys/net/ipv4/conf/eth1/forwarding", "1"),
                                                     ("/proc/sys/net/ipv6/conf/eth1/mtu", "1300")]
    for bad in ("net.ipv4.conf.eth0.forwarding=1", "kernel.x.y.IFNAME.z=1", "net.ipv4.conf.IFNAME.f"):
        with pytest.raises(InvalidParameter, match="unrecognised network interface sysctl"):
            netipam.check_endpoint(user, {"DriverOpts": {netipam.OPT_SYSCTLS: bad}}, True)


def test_aaaa_replies_carry_only_ipv6_addresses() -> None:
    query = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x03web\x00" + struct.pack(">HH", 28, 1)
    _qid, flags, name, qtype, _qclass, qend = dns.parse_query(query)
    reply = dns.build_reply(query, qend, flags, 0, ["10.1.2.3", "fd00::5"], qtype)
    assert struct.unpack(">H", reply[6:8])[0] == 1  # one answer
    assert reply[-16:] == ipaddress.ip_address("fd00::5").packed
    assert struct.unpack(">H", dns.build_reply(query, qend, flags, 0, ["10.1.2.3"], qtype)[6:8])[0] == 0


def test_host_resolv_conf_is_parsed_and_read_again_when_it_changes(tmp_path) -> None:
    conf = resolvconf.parse("# c\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bad\n"
                            "domain a.test\nsearch b.test c.test\noptions ndots:2 edns0\n")
    assert conf == resolvconf.ResolvConf(("127.0.0.53", "fe80::1%eth0"), ("b.test", "c.test"),
                                         ("ndots:2", "edns0"))
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.0.0.1\n")
    host = resolvconf.HostResolvConf(str(path))
    assert host.get().nameservers == ("10.0.0.1",)
    path.write_text("nameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    assert host.get().nameservers == ("10.0.0.2", "10.0.0.3")
    os.unlink(path)
    assert host.get().nameservers == ()
    server = dns.DnsServer(lambda k, n: None, [], host)
    assert server.upstreams_for("c") == []
    path.write_text("nameserver 127.0.0.53\n")
    assert server.upstreams_for("c") == [("127.0.0.53", False)]  # from the daemon's namespace
    server.own_upstreams["c"] = ["10.9.9.9"]
    assert server.upstreams_for("c") == [("10.9.9.9", True)]  # --dns: from the container's


def test_link_variables_follow_dockerd() -> None:
    child = {"Config": {"ExposedPorts": {"8001/tcp": {}, "53/udp": {}, "8000/tcp": {}, "9000/tcp": {}},
                        "Env": ["PATH=/bin", "HOME=/root", "A=1"]}}
    env = links.env("/web/d-b", child, "10.0.0.5")
    assert env[0] == "D_B_PORT=tcp://10.0.0.5:8000"
    assert "D_B_PORT_8000_TCP_START=tcp://10.0.0.5:8000" in env
    assert "D_B_PORT_8000_TCP_PORT_END=8001" in env
    assert "D_B_PORT_53_UDP_PROTO=udp" in env and "D_B_PORT_9000_TCP_ADDR=10.0.0.5" in env
    assert not any(e.startswith("D_B_PORT_9000_TCP_START") for e in env)
    assert env[-2:] == ["D_B_NAME=/web/d-b", "D_B_ENV_A=1"]
    assert links.parse("/db:/web/x") == ("db", "x") and links.parse("db") == ("db", "db")
    assert links.split_link_name("/web/x") == ("web", "x")
    with pytest.raises(Conflict, match="default link name"):
        links.split_link_name("db")


def test_local_volume_options_are_checked_as_dockerd_checks_them() -> None:
    assert localvolumes.check_options({"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    for opts, words in (({"foo": "1"}, 'invalid option: "foo"'),
                        ({"type": "tmpfs"}, 'missing required option: "device"'),
                        ({"device": "/dev/x"}, 'missing required option: "type"'),
                        ({"o": "bind"}, "missing required option"),
                        ({"size": "1g"}, "no quota support"),
                        ({"size": "lots"}, "invalid size"),
                        ({"type": "cifs", "device": "//host:445/share"}, "port not allowed")):
        with pytest.raises(InvalidParameter, match=words):
            localvolumes.check_options(opts)
    assert localvolumes.check_options({"size": "0"}) == {"size": "0"}
    assert not localvolumes.needs_mount({}) and localvolumes.needs_mount({"type": "tmpfs", "device": "tmpfs"})
    # nfs: a host name in addr= becomes an address (from /etc/hosts here: no query leaves)
    assert localvolumes._resolved({"type": "nfs", "device": ":/export", "o": "addr=localhost,ro"})[1] \
        in ("addr=127.0.0.1,ro", "addr=::1,ro")
