"""Registry backend contract: anything that holds images by reference.

Pull copies from a backend into the local store; push copies the other way; ``dockyard registry
serve`` exposes any backend over the Distribution HTTP API. Registered under the entry-point group
``dockyard.registries``.
"""
from __future__ import annotations

import abc
from typing import IO, Any, ClassVar


class RegistryBackend(abc.ABC):
    name: ClassVar[str] = ""

    def __init__(self, location: str, options: dict[str, Any] | None = None) -> None:
        self.location = location
        self.options = dict(options or {})

    @abc.abstractmethod
    def resolve(self, ref: str) -> dict[str, Any]:
        """The OCI descriptor (``mediaType``, ``digest``, ``size``) that ``ref`` points at."""

    @abc.abstractmethod
    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes]:
        """``(media_type, raw bytes)`` of a manifest by tag or digest."""

    @abc.abstractmethod
    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        """Store a manifest; return its digest."""

    @abc.abstractmethod
    def get_blob(self, repo: str, digest: str) -> IO[bytes]:
        """A stream of the blob; the caller verifies the digest."""

    @abc.abstractmethod
    def put_blob(self, repo: str, digest: str, stream: IO[bytes]) -> None:
        """Store a blob, verifying that its content hashes to ``digest``."""

    @abc.abstractmethod
    def tags(self, repo: str) -> list[str]: ...

    @abc.abstractmethod
    def catalog(self) -> list[str]: ...

    @abc.abstractmethod
    def delete(self, repo: str, ref: str) -> None: ...
