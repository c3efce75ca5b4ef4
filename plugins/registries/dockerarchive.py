"""A ``docker save`` tar: ``manifest.json`` (``Config``, ``RepoTags``, ``Layers``) and the files
it names.

Reading accepts both the classic layout (``<id>.json``, ``<hex>/layer.tar``) and Docker 25's
(``blobs/sha256/<hex>`` beside an OCI ``index.json``): ``manifest.json`` gives the paths. A
Distribution-style manifest is synthesised per entry, so pulling from the archive is an ordinary
pull (every blob and diff id verified). Writing (``mode="w"``) builds Docker 25's layout — which
is at the same time a valid OCI image layout — in a temporary directory and tars it on
:meth:`close`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
from typing import IO, Any

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.errors import InvalidParameter, NotFound
from dockyard.hookspecs.registry import RegistryBackend
from dockyard.hookspecs.host.tarsafe import TarEntry, TarIndex

from .ocilayout import REF_NAME, store_blob, write_atomic


def _familiar(repo: str, tag: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            break
    return f"{repo}:{tag}"


def _normal(ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    if "/" in tag or not name:
        name, tag = ref, "latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name
    return f"{name}:{tag}"


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return mt.DOCKER_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return mt.OCI_LAYER_ZSTD
    return mt.DOCKER_LAYER


class DockerArchiveBackend(RegistryBackend):
    name = "docker-archive"
    transport = "docker-archive"
    wants_uncompressed = True
    wants_oci = True  # Docker 25's save: the archive is an OCI image layout as well

    def __init__(self, location: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        self.mode = self.options.get("mode", "r")
        self._lock = threading.Lock()
        if self.mode == "w":
            self.tmp = tempfile.mkdtemp(prefix=".save-", dir=os.path.dirname(os.path.abspath(location)))
            self.entries: list[dict[str, Any]] = []
            return
        try:
            # the strict reader checks the whole archive now: a corrupt or truncated one is
            # refused before anything of it is used
            self.index = TarIndex(location, label="docker archive")
        except OSError as exc:
            raise InvalidParameter(f"not a docker archive: {exc}") from None
        try:
            self._read_manifest()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.index.close()
            raise InvalidParameter(f"docker archive: malformed manifest.json or image config: "
                                   f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            self.index.close()
            raise

    def _read_manifest(self) -> None:
        try:
            raw = self._read("manifest.json")
        except NotFound:
            raise InvalidParameter("not a docker archive: no manifest.json") from None
        try:
            entries = json.loads(raw)
            assert isinstance(entries, list)
        except (ValueError, AssertionError):
            raise InvalidParameter("docker archive: manifest.json is not a list") from None
        self.blob_paths: dict[str, str] = {}
        self.manifests: dict[str, bytes] = {}
        self.tagged: dict[str, str] = {}  # normalised repo:tag → manifest digest
        for e in entries:
            cfg_raw = self._read(e["Config"])
            cfg_digest = mt.sha256_of(cfg_raw)
            self.blob_paths[cfg_digest] = e["Config"]
            diff_ids = (json.loads(cfg_raw).get("rootfs") or {}).get("diff_ids") or []
            layers = []
            for path, diff_id in zip(e.get("Layers") or [], diff_ids):
                with self._open(path) as f:
                    media = _sniff(f.read(6))
                digest = diff_id if media == mt.DOCKER_LAYER else self._hash(path)
                self.blob_paths[digest] = path
                layers.append({"mediaType": media, "size": self._member(path).size, "digest": digest})
            doc = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                   "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(cfg_raw), "digest": cfg_digest},
                   "layers": layers}
            raw_m = json.dumps(doc).encode()
            digest = mt.sha256_of(raw_m)
            self.manifests[digest] = raw_m
            for t in e.get("RepoTags") or []:
                self.tagged[_normal(t)] = digest
            if not e.get("RepoTags"):
                self.tagged.setdefault("@" + digest, digest)

    # -- reading -------------------------------------------------------------------------------
    def _member(self, path: str) -> TarEntry:
        m = self.index.get(path)
        if m is None:
            raise NotFound(f"docker archive: {path} missing")
        return m

    def _open(self, path: str) -> IO[bytes]:
        self._member(path)
        return self.index.open(path)

    def _read(self, path: str) -> bytes:
        with self._open(path) as f:
            return f.read()

    def _hash(self, path: str) -> str:
        h = hashlib.sha256()
        with self._open(path) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "sha256:" + h.hexdigest()

    def resolve(self, repo: str, ref: str) -> dict[str, Any]:
        digest = ref if ref in self.manifests else self.tagged.get(_normal(f"{repo}:{ref}"))
        if digest is None:
            raise NotFound(f"{self.location}: no image {repo}:{ref} in the archive")
        return {"mediaType": mt.DOCKER_MANIFEST, "digest": digest, "size": len(self.manifests[digest])}

    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes]:
        return mt.DOCKER_MANIFEST, self.manifests[self.resolve(repo, ref)["digest"]]

    def get_blob(self, repo: str, digest: str) -> IO[bytes]:
        if self.mode == "w":
            try:
                return open(os.path.join(self.tmp, "blobs", "sha256", digest[7:]), "rb")
            except FileNotFoundError:
                raise NotFound(f"blob {digest} missing") from None
        path = self.blob_paths.get(digest)
        if path is None:
            raise NotFound(f"{self.location}: blob {digest} not in the archive")
        return self._open(path)  # pread-based: several threads may read at once

    def has_blob(self, repo: str, digest: str) -> int | None:
        if self.mode == "w":
            p = os.path.join(self.tmp, "blobs", "sha256", digest[7:])
            return os.path.getsize(p) if os.path.exists(p) else None
        path = self.blob_paths.get(digest)
        return self._member(path).size if path else None

    def tags(self, repo: str) -> list[str]:
        want = _normal(repo + ":x").rsplit(":", 1)[0]
        return sorted(t.rsplit(":", 1)[1] for t in self.tagged if t.rsplit(":", 1)[0] == want)

    def catalog(self) -> list[str]:
        return sorted({t.rsplit(":", 1)[0] for t in self.tagged if not t.startswith("@")})

    def images(self) -> list[tuple[str, str]]:
        out = []
        for t, digest in self.tagged.items():
            out.append(("", digest) if t.startswith("@") else (t.rsplit(":", 1)[0], t.rsplit(":", 1)[1]))
        return out

    def tags_of(self, digest: str) -> list[str]:
        """The ``RepoTags`` an entry carries, normalised."""
        return sorted(t for t, d in self.tagged.items() if d == digest and not t.startswith("@"))

    # -- writing -------------------------------------------------------------------------------
    def put_blob(self, repo: str, digest: str, stream: IO[bytes], size: int | None = None) -> None:
        if self.mode != "w":
            raise InvalidParameter("docker archive opened for reading")
        store_blob(self.tmp, digest, stream, size)

    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        if self.mode != "w":
            raise InvalidParameter("docker archive opened for reading")
        import io
        digest = mt.sha256_of(data)
        store_blob(self.tmp, digest, io.BytesIO(data))
        doc = json.loads(data)
        cfg = "blobs/sha256/" + doc["config"]["digest"][7:]
        layers = ["blobs/sha256/" + d["digest"][7:] for d in doc.get("layers") or []]
        with self._lock:
            entry = next((e for e in self.entries if e["Config"] == cfg), None)
            if entry is None:
                entry = {"Config": cfg, "RepoTags": [], "Layers": layers, "_digest": digest,
                         "_media": media_type, "_size": len(data)}
                self.entries.append(entry)
            if repo and not ref.startswith("sha256:"):
                tag = _familiar(repo, ref)
                if tag not in entry["RepoTags"]:
                    entry["RepoTags"].append(tag)
        return digest

    def delete(self, repo: str, ref: str) -> None:
        raise InvalidParameter("a docker archive cannot delete images")

    def close(self) -> None:
        if self.mode != "w":
            self.index.close()
            return
        if not os.path.isdir(self.tmp):
            return
        try:
            manifest = [{k: v for k, v in e.items() if not k.startswith("_")} for e in self.entries]
            write_atomic(os.path.join(self.tmp, "manifest.json"), json.dumps(manifest).encode())
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
            repos: dict[str, dict[str, str]] = {}
            for e in self.entries:
                for t in e["RepoTags"] or [None]:
                    desc: dict[str, Any] = {"mediaType": e["_media"], "digest": e["_digest"], "size": e["_size"]}
                    if t:
                        desc["annotations"] = {"io.containerd.image.name": _normal(t),
                                               REF_NAME: t.rsplit(":", 1)[1]}
                        r, tag = t.rsplit(":", 1)
                        repos.setdefault(r, {})[tag] = e["Layers"][-1].rsplit("/", 1)[1] if e["Layers"] else ""
                    index["manifests"].append(desc)
            write_atomic(os.path.join(self.tmp, "index.json"), json.dumps(index).encode())
            write_atomic(os.path.join(self.tmp, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
            write_atomic(os.path.join(self.tmp, "repositories"), json.dumps(repos).encode())
            out = self.location + ".tmp"
            with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
                for name in ("blobs", "blobs/sha256"):
                    ti = tarfile.TarInfo(name)
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(ti)
                for name in sorted(os.listdir(os.path.join(self.tmp, "blobs", "sha256"))):
                    if not name.startswith("."):
                        tf.add(os.path.join(self.tmp, "blobs", "sha256", name), f"blobs/sha256/{name}")
                for name in ("index.json", "manifest.json", "oci-layout", "repositories"):
                    tf.add(os.path.join(self.tmp, name), name)
            os.replace(out, self.location)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
