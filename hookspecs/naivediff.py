"""The diff side for graph drivers that only know how to mount: the :class:`NaiveDiff` mixin.

Learned from moby's ``daemon/graphdriver/fsdiff.go``; written from scratch. :class:`NaiveDiff`
gives ``diff``, ``changes``, ``apply_diff`` and ``diff_size`` to any driver with ``get``/``put``:
it compares the mounted trees of a layer and its parent. The pieces it is made of are the driver
toolkit's: :mod:`~dockyard.hookspecs.host.changes` (the ``docker diff`` walk),
:mod:`~dockyard.hookspecs.host.layertar` (the layer tar writer) and
:func:`~dockyard.hookspecs.host.tarsafe.apply_layer_tar` (unpacking a layer without ever writing
outside it).

With ``userns-remap`` the driver's ``id_map`` (:class:`~dockyard.hookspecs.idmap.IDMap`) goes to
both tar functions: tar headers carry container IDs, the disk holds host IDs.
"""
from __future__ import annotations

from typing import IO, Any

from .host.changes import Change, changes_size, compute_changes
from .host.layertar import stream_from_writer, write_layer_tar
from .host.tarsafe import apply_layer_tar

__all__ = ["NaiveDiff"]


class NaiveDiff:
    """``diff``/``changes``/``apply_diff``/``diff_size`` for a driver that only mounts.

    Put it first in the bases: ``class MyDriver(NaiveDiff, GraphDriver)``. It relies only on
    ``self.get(id) -> path`` and ``self.put(id)``, and passes ``self.id_map`` (when there is one)
    to the tar helpers: the diff carries container IDs, an applied layer is stored with host IDs.

    :meth:`diff` returns the read end of a pipe filled by a thread while it walks the mounted
    layer: the tar streams without touching disk or memory in full (a layer may be gigabytes),
    and the first bytes flow at once (a digest can be computed as it goes). The layer stays
    mounted until the stream is read to the end or closed; an error in the writer is raised by
    ``read`` at the end of the stream instead of a silently short tar.
    """

    def changes(self, id: str, parent: str | None) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self._naive_changes(id, parent)]

    def _naive_changes(self, id: str, parent: str | None) -> list[Change]:
        new = self.get(id)  # type: ignore[attr-defined]
        try:
            if parent is None:
                return compute_changes(new, None)
            old = self.get(parent)  # type: ignore[attr-defined]
            try:
                return compute_changes(new, old)
            finally:
                self.put(parent)  # type: ignore[attr-defined]
        finally:
            self.put(id)  # type: ignore[attr-defined]

    def diff(self, id: str, parent: str | None) -> IO[bytes]:
        changes = self._naive_changes(id, parent)
        root = self.get(id)  # type: ignore[attr-defined]
        try:
            id_map = getattr(self, "id_map", None)
            return stream_from_writer(lambda out: write_layer_tar(out, root, changes, id_map),
                                      on_done=lambda: self.put(id))  # type: ignore[attr-defined]
        except BaseException:
            self.put(id)  # type: ignore[attr-defined]
            raise

    def diff_size(self, id: str, parent: str | None) -> int:
        changes = self._naive_changes(id, parent)
        root = self.get(id)  # type: ignore[attr-defined]
        try:
            return changes_size(root, changes)
        finally:
            self.put(id)  # type: ignore[attr-defined]

    def apply_diff(self, id: str, parent: str | None, stream: IO[bytes]) -> int:
        root = self.get(id)  # type: ignore[attr-defined]
        try:
            return apply_layer_tar(root, stream, id_map=getattr(self, "id_map", None))
        finally:
            self.put(id)  # type: ignore[attr-defined]
