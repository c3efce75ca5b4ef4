"""The daemon's metadata, in SQLite (WAL): the one place that speaks SQL.

Blobs are not here: they are content-addressed files (``dockyard.core.blobs``). Each module is
the repository of one domain — meta, containers, images (with tags, repo digests and build
parents), layers (with their blobs), networks with IPAM, volumes, the build cache — with named
methods returning typed records; :class:`State` is all of them on one connection.
"""
from __future__ import annotations

from .buildcache import BuildCacheRepo, CacheMountRow
from .containers import ContainerRepo
from .images import ImageRepo, ImageRow, RepoDigest
from .layers import Layer, LayerBlob, LayerRepo
from .meta import MetaRepo
from .networks import IpamRepo, NetworkRepo
from .schema import SCHEMA_VERSION
from .volumes import VolumeRepo

__all__ = ["State", "SCHEMA_VERSION", "CacheMountRow", "ImageRow", "Layer", "LayerBlob",
           "RepoDigest"]


class State(MetaRepo, ContainerRepo, ImageRepo, LayerRepo, NetworkRepo, IpamRepo, VolumeRepo,
            BuildCacheRepo):
    """Every repository on the one connection of :class:`~.db.Db`."""
