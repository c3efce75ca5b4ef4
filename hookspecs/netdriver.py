"""Network driver contract: networks, endpoints, and joining containers to them.

A driver is one class registered under the entry-point group ``dockyard.netdrivers``; its
entry-point name equals its ``name`` attribute and is the ``Driver`` of a network.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass
class Endpoint:
    """A container's attachment to a network."""

    network_id: str
    endpoint_id: str
    ip_address: str = ""
    prefix_len: int = 0
    gateway: str = ""
    mac_address: str = ""


class NetDriver(abc.ABC):
    name: ClassVar[str] = ""
    #: how containers attached to this driver's networks get their network namespace:
    #: ``"private"`` (a new namespace the driver configures through :meth:`join`) or ``"host"``
    #: (they share the host's; :meth:`join` is not called).
    namespace: ClassVar[str] = "private"

    def __init__(self, home: str, options: dict[str, Any] | None = None) -> None:
        """``home`` is a private directory for the driver's state. Raise DriverNotSupported
        if the host cannot run the driver."""
        self.home = home
        self.options = dict(options or {})

    @abc.abstractmethod
    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        """Create a network; return driver data to keep with the network record."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Delete a network that has no endpoints."""

    @abc.abstractmethod
    def create_endpoint(self, network_id: str, endpoint_id: str,
                        options: dict[str, Any]) -> Endpoint:
        """Allocate an endpoint (address, MAC) on ``network_id``."""

    @abc.abstractmethod
    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        """Plumb ``endpoint`` into the network namespace at ``netns_path``."""

    @abc.abstractmethod
    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        """Undo :meth:`join`."""

    @abc.abstractmethod
    def delete_endpoint(self, endpoint: Endpoint) -> None:
        """Release what :meth:`create_endpoint` allocated."""

    def publish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Publish container ports on the host; return the bindings made."""
        return []

    def status(self) -> list[tuple[str, str]]:
        return []
