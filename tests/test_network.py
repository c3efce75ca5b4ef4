"""Networking end to end: real namespaces, veths, bridges and nftables rules, driven through a
real ``dockyardd``. Traffic goes only to loopback and to addresses on the bridges and namespaces
these tests create (each daemon has its own bridge name and a random 10.x subnet)."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Iterator

import pytest

from conftest import Daemon, remove_network_leftovers, running_daemon, unique_subnet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def out(r: subprocess.CompletedProcess[bytes]) -> str:
    return r.stdout.decode()


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, attempts: int = 100) -> str:
    """GET ``url``, retrying while the server in the container is still starting."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered: {last}")


def links_on_host() -> str:
    return subprocess.run(["ip", "-o", "-d", "link", "show"], capture_output=True, text=True).stdout


def bridge_ports(bridge: str) -> list[str]:
    res = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True)
    return [line.split(":")[1].strip().split("@")[0] for line in res.stdout.splitlines() if ":" in line]


def nft_table(bridge: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", "dockyard_" + bridge], capture_output=True,
                          text=True).stdout


def sandboxes(d: Daemon) -> list[str]:
    path = os.path.join(d.exec_root, "netns")
    return os.listdir(path) if os.path.isdir(path) else []


def ip_of(d: Daemon, name: str, network: str | None = None) -> str:
    status, c = d.api.get(f"/containers/{name}/json")
    assert status == 200, c
    nets = c["NetworkSettings"]["Networks"]
    return nets[network or next(iter(nets))]["IPAddress"]


@pytest.fixture(scope="module")
def netd(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as d:
        yield d


@pytest.fixture
def forwarding() -> Iterator[None]:
    """IPv4 forwarding on for the test (so isolation is the firewall's doing, not the kernel's
    default), restored afterwards."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        before = f.read().strip()
    yield
    with open(path, "w") as f:
        f.write(before)


# -- the default bridge ---------------------------------------------------------------------------
def test_two_containers_on_the_default_bridge_reach_each_other(netd: Daemon) -> None:
    ok(netd.cli("run", "-d", "--name", "srv1", "busybox", "sh", "-c", HTTPD))
    try:
        ip = ip_of(netd, "srv1")
        status, c = netd.api.get("/containers/srv1/json")
        ns = c["NetworkSettings"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(
            next(n for n in netd.api.get("/networks/bridge")[1]["IPAM"]["Config"])["Subnet"])
        assert ns["IPAddress"] == ip and ns["Gateway"] and ns["MacAddress"].startswith("02:42:")
        assert ns["SandboxKey"].startswith(netd.exec_root)
        assert "ttl=" in ok(netd.cli("run", "--rm", "busybox", "ping", "-c1", "-W5", ip))
        page = ok(netd.cli("run", "--rm", "busybox", "sh", "-c",
                           f"for i in $(seq 50); do wget -q -O- http://{ip}/ && exit 0; sleep 0.1; done; exit 1"))
        assert page.startswith("hello-from-")
        # the container's own view: eth0 with its address, a default route via the gateway
        view = ok(netd.cli("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr; ip route"))
        assert "eth0" in view and f"default via {ns['Gateway']}" in view
    finally:
        netd.cli("rm", "-f", "srv1")
    assert bridge_ports(netd.bridge_name) == []
    assert sandboxes(netd) == []


def test_published_loopback_port_is_reachable_from_the_host(netd: Daemon) -> None:
    port = free_port()
    ok(netd.cli("run", "-d", "--name", "pub1", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD))
    try:
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello-from-")
        assert ok(netd.cli("port", "pub1")).strip() == f"80/tcp -> 127.0.0.1:{port}"
        assert ok(netd.cli("port", "pub1", "80")).strip() == f"127.0.0.1:{port}"
        _, c = netd.api.get("/containers/pub1/json")
        assert c["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        _, lst = netd.api.get("/containers/json")
        row = next(x for x in lst if x["Names"] == ["/pub1"])
        assert row["Ports"] == [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}]
        assert f"dport {port} dnat to {ip_of(netd, 'pub1')}:80" in nft_table(netd.bridge_name)
        assert f"127.0.0.1:{port}->80/tcp" in ok(netd.cli("ps"))
    finally:
        ok(netd.cli("rm", "-f", "pub1"))
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert f"dport {port}" not in nft_table(netd.bridge_name)


def test_publish_all_picks_ephemeral_ports(netd: Daemon) -> None:
    ok(netd.cli("run", "-d", "--name", "pub2", "--expose", "80", "-P", "busybox", "sh", "-c", HTTPD))
    try:
        line = ok(netd.cli("port", "pub2")).strip()
        assert line.startswith("80/tcp -> 0.0.0.0:")
        port = int(line.rsplit(":", 1)[1])
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
        assert lo <= port <= hi
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello-from-")
    finally:
        ok(netd.cli("rm", "-f", "pub2"))


def test_a_taken_host_port_is_refused(netd: Daemon) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = netd.cli("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert r.returncode != 0 and "failed" in r.stderr.decode()
    assert sandboxes(netd) == []


# -- user-defined networks ------------------------------------------------------------------------
def test_user_network_names_resolve_and_networks_are_isolated(busybox_tar: str, forwarding: None) -> None:
    with running_daemon(busybox_tar, ["--ip-forward", "true"]) as d:
        s1, s2 = unique_subnet(), unique_subnet()
        while ipaddress.ip_network(s1).overlaps(ipaddress.ip_network(s2)):
            s2 = unique_subnet()
        ok(d.cli("network", "create", "--subnet", s1, "--label", "team=a", "front"))
        ok(d.cli("network", "create", "--subnet", s2, "back"))
        ok(d.cli("run", "-d", "--name", "web", "--network", "front", "busybox", "sh", "-c", HTTPD))
        status, _ = d.api.post("/networks/front/connect", {"Container": "web", "EndpointConfig": {}})
        assert status == 403  # already connected
        web_ip = ip_of(d, "web", "front")
        assert ipaddress.ip_address(web_ip) in ipaddress.ip_network(s1)
        fetch = "for i in $(seq 50); do wget -q -O- http://{0}/ && exit 0; sleep 0.1; done; exit 1"
        page = ok(d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c", fetch.format("web")))
        assert page.startswith("hello-from-")
        # other names go to the host's resolvers: the suite's host resolv.conf names none, NXDOMAIN
        r = d.cli("run", "--rm", "--network", "front", "busybox", "nslookup", "nonexistent.invalid")
        assert r.returncode != 0
        # from the other network: no name, and no route through the host to the address either
        r = d.cli("run", "--rm", "--network", "back", "busybox", "nslookup", "web")
        assert r.returncode != 0
        r = d.cli("run", "--rm", "--network", "back", "busybox", "sh", "-c",
                  f"timeout 3 wget -q -O- http://{web_ip}/; exit $?")
        assert r.returncode != 0 and b"hello" not in r.stdout
        # connected to the second network too (live), under an alias there
        ok(d.cli("network", "connect", "--alias", "www", "back", "web"))
        page = ok(d.cli("run", "--rm", "--network", "back", "busybox", "sh", "-c", fetch.format("www")))
        assert page.startswith("hello-from-")
        ok(d.cli("network", "disconnect", "back", "web"))
        r = d.cli("run", "--rm", "--network", "back", "busybox", "nslookup", "www")
        assert r.returncode != 0
        # and the isolation is the firewall's: forwarding is on
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            assert f.read().strip() == "1"
        assert "oifname @bridges drop" in nft_table(d.bridge_name)
        # the network API
        _, net = d.api.get("/networks/front")
        assert net["IPAM"]["Config"][0]["Subnet"] == s1 and net["Labels"] == {"team": "a"}
        assert [c["Name"] for c in net["Containers"].values()] == ["web"]
        names = out(d.cli("network", "ls", "--format", "{{.Name}} {{.Driver}}")).split("\n")
        assert {"bridge bridge", "host host", "none none", "front bridge", "back bridge"} <= set(names)
        r = d.cli("network", "rm", "front")
        assert r.returncode == 1 and "active endpoints" in r.stderr.decode()
        ok(d.cli("rm", "-f", "web"))
        # as dockerd: a user network shows only the options it was given (docker-compose
        # recreates a network whose Options have keys its file does not)
        assert net["Options"] == {}
        front_bridge = "br-" + net["Id"][:12]
        assert ok(d.cli("network", "rm", "front")).strip() == "front"
        assert f"{front_bridge}:" not in links_on_host()
        assert "Deleted Networks:\nback" in ok(d.cli("network", "prune", "-f"))
        r = d.cli("network", "rm", "bridge")
        assert r.returncode == 1 and "pre-defined" in r.stderr.decode()
        assert sandboxes(d) == []


def test_internal_network_and_ip_option(netd: Daemon) -> None:
    subnet = ipaddress.ip_network(unique_subnet())
    wanted = str(subnet.network_address + 77)
    status, res = netd.api.post("/networks/create", {
        "Name": "inside", "Internal": True,
        "IPAM": {"Config": [{"Subnet": str(subnet), "Gateway": str(subnet.network_address + 1)}]}})
    assert status == 201, res
    try:
        status, res = netd.api.post("/networks/create", {"Name": "inside"})
        assert status == 409
        status, res = netd.api.post("/networks/create", {
            "Name": "overlap", "IPAM": {"Config": [{"Subnet": str(subnet)}]}})
        assert status == 403 and "overlaps" in res["message"]
        status, res = netd.api.post("/containers/create?name=fixedip", {
            "Image": "busybox", "Cmd": ["sh", "-c", "ip -o -4 addr show eth0; ip route"],
            "HostConfig": {"NetworkMode": "inside"},
            "NetworkingConfig": {"EndpointsConfig": {"inside": {"IPAMConfig": {"IPv4Address": wanted}}}}})
        assert status == 201, res
        assert netd.api.post("/containers/fixedip/start")[0] == 204
        assert netd.api.post("/containers/fixedip/wait")[1]["StatusCode"] == 0
        logs = out(netd.cli("logs", "fixedip"))
        assert f"{wanted}/{subnet.prefixlen}" in logs
        assert "default" not in logs  # internal: no way out
    finally:
        netd.cli("rm", "-f", "fixedip")
        netd.api.delete("/networks/inside")


def test_a_network_is_looked_up_at_start_not_at_create(netd: Daemon) -> None:
    """As dockerd (compose creates a service's container before its project's network): create
    keeps the name, start answers 404 until the network exists, then joins it with the endpoint
    settings given at create."""
    net, name = f"later{os.getpid()}", f"early{os.getpid()}"
    subnet = ipaddress.ip_network(unique_subnet())
    wanted = str(subnet.network_address + 9)
    status, res = netd.api.post(f"/containers/create?name={name}", {
        "Image": "busybox", "Cmd": ["ip", "-o", "-4", "addr", "show", "eth0"],
        "HostConfig": {"NetworkMode": net},
        "NetworkingConfig": {"EndpointsConfig": {net: {"IPAMConfig": {"IPv4Address": wanted},
                                                       "Aliases": ["early"]}}}})
    assert status == 201, res
    try:
        status, c = netd.api.get(f"/containers/{name}/json")
        assert c["HostConfig"]["NetworkMode"] == net
        assert c["NetworkSettings"]["Networks"][net]["NetworkID"] == ""
        status, res = netd.api.post(f"/containers/{name}/start")
        assert status == 404 and res["message"] == f"network {net} not found", res
        status, res = netd.api.post("/networks/create", {
            "Name": net, "IPAM": {"Config": [{"Subnet": str(subnet)}]}})
        assert status == 201, res
        assert netd.api.post(f"/containers/{name}/start")[0] == 204
        assert netd.api.post(f"/containers/{name}/wait")[1]["StatusCode"] == 0
        assert f"{wanted}/{subnet.prefixlen}" in out(netd.cli("logs", name))
        ep = netd.api.get(f"/containers/{name}/json")[1]["NetworkSettings"]["Networks"][net]
        assert ep["NetworkID"] == res["Id"] and "early" in ep["Aliases"]
    finally:
        netd.cli("rm", "-f", name)
        netd.api.delete(f"/networks/{net}")


# -- host and none --------------------------------------------------------------------------------
def _host_interfaces() -> set[str]:
    with open("/proc/net/dev") as f:
        return {line.split(":")[0].strip() for line in f.readlines()[2:]}


def test_host_network_sees_the_host_interfaces(netd: Daemon) -> None:
    # other sessions on this machine add and remove bridges and veths all the time: only the
    # interfaces the host had both before and after the container ran must be seen from inside
    before = _host_interfaces()
    seen = ok(netd.cli("run", "--rm", "--network", "host", "busybox", "sh", "-c",
                       "tail -n +3 /proc/net/dev | cut -d: -f1"))
    host_ifs = before & _host_interfaces()
    assert "lo" in host_ifs
    assert host_ifs - {l for l in host_ifs if l.startswith(("veth", "vp"))} <= \
        {x.strip() for x in seen.split()}
    resolv = ok(netd.cli("run", "--rm", "--network", "host", "busybox", "cat", "/etc/resolv.conf"))
    with open(netd.resolv_conf) as f:  # the host's resolv.conf, as the suite's daemons see it
        assert resolv == f.read()


def test_none_network_has_only_loopback(netd: Daemon) -> None:
    seen = ok(netd.cli("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                       "tail -n +3 /proc/net/dev | cut -d: -f1; ip -o addr show lo"))
    assert seen.split()[0] == "lo" and "127.0.0.1/8" in seen
    assert "eth0" not in seen
    assert ok(netd.cli("run", "--rm", "--network", "none", "busybox", "cat", "/etc/resolv.conf")) == ""


# -- persistence, crash recovery, cleanliness -------------------------------------------------------
def test_addresses_are_never_handed_out_twice_across_restarts(busybox_tar: str) -> None:
    with running_daemon(busybox_tar) as d:
        ok(d.cli("run", "-d", "--name", "keep", "busybox", "sleep", "1000"))
        first = ip_of(d, "keep")
        d.stop()          # live restore: the container keeps running
        d.start()
        assert ip_of(d, "keep") == first
        ok(d.cli("run", "-d", "--name", "next", "busybox", "sleep", "1000"))
        assert ip_of(d, "next") != first
        # the re-adopted container is still reachable over the bridge
        ok(d.cli("run", "--rm", "busybox", "ping", "-c1", "-W5", first))
        d.cli("rm", "-f", "keep", "next")
        assert bridge_ports(d.bridge_name) == [] and sandboxes(d) == []


def test_daemon_start_reconciles_what_a_crash_left(busybox_tar: str) -> None:
    with running_daemon(busybox_tar) as d:
        ok(d.cli("run", "-d", "--name", "live", "busybox", "sleep", "1000"))
        live_ip = ip_of(d, "live")
        assert d.stop(signal.SIGKILL) is not None
        # leftovers of a crash: a namespace file nobody owns, a veth on the bridge, a stale rule
        stale_ns = os.path.join(d.exec_root, "netns", "f" * 64)
        from dockyard.hookspecs.host import ns
        ns.create_netns(stale_ns)
        stale_veth = "veth" + os.urandom(5).hex()
        subprocess.run(["ip", "link", "add", stale_veth, "type", "veth", "peer", "name",
                        "vp" + stale_veth[4:]], check=True)
        subprocess.run(["ip", "link", "set", stale_veth, "master", d.bridge_name], check=True)
        gateway = live_ip.rsplit(".", 1)[0] + ".1"  # on the test's own bridge
        subprocess.run(["nft", "add", "rule", "ip", "dockyard_" + d.bridge_name, "ports_out",
                        "tcp", "dport", "1", "dnat", "to", f"{gateway}:1"], check=True)
        try:
            d.start()
        finally:
            if f"{stale_veth}@" in links_on_host():
                subprocess.run(["ip", "link", "del", stale_veth], capture_output=True)
        assert not os.path.exists(stale_ns)
        assert f"{stale_veth}@" not in links_on_host()
        assert "dport 1 " not in nft_table(d.bridge_name)
        assert bridge_ports(d.bridge_name) != []  # the live container's veth stayed
        assert ip_of(d, "live") == live_ip
        ok(d.cli("run", "--rm", "busybox", "ping", "-c1", "-W5", live_ip))
        ok(d.cli("rm", "-f", "live"))


def test_nothing_is_left_after_containers_and_daemon_are_gone(busybox_tar: str) -> None:
    with running_daemon(busybox_tar) as d:
        subnet = unique_subnet()
        ok(d.cli("network", "create", "--subnet", subnet, "tmpnet"))
        _, net = d.api.get("/networks/tmpnet")
        user_bridge = "br-" + net["Id"][:12]
        ok(d.cli("run", "-d", "--name", "x1", "-p", f"127.0.0.1:{free_port()}:80", "busybox", "sleep", "1000"))
        ok(d.cli("run", "-d", "--name", "x2", "--network", "tmpnet", "busybox", "sleep", "1000"))
        assert len(bridge_ports(d.bridge_name)) == 1 and len(bridge_ports(user_bridge)) == 1
        ok(d.cli("rm", "-f", "x1", "x2"))
        assert bridge_ports(d.bridge_name) == [] and bridge_ports(user_bridge) == []
        assert sandboxes(d) == []
        assert "dnat" not in nft_table(d.bridge_name)
        ok(d.cli("network", "rm", "tmpnet"))
        d.stop()
        links = links_on_host()
        assert f"{d.bridge_name}:" not in links and f"{user_bridge}:" not in links
        assert nft_table(d.bridge_name) == ""
        assert remove_network_leftovers(d) == []


def test_icc_off_isolates_containers_of_one_network(netd: Daemon) -> None:
    r = netd.cli("network", "create", "--subnet", unique_subnet(), "-o",
                 "com.docker.network.bridge.enable_icc=false", "noicc")
    ok(r)
    try:
        ok(netd.cli("run", "-d", "--name", "lonely", "--network", "noicc", "busybox", "sh", "-c", HTTPD))
        ip = ip_of(netd, "lonely", "noicc")
        assert "drop" in subprocess.run(["nft", "list", "table", "bridge", "dockyard_" + netd.bridge_name],
                                        capture_output=True, text=True).stdout
        r = netd.cli("run", "--rm", "--network", "noicc", "busybox", "sh", "-c",
                     f"timeout 3 wget -q -O- http://{ip}/; exit $?")
        assert r.returncode != 0 and b"hello" not in r.stdout
        # the same server on a network with ICC on answers (so the drop above is the rule's)
        ok(netd.cli("network", "connect", "bridge", "lonely"))
        bridge_ip = ip_of(netd, "lonely", "bridge")
        page = ok(netd.cli("run", "--rm", "busybox", "sh", "-c",
                           f"for i in $(seq 50); do wget -q -O- http://{bridge_ip}/ && exit 0; sleep 0.1; done; exit 1"))
        assert page.startswith("hello-from-")
    finally:
        netd.cli("rm", "-f", "lonely")
        netd.cli("network", "rm", "noicc")
    assert subprocess.run(["nft", "list", "table", "bridge", "dockyard_" + netd.bridge_name],
                          capture_output=True).returncode != 0


def test_container_dns_servers_search_and_options(netd: Daemon) -> None:
    """--dns: names the embedded server does not know go to the container's own servers (here
    one the test serves on the network's gateway address, on a bridge this daemon made);
    --dns-search and --dns-option land in resolv.conf."""
    from dnsresponder import responder

    subnet = ipaddress.ip_network(unique_subnet())
    gateway = str(subnet.network_address + 1)
    name = "dnsnet" + os.urandom(2).hex()
    ok(netd.cli("network", "create", "--subnet", str(subnet), "--gateway", gateway, name))
    try:
        with responder(gateway) as dns:
            r = netd.cli("run", "--rm", "--network", name, "--dns", gateway, "--dns-search", "corp.test",
                         "--dns-option", "timeout:1", "busybox", "sh", "-c",
                         "cat /etc/resolv.conf; nslookup -type=a outside.test 127.0.0.11")
            text = ok(r)
            assert "nameserver 127.0.0.11" in text and "search corp.test" in text
            assert "options ndots:0 timeout:1" in text
            assert "10.9.8.7" in text and "outside.test" in dns.asked
    finally:
        netd.cli("network", "rm", name)
