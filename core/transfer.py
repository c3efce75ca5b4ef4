"""Copying images between a registry backend and the local store.

Pull = backend → store; push = store → backend; ``save`` is a push to the ``docker-archive``
backend and ``load`` a pull from it. The backend is any :class:`RegistryBackend`; nothing here
names one.

Pull, in order: the manifest (or index → the linux/amd64 manifest) is fetched and its digest
verified; the config is fetched and verified; every layer whose chain id the store does not hold
is downloaded in parallel (worker threads) into a temporary blob, verified (size and digest), then
renamed into the blob store; layers are unpacked in order as soon as each is whole, decompression
streaming into the graph driver's ``apply_diff``, and each layer's uncompressed digest must be the
config's diff id. Only then is the image recorded and tagged. If anything fails, every layer and
blob this pull added is removed again: an interrupted or refused pull leaves no partial image, and
a new pull starts clean (layers already whole are never fetched again).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import json
import logging
import threading
import time
from typing import IO, Any, Callable, Mapping

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import DockyardError, InvalidParameter, NotFound
from dockyard.hookspecs.host.units import human_size
from dockyard.hookspecs.registry import RegistryBackend, VerifyingReader, sha256_of

from .images import ImageStore, chain_id

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
MAX_MANIFEST = 4 << 20
MAX_CONFIG = 16 << 20
PARALLEL = 4


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _bar(current: int, total: int) -> str:
    if total <= 0:
        return ""
    width = 50
    filled = min(width, int(width * current / total))
    arrow = "=" * max(filled - 1, 0) + (">" if filled else "")
    return f"[{arrow:<{width}}] {human_size(current)}/{human_size(total)}"


def select_platform(index: dict[str, Any], os_: str = "linux", arch: str = "amd64") -> dict[str, Any]:
    """The manifest descriptor for ``os_/arch`` in a manifest list or OCI index."""
    candidates = [m for m in index.get("manifests") or []
                  if (m.get("platform") or {}).get("os") == os_
                  and (m.get("platform") or {}).get("architecture") == arch
                  and m.get("mediaType", mt.DOCKER_MANIFEST) in mt.IMAGE_MANIFESTS]
    if not candidates:
        have = sorted({f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                       for m in index.get("manifests") or []})
        raise NotFound(f"no matching manifest for {os_}/{arch} in the manifest list entries "
                       f"(available: {', '.join(have) or 'none'})")
    # prefer no variant (or v1-ish) over others, then the first listed
    candidates.sort(key=lambda m: bool((m.get("platform") or {}).get("variant")))
    return candidates[0]


def fetch_manifest(backend: RegistryBackend, repo: str, ref: str) -> tuple[str, bytes, str]:
    """``(media_type, raw, digest)`` of ``ref``, the bytes verified against the digest."""
    if ref.startswith("sha256:"):
        want = ref
    else:
        want = backend.resolve(repo, ref).get("digest")
    media, raw = backend.get_manifest(repo, want or ref)
    if len(raw) > MAX_MANIFEST:
        raise InvalidParameter(f"manifest {want or ref} is larger than {MAX_MANIFEST} bytes")
    actual = sha256_of(raw)
    if want and actual != want:
        raise InvalidParameter(f"manifest verification failed for digest {want}: content is {actual}")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"manifest {actual} is not JSON") from None
    media = doc.get("mediaType") or media
    if not media and "manifests" in doc:
        media = mt.OCI_INDEX
    elif not media:
        media = mt.OCI_MANIFEST
    return media, raw, actual


class Puller:
    """One pull from ``backend`` into ``store``; ``progress`` receives Docker's JSON messages."""

    def __init__(self, store: ImageStore, backend: RegistryBackend, progress: Progress,
                 cancel: threading.Event | None = None) -> None:
        self.store, self.backend, self.progress = store, backend, progress
        self.cancel = cancel or threading.Event()
        self.new_blobs: list[str] = []
        self.new_layers: list[str] = []

    def pull(self, repo: str, ref: str, status_id: str | None = None) -> dict[str, Any]:
        """Pull ``repo:ref``; return ``{"image_id", "digest", "media_type", "fresh"}``. The
        caller tags and records the repo digest."""
        try:
            return self._pull(repo, ref, status_id)
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        for chain in reversed(self.new_layers):
            with contextlib.suppress(Exception):
                self.store.remove_layer_if_unused(chain)
        for digest in self.new_blobs:
            if not self.store.state.has_layer_blob(digest) and \
                    not self.store.state.has_image(digest):
                self.store.blobs.delete(digest)

    def _keep_blob(self, data: bytes) -> str:
        existed = self.store.blobs.exists(sha256_of(data))
        digest = self.store.blobs.put(data)
        if not existed:
            self.new_blobs.append(digest)
        return digest

    def _pull(self, repo: str, ref: str, status_id: str | None) -> dict[str, Any]:
        b, store = self.backend, self.store
        media, raw, top_digest = fetch_manifest(b, repo, ref)
        self.progress({"status": f"Pulling from {repo}", "id": status_id or ref})
        index_raw = None
        if media in mt.INDEX_MANIFESTS:
            index_raw = raw
            desc = select_platform(json.loads(raw))
            media, raw, _ = fetch_manifest(b, repo, desc["digest"])
        if media not in mt.IMAGE_MANIFESTS:
            raise InvalidParameter(f"unsupported manifest media type {media!r} "
                                   f"(supported: {', '.join(mt.IMAGE_MANIFESTS + mt.INDEX_MANIFESTS)})")
        manifest = json.loads(raw)
        if manifest.get("schemaVersion") != 2:
            raise InvalidParameter("unsupported manifest schema version "
                                   f"{manifest.get('schemaVersion')!r}; only schema 2 is supported")
        cfg_desc = manifest.get("config") or {}
        layers = manifest.get("layers") or []
        for layer in layers:
            if layer.get("mediaType") not in mt.LAYER_TYPES:
                raise InvalidParameter(f"unsupported layer media type {layer.get('mediaType')!r}")
            mt.check_digest(layer.get("digest", ""))
        cfg_digest = mt.check_digest(cfg_desc.get("digest", ""))
        # the config
        if store.state.has_image(cfg_digest):
            cfg_raw = store.config_bytes(cfg_digest)
        else:
            with contextlib.closing(b.get_blob(repo, cfg_digest)) as s:
                reader = VerifyingReader(s, cfg_digest, cfg_desc.get("size"), "config")
                cfg_raw = read_all(reader, MAX_CONFIG)
        config = json.loads(cfg_raw)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layers):
            raise InvalidParameter(f"manifest lists {len(layers)} layers but the config has "
                                   f"{len(diff_ids)} diff ids")
        chains: list[str] = []
        parent = None
        for d in diff_ids:
            parent = chain_id(parent, mt.check_digest(d))
            chains.append(parent)
        fresh = not store.state.has_image(cfg_digest)
        # which layers are missing; announce all
        todo: list[int] = []
        for i, layer in enumerate(layers):
            if store.has_layer(chains[i]):
                self.progress({"status": "Already exists", "progressDetail": {}, "id": short(layer["digest"])})
            else:
                todo.append(i)
                self.progress({"status": "Pulling fs layer", "progressDetail": {}, "id": short(layer["digest"])})
        # download the missing ones in parallel; unpack in order as each becomes whole
        with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL,
                                                   thread_name_prefix="pull") as pool:
            futures = {i: pool.submit(self._download, repo, layers[i]) for i in todo}
            try:
                for i in todo:
                    blob = futures[i].result()
                    if self.cancel.is_set():
                        raise DockyardError("pull cancelled")
                    self._extract(layers[i], blob, chains[i - 1] if i else None, diff_ids[i], chains[i])
            except BaseException:
                self.cancel.set()
                for f in futures.values():
                    f.cancel()
                raise
        top = chains[-1] if chains else None
        image_id = store.create_image_raw(cfg_raw, top)
        if image_id != cfg_digest:
            raise InvalidParameter(f"config digest {cfg_digest} does not match its content {image_id}")
        self._keep_blob(raw)
        if index_raw is not None:
            self._keep_blob(index_raw)
        for layer, d in zip(layers, diff_ids):
            if store.blobs.exists(layer["digest"]):
                store.record_layer_blob(layer["digest"], d, layer["mediaType"], layer.get("size") or
                                        store.blobs.size(layer["digest"]))
        return {"image_id": image_id, "digest": top_digest,
                "media_type": json.loads(index_raw or raw).get("mediaType") or media, "fresh": fresh}

    def _download(self, repo: str, layer: dict[str, Any]) -> str:
        """Fetch one layer blob into the blob store (verified); return its digest."""
        digest, size, sid = layer["digest"], layer.get("size"), short(layer["digest"])
        if self.store.blobs.exists(digest):
            self.progress({"status": "Download complete", "progressDetail": {}, "id": sid})
            return digest
        for attempt in range(3):
            if self.cancel.is_set():
                raise DockyardError("pull cancelled")
            try:
                with contextlib.closing(self.backend.get_blob(repo, digest)) as s, \
                        self.store.blobs.writer() as w:
                    reader = VerifyingReader(s, digest, size, "layer")
                    last = 0.0
                    while True:
                        if self.cancel.is_set():
                            raise DockyardError("pull cancelled")
                        chunk = reader.read(1 << 20)
                        if not chunk:
                            break
                        w.write(chunk)
                        now = time.monotonic()
                        if now - last > 0.1:
                            last = now
                            self.progress({"status": "Downloading", "id": sid,
                                           "progressDetail": {"current": w.size, "total": size or 0},
                                           "progress": _bar(w.size, size or 0)})
                    self.progress({"status": "Verifying Checksum", "progressDetail": {}, "id": sid})
                    existed = self.store.blobs.exists(digest)
                    w.commit(digest)
                    if not existed:
                        self.new_blobs.append(digest)
                self.progress({"status": "Download complete", "progressDetail": {}, "id": sid})
                return digest
            except (ConnectionError, TimeoutError) as exc:
                if attempt == 2:
                    raise DockyardError(f"downloading {digest}: {exc}") from exc
                log.info("retrying download of %s after %s", digest, exc)
                self.progress({"status": f"Retrying in {attempt + 1} second", "progressDetail": {}, "id": sid})
                time.sleep(attempt + 1)
        raise AssertionError("unreachable")

    def _extract(self, layer: dict[str, Any], digest: str, parent: str | None, diff_id: str,
                 chain: str) -> None:
        sid = short(digest)
        if self.store.has_layer(chain):
            self.progress({"status": "Already exists", "progressDetail": {}, "id": sid})
            return
        self.progress({"status": "Extracting", "id": sid,
                       "progressDetail": {"current": 0, "total": layer.get("size") or 0}})
        with self.store.blobs.open(digest) as f:
            got = self.store.register_layer(f, parent, expected_diff_id=diff_id)
        assert got == chain
        self.new_layers.append(chain)
        self.progress({"status": "Pull complete", "progressDetail": {}, "id": sid})


def read_all(reader: IO[bytes], limit: int) -> bytes:
    out = bytearray()
    while chunk := reader.read(1 << 16):
        out += chunk
        if len(out) > limit:
            raise InvalidParameter(f"blob larger than {limit} bytes")
    return bytes(out)


# -- push ------------------------------------------------------------------------------------------
_OCI_OF = {mt.DOCKER_LAYER: mt.OCI_LAYER, mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP}


class Pusher:
    """Copy one local image to ``backend`` as ``repo:tag``; ``progress`` gets Docker's messages."""

    def __init__(self, store: ImageStore, backend: RegistryBackend, progress: Progress,
                 uncompressed: bool | None = None) -> None:
        self.store, self.backend, self.progress = store, backend, progress
        #: write plain tar layers whose digest is the diff id (docker save's format)
        self.uncompressed = (getattr(backend, "wants_uncompressed", False)
                             if uncompressed is None else uncompressed)

    def manifest_for(self, image_id: str, mount_from: list[str]) -> tuple[str, bytes, list[dict[str, Any]]]:
        """``(media_type, raw manifest, [layer descriptor + "_source"])``; a manifest the image
        was pulled as is reused when its blobs are all here, so digests survive a re-push."""
        store = self.store
        oci_only = getattr(self.backend, "wants_oci", False)
        if not self.uncompressed:
            for rd in store.repo_digests(image_id):
                for digest in (rd["ref"].split("@", 1)[1],):
                    reused = self._reusable(digest, image_id)
                    if reused and (not oci_only or reused[0] == mt.OCI_MANIFEST):
                        return reused
        config = json.loads(store.config_bytes(image_id))
        descs = []
        for diff_id in (config.get("rootfs") or {}).get("diff_ids") or []:
            descs.append(self._layer_desc(diff_id))
        oci = oci_only or any(d["mediaType"].startswith("application/vnd.oci") for d in descs)
        cfg_raw = store.config_bytes(image_id)
        if oci:
            media = mt.OCI_MANIFEST
            layers = [{"mediaType": _OCI_OF.get(d["mediaType"], d["mediaType"]), "size": d["size"],
                       "digest": d["digest"]} for d in descs]
            cfg = {"mediaType": mt.OCI_CONFIG, "size": len(cfg_raw), "digest": image_id}
        else:
            media = mt.DOCKER_MANIFEST
            layers = [{"mediaType": d["mediaType"], "size": d["size"], "digest": d["digest"]} for d in descs]
            cfg = {"mediaType": mt.DOCKER_CONFIG, "size": len(cfg_raw), "digest": image_id}
        doc = {"schemaVersion": 2, "mediaType": media, "config": cfg, "layers": layers}
        raw = json.dumps(doc, indent=3).encode()
        return media, raw, descs

    def _reusable(self, digest: str, image_id: str) -> tuple[str, bytes, list[dict[str, Any]]] | None:
        try:
            raw = self.store.blobs.get(digest)
        except (NotFound, InvalidParameter):
            return None
        doc = json.loads(raw)
        media = doc.get("mediaType") or (mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST)
        if media in mt.INDEX_MANIFESTS:
            return None  # re-pushed as the one platform manifest we hold
        if (doc.get("config") or {}).get("digest") != image_id:
            return None
        config = json.loads(self.store.config_bytes(image_id))
        descs = []
        for layer, diff_id in zip(doc.get("layers") or [], config["rootfs"]["diff_ids"]):
            if not self.store.blobs.exists(layer["digest"]):
                return None
            descs.append({**layer, "_diff_id": diff_id, "_source": layer["digest"]})
        return media, raw, descs

    def _layer_desc(self, diff_id: str) -> dict[str, Any]:
        blobs = self.store.layer_blobs(diff_id)
        if self.uncompressed:
            src = next((b for b in blobs if b["digest"] == diff_id), None) or (blobs[0] if blobs else None)
            if src is None:
                raise NotFound(f"no content stored for layer {diff_id}")
            size = src["size"] if src["digest"] == diff_id else None
            return {"mediaType": mt.DOCKER_LAYER, "digest": diff_id, "size": size,
                    "_source": src["digest"], "_diff_id": diff_id}
        gz: Mapping[str, Any] | None = next((b for b in blobs if b["digest"] != diff_id), None)
        if gz is None:
            if not blobs:
                raise NotFound(f"no content stored for layer {diff_id}")
            gz = self._compress(blobs[0]["digest"], diff_id)
        return {"mediaType": gz["media_type"], "digest": gz["digest"], "size": gz["size"],
                "_source": gz["digest"], "_diff_id": diff_id}

    def _compress(self, plain: str, diff_id: str) -> dict[str, Any]:
        """gzip a plain layer blob once (mtime 0: the same bytes every time) and remember it."""
        try:
            from isal import igzip as gz  # type: ignore[import-not-found]
        except ImportError:  # pragma: no cover
            gz = gzip  # type: ignore[assignment]
        with self.store.blobs.writer() as w, self.store.blobs.open(plain) as src:
            with gz.GzipFile(fileobj=w, mode="wb", mtime=0) as z:  # type: ignore[arg-type]
                while chunk := src.read(1 << 20):
                    z.write(chunk)
            digest = w.commit()
            size = w.size
        self.store.record_layer_blob(digest, diff_id, mt.DOCKER_LAYER_GZIP, size)
        return {"digest": digest, "media_type": mt.DOCKER_LAYER_GZIP, "size": size}

    def push(self, image_id: str, repo: str, tag: str | None,
             mount_from: list[str] | None = None) -> tuple[str, int]:
        """Push; return ``(manifest digest, manifest size)``."""
        media, raw, descs = self.manifest_for(image_id, mount_from or [])
        mount_from = [m for m in (mount_from or []) if m != repo]

        def one(d: dict[str, Any]) -> dict[str, Any]:
            sid = short(d["digest"])
            self.progress({"status": "Preparing", "progressDetail": {}, "id": sid})
            if self.backend.has_blob(repo, d["digest"]) is not None:
                self.progress({"status": "Layer already exists", "progressDetail": {}, "id": sid})
                return d
            for other in mount_from:
                if self.backend.mount_blob(repo, d["digest"], other):
                    self.progress({"status": f"Mounted from {other}", "progressDetail": {}, "id": sid})
                    return d
            self.progress({"status": "Pushing", "progressDetail": {"current": 0, "total": d["size"] or 0},
                           "id": sid})
            with self.store.blobs.open(d["_source"]) as f:
                stream: IO[bytes] = f
                if d["_source"] != d["digest"]:
                    stream = tarsafe.decompressed(f)  # a plain tar from a compressed blob
                try:
                    self.backend.put_blob(repo, d["digest"], stream, d["size"])
                finally:
                    if stream is not f:
                        stream.close()
            self.progress({"status": "Pushed", "progressDetail": {}, "id": sid})
            return d

        with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="push") as pool:
            list(pool.map(one, descs))
        cfg = self.store.config_bytes(image_id)
        if self.backend.has_blob(repo, image_id) is None:
            import io
            self.backend.put_blob(repo, image_id, io.BytesIO(cfg), len(cfg))
        if self.uncompressed and any(d.get("size") is None for d in descs):
            # sizes of plain layers are known only now: rebuild the manifest with them
            layers = json.loads(raw)["layers"]
            for layer in layers:
                if layer["size"] is None:
                    layer["size"] = self.backend.has_blob(repo, layer["digest"]) or 0
            doc = json.loads(raw)
            doc["layers"] = layers
            raw = json.dumps(doc, indent=3).encode()
        digest = self.backend.put_manifest(repo, tag or sha256_of(raw), media, raw)
        if digest != sha256_of(raw):
            raise DockyardError(f"registry stored the manifest as {digest}, expected {sha256_of(raw)}")
        self.store.blobs.put(raw)
        return digest, len(raw)


# -- pulling a reference into the daemon's store (``docker pull``, a build's FROM) ----------------
AUTH_FIELDS = ("username", "password", "identitytoken", "registrytoken", "serveraddress")


def clean_auth(data: Any) -> dict[str, str]:
    """The credential fields of a Docker ``AuthConfig`` that hold a string."""
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in AUTH_FIELDS and v and isinstance(v, str)}


def pull_denied(ref: Any, why: str) -> NotFound:
    """dockerd's answer to a pull the registry does not serve: a 404, never a 401 (which the
    docker CLI meets with a login prompt)."""
    return NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or "
                    f"may require 'docker login': {why}")
