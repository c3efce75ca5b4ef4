"""Published ports (``-p``/``-P``): the host sockets the daemon holds (and its userland proxy,
:mod:`dockyard.core.portproxy`), and the driver's kernel rules for them."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter
from dockyard.hookspecs.netdriver import Endpoint, NetDriver

from .netsettings import parse_port
from .portproxy import Proxy, proxy_target

log = logging.getLogger(__name__)


class Publisher:
    """The proxies of every container's published ports, by container id."""

    def __init__(self, config: Any) -> None:
        self.config = config  # its userland-proxy, read at each use
        self._proxies: dict[str, list[Proxy]] = {}

    @staticmethod
    def _bindings(c: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        host = c["HostConfig"]
        bindings: dict[str, list[dict[str, str]]] = dict(host.get("PortBindings") or {})
        if host.get("PublishAllPorts"):
            for key in (c["Config"].get("ExposedPorts") or {}):
                bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
        return bindings

    async def publish(self, c: dict[str, Any], driver_of: Callable[[str], NetDriver]) -> None:
        """Bind every port ``c`` publishes and hand them to the driver of its first endpoint
        with an address (``driver_of``: network id → driver); ``c["_ports"]`` records them."""
        bindings = self._bindings(c)
        target = next((ep for ep in c["_endpoints"].values() if ep.get("ip_address")), None)
        if not bindings or target is None:
            return  # none: nothing to publish to (Docker ignores -p there too)
        ep = Endpoint(**target)
        proxies: list[Proxy] = self._proxies.setdefault(c["Id"], [])
        ports = []
        for key, lst in bindings.items():
            cport, proto = parse_port(key)
            if proto not in ("tcp", "udp"):
                raise InvalidParameter(f"unsupported protocol {proto}")
            for b in lst or [{"HostIp": "", "HostPort": ""}]:
                hp = str((b or {}).get("HostPort") or "")
                lo, _, hi = hp.partition("-")
                host_ip = ((b or {}).get("HostIp") or "").strip("[]")
                px = Proxy(proto, host_ip, int(lo) if lo else 0, proxy_target(target, host_ip, cport))
                px.bind()
                proxies.append(px)
                if self.config.get("userland-proxy", True):
                    await px.start()
                ports.append({"Proto": proto, "HostIp": host_ip, "HostPort": px.host_port,
                              "ContainerPort": cport})
        await asyncio.to_thread(driver_of(ep.network_id).publish, ep, ports)
        c["_ports"] = [{**p, "_endpoint": ep.endpoint_id} for p in ports]

    async def rebind(self, c: dict[str, Any]) -> None:
        """At daemon start, for a container still running: bind its ports again."""
        target = {ep["endpoint_id"]: ep for ep in (c.get("_endpoints") or {}).values()}
        for p in c.get("_ports") or []:
            ep = target.get(p.get("_endpoint"))
            if ep is None:
                continue
            px = Proxy(p["Proto"], p["HostIp"], p["HostPort"], proxy_target(ep, p["HostIp"], p["ContainerPort"]))
            try:
                px.bind()
                if self.config.get("userland-proxy", True):
                    await px.start()
            except DockyardError as e:
                log.warning("port %s of %s could not be bound again: %s", p["HostPort"], c["Id"][:12], e)
                continue
            self._proxies.setdefault(c["Id"], []).append(px)

    async def close(self, cid: str) -> None:
        for px in self._proxies.pop(cid, []):
            await px.close()

    async def close_all(self) -> None:
        for cid in list(self._proxies):
            await self.close(cid)
