"""User-namespace ID mappings (``userns-remap``), shared by the core, graph and exec drivers.

With remapping on, uid/gid 0..N-1 inside every container are host IDs ``B..B+N-1`` (a range of
``/etc/subuid`` and ``/etc/subgid``). As in Docker, image layers are stored already shifted
(a layer's file owned by 0 is stored owned by ``B``), so a container's root file system needs no
change at run time; layer tars leaving the store (diff, commit, push, export, ``cp``) are shifted
back. Graph drivers receive the map as ``id_map`` and use :meth:`IDMap.to_host` when they write
a layer and :meth:`IDMap.to_container` when they read one; an identity map changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: what the kernel shows for an ID with no mapping (``/proc/sys/kernel/overflowuid``)
OVERFLOW_ID = 65534

Range = tuple[int, int, int]  # (container ID, host ID, size)


def _lookup(ranges: tuple[Range, ...], value: int, frm: int, to: int) -> int | None:
    for r in ranges:
        if r[frm] <= value < r[frm] + r[2]:
            return value - r[frm] + r[to]
    return None


@dataclass(frozen=True)
class IDMap:
    """Ordered ``(container ID, host ID, size)`` ranges for uids and for gids. Empty: identity."""

    uids: tuple[Range, ...] = ()
    gids: tuple[Range, ...] = ()

    @classmethod
    def identity(cls) -> "IDMap":
        return cls()

    @property
    def is_identity(self) -> bool:
        return not self.uids and not self.gids

    # -- single IDs -----------------------------------------------------------------------------
    def host_uid(self, uid: int) -> int:
        """The host uid of container uid ``uid``; ValueError if it has none."""
        if not self.uids:
            return uid
        out = _lookup(self.uids, uid, 0, 1)
        if out is None:
            raise ValueError(f"container uid {uid} cannot be mapped to a host uid")
        return out

    def host_gid(self, gid: int) -> int:
        if not self.gids:
            return gid
        out = _lookup(self.gids, gid, 0, 1)
        if out is None:
            raise ValueError(f"container gid {gid} cannot be mapped to a host gid")
        return out

    def container_uid(self, uid: int) -> int:
        """The container uid of host uid ``uid``; unmapped IDs show as the overflow ID (65534),
        as the kernel shows them inside the namespace."""
        if not self.uids:
            return uid
        out = _lookup(self.uids, uid, 1, 0)
        return OVERFLOW_ID if out is None else out

    def container_gid(self, gid: int) -> int:
        if not self.gids:
            return gid
        out = _lookup(self.gids, gid, 1, 0)
        return OVERFLOW_ID if out is None else out

    # -- pairs ----------------------------------------------------------------------------------
    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        return self.host_uid(uid), self.host_gid(gid)

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        return self.container_uid(uid), self.container_gid(gid)

    @property
    def root(self) -> tuple[int, int]:
        """The host ``(uid, gid)`` of the containers' root."""
        return self.to_host(0, 0)

    # -- forms ----------------------------------------------------------------------------------
    def proc_lines(self, which: str) -> bytes:
        """The text to write to ``/proc/<pid>/uid_map`` (``which="uid"``) or ``gid_map``."""
        ranges = self.uids if which == "uid" else self.gids
        return "".join(f"{c} {h} {n}\n" for c, h, n in ranges).encode()

    def to_spec(self) -> dict[str, Any]:
        """OCI runtime-spec ``linux.uidMappings`` / ``linux.gidMappings``."""
        def one(ranges: tuple[Range, ...]) -> list[dict[str, int]]:
            return [{"containerID": c, "hostID": h, "size": n} for c, h, n in ranges]
        return {"uidMappings": one(self.uids), "gidMappings": one(self.gids)}

    @classmethod
    def from_spec(cls, linux: dict[str, Any]) -> "IDMap":
        def one(items: Any) -> tuple[Range, ...]:
            return tuple((int(i["containerID"]), int(i["hostID"]), int(i["size"]))
                         for i in items or ())
        return cls(one(linux.get("uidMappings")), one(linux.get("gidMappings")))

    def __str__(self) -> str:
        if self.is_identity:
            return "identity"
        return f"uids {list(self.uids)} gids {list(self.gids)}"
