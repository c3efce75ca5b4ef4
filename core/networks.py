"""Networks: one predefined network per installed network driver (Docker's ``bridge``, ``host``,
``none`` are such), user-defined ones later; endpoints joined when a container starts."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from typing import Any

from dockyard.hookspecs.errors import NotFound
from dockyard.hookspecs.netdriver import Endpoint, NetDriver

log = logging.getLogger(__name__)

#: the network ``NetworkMode: default`` means, in Docker's order of preference
DEFAULT_NETWORKS = ("bridge", "none")


class NetworkService:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.state = daemon.state
        self.drivers: dict[str, NetDriver] = daemon.netdrivers
        self._endpoints: dict[str, Endpoint] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        for row in self.state.q("SELECT * FROM networks"):
            self.networks[row["name"]] = json.loads(row["data"])
        for name, driver in self.drivers.items():
            if name not in self.networks:
                self._create(name, name, {})

    def _create(self, name: str, driver: str, options: dict[str, Any]) -> dict[str, Any]:
        nid = secrets.token_hex(32)
        data = self.drivers[driver].create_network(nid, options)
        net = {"Name": name, "Id": nid, "Created": "", "Scope": "local", "Driver": driver,
               "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": []},
               "Internal": False, "Attachable": False, "Ingress": False,
               "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
               "Options": data or {}, "Labels": {}}
        self.state.x("INSERT INTO networks(id, name, driver, data) VALUES(?,?,?,?)",
                     nid, name, driver, json.dumps(net))
        self.networks[name] = net
        return net

    def resolve_mode(self, mode: str) -> dict[str, Any]:
        if mode == "default":
            for name in DEFAULT_NETWORKS:
                if name in self.networks:
                    return self.networks[name]
            if self.networks:
                return next(iter(self.networks.values()))
            raise NotFound("no network driver is installed")
        if mode.startswith("container:"):
            raise NotFound(f"network mode {mode!r} is not supported yet")
        for net in self.networks.values():
            if mode in (net["Name"], net["Id"]) or (len(mode) >= 6 and net["Id"].startswith(mode)):
                return net
        raise NotFound(f"network {mode} not found")

    def driver_of(self, name: str) -> NetDriver:
        return self.drivers[self.networks[name]["Driver"]]

    def namespaces_for(self, name: str) -> list[dict[str, str]]:
        return [] if self.driver_of(name).namespace == "host" else [{"type": "network"}]

    def settings_for(self, net: dict[str, Any]) -> dict[str, Any]:
        return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
                "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
                "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                "Networks": {net["Name"]: {"IPAMConfig": None, "Links": None, "Aliases": None,
                                           "NetworkID": net["Id"], "EndpointID": "", "Gateway": "",
                                           "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                                           "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                                           "MacAddress": "", "DriverOpts": None}}}

    def resolv_conf(self, name: str) -> str:
        # A container with no route out gets no name servers (it could not reach them anyway).
        if self.driver_of(name).namespace == "host" and os.path.exists("/etc/resolv.conf"):
            with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as f:
                return f.read()
        return ""

    async def joined(self, c: dict[str, Any], pid: int) -> None:
        name = c["_network"]
        driver = self.driver_of(name)
        if driver.namespace == "host":
            return
        net = self.networks[name]
        ep = await asyncio.to_thread(driver.create_endpoint, net["Id"], c["Id"], {})
        await asyncio.to_thread(driver.join, ep, f"/proc/{pid}/ns/net")
        self._endpoints[c["Id"]] = ep

    async def left(self, c: dict[str, Any]) -> None:
        ep = self._endpoints.pop(c["Id"], None)
        if ep is None:
            return
        driver = self.driver_of(c["_network"])
        try:
            await asyncio.to_thread(driver.delete_endpoint, ep)
        except Exception:  # noqa: BLE001
            log.exception("releasing endpoint of %s failed", c["Id"][:12])

    def list(self) -> list[dict[str, Any]]:
        return list(self.networks.values())
