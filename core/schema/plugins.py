"""A managed plugin's ``config.json`` (``docker plugin create``), after moby's
``api/types.PluginConfig``: checked like a request body (a wrong type is a 400 naming its path;
keys match in any case, as Go's decoder), then shaped by :func:`go_shape` as dockerd shows it.
"""
from __future__ import annotations

from typing import Any

from msgspec import UNSET

from .types import Body, Opt, StrList, Uint32


class PluginEnv(Body):
    Name: Opt[str] = UNSET
    Description: Opt[str] = UNSET
    Settable: Opt[StrList] = UNSET
    Value: Opt[str] = UNSET


class PluginArgs(Body):
    Name: Opt[str] = UNSET
    Description: Opt[str] = UNSET
    Settable: Opt[StrList] = UNSET
    Value: Opt[StrList] = UNSET


class PluginMount(Body):
    Name: Opt[str] = UNSET
    Description: Opt[str] = UNSET
    Settable: Opt[StrList] = UNSET
    Source: Opt[str] = UNSET
    Destination: Opt[str] = UNSET
    Type: Opt[str] = UNSET
    Options: Opt[StrList] = UNSET


class PluginDevice(Body):
    Name: Opt[str] = UNSET
    Description: Opt[str] = UNSET
    Settable: Opt[StrList] = UNSET
    Path: Opt[str] = UNSET


class PluginInterface(Body):
    #: "docker.volumedriver/1.0" ...
    Types: Opt[StrList] = UNSET
    Socket: Opt[str] = UNSET
    ProtocolScheme: Opt[str] = UNSET


class PluginLinux(Body):
    Capabilities: Opt[StrList] = UNSET
    AllowAllDevices: Opt[bool] = UNSET
    Devices: Opt[list[PluginDevice]] = UNSET


class PluginNetwork(Body):
    Type: Opt[str] = UNSET


class PluginUser(Body):
    UID: Opt[Uint32] = UNSET
    GID: Opt[Uint32] = UNSET


class PluginRootfs(Body, rename={"Type": "type", "DiffIds": "diff_ids"}):
    Type: Opt[str] = UNSET
    DiffIds: Opt[StrList] = UNSET


class PluginConfig(Body):
    """``config.json`` of a plugin."""

    Description: Opt[str] = UNSET
    Documentation: Opt[str] = UNSET
    Interface: Opt[PluginInterface] = UNSET
    Entrypoint: Opt[StrList] = UNSET
    WorkDir: Opt[str] = UNSET
    User: Opt[PluginUser] = UNSET
    Network: Opt[PluginNetwork] = UNSET
    Linux: Opt[PluginLinux] = UNSET
    PropagatedMount: Opt[str] = UNSET
    IpcHost: Opt[bool] = UNSET
    PidHost: Opt[bool] = UNSET
    Mounts: Opt[list[PluginMount]] = UNSET
    Env: Opt[list[PluginEnv]] = UNSET
    Args: Opt[PluginArgs] = UNSET
    DockerVersion: Opt[str] = UNSET
    rootfs: Opt[PluginRootfs] = UNSET


def interface_type(text: str) -> str:
    """A ``prefix.capability/version`` string as dockerd's ``PluginInterfaceType`` reads and
    writes it back (its parser's quirks included: the prefix ends at the last ``.`` before
    the ``/``)."""
    cut = text.find("/")
    version_at = len(text) if cut < 0 else cut
    prefix_at = max((i for i, ch in enumerate(text[:version_at]) if ch == "."), default=0)
    version = text[version_at + 1:] if version_at < len(text) else ""
    return f"{text[:prefix_at]}.{text[prefix_at + 1:version_at]}/{version}"


def capability(text: str) -> str:
    """The capability of an interface type (``volumedriver`` of ``docker.volumedriver/1.0``)."""
    return interface_type(text).split(".", 1)[1].rsplit("/", 1)[0]


def _setting(given: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    return {k: given.get(k, default) if given.get(k) is not None else default
            for k, default in fields.items()}


def go_shape(cfg: dict[str, Any]) -> dict[str, Any]:
    """The checked ``config.json`` with every field Go's ``PluginConfig`` writes (zero values
    included, ``null`` for absent lists), in its order."""
    desc = {"Description": "", "Name": "", "Settable": None}
    iface = cfg.get("Interface") or {}
    linux = cfg.get("Linux") or {}
    out: dict[str, Any] = {
        "Args": _setting(cfg.get("Args") or {}, {**desc, "Value": None}),
        "Description": cfg.get("Description") or "",
        "Documentation": cfg.get("Documentation") or "",
        "Entrypoint": cfg.get("Entrypoint"),
        "Env": [_setting(e or {}, {**desc, "Value": None}) for e in cfg["Env"]]
        if cfg.get("Env") is not None else None,
        "Interface": {**({"ProtocolScheme": iface["ProtocolScheme"]}
                         if iface.get("ProtocolScheme") else {}),
                      "Socket": iface.get("Socket") or "",
                      "Types": [interface_type(t) for t in iface["Types"]]
                      if iface.get("Types") is not None else None},
        "IpcHost": bool(cfg.get("IpcHost")),
        "Linux": {"AllowAllDevices": bool(linux.get("AllowAllDevices")),
                  "Capabilities": linux.get("Capabilities"),
                  "Devices": [_setting(d or {}, {**desc, "Path": None}) for d in linux["Devices"]]
                  if linux.get("Devices") is not None else None},
        "Mounts": [_setting(m or {}, {**desc, "Destination": "", "Options": None, "Source": None,
                                      "Type": ""}) for m in cfg["Mounts"]]
        if cfg.get("Mounts") is not None else None,
        "Network": {"Type": (cfg.get("Network") or {}).get("Type") or ""},
        "PidHost": bool(cfg.get("PidHost")),
        "PropagatedMount": cfg.get("PropagatedMount") or "",
        "WorkDir": cfg.get("WorkDir") or "",
    }
    user = cfg.get("User") or {}
    out["User"] = {k: user[k] for k in ("GID", "UID") if user.get(k)}  # omitempty
    if cfg.get("DockerVersion"):
        out["DockerVersion"] = cfg["DockerVersion"]
    return out
