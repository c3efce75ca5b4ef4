"""An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/...``).

Images are named by the ``org.opencontainers.image.ref.name`` annotation of their ``index.json``
entry (the tag, as skopeo's ``oci:DIR:TAG`` and umoci's ``DIR:TAG`` write it); ``repo`` is not
part of an OCI layout and is ignored. Blobs are written to a temporary name, verified, renamed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from typing import IO, Any

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.errors import InvalidParameter, NotFound
from dockyard.hookspecs.registry import RegistryBackend

REF_NAME = "org.opencontainers.image.ref.name"


def write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store_blob(root: str, digest: str, stream: IO[bytes], size: int | None = None) -> int:
    """Copy ``stream`` to ``root/blobs/sha256/<hex>`` if it hashes to ``digest``; return its size."""
    mt.check_digest(digest)
    d = os.path.join(root, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    final = os.path.join(d, digest[7:])
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    h, n = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if "sha256:" + h.hexdigest() != digest:
            raise InvalidParameter(f"blob {digest}: digest mismatch, content is sha256:{h.hexdigest()}")
        if size is not None and n != size:
            raise InvalidParameter(f"blob {digest}: size {n}, expected {size}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        return n
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class OciLayoutBackend(RegistryBackend):
    name = "oci-layout"
    transport = "oci"
    wants_oci = True

    def __init__(self, location: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        self.root = location
        self._lock = threading.Lock()

    # -- layout files --------------------------------------------------------------------------
    def _init(self) -> None:
        os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        if not os.path.exists(os.path.join(self.root, "oci-layout")):
            write_atomic(os.path.join(self.root, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
        if not os.path.exists(os.path.join(self.root, "index.json")):
            self._write_index({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})

    def index(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.root, "index.json"), "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            raise NotFound(f"{self.root} is not an OCI image layout (no index.json)") from None

    def _write_index(self, idx: dict[str, Any]) -> None:
        write_atomic(os.path.join(self.root, "index.json"), json.dumps(idx, indent=2).encode())

    def blob_path(self, digest: str) -> str:
        mt.check_digest(digest)
        return os.path.join(self.root, "blobs", "sha256", digest[7:])

    # -- the contract --------------------------------------------------------------------------
    def resolve(self, repo: str, ref: str) -> dict[str, Any]:
        for m in self.index().get("manifests") or []:
            name = (m.get("annotations") or {}).get(REF_NAME)
            if ref == m.get("digest") or ref == name or (name and f"{repo}:{ref}" == name):
                return {k: m[k] for k in ("mediaType", "digest", "size") if k in m}
        raise NotFound(f"{self.root}: no image {ref!r} in the layout")

    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes]:
        desc = self.resolve(repo, ref) if not ref.startswith("sha256:") else {"digest": ref}
        try:
            with open(self.blob_path(desc["digest"]), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"{self.root}: manifest {desc['digest']} missing") from None
        media = desc.get("mediaType") or json.loads(raw).get("mediaType") or mt.OCI_MANIFEST
        return media, raw

    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        import io
        self._init()
        digest = mt.sha256_of(data)
        store_blob(self.root, digest, io.BytesIO(data))
        doc = json.loads(data)
        for d in [doc.get("config")] + list(doc.get("layers") or []) + list(doc.get("manifests") or []):
            if d and not os.path.exists(self.blob_path(d["digest"])):
                raise InvalidParameter(f"manifest names blob {d['digest']}, which is not in the layout")
        with self._lock:
            idx = self.index()
            keep = [m for m in idx.get("manifests") or []
                    if ref.startswith("sha256:") or (m.get("annotations") or {}).get(REF_NAME) != ref]
            entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
            if not ref.startswith("sha256:"):
                entry["annotations"] = {REF_NAME: ref}
            if entry not in keep:
                keep.append(entry)
            idx["manifests"] = keep
            self._write_index(idx)
        return digest

    def has_blob(self, repo: str, digest: str) -> int | None:
        try:
            return os.path.getsize(self.blob_path(digest))
        except FileNotFoundError:
            return None

    def get_blob(self, repo: str, digest: str) -> IO[bytes]:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.root}: blob {digest} missing") from None

    def put_blob(self, repo: str, digest: str, stream: IO[bytes], size: int | None = None) -> None:
        self._init()
        store_blob(self.root, digest, stream, size)

    def tags(self, repo: str) -> list[str]:
        return sorted({(m.get("annotations") or {}).get(REF_NAME)
                       for m in self.index().get("manifests") or []} - {None})

    def catalog(self) -> list[str]:
        return [""] if self.tags("") else []

    def images(self) -> list[tuple[str, str]]:
        out = []
        for m in self.index().get("manifests") or []:
            out.append(("", (m.get("annotations") or {}).get(REF_NAME) or m["digest"]))
        return out

    def delete(self, repo: str, ref: str) -> None:
        with self._lock:
            idx = self.index()
            before = len(idx.get("manifests") or [])
            idx["manifests"] = [m for m in idx.get("manifests") or []
                                if m.get("digest") != ref and (m.get("annotations") or {}).get(REF_NAME) != ref]
            if len(idx["manifests"]) == before:
                raise NotFound(f"{self.root}: no image {ref!r}")
            self._write_index(idx)
