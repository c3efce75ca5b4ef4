"""Network options honoured as dockerd honours them, driven through the docker CLI 28: IPv6
(dual-stack user networks, the default bridge with daemon.json's ipv6/fixed-cidr-v6, AAAA
answers, ``[::1]`` publishing, ip6 nftables rules), ``--ip-range``, ``--aux-address``,
``--attachable``, ``--mac-address``, ``--ip``/``--ip6``/``--link-local-ip``, and the embedded
DNS forwarding unknown names to the host's resolvers. Each test's daemon has its own bridge,
random 10.x subnets and random ULA prefixes; DNS queries go only to a responder the test runs
on loopback."""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
from typing import Iterator

import pytest

from conftest import Daemon, running_daemon, unique_subnet, unique_subnet6
from dnsresponder import responder
from test_docker_cli import DOCKER, docker
from test_network import http_get, ok

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
              pytest.mark.skipif(not os.path.exists("/proc/sys/net/ipv6"), reason="no IPv6 here")]

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def refused(r: subprocess.CompletedProcess[bytes], *words: str) -> str:
    err = r.stderr.decode()
    assert r.returncode != 0, r.stdout.decode()
    for w in words:
        assert w in err, err
    return err


def inspect(d: Daemon, what: str, fmt: str) -> str:
    return ok(docker(d, "inspect", "-f", fmt, what)).strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def nft(family: str, table: str) -> str:
    return subprocess.run(["nft", "list", "table", family, table], capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def nd(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as d:
        yield d


# -- IPv6 -----------------------------------------------------------------------------------------
def test_dual_stack_user_network(nd: Daemon) -> None:
    """``network create --ipv6``: addresses of both families from the IPAM, containers reach
    each other over IPv6 by name (AAAA from the embedded DNS), ``[::1]`` publishing works from
    the host, and the ip6 nftables table isolates the network."""
    v4, v6 = unique_subnet(), unique_subnet6()
    net = "ds" + os.urandom(3).hex()
    ok(docker(nd, "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6, net))
    srv, port = "v6srv" + os.urandom(2).hex(), free_port()
    try:
        shown = json.loads(ok(docker(nd, "network", "inspect", net)))[0]
        assert shown["EnableIPv6"] is True
        assert [c["Subnet"] for c in shown["IPAM"]["Config"]] == [v4, v6]
        gw6 = str(ipaddress.ip_network(v6).network_address + 1)
        assert shown["IPAM"]["Config"][1]["Gateway"] == gw6
        ok(docker(nd, "run", "-d", "--name", srv, "--network", net, "-p", f"[::1]:{port}:80",
                  "busybox", "sh", "-c", HTTPD))
        eps = json.loads(inspect(nd, srv, "{{json .NetworkSettings.Networks}}"))[net]
        ip6 = eps["GlobalIPv6Address"]
        assert ipaddress.ip_address(ip6) in ipaddress.ip_network(v6)
        assert eps["GlobalIPv6PrefixLen"] == 64 and eps["IPv6Gateway"] == gw6
        assert ipaddress.ip_address(eps["IPAddress"]) in ipaddress.ip_network(v4)
        members = json.loads(ok(docker(nd, "network", "inspect", "-f", "{{json .Containers}}", net)))
        assert [m["IPv6Address"] for m in members.values()] == [f"{ip6}/64"]
        # from a second container: AAAA by name, ICMPv6 and TCP over IPv6 to it
        out = ok(docker(nd, "run", "--rm", "--network", net, "busybox", "sh", "-c",
                        f"nslookup -type=aaaa {srv} 127.0.0.11; ping -6 -c1 -W5 {srv} && "
                        f"for i in $(seq 50); do wget -q -O- http://[{ip6}]/ && exit 0; sleep 0.1; done; exit 1"))
        assert f"Address: {ip6}" in out and "1 packets received" in out
        assert "hello-from-" in out
        # inside: the address, the route through the gateway
        view = ok(docker(nd, "run", "--rm", "--network", net, "busybox", "sh", "-c",
                         "ip -o -6 addr show eth0 scope global; ip -6 route show default"))
        assert f"default via {gw6}" in view and "/64" in view
        # [::1] publishing, from the host
        assert http_get(f"http://[::1]:{port}/").startswith("hello-from-")
        assert ok(docker(nd, "port", srv)).strip() == f"80/tcp -> [::1]:{port}"
        table = nft("ip6", "dockyard_" + nd.bridge_name)
        assert f"dnat to [{ip6}]:80" in table and f"ip6 saddr {v6}" in table
        assert "oifname @bridges drop" in table
    finally:
        docker(nd, "rm", "-f", srv)
        docker(nd, "network", "rm", net)
    assert f"dport {port}" not in nft("ip6", "dockyard_" + nd.bridge_name)


def test_ipv6_from_the_default_pool_and_v4_only_containers(nd: Daemon) -> None:
    """--ipv6 with no IPv6 subnet: a /64 of the daemon's ULA pool; a container on an IPv4-only
    network has no IPv6 on its interface (as dockerd), and [::1] publishing still reaches it
    (through the proxy, to its IPv4 address)."""
    net = "dp" + os.urandom(3).hex()
    ok(docker(nd, "network", "create", "--ipv6", "--subnet", unique_subnet(), net))
    port = free_port()
    name = "v4only" + os.urandom(2).hex()
    try:
        cfg = json.loads(ok(docker(nd, "network", "inspect", "-f", "{{json .IPAM.Config}}", net)))
        sub6 = ipaddress.ip_network(cfg[1]["Subnet"])
        assert sub6.prefixlen == 64 and sub6.subnet_of(ipaddress.ip_network("fd00::/8"))
        out = ok(docker(nd, "run", "--rm", "--network", net, "busybox", "ip", "-o", "-6", "addr"))
        assert str(sub6.network_address)[:-1] in out
        ok(docker(nd, "run", "-d", "--name", name, "-p", f"[::1]:{port}:80", "busybox", "sh", "-c",
                  HTTPD))
        assert http_get(f"http://[::1]:{port}/").startswith("hello-from-")
        out = ok(docker(nd, "exec", name, "sh", "-c", "ip -o -6 addr show eth0; "
                        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6"))
        assert out.strip() == "1"
        assert inspect(nd, name, "{{.NetworkSettings.GlobalIPv6Address}}") == ""
    finally:
        docker(nd, "rm", "-f", name)
        docker(nd, "network", "rm", net)


def test_ipv6_requests_that_are_refused(nd: Daemon) -> None:
    v6 = unique_subnet6()
    refused(docker(nd, "network", "create", "--subnet", v6, "nov6" + os.urandom(2).hex()),
            "IPv6 is not enabled")
    refused(docker(nd, "network", "create", "--ipv6", "--subnet", unique_subnet(), "--subnet", v6,
                   "--subnet", unique_subnet6(), "two6" + os.urandom(2).hex()), "only one IPv6 subnet")
    refused(docker(nd, "network", "create", "--ipv6", "--subnet", v6.replace("::/64", "::5/64"),
                   "host" + os.urandom(2).hex()), "it should be")
    net = "v4n" + os.urandom(2).hex()
    ok(docker(nd, "network", "create", "--subnet", unique_subnet(), net))
    try:
        refused(docker(nd, "run", "--rm", "--network", net, "--ip6", "fd00::5", "busybox", "true"),
                "no configured subnet contains IP address fd00::5")
    finally:
        docker(nd, "network", "rm", net)
    refused(docker(nd, "network", "create", "-d", "host", "--ipv6", "h6" + os.urandom(2).hex()))
    refused(docker(nd, "network", "create", "-o", "com.docker.network.enable_ipv6=maybe",
                   "--subnet", v6, "bad6" + os.urandom(2).hex()), "a boolean is expected")


def test_ipv6_through_the_bridge_option(nd: Daemon) -> None:
    """``com.docker.network.enable_ipv6=true`` (compose files' driver_opts) turns IPv6 on as
    ``--ipv6`` does, as with dockerd."""
    v6, net = unique_subnet6(), "o6" + os.urandom(2).hex()
    ok(docker(nd, "network", "create", "-o", "com.docker.network.enable_ipv6=true",
              "--subnet", v6, net))
    try:
        shown = json.loads(ok(docker(nd, "network", "inspect", net)))[0]
        assert shown["EnableIPv6"] is True
        assert v6 in [c["Subnet"] for c in shown["IPAM"]["Config"]]
    finally:
        docker(nd, "network", "rm", net)


def test_default_bridge_with_ipv6_from_daemon_json(busybox_tar: str) -> None:
    """``--ipv6 --fixed-cidr-v6``: the default bridge is dual-stack; ip6 rules masquerade its
    subnet (ip6tables and ip-masq are on); with ``--ip6tables=false`` there is no ip6 table."""
    fixed = unique_subnet6()
    with running_daemon(busybox_tar, ["--ipv6", "--fixed-cidr-v6", fixed]) as d:
        shown = json.loads(ok(docker(d, "network", "inspect", "bridge")))[0]
        assert shown["EnableIPv6"] is True and shown["IPAM"]["Config"][1]["Subnet"] == fixed
        name = "b6" + os.urandom(2).hex()
        ok(docker(d, "run", "-d", "--name", name, "busybox", "sleep", "300"))
        ip6 = inspect(d, name, "{{.NetworkSettings.GlobalIPv6Address}}")
        assert ipaddress.ip_address(ip6) in ipaddress.ip_network(fixed)
        gw6 = str(ipaddress.ip_network(fixed).network_address + 1)
        assert inspect(d, name, "{{.NetworkSettings.IPv6Gateway}}") == gw6
        assert f"inet6 {gw6}/64" in subprocess.run(["ip", "-6", "addr", "show", d.bridge_name],
                                                   capture_output=True, text=True).stdout
        # the host reaches the container over IPv6 (the bridge is on-link)
        assert "1 packets received" in ok(docker(d, "exec", name, "ping", "-6", "-c1", "-W5", gw6))
        assert f"ip6 saddr {fixed} oifname != \"{d.bridge_name}\" masquerade" in \
            nft("ip6", "dockyard_" + d.bridge_name)
        ok(docker(d, "rm", "-f", name))
    with running_daemon(busybox_tar, ["--ipv6", "--fixed-cidr-v6", unique_subnet6(),
                                      "--ip6tables", "false"]) as d:
        assert nft("ip6", "dockyard_" + d.bridge_name) == ""
        assert json.loads(ok(docker(d, "network", "inspect", "bridge")))[0]["EnableIPv6"] is True


# -- IPAM options ---------------------------------------------------------------------------------
def test_ip_range_aux_addresses_and_attachable(nd: Daemon) -> None:
    subnet = ipaddress.ip_network(unique_subnet())
    rng = ipaddress.ip_network(f"{subnet.network_address + 64}/29")
    aux = str(rng.network_address + 1)
    net = "rg" + os.urandom(3).hex()
    ok(docker(nd, "network", "create", "--subnet", str(subnet), "--ip-range", str(rng),
              "--aux-address", f"router={aux}", "--attachable", net))
    try:
        shown = json.loads(ok(docker(nd, "network", "inspect", net)))[0]
        assert shown["Attachable"] is True
        assert shown["IPAM"]["Config"] == [{"Subnet": str(subnet), "Gateway": str(subnet.network_address + 1),
                                            "IPRange": str(rng), "AuxiliaryAddresses": {"router": aux}}]
        addrs = []
        for _ in range(2):
            out = ok(docker(nd, "run", "--rm", "--network", net, "busybox", "ip", "-o", "-4", "addr", "show", "eth0"))
            addrs.append(out.split()[3].split("/")[0])
        # dynamic addresses come from the range, never the auxiliary one
        assert all(ipaddress.ip_address(a) in rng for a in addrs) and aux not in addrs
        # a fixed address may be anywhere in the subnet, not an auxiliary one
        fixed = str(subnet.network_address + 9)
        out = ok(docker(nd, "run", "--rm", "--network", net, "--ip", fixed, "busybox", "ip", "-o", "-4", "addr"))
        assert f"{fixed}/{subnet.prefixlen}" in out
        cid = ok(docker(nd, "create", "--network", net, "--ip", aux, "busybox", "true")).strip()
        refused(docker(nd, "start", cid), "Address already in use")  # at start, as dockerd
        docker(nd, "rm", cid)
        refused(docker(nd, "run", "--rm", "--network", net, "--ip", "192.0.2.9", "busybox", "true"),
                "no configured subnet contains IP address 192.0.2.9")
    finally:
        docker(nd, "network", "rm", net)
    other = ipaddress.ip_network(unique_subnet())
    refused(docker(nd, "network", "create", "--subnet", str(subnet), "--ip-range", str(other), "bad" + net),
            "no matching subnet for range")  # the CLI pairs them
    status, res = nd.api.post("/networks/create", {"Name": "bad" + net, "IPAM": {"Config": [
        {"Subnet": str(subnet), "IPRange": str(other)}]}})
    assert status == 400 and "ip-range" in res["message"], res


# -- containers: MAC, addresses ---------------------------------------------------------------------
def test_mac_address_and_fixed_addresses(nd: Daemon) -> None:
    mac = "02:11:22:33:44:" + os.urandom(1).hex()
    out = ok(docker(nd, "run", "--rm", "--mac-address", mac, "busybox", "cat", "/sys/class/net/eth0/address"))
    assert out.strip() == mac
    name = "mac" + os.urandom(2).hex()
    ok(docker(nd, "create", "--name", name, "--mac-address", mac.upper(), "busybox", "true"))
    try:
        assert inspect(nd, name, "{{.NetworkSettings.Networks.bridge.MacAddress}}") == mac
    finally:
        docker(nd, "rm", name)
    # the deprecated container-wide field (older API clients) applies too
    status, res = nd.api.post("/v1.43/containers/create", {"Image": "busybox", "MacAddress": mac,
                                                           "Cmd": ["cat", "/sys/class/net/eth0/address"]})
    assert status == 201, res
    try:
        assert nd.api.post(f"/containers/{res['Id']}/start")[0] == 204
        nd.api.post(f"/containers/{res['Id']}/wait")
        _, logs = nd.api.get(f"/containers/{res['Id']}/logs?stdout=1")
        assert mac.encode() in logs
    finally:
        nd.api.delete(f"/containers/{res['Id']}?force=1")
    refused(docker(nd, "run", "--rm", "--mac-address", "01:00:5e:00:00:01", "busybox", "true"), "MAC")
    assert "mac" in refused(docker(nd, "run", "--rm", "--mac-address", "zz", "busybox", "true")).lower()
    status, res = nd.api.post("/containers/create", {"Image": "busybox", "MacAddress": "02:zz"})
    assert status == 400 and "invalid MAC address" in res["message"], res
    refused(docker(nd, "run", "--rm", "--network", "host", "--mac-address", mac, "busybox", "true"),
            "mac-address")
    status, res = nd.api.post("/containers/create", {"Image": "busybox", "MacAddress": mac, "NetworkingConfig": {
        "EndpointsConfig": {"default": {"MacAddress": "02:00:00:00:00:09"}}}})
    assert status == 400 and "must match" in res["message"], res
    # --ip on the default bridge: dockerd's refusal
    refused(docker(nd, "run", "--rm", "--ip", "172.17.0.99", "busybox", "true"),
            "user specified IP address is supported on user defined networks only")
    refused(docker(nd, "run", "--rm", "--network-alias", "x1", "busybox", "true"),
            "network-scoped aliases are only supported for user-defined networks")


def test_fixed_ipv6_and_link_local_addresses(nd: Daemon) -> None:
    v6 = ipaddress.ip_network(unique_subnet6())
    net = "fx" + os.urandom(3).hex()
    ok(docker(nd, "network", "create", "--ipv6", "--subnet", unique_subnet(), "--subnet", str(v6), net))
    try:
        want = str(v6.network_address + 0x99)
        out = ok(docker(nd, "run", "--rm", "--network", net, "--ip6", want, "--link-local-ip", "169.254.7.7",
                        "--link-local-ip", "fe80::7", "busybox", "ip", "-o", "addr", "show", "eth0"))
        assert f"{want}/64" in out and "169.254.7.7/16" in out and "fe80::7/64" in out
        refused(docker(nd, "run", "--rm", "--network", net, "--ip6", "fd00:1::5", "busybox", "true"),
                "no configured subnet contains IP address fd00:1::5")
    finally:
        docker(nd, "network", "rm", net)


# -- DNS ------------------------------------------------------------------------------------------
def test_unknown_names_go_to_the_hosts_resolvers(busybox_tar: str) -> None:
    """No ``dns`` configured: the embedded DNS forwards names it does not know to the host's
    name servers (here the resolv.conf the suite gives the daemon, naming a responder on a
    loopback address, which only the daemon's namespace can reach), and containers get the
    host's search domains and options."""
    with responder() as dns, running_daemon(busybox_tar) as d:
        with open(d.resolv_conf, "w") as f:  # read again when it changes
            f.write(f"# test\nsearch corp.example\nnameserver {dns.address}\noptions timeout:2\n")
        net = "fw" + os.urandom(2).hex()
        ok(docker(d, "network", "create", "--subnet", unique_subnet(), net))
        for mode in ("bridge", net):
            out = ok(docker(d, "run", "--rm", "--network", mode, "busybox", "sh", "-c",
                            "cat /etc/resolv.conf; nslookup -type=a far.example.org"))
            assert "nameserver 127.0.0.11" in out and "search corp.example" in out
            assert "options timeout:2 ndots:0" in out or "options ndots:0 timeout:2" in out
            assert "Address: 10.9.8.7" in out
        assert dns.asked.count("far.example.org") >= 2
        # a container's own names still win, and are never forwarded
        ok(docker(d, "run", "-d", "--name", "known1", "--network", net, "busybox", "sleep", "300"))
        ip = inspect(d, "known1", f"{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}")
        # (a trailing dot: busybox's nslookup tries the search domains first otherwise)
        out = ok(docker(d, "run", "--rm", "--network", net, "busybox", "nslookup", "known1."))
        assert f"Address: {ip}" in out and "10.9.8.7" not in out and "known1" not in dns.asked
        # the host's resolv.conf is also what host-network containers see
        out = ok(docker(d, "run", "--rm", "--network", "host", "busybox", "cat", "/etc/resolv.conf"))
        assert f"nameserver {dns.address}" in out
        docker(d, "rm", "-f", "known1")
        docker(d, "network", "rm", net)


def test_a_builds_run_resolves_names_through_the_hosts_resolvers(busybox_tar: str, tmp_path) -> None:
    """``RUN apt-get update`` in a build: a RUN step resolves names as a container does."""
    with responder() as dns, running_daemon(busybox_tar) as d:
        with open(d.resolv_conf, "w") as f:
            f.write(f"nameserver {dns.address}\n")
        (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN nslookup -type=a pkgs.example.org\n")
        r = d.cli("build", "-q", str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert "pkgs.example.org" in dns.asked


def test_daemon_dns_takes_precedence_over_the_host(busybox_tar: str) -> None:
    """``dns`` in daemon.json: those servers (from the container's namespace), not the host's."""
    subnet = ipaddress.ip_network(unique_subnet())
    gateway = str(subnet.network_address + 1)
    with responder() as host_dns, running_daemon(busybox_tar, ["--dns", gateway]) as d:
        with open(d.resolv_conf, "w") as f:
            f.write(f"nameserver {host_dns.address}\n")
        net = "dd" + os.urandom(2).hex()
        ok(docker(d, "network", "create", "--subnet", str(subnet), "--gateway", gateway, net))
        try:
            with responder(gateway, answer="10.1.2.3") as mine:
                out = ok(docker(d, "run", "--rm", "--network", net, "busybox", "nslookup", "-type=a",
                                "svc.example"))
                assert "Address: 10.1.2.3" in out and "svc.example" in mine.asked
                assert not host_dns.asked
        finally:
            docker(d, "network", "rm", net)
