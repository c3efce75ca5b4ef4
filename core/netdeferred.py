"""A container's networks as create records them and start resolves them.

As dockerd (``updateContainerNetworkSettings``), create does not need a user-defined network to
exist yet: compose creates a service's container before its project's network. Such a network's
endpoint settings are kept as sent, marked :data:`DEFERRED`, and looked up at start, which
answers dockerd's 404 ``network NAME not found`` until it exists and checks the settings then.
"""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.errors import InvalidParameter, NotFound

#: an endpoint config's mark: its network did not exist at create; looked up at start
DEFERRED = "_deferred"


def at_create(svc: Any, network: dict[str, Any] | None, mode: str, primary: dict[str, Any],
              others: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's networks (primary first): name → endpoint settings, checked where the
    network exists, kept as sent where it does not (``network`` None: the primary)."""
    nets = {mode: {**primary, DEFERRED: True}} if network is None else \
        {network["Name"]: svc.endpoint_config(network, primary)}
    for key, cfg in others.items():
        net = _lookup(svc, key)
        nets[net["Name"] if net else key] = svc.endpoint_config(net, cfg) if net else \
            {**(cfg or {}), DEFERRED: True}
    check_host_alone(svc, nets)
    return nets


def _lookup(svc: Any, ref: str) -> dict[str, Any] | None:
    try:
        return svc.get(ref)  # type: ignore[no-any-return]
    except NotFound:
        return None


def check_host_alone(svc: Any, nets: dict[str, Any]) -> None:
    known = [svc.networks[n] for n in nets if n in svc.networks]
    if len(nets) > 1 and any(svc._traits(n["Driver"]).namespace == "host" for n in known):
        raise InvalidParameter("container cannot be connected to host network and another")


def at_start(svc: Any, c: dict[str, Any]) -> None:
    """Resolve the container's deferred networks in place (NotFound while one is missing)."""
    nets = svc.container_networks(c)
    if not any(cfg.get(DEFERRED) for cfg in nets.values()):
        return
    out = {}
    for name, cfg in nets.items():
        if cfg.get(DEFERRED):
            net = svc.get(name)
            cfg = svc.endpoint_config(net, {k: v for k, v in cfg.items() if k != DEFERRED})
            name = net["Name"]
        out[name] = cfg
    check_host_alone(svc, out)
    c["_networks"] = out
    c["NetworkSettings"] = svc.settings_for(c)
