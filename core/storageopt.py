"""``--storage-opt`` (``HostConfig.StorageOpt``) of a new container: ``size`` is applied by the
graph driver where it can limit a container layer's size (its ``size_limit_unsupported`` is
empty: btrfs qgroups, overlay over a file system with project quotas) and refused elsewhere
with a 400 giving the driver's reason; any other key is refused, as dockerd's drivers do."""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.units import ram_in_bytes


def size_of(host: dict[str, Any], graph: Any) -> int:
    """The size limit asked for (0: none), checked against what ``graph`` can do."""
    opts = host.get("StorageOpt") or {}
    for key in opts:
        if key.lower() != "size":
            raise InvalidParameter(f"HostConfig.StorageOpt: Unknown option {key}")
    text = next((v for k, v in opts.items() if k.lower() == "size"), None)
    if text is None:
        return 0
    try:
        size = ram_in_bytes(str(text))
    except ValueError as e:
        raise InvalidParameter(f"HostConfig.StorageOpt: size: {e}") from None
    if size <= 0:
        raise InvalidParameter(f"HostConfig.StorageOpt: size must be positive: {text}")
    reason = graph.size_limit_unsupported()
    if reason:
        raise InvalidParameter(f"HostConfig.StorageOpt: size: {reason}")
    return size


def create_rw(graph: Any, cid: str, parent: str | None, host: dict[str, Any]) -> None:
    """The container's layer, limited as its ``StorageOpt`` asks (checked by :func:`size_of`)."""
    size = size_of(host, graph)  # refused before any layer is made
    graph.create_rw(cid, parent)
    if size:
        try:
            graph.limit_size(cid, size)
        except BaseException:
            graph.remove(cid)
            raise
