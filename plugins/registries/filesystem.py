"""Storage for ``dockyard registry serve``: a directory of blobs and per-repository links.

::

    ROOT/blobs/sha256/<hex>                           every blob and manifest, content-addressed
    ROOT/repositories/<repo>/_manifests/<hex>         a manifest of this repo (holds its media type)
    ROOT/repositories/<repo>/_tags/<tag>              the digest the tag points at
    ROOT/repositories/<repo>/_layers/<hex>            a blob linked into this repo

A blob is visible in a repository only once linked there (pushed or mounted), as in
Distribution; the bytes are shared. Every write is temp file + verify + rename.
"""
from __future__ import annotations

import io
import json
import os
import re
from typing import IO, Any

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.errors import InvalidParameter, NotFound
from dockyard.hookspecs.registry import RegistryBackend

from .ocilayout import store_blob, write_atomic

_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


class FilesystemBackend(RegistryBackend):
    name = "filesystem"
    transport = "dir-registry"

    def __init__(self, location: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        self.root = location
        os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "repositories"), exist_ok=True)

    def _repo(self, repo: str) -> str:
        if not _REPO.match(repo):
            raise InvalidParameter(f"invalid repository name {repo!r}")
        return os.path.join(self.root, "repositories", repo)

    def _blob(self, digest: str) -> str:
        mt.check_digest(digest)
        return os.path.join(self.root, "blobs", "sha256", digest[7:])

    def _link(self, repo: str, kind: str, name: str, content: bytes) -> None:
        d = os.path.join(self._repo(repo), kind)
        os.makedirs(d, exist_ok=True)
        write_atomic(os.path.join(d, name), content)

    def _linked(self, repo: str, kind: str, name: str) -> bytes | None:
        try:
            with open(os.path.join(self._repo(repo), kind, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def resolve(self, repo: str, ref: str) -> dict[str, Any]:
        if ref.startswith("sha256:"):
            digest = mt.check_digest(ref)
        else:
            if not _TAG.match(ref):
                raise InvalidParameter(f"invalid tag {ref!r}")
            raw = self._linked(repo, "_tags", ref)
            if raw is None:
                raise NotFound(f"manifest unknown: {repo}:{ref}")
            digest = raw.decode().strip()
        media = self._linked(repo, "_manifests", digest[7:])
        if media is None or not os.path.exists(self._blob(digest)):
            raise NotFound(f"manifest unknown: {repo}@{digest}")
        return {"mediaType": media.decode(), "digest": digest, "size": os.path.getsize(self._blob(digest))}

    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes]:
        desc = self.resolve(repo, ref)
        with open(self._blob(desc["digest"]), "rb") as f:
            return desc["mediaType"], f.read()

    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        digest = mt.sha256_of(data)
        if ref.startswith("sha256:") and ref != digest:
            raise InvalidParameter(f"manifest digest {digest} does not match {ref}")
        try:
            doc = json.loads(data)
        except ValueError:
            raise InvalidParameter("manifest invalid: not JSON") from None
        wanted = [doc.get("config")] + list(doc.get("layers") or [])
        for d in wanted:
            if d and self.has_blob(repo, d.get("digest", "")) is None:
                raise NotFound(f"blob unknown to registry: {d.get('digest')}")
        for d in doc.get("manifests") or []:
            if self._linked(repo, "_manifests", mt.check_digest(d.get("digest", ""))[7:]) is None:
                raise NotFound(f"manifest unknown: {d.get('digest')}")
        store_blob(self.root, digest, io.BytesIO(data))
        self._link(repo, "_manifests", digest[7:], media_type.encode())
        if not ref.startswith("sha256:"):
            if not _TAG.match(ref):
                raise InvalidParameter(f"invalid tag {ref!r}")
            self._link(repo, "_tags", ref, digest.encode())
        return digest

    def has_blob(self, repo: str, digest: str) -> int | None:
        try:
            mt.check_digest(digest)
        except InvalidParameter:
            return None
        if self._linked(repo, "_layers", digest[7:]) is None and \
                self._linked(repo, "_manifests", digest[7:]) is None:
            return None
        try:
            return os.path.getsize(self._blob(digest))
        except FileNotFoundError:
            return None

    def get_blob(self, repo: str, digest: str) -> IO[bytes]:
        if self.has_blob(repo, digest) is None:
            raise NotFound(f"blob unknown to registry: {digest}")
        return open(self._blob(digest), "rb")

    def put_blob(self, repo: str, digest: str, stream: IO[bytes], size: int | None = None) -> None:
        self._repo(repo)
        if not os.path.exists(self._blob(digest)):
            store_blob(self.root, digest, stream, size)
        self._link(repo, "_layers", digest[7:], b"")

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        if self.has_blob(from_repo, digest) is None:
            return False
        self._link(repo, "_layers", digest[7:], b"")
        return True

    def tags(self, repo: str) -> list[str]:
        d = os.path.join(self._repo(repo), "_tags")
        if not os.path.isdir(self._repo(repo)):
            raise NotFound(f"repository name not known to registry: {repo}")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def catalog(self) -> list[str]:
        base = os.path.join(self.root, "repositories")
        out = []
        for dirpath, dirs, _files in os.walk(base):
            if "_manifests" in dirs or "_layers" in dirs:
                out.append(os.path.relpath(dirpath, base))
            dirs[:] = [d for d in dirs if not d.startswith("_")]
        return sorted(out)

    def delete(self, repo: str, ref: str) -> None:
        if ref.startswith("sha256:"):
            if self._linked(repo, "_manifests", ref[7:]) is None:
                raise NotFound(f"manifest unknown: {repo}@{ref}")
            os.unlink(os.path.join(self._repo(repo), "_manifests", ref[7:]))
            tdir = os.path.join(self._repo(repo), "_tags")
            for t in os.listdir(tdir) if os.path.isdir(tdir) else []:
                if self._linked(repo, "_tags", t) == ref.encode():
                    os.unlink(os.path.join(tdir, t))
        else:
            if self._linked(repo, "_tags", ref) is None:
                raise NotFound(f"manifest unknown: {repo}:{ref}")
            os.unlink(os.path.join(self._repo(repo), "_tags", ref))
