"""Reading images from a registry and its mirrors: a pull's fallback from one source to the next,
and ``GET /distribution/{name}/json``.

A registry backend names where its images are read from (:meth:`RegistryBackend.pull_sources`:
Docker Hub's mirrors, then the registry). As dockerd's ``distribution.Pull``, a pull is tried on
each source in turn: when one fails — it lacks the repository or the manifest, refuses the
credentials, cannot be reached, or breaks off half-way — the failure is logged and the whole
pull starts again on the next one (what the failed attempt added is rolled back by the
:class:`~dockyard.core.transfer.Puller`); the last source's error is the pull's. A pull that was
cancelled (its client went away) is not tried again.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import IO, Any, Callable, TypeVar, cast

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.errors import DockyardError, NotFound, Unauthorized
from dockyard.hookspecs.registry import RegistryBackend, VerifyingReader

from .images import ImageStore
from .transfer import MAX_CONFIG, Progress, Puller, fetch_manifest, pull_denied, read_all

log = logging.getLogger(__name__)
T = TypeVar("T")


def close_all(backends: list[RegistryBackend]) -> None:
    for b in backends:
        with contextlib.suppress(Exception):
            b.close()


def each_source(backends: list[RegistryBackend], fn: Callable[[int, RegistryBackend], T],
                cancel: threading.Event | None = None) -> T:
    """``fn(i, backend)`` of the first source for which it succeeds; each failure is logged
    before the next source is tried, and the last one's (or a cancelled pull's) is raised."""
    for i, b in enumerate(backends):
        try:
            return fn(i, b)
        except DockyardError as exc:
            if i == len(backends) - 1 or (cancel is not None and cancel.is_set()):
                raise
            log.info("Attempting next endpoint for pull after error: %s", exc)
    raise NotFound("no registry to pull from")


def first_source(backends: list[RegistryBackend], repo: str,
                 ref: str) -> tuple[list[RegistryBackend], dict[str, Any]]:
    """The sources from the first one that knows ``repo:ref`` on, and the descriptor it gives
    (so that a pull reports a missing image before any progress, as dockerd)."""
    return each_source(backends, lambda i, b: (backends[i:], b.resolve(repo, ref)))


def pull(store: ImageStore, backends: list[RegistryBackend], repo: str, ref: str,
         progress: Progress, cancel: threading.Event, status_id: str | None = None) -> dict[str, Any]:
    """:meth:`Puller.pull` from each of ``backends`` in turn until one succeeds."""
    return each_source(backends, lambda i, b: Puller(store, b, progress, cancel).pull(
        repo, ref, status_id=status_id), cancel)


def open_pull(d: Any, ref: Any, auth: dict[str, Any] | None) -> list[RegistryBackend]:
    """The sources ``ref`` is pulled from (a build's ``FROM``), from the first that knows it
    on; NotFound in dockerd's words when none does. Runs in a worker thread."""
    every = d.remote(ref.domain, auth or {}).pull_sources()
    try:
        backends, _ = first_source(every, ref.path, ref.digest or ref.tag or "latest")
    except NotFound:
        close_all(every)
        raise pull_denied(ref, f"manifest unknown: {ref.digest or ref.tag or 'latest'}") from None
    except Unauthorized as exc:
        close_all(every)
        raise pull_denied(ref, exc.message) from None
    except BaseException:
        close_all(every)
        raise
    close_all(every[:len(every) - len(backends)])
    return backends


def tag_moves(images: Any, ref: Any, image_id: str) -> bool:
    """Whether pulling ``image_id`` as ``ref`` changes what ``ref`` names (dockerd's
    ``tagUpdated``: "Downloaded newer image" then, else "Image is up to date")."""
    try:
        return images.resolve(str(ref)) != image_id
    except DockyardError:  # NotFound, or not a reference this store knows
        return True


def pull_into(d: Any, ref: Any, backends: list[RegistryBackend], progress: Progress,
              cancel: threading.Event | None = None) -> dict[str, Any]:
    """Pull ``ref`` from ``backends`` (closed after), tag it and record its repo digest."""
    try:
        result = each_source(backends, lambda i, b: Puller(d.images, b, progress, cancel).pull(
            ref.path, ref.digest or ref.tag or "latest", status_id=ref.tag or ref.digest), cancel)
    finally:
        close_all(backends)
    result["fresh"] = tag_moves(d.images, ref, result["image_id"])
    if ref.tag:
        d.images.tag(result["image_id"], str(ref))
    d.images.add_repo_digest(ref.name, result["digest"], result["image_id"], result["media_type"])
    return result


# -- GET /distribution/{name}/json ----------------------------------------------------------------
def inspect(backends: list[RegistryBackend], repo: str, ref: str) -> dict[str, Any]:
    """dockerd's ``DistributionInspect`` of ``repo:ref`` (a tag or a digest), from the first
    source that has it: the manifest's descriptor, and the platforms it is for."""
    return each_source(backends, lambda i, b: _inspect(b, repo, ref))


def _inspect(b: RegistryBackend, repo: str, ref: str) -> dict[str, Any]:
    size = 0 if ref.startswith("sha256:") else int(b.resolve(repo, ref).get("size") or 0)
    media, raw, digest = fetch_manifest(b, repo, ref)
    doc = json.loads(raw)
    out: dict[str, Any] = {"Descriptor": {"mediaType": media, "digest": digest, "size": size or len(raw)},
           "Platforms": None}
    if media in mt.INDEX_MANIFESTS:
        out["Platforms"] = [platform(m.get("platform") or {}) for m in doc.get("manifests") or []]
    elif media == mt.DOCKER_MANIFEST:
        # as dockerd: the config's platform, if it names one (and nothing if it cannot be read);
        # an OCI image manifest gets none there either
        with contextlib.suppress(DockyardError, ValueError, KeyError, TypeError):
            cfg_desc = doc["config"]
            with contextlib.closing(b.get_blob(repo, mt.check_digest(cfg_desc["digest"]))) as s:
                config = json.loads(read_all(cast(IO[bytes], VerifyingReader(
                    s, cfg_desc["digest"], cfg_desc.get("size"), "config")), MAX_CONFIG))
            found = platform(_any_case(config, PLATFORM_KEYS))
            if found["os"] or found["architecture"]:
                out["Platforms"] = [found]
    return out


#: the fields of an OCI platform (ocispec.Platform), as JSON names them
PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant")


def platform(p: dict[str, Any]) -> dict[str, Any]:
    """ocispec.Platform as Go encodes it: architecture and os always, the rest when set."""
    out = {"architecture": str(p.get("architecture") or ""), "os": str(p.get("os") or "")}
    for key in PLATFORM_KEYS[2:]:
        if p.get(key):
            out[key] = p[key]
    return out


def _any_case(doc: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``doc``'s values for ``keys`` matched as Go's decoder matches them (exact, then in any
    case; a later key wins): dockerd reads the platform from an image config so."""
    from .schema.anycase import fold
    out: dict[str, Any] = {}
    folded = {fold(k): k for k in keys}
    for key, value in doc.items():
        name = key if key in keys else folded.get(fold(key))
        if name is not None:
            out[name] = value
    return out
