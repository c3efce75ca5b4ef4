"""The other JSON bodies of API 1.45: networks, volumes, exec and ``/auth`` (moby's
``api/types/network``, ``volume``, ``container.ExecOptions``/``ExecStartOptions``,
``registry.AuthConfig``)."""
from __future__ import annotations

from typing import ClassVar

from msgspec import UNSET

from .containers import NULL_ONLY, ConsoleSize, EndpointSettings
from .types import Body, Empty, Opt, StrList, StrMap


# -- networks ----------------------------------------------------------------------------------
class IPAMPool(Body):
    Subnet: Opt[str] = UNSET
    IPRange: Opt[str] = UNSET
    Gateway: Opt[str] = UNSET
    AuxiliaryAddresses: Opt[StrMap] = UNSET


class IPAM(Body):
    Driver: Opt[str] = UNSET
    Config: Opt[list[IPAMPool]] = UNSET
    Options: Opt[StrMap] = UNSET

    #: Options are kept and shown by network inspect, as dockerd's default IPAM driver does
    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"Driver": ("default",)}


class ConfigReference(Body):
    Network: Opt[str] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"Network": ()}


class NetworkCreate(Body):
    """``POST /networks/create``."""

    Name: Opt[str] = UNSET
    #: always on (dockerd ignores it too since API 1.44)
    CheckDuplicate: Opt[bool] = UNSET
    Driver: Opt[str] = UNSET
    Scope: Opt[str] = UNSET
    Internal: Opt[bool] = UNSET
    #: swarm's notion; a local network is always attachable
    Attachable: Opt[bool] = UNSET
    Ingress: Opt[bool] = UNSET
    ConfigOnly: Opt[bool] = UNSET
    ConfigFrom: Opt[ConfigReference] = UNSET
    IPAM: Opt[IPAM] = UNSET
    EnableIPv6: Opt[bool] = UNSET
    Options: Opt[StrMap] = UNSET
    Labels: Opt[StrMap] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {
        "Scope": ("local",), "Ingress": (), "ConfigOnly": ()}


class NetworkConnect(Body):
    """``POST /networks/{id}/connect``."""

    Container: Opt[str] = UNSET
    EndpointConfig: Opt[EndpointSettings] = UNSET


class NetworkDisconnect(Body):
    """``POST /networks/{id}/disconnect``."""

    Container: Opt[str] = UNSET
    Force: Opt[bool] = UNSET


# -- volumes -----------------------------------------------------------------------------------
class VolumeCreate(Body):
    """``POST /volumes/create``."""

    Name: Opt[str] = UNSET
    Driver: Opt[str] = UNSET
    DriverOpts: Opt[StrMap] = UNSET
    Labels: Opt[StrMap] = UNSET
    ClusterVolumeSpec: Opt[Empty] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"ClusterVolumeSpec": NULL_ONLY}


# -- exec --------------------------------------------------------------------------------------
class ExecCreate(Body):
    """``POST /containers/{id}/exec``."""

    User: Opt[str] = UNSET
    Privileged: Opt[bool] = UNSET
    Tty: Opt[bool] = UNSET
    ConsoleSize: Opt[ConsoleSize] = UNSET
    AttachStdin: Opt[bool] = UNSET
    AttachStderr: Opt[bool] = UNSET
    AttachStdout: Opt[bool] = UNSET
    #: ignored by dockerd as well: detaching is chosen at start
    Detach: Opt[bool] = UNSET
    DetachKeys: Opt[str] = UNSET
    Env: Opt[StrList] = UNSET
    WorkingDir: Opt[str] = UNSET
    #: a Go []string here, not a StrSlice: dockerd refuses a string
    Cmd: Opt[StrList] = UNSET


class ExecStart(Body):
    """``POST /exec/{id}/start``."""

    Detach: Opt[bool] = UNSET
    Tty: Opt[bool] = UNSET
    ConsoleSize: Opt[ConsoleSize] = UNSET


# -- /auth -------------------------------------------------------------------------------------
class AuthConfig(Body):
    """``POST /auth`` (``docker login``)."""

    username: Opt[str] = UNSET
    password: Opt[str] = UNSET
    auth: Opt[str] = UNSET
    #: deprecated, ignored by dockerd too
    email: Opt[str] = UNSET
    serveraddress: Opt[str] = UNSET
    identitytoken: Opt[str] = UNSET
    registrytoken: Opt[str] = UNSET

    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {"auth": (), "registrytoken": ()}
