"""The local image store: layers in the graph driver, configs as content-addressed blobs.

Image ids are the sha256 of the config JSON (as Docker's); layers are keyed by chain id
(OCI image-spec: ``chain(L0) = diff_id(L0)``, ``chain(Ln) = sha256(chain(Ln-1) + " " + diff_id(Ln))``)
and stored in the graph driver under a random cache id, recorded only once whole.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import secrets
import shlex
from typing import IO, Any

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import Conflict, InvalidParameter, NotFound
from dockyard.hookspecs.graphdriver import GraphDriver
from dockyard.hookspecs.host.timefmt import rfc3339

from . import reference
from .blobs import BlobStore
from .state import ImageRow, Layer, LayerBlob, RepoDigest, State

log = logging.getLogger(__name__)


def chain_id(parent: str | None, diff_id: str) -> str:
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


class HashingReader:
    """Wraps a stream, hashing every byte read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.h, self.n = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.h.update(data)
        self.n += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


class _Tee:
    """Reads through ``raw``, copying every byte to ``sink`` (a blob writer)."""

    def __init__(self, raw: IO[bytes], sink: Any) -> None:
        self.raw, self.sink = raw, sink

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sink.write(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _media_type_of(path: str) -> str:
    """The layer media type of a stored blob, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x1f\x8b"):
        return "application/vnd.docker.image.rootfs.diff.tar.gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "application/vnd.oci.image.layer.v1.tar+zstd"
    return "application/vnd.docker.image.rootfs.diff.tar"


_CHANGE_KEYS = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR",
                "STOPSIGNAL", "ONBUILD"}


def _json_or_shell(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
    return ["/bin/sh", "-c", value]


def apply_changes(cfg: dict[str, Any], changes: list[str]) -> None:
    """Apply Dockerfile-style ``--change`` instructions (as ``docker import -c``) to ``cfg``."""
    for change in changes:
        change = change.strip()
        if not change:
            continue
        word, _, rest = change.partition(" ")
        key = word.upper()
        if key not in _CHANGE_KEYS:
            raise InvalidParameter(f"{word} is not a valid change command; valid ones: "
                                   + ", ".join(sorted(_CHANGE_KEYS)))
        rest = rest.strip()
        if key == "CMD":
            cfg["Cmd"] = _json_or_shell(rest)
        elif key == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(rest)
        elif key in ("ENV", "LABEL"):
            pairs: list[tuple[str, str]] = []
            if "=" in rest.split(" ", 1)[0]:
                for tok in shlex.split(rest):
                    k, _, v = tok.partition("=")
                    pairs.append((k, v))
            else:
                k, _, v = rest.partition(" ")
                pairs.append((k, v.strip()))
            if key == "ENV":
                env = [e for e in cfg.get("Env") or [] if e.split("=", 1)[0] not in dict(pairs)]
                cfg["Env"] = env + [f"{k}={v}" for k, v in pairs]
            else:
                cfg.setdefault("Labels", {}).update(dict(pairs))
        elif key == "EXPOSE":
            for p in rest.split():
                cfg.setdefault("ExposedPorts", {})[p if "/" in p else p + "/tcp"] = {}
        elif key == "USER":
            cfg["User"] = rest
        elif key == "VOLUME":
            vols = _json_or_shell(rest) if rest.startswith("[") else rest.split()
            for v in vols:
                cfg.setdefault("Volumes", {})[v] = {}
        elif key == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif key == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        elif key == "ONBUILD":
            cfg.setdefault("OnBuild", []).append(rest)


class ImageStore:
    def __init__(self, state: State, blobs: BlobStore, graph: GraphDriver) -> None:
        self.state, self.blobs, self.graph = state, blobs, graph

    # -- layers ------------------------------------------------------------------------------
    def layer(self, chain: str) -> Layer:
        layer = self.state.layer(chain)
        if layer is None:
            raise NotFound(f"layer {chain} not found")
        return layer

    def register_layer(self, stream: IO[bytes], parent: str | None,
                       expected_diff_id: str | None = None, keep_blob: bool = False,
                       input_size: int | None = None) -> str:
        """Unpack a (possibly compressed) layer tar on top of ``parent``; return its chain id.
        Runs in a worker thread. Nothing is recorded unless the whole layer was applied and,
        when ``expected_diff_id`` is given, its uncompressed content hashes to it.

        ``keep_blob``: also keep the stream's bytes as a blob (a layer made here — import,
        commit, build — so push and save can send exactly the tar its diff id names).
        ``input_size``: the stream's size when it cannot be found with ``fstat`` (for the unpack
        limits of :mod:`dockyard.hookspecs.host.tarsafe`)."""
        if keep_blob:
            with self.blobs.writer() as w:
                tee = _Tee(stream, w)
                chain = self.register_layer(tee, parent, expected_diff_id,
                                            input_size=tarsafe.input_size(stream))
                tee.drain()
                digest = w.commit()
            self.record_layer_blob(digest, self.layer(chain)["diff_id"],
                                   _media_type_of(self.blobs.path(digest)), w.size)
            return chain
        parent_cache = self.layer(parent)["cache_id"] if parent else None
        cache_id = secrets.token_hex(32)
        self.graph.create(cache_id, parent_cache)
        try:
            with tarsafe.uncompressed(stream, input_size) as plain:
                reader = HashingReader(plain)
                size = self.graph.apply_diff(cache_id, parent_cache, reader)
                reader.drain()
            diff_id = reader.digest()
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise InvalidParameter(f"layer diff id mismatch: the image config says "
                                       f"{expected_diff_id}, the layer's content is {diff_id}")
        except BaseException:
            self._remove_cache(cache_id)
            raise
        chain = chain_id(parent, diff_id)
        if not self.state.add_layer(Layer(chain_id=chain, diff_id=diff_id, parent=parent,
                                          cache_id=cache_id, size=size)):  # a duplicate
            self._remove_cache(cache_id)
        return chain

    def remove_layer_if_unused(self, chain: str) -> None:
        """Drop a layer no image and no other layer builds on (an aborted pull's leftovers)."""
        if self.state.layer_in_use(chain):
            return
        layer = self.state.layer(chain)
        if layer is not None:
            self.state.delete_layer(chain)
            self._remove_cache(layer["cache_id"])

    def has_layer(self, chain: str) -> bool:
        return self.state.has_layer(chain)

    # -- the blobs layers came as, and the manifests images came as ----------------------------
    def record_layer_blob(self, digest: str, diff_id: str, media_type: str, size: int) -> None:
        self.state.record_layer_blob(LayerBlob(digest=digest, diff_id=diff_id,
                                               media_type=media_type, size=size))

    def layer_blobs(self, diff_id: str) -> list[LayerBlob]:
        """The stored blobs whose uncompressed content is ``diff_id`` (compressed ones first)."""
        rows = self.state.layer_blobs(diff_id)
        rows = [r for r in rows if self.blobs.exists(r["digest"])]
        rows.sort(key=lambda r: (r["digest"] == diff_id, r["digest"]))
        return rows

    def add_repo_digest(self, name: str, digest: str, image_id: str, media_type: str) -> str:
        ref = f"{reference.parse(name, default_tag=False).name}@{digest}"
        self.state.put_repo_digest(ref, image_id, media_type)
        return ref

    def repo_digests(self, image_id: str) -> list[RepoDigest]:
        return self.state.repo_digests(image_id)

    def _remove_cache(self, cache_id: str) -> None:
        try:
            if self.graph.exists(cache_id):
                self.graph.remove(cache_id)
        except Exception:  # noqa: BLE001 - best effort, reconciled at start-up
            log.exception("could not remove layer %s", cache_id)

    def layer_chain(self, top: str | None) -> list[Layer]:
        out = []
        while top:
            layer = self.layer(top)
            out.append(layer)
            top = layer["parent"]
        return out[::-1]

    # -- images ------------------------------------------------------------------------------
    def create_image(self, config: dict[str, Any], top: str | None) -> str:
        raw = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        return self.create_image_raw(raw, top)

    def create_image_raw(self, raw: bytes, top: str | None) -> str:
        """Record an image whose config is exactly ``raw`` (its id is the digest of these
        bytes, so a pulled image keeps the id it has everywhere)."""
        config = json.loads(raw)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        chain = self.layer_chain(top)
        if [layer["diff_id"] for layer in chain] != list(diff_ids):
            raise InvalidParameter("image config's rootfs.diff_ids do not match its layers")
        image_id = self.blobs.put(raw)
        size = sum(layer["size"] for layer in chain)
        self.state.add_image(ImageRow(id=image_id, top_layer=top, created=config.get("created", ""),
                                      size=size, config=raw.decode()))
        return image_id

    def config_bytes(self, image_id: str) -> bytes:
        return self.get(image_id)["config"].encode()

    def import_image(self, stream: IO[bytes], changes: list[str], message: str = "",
                     arch: str = "amd64") -> str:
        """``docker import``: one layer from a rootfs tar, a config built from ``changes``."""
        cfg: dict[str, Any] = {}
        apply_changes(cfg, changes)
        top = self.register_layer(stream, None, keep_blob=True)
        created = rfc3339()
        config = {
            "architecture": arch, "os": "linux", "created": created,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [self.layer(top)["diff_id"]]},
            "history": [{"created": created, "created_by": "", "comment": message or "Imported from -"}],
        }
        return self.create_image(config, top)

    def tag(self, image_id: str, ref: str) -> str:
        r = reference.parse(ref)
        if r.digest:
            raise InvalidParameter(f"refusing to create a tag with a digest reference: {ref}")
        self.state.put_tag(str(r), image_id)
        return str(r)

    def get(self, image_id: str) -> ImageRow:
        row = self.state.image(image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return row

    def config(self, image_id: str) -> dict[str, Any]:
        return json.loads(self.get(image_id)["config"])

    def resolve(self, name: str) -> str:
        """The id of the image ``name`` names: a reference, a full id or an unambiguous prefix."""
        if not name:
            raise InvalidParameter("image name must not be empty")
        candidate = name[7:] if name.startswith("sha256:") else name
        if len(candidate) == 64 and all(c in "0123456789abcdef" for c in candidate):
            if self.state.has_image("sha256:" + candidate):
                return "sha256:" + candidate
        is_hex = all(c in "0123456789abcdef" for c in candidate)
        try:
            ref = reference.parse(name)
        except InvalidParameter:
            if not is_hex:
                raise
            ref = None
        if ref is not None and ref.digest:
            found = self.state.repo_digest_image(f"{ref.name}@{ref.digest}")
            if found:
                return found
        elif ref is not None and ref.tag:
            found = self.state.tagged_image(str(ref.with_tag(ref.tag)))
            if found:
                return found
        if 1 <= len(candidate) < 64 and is_hex:
            ids = self.state.image_ids_with_prefix(f"sha256:{candidate}")
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise InvalidParameter(f"ambiguous image id prefix {candidate!r}")
        raise NotFound(f"No such image: {name}")

    # -- parents (build steps) ----------------------------------------------------------------
    def set_parent(self, image_id: str, parent: str) -> None:
        self.state.set_parent(image_id, parent)

    def parent_of(self, image_id: str) -> str | None:
        return self.state.parent_of(image_id)

    def children_of(self, image_id: str) -> list[str]:
        return self.state.children_of(image_id)

    def has_children(self, image_id: str) -> bool:
        return self.state.has_children(image_id)

    def tags_of(self, image_id: str) -> list[str]:
        return self.state.tags_of(image_id)

    def all(self) -> list[ImageRow]:
        return self.state.images()

    def top_cache_id(self, image_id: str) -> str | None:
        top = self.get(image_id)["top_layer"]
        return self.layer(top)["cache_id"] if top else None

    def delete(self, name: str, force: bool, users: list[dict[str, Any]]) -> list[dict[str, str]]:
        """``docker rmi``: untag, and delete the image and its unshared layers once no tag is
        left. ``users`` are the containers created from it."""
        image_id = self.resolve(name)
        tags = self.tags_of(image_id)
        by_ref = None
        try:
            r = reference.parse(name)
            if str(r) in tags:
                by_ref = str(r)
        except InvalidParameter:
            pass
        result: list[dict[str, str]] = []
        if by_ref and len(tags) > 1:
            self.state.delete_tag(by_ref)
            return [{"Untagged": reference.familiar(by_ref)}]
        if self.has_children(image_id):  # a build step other images were made on (dockerd's rule)
            if by_ref:
                self.state.delete_tag(by_ref)
                return [{"Untagged": reference.familiar(by_ref)}]
            raise Conflict(f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - "
                           "image has dependent child images")
        if not by_ref and len(tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {image_id[7:19]} (must be forced) - "
                           "image is referenced in multiple repositories")
        if users:
            running = [c for c in users if c["State"]["Running"]]
            if running or not force:
                c = (running or users)[0]
                what = "running" if running else "stopped"
                raise Conflict(f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - "
                               f"image is being used by {what} container {c['Id'][:12]}"
                               if running else
                               f"conflict: unable to remove repository reference \"{name}\" "
                               f"(must force) - container {c['Id'][:12]} is using its referenced "
                               f"image {image_id[7:19]}")
            for t in tags:
                self.state.delete_tag(t)
                result.append({"Untagged": reference.familiar(t)})
            return result
        result += [{"Untagged": reference.familiar(t)} for t in tags]
        released = self.forget(image_id)
        result.append({"Deleted": image_id})
        # as dockerd's: each layer that went with the image is a "Deleted" entry too
        return result + [{"Deleted": chain} for chain in released]

    def forget(self, image_id: str) -> list[str]:
        """Delete an image's records (tags, digests, parents, cache entries) in one
        transaction, then its config and manifest blobs and the layers nothing else uses
        (returned: their chain ids)."""
        top = self.get(image_id)["top_layer"]
        manifests = {r["ref"].split("@", 1)[1] for r in self.repo_digests(image_id)}
        self.state.forget_image(image_id)
        self.blobs.delete(image_id)
        for digest in manifests:  # the manifests it was pulled or pushed as, unless shared
            if not self.state.manifest_in_use(digest):
                self.blobs.delete(digest)
        return self._release_layers(top)

    def _release_layers(self, top: str | None) -> list[str]:
        """Remove the layers of ``top``'s chain no other image uses; their chain ids."""
        released: list[str] = []
        used: set[str] = set()
        for image_top in self.state.top_layers():
            used.update(layer["chain_id"] for layer in self.layer_chain(image_top))
        for layer in reversed(self.layer_chain(top)):
            if layer["chain_id"] in used:
                break
            self.state.delete_layer(layer["chain_id"])
            released.append(layer["chain_id"])
            self._remove_cache(layer["cache_id"])
            if not self.state.diff_id_in_use(layer["diff_id"]):
                for b in self.state.layer_blobs(layer["diff_id"]):
                    self.blobs.delete(b["digest"])
                self.state.delete_layer_blobs(layer["diff_id"])
        return released

    def _familiar_digests(self, image_id: str) -> list[str]:
        return [reference.familiar(r["ref"]) for r in self.repo_digests(image_id)]

    def summary(self, row: dict[str, Any]) -> dict[str, Any]:
        cfg = json.loads(row["config"])
        tags = self.tags_of(row["id"])
        return {
            "Id": row["id"], "ParentId": "", "RepoTags": [reference.familiar(t) for t in tags],
            "RepoDigests": self._familiar_digests(row["id"]), "Created": _unix(cfg.get("created")), "Size": row["size"],
            "SharedSize": -1, "VirtualSize": row["size"],
            "Labels": (cfg.get("config") or {}).get("Labels") or {}, "Containers": -1,
        }

    def inspect(self, image_id: str, graph_name: str) -> dict[str, Any]:
        """``GET /images/{name}/json``, with ``Container`` and ``ContainerConfig`` still there:
        dockerd dropped them in API 1.45, but docker-compose 1.x negotiates the server's version
        and reads ``ContainerConfig`` whenever it recreates a service (KeyError without it)."""
        row = self.get(image_id)
        cfg = json.loads(row["config"])
        top = row["top_layer"]
        out = self._inspect(image_id, graph_name, row, cfg, top)
        out["Container"] = cfg.get("container", "")
        out["ContainerConfig"] = _container_config(cfg.get("container_config") or {})
        return out

    def _inspect(self, image_id: str, graph_name: str, row: Any, cfg: dict[str, Any],
                 top: str | None) -> dict[str, Any]:
        return {
            "Id": image_id,
            "RepoTags": [reference.familiar(t) for t in self.tags_of(image_id)],
            "RepoDigests": self._familiar_digests(image_id), "Parent": self.parent_of(image_id) or "", "Comment": (cfg.get("history") or [{}])[-1].get("comment", ""),
            "Created": cfg.get("created", ""), "DockerVersion": "", "Author": cfg.get("author", ""),
            "Config": _container_config(cfg.get("config") or {}),
            "Architecture": cfg.get("architecture", ""), "Os": cfg.get("os", ""),
            "Size": row["size"], "VirtualSize": row["size"],
            "GraphDriver": {"Name": graph_name,
                            "Data": self.graph.metadata(self.layer(top)["cache_id"]) if top else {}},
            "RootFS": {"Type": "layers", "Layers": (cfg.get("rootfs") or {}).get("diff_ids", [])},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},  # a Go zero time: the CLI parses it
        }


def _container_config(c: dict[str, Any]) -> dict[str, Any]:
    base = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
            "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
            "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
    base.update(c)
    return base


def _unix(ts: str | None) -> int:
    if not ts:
        return 0
    try:
        return int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")[:26] + "+00:00"
                                                   if "." in ts else ts.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
