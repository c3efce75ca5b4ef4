"""What every part of the container service stands on: the records (SQLite, cached), the
in-memory runtime of each container, lookups, events and the exec driver holding a container."""
from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from dockyard.hookspecs.errors import Conflict, InvalidParameter, NotFound
from dockyard.hookspecs.idmap import IDMap

from ..attach import PendingAttach
from .config import name_in_use


class _Runtime:
    """What the daemon keeps in memory for one container."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.prepared = False          # rootfs mounted and the exec driver holds the spec
        self.exit_waiters: list[asyncio.Future[int]] = []
        self.remove_waiters: list[asyncio.Future[int]] = []
        self.watcher: asyncio.Task[None] | None = None
        self.health: asyncio.Task[None] | None = None  # the health check loop, if any
        self.stopping = False
        self.restart_delay = 0.0       # the restart policy's back-off, doubled per quick exit
        self.pending: list[PendingAttach] = []  # attaches answered before it could be prepared


class ServiceBase:
    """The state every part of :class:`~dockyard.core.containers.ContainerService` shares: the
    cache of records (written through to SQLite by :meth:`save`), the runtime of each container
    in this daemon's memory, and the lookups, checks and events the parts all use."""

    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.state = daemon.state
        self.images = daemon.images
        self.graph = daemon.graph
        self.root = os.path.join(daemon.data_root, "containers")
        os.makedirs(self.root, exist_ok=True)
        self._rt: dict[str, _Runtime] = {}
        self._cache: dict[str, dict[str, Any]] = {c["Id"]: c for c in self.state.containers()}

    # -- lookup & persistence -------------------------------------------------------------------
    def mounted_ids(self) -> list[str]:
        """Short ids of the containers whose rootfs is mounted (prepared or running)."""
        return [cid[:12] for cid, rt in self._rt.items() if rt.prepared]

    def drv(self, cid: str) -> Any:  # the exec driver holding container cid (its record names it)
        return self.d.runtimes.of(self._cache.get(cid))

    def rt(self, cid: str) -> _Runtime:
        if cid not in self._rt:
            self._rt[cid] = _Runtime()
        return self._rt[cid]

    def all(self) -> list[dict[str, Any]]:
        return sorted(self._cache.values(), key=lambda c: c["_created"], reverse=True)

    def get(self, ref: str) -> dict[str, Any]:
        """A container by full id, name (with or without ``/``) or unique id prefix."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self._cache:
            return self._cache[ref]
        name = ref if ref.startswith("/") else "/" + ref
        for c in self._cache.values():
            if c["Name"] == name:
                return c
        matches = [c for cid, c in self._cache.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def save(self, c: dict[str, Any]) -> None:
        self.state.put_container(c)
        self._cache[c["Id"]] = c

    # the network service's view of containers (netsettings.ContainerLookup)
    def lookup(self, name_or_id: str) -> dict[str, Any] | None:
        return self._cache.get(name_or_id) or next(
            (c for c in self._cache.values() if c["Name"] in (name_or_id, "/" + name_or_id)), None)

    def set_network_settings(self, c: dict[str, Any], networks: dict[str, Any],
                             settings: dict[str, Any]) -> None:
        c["_networks"], c["NetworkSettings"] = networks, settings
        self.save(c)

    def using_image(self, image_id: str) -> list[dict[str, Any]]:
        return [c for c in self._cache.values() if c["Image"] == image_id]

    @staticmethod
    def public(c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in c.items() if not k.startswith("_")}

    def _peer(self, ref: str, what: str) -> dict[str, Any]:
        """A container another one refers to at create. Missing: a 400, never a 404 — the
        docker CLI answers any 404 from create by pulling the image, and retrying."""
        try:
            return self.get(ref)
        except NotFound:
            raise InvalidParameter(f"cannot {what} {ref}: No such container: {ref}") from None

    def _find_name(self, name: str) -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            return self.get(name)
        return None

    def _event(self, action: str, c: dict[str, Any], **extra: str) -> None:
        """A container event with dockerd's attributes: the container's labels, its image and
        name, then what the action adds (``exitCode``, ``signal``...)."""
        attrs = {**(c["Config"].get("Labels") or {}), "image": c["Config"]["Image"],
                 "name": c["Name"][1:], **extra}
        self.d.event("container", action, c["Id"], attrs)

    def id_map(self, c: dict[str, Any]) -> IDMap:
        """The user-namespace map container ``c`` runs with: the daemon's (``userns-remap``),
        unless it asked for the host's (``--userns=host``)."""
        if c["HostConfig"].get("UsernsMode") == "host":
            return IDMap.identity()
        return self.d.id_map

    def _mark_manually_stopped(self, c: dict[str, Any]) -> None:
        # remembered across daemon restarts: ``unless-stopped`` must not bring it back
        if not c.get("_manually_stopped"):
            c["_manually_stopped"] = True
            self.save(c)

    def _exit_future(self, c: dict[str, Any]) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.rt(c["Id"]).exit_waiters.append(fut)
        return fut

    def _check_name_free(self, full: str) -> None:
        """A 409 when a container holds the name ``full`` (``/name``)."""
        for c in self._cache.values():
            if c["Name"] == full:
                raise name_in_use(full, c["Id"])

    def _check_not_migrating(self) -> None:
        """Refuse what would mount a rootfs while the storage is being migrated."""
        if getattr(self.d, "migrating", False):
            raise Conflict("a storage migration is in progress; try again when it is done")

    def _image_top(self, c: dict[str, Any]) -> tuple[str | None, str | None]:
        """``(chain id, graph cache id)`` of the top layer of the container's image."""
        top = self.images.get(c["Image"])["top_layer"]
        return top, (self.images.layer(top)["cache_id"] if top else None)

