"""The ``host`` network driver: containers share the host's network namespace.

Nothing to plumb: the daemon gives such containers no network namespace of their own and copies
the host's ``/etc/resolv.conf`` and ``/etc/hosts`` entries into them.
"""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.netdriver import Endpoint, NetDriver


class HostDriver(NetDriver):
    name = "host"
    namespace = "host"
    multiple_networks = False

    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def delete_network(self, network_id: str) -> None:
        pass

    def create_endpoint(self, network_id: str, endpoint_id: str, options: dict[str, Any]) -> Endpoint:
        return Endpoint(network_id, endpoint_id, interface="")

    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        pass

    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        pass

    def delete_endpoint(self, endpoint: Endpoint) -> None:
        pass

    def status(self) -> list[tuple[str, str]]:
        return [("Namespace", "host")]
