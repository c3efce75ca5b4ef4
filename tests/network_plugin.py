"""A small Docker network plugin (libnetwork's remote driver protocol), run by the tests.

    python network_plugin.py PLUGIN_DIR NAME STATE_DIR

serves ``PLUGIN_DIR/NAME.sock``. ``Join`` makes a real veth pair with pyroute2 (the host end
``dkh<8 hex>`` carries the network's gateway address, the other ``dkc<8 hex>`` is named to the
daemon in ``InterfaceName``), answers the gateway and two static routes; ``DeleteEndpoint``
deletes the pair. ``CreateEndpoint`` answers a MAC address when the daemon gave none. Every
call is appended to ``STATE_DIR/calls.jsonl``.
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
import threading

import plugin_server

from pyroute2 import IPRoute

#: the MAC address the plugin gives an endpoint the daemon gave none (locally administered)
MAC_PREFIX = "02:dd:"


class Plugin:
    def __init__(self, state: str) -> None:
        self.state = state
        self.networks: dict[str, dict] = {}  # id -> {"gateway": "a.b.c.d", "prefix": n}
        self.endpoints: dict[str, str] = {}  # endpoint id -> network id
        self.lock = threading.Lock()

    def log(self, method: str, body: dict) -> None:
        with open(os.path.join(self.state, "calls.jsonl"), "a") as f:
            f.write(json.dumps({"method": method, "body": body}) + "\n")

    @staticmethod
    def names(eid: str) -> tuple[str, str]:
        return "dkh" + eid[:8], "dkc" + eid[:8]

    def handle(self, method: str, body: dict) -> dict | None:
        nid, eid = body.get("NetworkID", ""), body.get("EndpointID", "")
        if method == "Plugin.Activate":
            return {"Implements": ["NetworkDriver"]}
        if method == "NetworkDriver.GetCapabilities":
            return {"Scope": "local"}
        if method == "NetworkDriver.CreateNetwork":
            if body["Options"]["com.docker.network.generic"].get("fail"):
                return {"Err": "asked to fail"}
            gw = ipaddress.ip_interface(body["IPv4Data"][0]["Gateway"])
            self.networks[nid] = {"gateway": str(gw.ip), "prefix": gw.network.prefixlen}
            return {}
        if nid not in self.networks:
            return {"Err": f"no such network {nid}"}
        if method == "NetworkDriver.DeleteNetwork":
            del self.networks[nid]
            return {}
        if method == "NetworkDriver.CreateEndpoint":
            self.endpoints[eid] = nid
            mac = "" if body["Interface"].get("MacAddress") else MAC_PREFIX + ":".join(
                eid[i:i + 2] for i in range(0, 8, 2))
            return {"Interface": {"MacAddress": mac}} if mac else {}
        if eid not in self.endpoints:
            return {"Err": f"no such endpoint {eid}"}
        return self.endpoint_call(method, nid, eid)

    def endpoint_call(self, method: str, nid: str, eid: str) -> dict | None:
        host_end, box_end = self.names(eid)
        net = self.networks[nid]
        if method == "NetworkDriver.Join":
            with IPRoute() as ipr:
                ipr.link("add", ifname=host_end, kind="veth", peer=box_end)
                idx = ipr.link_lookup(ifname=host_end)[0]
                ipr.addr("add", index=idx, address=net["gateway"], prefixlen=net["prefix"])
                ipr.link("set", index=idx, state="up")
            return {"InterfaceName": {"SrcName": box_end, "DstPrefix": "eth"},
                    "Gateway": net["gateway"],
                    "StaticRoutes": [{"Destination": "10.254.1.0/24", "RouteType": 0,
                                      "NextHop": net["gateway"]},
                                     {"Destination": "10.254.2.0/24", "RouteType": 1}]}
        if method in ("NetworkDriver.ProgramExternalConnectivity",
                      "NetworkDriver.RevokeExternalConnectivity"):
            return {}
        if method == "NetworkDriver.EndpointOperInfo":
            return {"Value": {"plugin-says": "hello"}}
        if method == "NetworkDriver.Leave":
            return {}
        if method == "NetworkDriver.DeleteEndpoint":
            del self.endpoints[eid]
            with IPRoute() as ipr:
                for idx in ipr.link_lookup(ifname=host_end):
                    ipr.link("del", index=idx)
            return {}
        return None  # unknown method: 404


def serve(plugin_dir: str, name: str, state: str) -> None:
    plugin = Plugin(state)

    def answer(method: str, body: dict) -> dict | None:
        with plugin.lock:
            plugin.log(method, body)
            try:
                return plugin.handle(method, body)
            except Exception as e:  # noqa: BLE001 - the daemon sees it as the plugin's Err
                return {"Err": f"{type(e).__name__}: {e}"}

    plugin_server.serve(plugin_dir, name, answer)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
