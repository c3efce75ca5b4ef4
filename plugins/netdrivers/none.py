"""The ``none`` network driver: a private network namespace with loopback only.

The daemon creates the namespace (with ``lo`` up) before the container starts; there is nothing
to plumb.
"""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.netdriver import Endpoint, NetDriver


class NoneDriver(NetDriver):
    name = "none"
    namespace = "private"
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
        return [("Interfaces", "lo")]
