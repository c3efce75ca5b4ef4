"""Registry backend contract: anything that holds images by reference.

Pull copies from a backend into the local store; push copies the other way; ``docker save`` /
``load`` are a push to / pull from the ``docker-archive`` backend; ``dockyard registry serve``
exposes any backend over the Distribution HTTP API. Registered under the entry-point group
``dockyard.registries``; a backend is built as ``Backend(location, options)``:

* ``distribution``: ``location`` is a registry host (``127.0.0.1:5000``, ``docker.io``), or
  the URL of one endpoint (``http://127.0.0.1:5000``: a mirror); options ``auth``
  (``{"username","password"}`` or ``{"identitytoken"}``), ``insecure`` (bool), ``mirrors``
  (list of URLs: Docker Hub's pull mirrors), ``ca`` (a CA bundle path).
* ``oci-layout``: ``location`` is a directory (created on the first write).
* ``docker-archive``: ``location`` is a tar file; option ``mode`` ``"r"`` (default) or ``"w"``.
* ``filesystem``: ``location`` is the root directory of the registry server's storage.

Every method is synchronous and may be called from worker threads (several blobs of one pull are
fetched in parallel, each in its own thread): a backend must be safe for concurrent calls of
``get_blob``/``put_blob``/``has_blob``. Errors are dockyard's: :class:`NotFound` for an unknown
repository, manifest or blob; :class:`InvalidParameter` for content that does not match its
digest; :class:`DockyardError` with a message for anything else (network, auth).

``repo`` is always a repository path within the backend (``library/busybox``), never with the
host; ``ref`` is a tag or a ``sha256:`` digest.
"""
from __future__ import annotations

import abc
import hashlib
from typing import IO, Any, ClassVar

from .errors import InvalidParameter

# -- media types --------------------------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

#: manifests of one image
IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
#: manifests that list other manifests, one per platform
INDEX_MANIFESTS = (DOCKER_MANIFEST_LIST, OCI_INDEX)
#: what a client accepts when it asks for a manifest
MANIFEST_ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
#: layer media types this project can unpack
LAYER_TYPES = (DOCKER_LAYER, DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", DOCKER_FOREIGN_LAYER)


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """``digest`` if it is a well-formed ``sha256:<64 hex>``; else InvalidParameter."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidParameter(f"invalid digest {digest!r}")
    return digest


class VerifyingReader:
    """Wraps a stream; at its end raises :class:`InvalidParameter` if the bytes read do not hash
    to ``digest`` or do not add up to ``size`` (when given). Nothing past ``size`` is read."""

    def __init__(self, raw: IO[bytes], digest: str, size: int | None = None, what: str = "blob") -> None:
        self.raw, self.digest, self.size, self.what = raw, check_digest(digest), size, what
        self.h = hashlib.sha256()
        self.n = 0
        self.done = False

    def read(self, size: int = -1) -> bytes:
        if self.done:
            return b""
        if self.size is not None:
            left = self.size - self.n
            size = left if size < 0 else min(size, left)
            data = self.raw.read(size) if size > 0 else b""
        else:
            data = self.raw.read(size)
        self.h.update(data)
        self.n += len(data)
        if not data or (self.size is not None and self.n >= self.size):
            self._finish()
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def _finish(self) -> None:
        self.done = True
        if self.size is not None and self.n != self.size:
            raise InvalidParameter(f"{self.what} {self.digest}: truncated, got {self.n} of {self.size} bytes")
        actual = "sha256:" + self.h.hexdigest()
        if actual != self.digest:
            raise InvalidParameter(f"{self.what} {self.digest}: digest mismatch, content is {actual}")

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close:
            close()


class RegistryBackend(abc.ABC):
    """One place holding images: a remote registry, a directory, an archive, a server's store."""

    name: ClassVar[str] = ""
    #: the image-transport name (as skopeo spells them) this backend serves: ``docker`` (a
    #: registry reference), ``oci`` (a layout directory), ``docker-archive``, ``dir``...; the
    #: core finds backends by transport, never by name
    transport: ClassVar[str] = ""
    #: push writes OCI media types only (an OCI image layout)
    wants_oci: ClassVar[bool] = False
    #: push writes layers as plain tars whose digest is the diff id (``docker save``'s format)
    wants_uncompressed: ClassVar[bool] = False

    def __init__(self, location: str, options: dict[str, Any] | None = None) -> None:
        self.location = location
        self.options = dict(options or {})

    def pull_sources(self) -> list["RegistryBackend"]:
        """Where images of this backend are read from for a pull (or a distribution inspect),
        in order: a registry's mirrors, then the registry itself. The caller tries each in
        turn and moves to the next when one fails (the whole pull again), as dockerd falls
        back from a mirror to the registry; pushes and logins use the backend itself. The
        default is the backend alone."""
        return [self]

    def images(self) -> list[tuple[str, str]]:
        """Every ``(repo, ref)`` the backend holds (``load`` copies them all). The default walks
        :meth:`catalog` and :meth:`tags`; a backend holding untagged images adds them by digest."""
        return [(repo, tag) for repo in self.catalog() for tag in self.tags(repo)]

    @abc.abstractmethod
    def resolve(self, repo: str, ref: str) -> dict[str, Any]:
        """The OCI descriptor (``mediaType``, ``digest``, ``size``) of the manifest ``ref``
        (a tag or a digest) names in ``repo``. NotFound if there is none."""

    @abc.abstractmethod
    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes]:
        """``(media_type, raw bytes)`` of a manifest (or index) by tag or digest. The caller
        verifies the bytes against the digest it asked for (or the resolved one)."""

    @abc.abstractmethod
    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        """Store a manifest under tag (or digest) ``ref``; every blob it names must already be
        stored. Return its digest."""

    def has_blob(self, repo: str, digest: str) -> int | None:
        """The size of the blob if the backend holds it (for ``repo``), else None. The default
        says "unknown" (None): callers then upload."""
        return None

    @abc.abstractmethod
    def get_blob(self, repo: str, digest: str) -> IO[bytes]:
        """A readable stream of the blob (close it when done); the caller verifies the digest
        (wrap it in :class:`VerifyingReader`). NotFound if the backend has no such blob."""

    @abc.abstractmethod
    def put_blob(self, repo: str, digest: str, stream: IO[bytes], size: int | None = None) -> None:
        """Store a blob read from ``stream``, verifying that its content hashes to ``digest``;
        on a mismatch raise InvalidParameter and keep nothing."""

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Make a blob of ``from_repo`` available in ``repo`` without copying it (the
        Distribution API's cross-repository mount). True if done; the default cannot."""
        return False

    @abc.abstractmethod
    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo``, sorted. NotFound for an unknown repository."""

    @abc.abstractmethod
    def catalog(self) -> list[str]:
        """Every repository the backend holds, sorted."""

    @abc.abstractmethod
    def delete(self, repo: str, ref: str) -> None:
        """Delete a manifest by digest (every tag pointing at it goes too) or a tag by name."""

    def close(self) -> None:
        """Finish writing (an archive is completed here) and release resources."""
