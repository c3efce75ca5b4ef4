"""Network driver contract: networks, endpoints, and joining containers to them.

A driver is one class registered under the entry-point group ``dockyard.netdrivers``; its
entry-point name equals its ``name`` attribute and is the ``Driver`` of a network.

The daemon owns the *sandbox* (a container's network namespace, a bind-mounted file it creates
before the container's first process runs and removes after it exits) and the *IPAM* (subnets and
addresses, persisted in its state database, so no address is handed out twice even across
restarts). A driver only plumbs: it gets addresses already chosen and a namespace already made.

The order of calls for one container on one network::

    create_endpoint(network_id, endpoint_id, options)   # options carry the address IPAM chose
    join(endpoint, netns_path)                           # before the container's process starts
    publish(endpoint, ports)                             # host ports already reserved by the daemon
    ...
    unpublish(endpoint, ports)
    leave(endpoint, netns_path)                          # the namespace still exists
    delete_endpoint(endpoint)

Every method is called from a worker thread, never concurrently for the same network; raise
:class:`~dockyard.hookspecs.errors.DockyardError` subclasses for user errors.
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
    #: interface name inside the container (``eth0``, ``eth1``... for a second network)
    interface: str = "eth0"
    mtu: int = 0
    #: the IPv6 address, prefix length and gateway, on a network with IPv6 enabled
    ipv6_address: str = ""
    ipv6_prefix_len: int = 0
    ipv6_gateway: str = ""
    #: driver-private data (e.g. the host-side veth name); persisted with the container and
    #: handed back after a daemon restart, so keep it JSON-serialisable
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


class NetDriver(abc.ABC):
    name: ClassVar[str] = ""
    #: how containers attached to this driver's networks get their network namespace:
    #: ``"private"`` (a new namespace the driver configures through :meth:`join`) or ``"host"``
    #: (they share the host's; :meth:`join` is not called).
    namespace: ClassVar[str] = "private"
    #: whether the daemon's IPAM gives this driver's networks a subnet and gateway
    #: (``options["Subnet"]``/``["Gateway"]`` in :meth:`create_network`) and each endpoint an
    #: address (``options["Address"]``, ``["PrefixLen"]``, ``["Gateway"]``,
    #: ``["MacAddress"]`` in :meth:`create_endpoint`).
    needs_ipam: ClassVar[bool] = False
    #: whether users may create more networks of this driver (``network create -d NAME``);
    #: ``host`` and ``none`` have only their predefined network, as in Docker.
    multiple_networks: ClassVar[bool] = True
    #: whether the daemon keeps a predefined network named after the driver (Docker's
    #: ``bridge``, ``host``, ``none``); a driver whose networks need the user's choices (a
    #: parent interface, a subnet) says ``False`` and has only ``network create -d NAME`` ones.
    predefined_network: ClassVar[bool] = True

    def __init__(self, home: str, options: dict[str, Any] | None = None) -> None:
        """``home`` is a private directory for the driver's state. ``options`` holds the daemon's
        network configuration under Docker's key names (``bridge``, ``bip``, ``iptables``,
        ``ip-masq``, ``ip-forward``, ``icc``, ``mtu``); ignore keys you do not use.
        Raise DriverNotSupported if the host cannot run the driver."""
        self.home = home
        self.options = dict(options or {})

    @abc.abstractmethod
    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        """Create a network; return driver data to keep with the network record (shown as the
        network's ``Options``). ``options``: ``Name``, ``Internal`` (no traffic leaves the
        network), ``Default`` (the daemon's predefined network of this driver), ``Options``
        (``-o`` driver options given by the user), plus ``Subnet``/``Gateway`` when
        :attr:`needs_ipam`, and ``IPv6Subnet``/``IPv6Gateway`` (empty unless the network has
        IPv6 enabled: then the gateway goes on the network's side, as the IPv4 one). Also called for every existing network at daemon start (with the
        same id): then make sure the network exists, and do not fail if it does."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Delete a network that has no endpoints."""

    @abc.abstractmethod
    def create_endpoint(self, network_id: str, endpoint_id: str,
                        options: dict[str, Any]) -> Endpoint:
        """Allocate an endpoint on ``network_id``. ``options``: ``Interface`` (its name inside
        the container), ``DriverOpts`` (the request's ``EndpointSettings.DriverOpts``: apply
        those this driver knows; as dockerd's drivers, ignore the others) and, when
        :attr:`needs_ipam`, ``Address``, ``PrefixLen``, ``Gateway`` chosen by the daemon,
        ``IPv6Address``, ``IPv6PrefixLen``, ``IPv6Gateway`` on a network with IPv6 (empty
        otherwise), ``MacAddress`` when the user gave one (``--mac-address``: use it, else
        choose one) and ``LinkLocalIPs`` (extra addresses for the interface,
        ``--link-local-ip``)."""

    @abc.abstractmethod
    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        """Plumb ``endpoint`` into the network namespace at ``netns_path`` (a bind-mounted
        namespace file; its ``lo`` is already up): the interface with its MAC address, its IPv4
        and (when it has one) IPv6 address, IPv6 enabled on it, default routes through the
        gateways unless the network is internal. Called before the container's process starts,
        or while it runs (``network connect``). What join learns (the interface's name and MAC
        address, the gateway, ``data``) may be set on ``endpoint``: the daemon keeps the
        endpoint as join leaves it."""

    @abc.abstractmethod
    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        """Undo :meth:`join` (the namespace may already be gone: do not fail then)."""

    @abc.abstractmethod
    def delete_endpoint(self, endpoint: Endpoint) -> None:
        """Release what :meth:`create_endpoint` allocated."""

    def publish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Publish container ports on the host; return the bindings made.

        Each port is ``{"Proto": "tcp"|"udp", "HostIp": str, "HostPort": int,
        "ContainerPort": int}``; the daemon has already reserved ``HostPort`` (it holds a socket
        bound to it, and runs the userland proxy there when that is enabled), so the driver only
        adds kernel rules (e.g. DNAT) that send traffic to the endpoint. ``HostIp`` may be an
        IPv6 address (``[::1]:8080:80``): its traffic goes to the endpoint's IPv6 address, and
        when it has none only through the daemon's proxy."""
        return []

    def unpublish(self, endpoint: Endpoint, ports: list[dict[str, Any]]) -> None:
        """Remove what :meth:`publish` made for ``ports``."""

    def restore(self, networks: dict[str, dict[str, Any]], endpoints: list[Endpoint],
                published: dict[str, list[dict[str, Any]]]) -> None:
        """Called once at daemon start, after :meth:`create_network` ran for every network
        (``networks``: network id → the options given to create_network). ``endpoints`` are
        those of containers still running; ``published`` maps endpoint id → its ports.
        Remove anything of this driver left by a crash that is not in these (interfaces,
        firewall rules) and re-make what they need."""

    def close(self) -> None:
        """The daemon stops (containers may keep running: leave their plumbing in place)."""

    def status(self) -> list[tuple[str, str]]:
        return []


class PassiveNetDriver(NetDriver):
    """A driver with nothing to plumb: its networks and endpoints are records only (``none``
    and ``host`` are such). Subclasses set :attr:`name`, :attr:`namespace` and :meth:`status`."""

    multiple_networks = False

    def create_network(self, network_id: str, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def delete_network(self, network_id: str) -> None:
        pass

    def create_endpoint(self, network_id: str, endpoint_id: str,
                        options: dict[str, Any]) -> Endpoint:
        return Endpoint(network_id, endpoint_id, interface="")

    def join(self, endpoint: Endpoint, netns_path: str) -> None:
        pass

    def leave(self, endpoint: Endpoint, netns_path: str) -> None:
        pass

    def delete_endpoint(self, endpoint: Endpoint) -> None:
        pass
