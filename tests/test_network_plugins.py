"""Docker network plugins (libnetwork's remote driver protocol): a plugin server
(tests/network_plugin.py, a real server on a unix socket in a private plugin directory, making
real veth pairs) serves ``network create -d <plugin>`` and the containers run on it."""
from __future__ import annotations

import os
import subprocess
from typing import Iterator

import pytest

from conftest import Daemon
from plugin_server import Served, plugin_daemon, running_plugin

SERVER = os.path.join(os.path.dirname(__file__), "network_plugin.py")


class NetPlugin(Served):
    prefix = "dkynet"
    namespace = "NetworkDriver."


def links(prefix: str) -> list[str]:
    """The host's interfaces whose names start with ``prefix``."""
    return [n for n in os.listdir("/sys/class/net") if n.startswith(prefix)]


def _del_veths(p: NetPlugin) -> None:
    for call in p.calls("Join"):  # a veth pair a failed test left
        subprocess.run(["ip", "link", "del", "dkh" + call["body"]["EndpointID"][:8]],
                       capture_output=True)


@pytest.fixture
def netplugin() -> Iterator[NetPlugin]:
    with running_plugin(SERVER, NetPlugin, _del_veths) as p:
        yield p


@pytest.fixture
def ndaemon(busybox_tar: str, netplugin: NetPlugin) -> Iterator[Daemon]:
    with plugin_daemon(netplugin, busybox_tar) as d:
        yield d


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout.decode()


def test_network_plugin_serves_a_network_and_its_containers(ndaemon: Daemon,
                                                             netplugin: NetPlugin) -> None:
    api = ndaemon.api
    third = os.urandom(1)[0]
    subnet, gw = f"10.213.{third}.0/24", f"10.213.{third}.1"
    status, made = api.post("/networks/create", {
        "Name": "pnet", "Driver": netplugin.name, "Options": {"color": "blue"},
        "IPAM": {"Config": [{"Subnet": subnet}]}})
    assert status == 201, made
    (create,) = netplugin.calls("CreateNetwork")
    assert create["body"]["NetworkID"] == made["Id"]
    assert create["body"]["IPv4Data"][0]["Pool"] == subnet
    assert create["body"]["IPv4Data"][0]["Gateway"] == f"{gw}/24"
    assert create["body"]["Options"]["com.docker.network.generic"] == {"color": "blue"}
    assert netplugin.calls("GetCapabilities")
    status, net = api.get("/networks/pnet")
    assert net["Driver"] == netplugin.name and net["Scope"] == "local"

    # a container on it: the plugin's veth, named eth0, addressed, routed; traffic reaches the
    # plugin's end of the pair (the gateway)
    out = ok(ndaemon.cli("run", "--rm", "--network", "pnet", "busybox", "sh", "-c",
                         f"ip -o -4 addr show eth0; ip route; cat /sys/class/net/eth0/address; "
                         f"ping -c 1 -W 3 {gw} >/dev/null && echo reached"))
    assert f"inet 10.213.{third}.2/24" in out, out
    assert f"default via {gw} dev eth0" in out, out
    assert f"10.254.1.0/24 via {gw} dev eth0" in out and "10.254.2.0/24 dev eth0" in out, out
    assert "\n02:dd:" in out and out.rstrip().endswith("reached"), out
    (join,) = netplugin.calls("Join")
    eid = join["body"]["EndpointID"]
    assert os.path.basename(os.path.dirname(join["body"]["SandboxKey"])) == "netns", join
    ep_made = netplugin.calls("CreateEndpoint")[0]["body"]
    assert ep_made["Interface"]["Address"] == f"10.213.{third}.2/24"
    assert netplugin.calls("ProgramExternalConnectivity") and netplugin.calls("EndpointOperInfo")
    # run --rm: Leave, DeleteEndpoint; the pair is gone
    assert [c["body"]["EndpointID"] for c in netplugin.calls("Leave")] == [eid]
    assert [c["body"]["EndpointID"] for c in netplugin.calls("DeleteEndpoint")] == [eid]
    assert links("dkh" + eid[:8]) == [] and links("dkc" + eid[:8]) == []

    # a running container: inspect shows what the plugin and the IPAM gave; ports are handed to
    # the plugin; rm -f releases the endpoint
    cid = ok(ndaemon.cli("run", "-d", "--network", "pnet", "-p", "127.0.0.1::80", "busybox",
                         "sleep", "300")).strip()
    status, c = api.get(f"/containers/{cid}/json")
    ep = c["NetworkSettings"]["Networks"]["pnet"]
    assert ep["Gateway"] == gw and ep["MacAddress"].startswith("02:dd:"), ep
    assert ep["IPAddress"].startswith(f"10.213.{third}."), ep
    portmap = netplugin.calls("ProgramExternalConnectivity")[-1]["body"]["Options"]
    assert portmap["com.docker.network.portmap"][0]["Port"] == 80, portmap
    eid2 = netplugin.calls("Join")[-1]["body"]["EndpointID"]
    assert links("dkh" + eid2[:8])
    status, _ = api.delete("/networks/pnet")
    assert status == 403  # in use
    ok(ndaemon.cli("rm", "-f", cid))
    assert netplugin.calls("DeleteEndpoint")[-1]["body"]["EndpointID"] == eid2
    assert links("dkh" + eid2[:8]) == []
    assert api.delete("/networks/pnet")[0] == 204
    assert netplugin.calls("DeleteNetwork")[-1]["body"]["NetworkID"] == made["Id"]


def test_network_plugin_errors(ndaemon: Daemon, netplugin: NetPlugin) -> None:
    api = ndaemon.api
    # the plugin's Err is the daemon's error, in dockerd's words; nothing is recorded
    status, err = api.post("/networks/create", {"Name": "bad", "Driver": netplugin.name,
                                                "Options": {"fail": "1"}})
    assert status == 500 and err["message"] == "remote: asked to fail", err
    assert api.get("/networks/bad")[0] == 404
    # no such plugin: dockerd's 404
    status, err = api.post("/networks/create", {"Name": "x", "Driver": "nosuchnetplugin"})
    assert status == 404 and err["message"] == 'plugin "nosuchnetplugin" not found', err
    # an IPAM driver plugin is not supported: refused, naming the field
    status, err = api.post("/networks/create", {"Name": "y", "Driver": netplugin.name,
                                                "IPAM": {"Driver": "someipam"}})
    assert status == 400 and "IPAM.Driver" in err["message"], err
    assert api.get("/networks/y")[0] == 404


def test_network_plugin_connect_disconnect_across_a_restart(ndaemon: Daemon,
                                                            netplugin: NetPlugin) -> None:
    """``network connect`` of a running container plumbs the plugin's interface as eth1; after
    a daemon restart (the plugin driver is looked up again on first use, no second
    CreateNetwork) ``network disconnect`` and ``network rm`` still reach the plugin."""
    api = ndaemon.api
    third = os.urandom(1)[0]
    status, made = api.post("/networks/create", {
        "Name": "pnet2", "Driver": netplugin.name, "IPAM": {"Config": [{"Subnet": f"10.214.{third}.0/24"}]}})
    assert status == 201, made
    cid = ok(ndaemon.cli("run", "-d", "busybox", "sleep", "300")).strip()
    status, err = api.post("/networks/pnet2/connect", {"Container": cid})
    assert status == 200, err
    assert f"inet 10.214.{third}.2/24" in ok(ndaemon.cli("exec", cid, "ip", "-o", "-4", "addr", "show", "eth1"))
    eid = netplugin.calls("Join")[-1]["body"]["EndpointID"]
    assert links("dkh" + eid[:8])

    ndaemon.stop()
    ndaemon.start()
    assert api.get(f"/containers/{cid}/json")[1]["State"]["Running"]
    status, err = api.post("/networks/pnet2/disconnect", {"Container": cid})
    assert status == 200, err
    assert [c["body"]["EndpointID"] for c in netplugin.calls("Leave")] == [eid]
    assert [c["body"]["EndpointID"] for c in netplugin.calls("DeleteEndpoint")] == [eid]
    assert links("dkh" + eid[:8]) == []
    r = ndaemon.cli("exec", cid, "ip", "link", "show", "eth1")
    assert r.returncode != 0
    ok(ndaemon.cli("rm", "-f", cid))
    assert api.delete("/networks/pnet2")[0] == 204
    assert len(netplugin.calls("CreateNetwork")) == 1
    assert [c["body"]["NetworkID"] for c in netplugin.calls("DeleteNetwork")] == [made["Id"]]
