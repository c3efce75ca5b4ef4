"""Graph driver contract: read-only image layers and copy-on-write container layers.

Learned from moby's ``daemon/graphdriver`` (``ProtoDriver`` + ``DiffDriver``): a small core that
knows how to create and mount layers, and a diff side that a driver may take from the
:class:`NaiveDiff` mixin when it only knows how to mount.

A driver is one class registered under the entry-point group ``dockyard.graphdrivers``; its
entry-point name equals its ``name`` attribute and is what users write as ``storage-driver``.
Methods are synchronous (file-system work); the daemon calls them from worker threads.
"""
from __future__ import annotations

import abc
from typing import IO, Any, ClassVar

from .idmap import IDMap


class GraphDriver(abc.ABC):
    #: the entry-point name, also the value users give to ``--storage-driver``
    name: ClassVar[str] = ""
    #: with no ``storage-driver`` configured and no data-root already holding a driver's data,
    #: the daemon tries the installed drivers highest priority first and keeps the first whose
    #: constructor does not raise DriverNotSupported (dockyard's own: overlay 50, btrfs 40,
    #: fuse-overlayfs 30, vfs 10; drivers that need special set-up rank 0)
    priority: ClassVar[int] = 0
    #: documented departures from full POSIX semantics that the conformance suite tolerates:
    #: ``"hardlink-copy-up"``: writing one name of a hard-linked file of a parent layer unlinks
    #: it from its other names (overlayfs without ``index=on``, as Docker's overlay2);
    #: ``"hardlinks-in-lower"``: hard links of parent layers show as separate inodes with the
    #: right link count (fuse-overlayfs)
    limitations: ClassVar[frozenset[str]] = frozenset()
    #: the file-system type ``home`` must be on (``"btrfs"``...), or ``None``: the conformance
    #: suite then runs the driver on a loop-mounted file system of that type it makes itself
    required_fs: ClassVar[str | None] = None
    #: where :meth:`limit_size` works: ``(fs type, mkfs options, mount options)`` of a file
    #: system for home; the conformance suite runs the size-limit test on a loop-mounted one
    #: (``None``: the driver limits no size)
    size_limit_fs: ClassVar[tuple[str, tuple[str, ...], str] | None] = None

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        """``home`` is this driver's own directory (``<data-root>/<name>``); create it if needed.

        ``options`` are the ``storage-opts`` meant for this driver, ``key=value`` parsed into a
        dict. Raise :class:`~dockyard.hookspecs.errors.DriverNotSupported` naming the missing kernel
        feature when this host cannot run the driver, and
        :class:`~dockyard.hookspecs.errors.InvalidParameter` for an unknown option.

        ``id_map`` (``userns-remap``) is the :class:`~dockyard.hookspecs.idmap.IDMap` between the
        IDs in layer tars (container IDs) and the IDs stored on disk (host IDs); kept as
        ``self.id_map``, the identity when not given. With a non-identity map a driver:

        * stores layers shifted: :meth:`apply_diff` chowns every entry to
          ``id_map.to_host(uid, gid)`` of its tar header (an ID without a mapping is refused
          with InvalidParameter), and directories it makes on its own (a layer's root, parents
          missing from the tar) are owned by ``id_map.root``;
        * shifts back what leaves it: :meth:`diff` writes ``id_map.to_container(st_uid, st_gid)``
          into the tar headers (unmapped host IDs as 65534);
        * leaves the root of a container's view (:meth:`create_rw`) owned by ``id_map.root``,
          so root in the user namespace can create files in ``/``.

        The helpers of :mod:`dockyard.hookspecs.naivediff` (and the :class:`NaiveDiff` mixin,
        which passes ``self.id_map``) do the shifting. The core passes ``id_map=`` only when
        remapping is on, so a third-party driver whose constructor still takes ``(home,
        options)`` keeps working, without remapping; one that takes ``id_map`` must pass it on
        to this constructor.
        """
        self.home = home
        self.options = dict(options or {})
        self.id_map = id_map or IDMap.identity()

    # -- the core ------------------------------------------------------------------------------
    @abc.abstractmethod
    def create(self, id: str, parent: str | None) -> None:
        """Create read-only layer ``id`` on top of ``parent`` (``None`` for a base layer)."""

    def create_rw(self, id: str, parent: str | None) -> None:
        """Create the writable layer of a container on top of ``parent``."""
        self.create(id, parent)

    @abc.abstractmethod
    def remove(self, id: str) -> None:
        """Remove layer ``id``. NotFound if it does not exist."""

    @abc.abstractmethod
    def get(self, id: str) -> str:
        """Mount layer ``id`` (with all its parents) and return the path of its root. Reference
        counted: every ``get`` needs a matching :meth:`put`."""

    @abc.abstractmethod
    def put(self, id: str) -> None:
        """Release one reference taken by :meth:`get`; unmount at zero."""

    @abc.abstractmethod
    def exists(self, id: str) -> bool:
        """Whether layer ``id`` exists."""

    def ids(self) -> list[str]:
        """Every layer this driver holds: the ids given to :meth:`create`/:meth:`create_rw` and
        not removed since, whole layers only (never the temporary names of layers being made or
        removed). The daemon calls it at start-up and removes, with :meth:`remove`, the layers
        that none of its records references: what a crash left between making a layer and
        recording it. Optional: this default raises NotImplementedError, and the daemon then
        skips that clean-up for the driver (and says so in its log)."""
        raise NotImplementedError(f"{self.name or type(self).__name__} cannot list its layers")

    # -- size limits (``--storage-opt size=``) -------------------------------------------------
    def size_limit_unsupported(self) -> str:
        """Why :meth:`limit_size` cannot work with this driver's home here (the daemon refuses
        ``--storage-opt size=`` with a 400 giving it), or ``""`` when it can."""
        return f"--storage-opt size is not supported by the {self.name} storage driver"

    def limit_size(self, id: str, size: int) -> None:
        """Limit container layer ``id``, just made by :meth:`create_rw`, to ``size`` bytes: a
        write inside it past the limit fails with EDQUOT or ENOSPC. Called only when
        :meth:`size_limit_unsupported` is ``""``; the limit goes when the layer is removed."""
        raise NotImplementedError(self.size_limit_unsupported())

    def status(self) -> list[tuple[str, str]]:
        """``(key, value)`` lines for ``info`` (``Driver Status``)."""
        return []

    def metadata(self, id: str) -> dict[str, str]:
        """Low-level details of ``id`` for ``inspect``'s ``GraphDriver.Data``."""
        return {}

    def cleanup(self) -> None:
        """Unmount everything this driver mounted; called when the daemon stops."""

    # -- the diff side -------------------------------------------------------------------------
    @abc.abstractmethod
    def diff(self, id: str, parent: str | None) -> IO[bytes]:
        """An uncompressed tar stream of the changes of ``id`` against ``parent``, with OCI
        whiteouts (``.wh.<name>`` for a deletion, ``.wh..wh..opq`` for an opaque directory)."""

    @abc.abstractmethod
    def changes(self, id: str, parent: str | None) -> list[dict[str, Any]]:
        """``[{"Path": "/x", "Kind": 0|1|2}]`` (modified, added, deleted) as ``docker diff``."""

    @abc.abstractmethod
    def apply_diff(self, id: str, parent: str | None, stream: IO[bytes]) -> int:
        """Apply an uncompressed layer tar to ``id`` and return the unpacked size in bytes.

        Entries whose path escapes the layer (``..``, absolute links followed, hard links to
        outside) are refused with InvalidParameter and nothing outside the layer is written."""

    @abc.abstractmethod
    def diff_size(self, id: str, parent: str | None) -> int:
        """The size in bytes of the changes of ``id`` against ``parent``."""
