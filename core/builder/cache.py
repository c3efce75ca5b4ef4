"""The build cache: step results, ``cachefrom`` images, and the records ``/build/prune`` and
``system df`` see.

A step's key is a digest of its parent image, its instruction after substitution, the build
arguments in scope, the image config so far and the content it reads (copied files, bind-mount
sources); the result is the step's image (SQLite ``build_cache``). With ``cachefrom`` images,
as dockerd's legacy builder: a step is taken from an image whose history continues its
parent's with the same instruction (the image is "restored" from it), and a local cache hit
counts only if it is part of one of those images.

Records: each step entry (type ``regular``; shared when its image is part of a tagged image or a
container's, so that a prune without ``all`` keeps it, as BuildKit keeps cache that images
use) and each ``RUN --mount=type=cache`` directory (type ``exec.cachemount``, with its size).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, Iterable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter, NotFound

from ..filters import Args, labels_match, until as until_time
from ..filtersets import BUILD_PRUNE_KEYS


def key(parent: str | None, text: str, *extra: Any) -> str:
    data = json.dumps([parent, text, *extra], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


class StepCache:
    def __init__(self, images: Any, restore: Any, nocache: bool = False,
                 sources: list[str] | None = None) -> None:
        self.images = images
        self.restore = restore  # (parent, cfg, history entry, diff id or None) -> image id
        self.nocache = nocache
        # None: no ``cachefrom``, this daemon's own cache; a list (even empty, when no image
        # named was found): only what those images hold, as dockerd's ``MakeImageCache``
        self.sources = None if sources is None else [(s, images.config(s)) for s in sources]

    def get(self, k: str, parent: str | None, created_by: str, cfg: dict[str, Any]) -> str | None:
        """The image of step ``k`` (parent ``parent``, history line ``created_by``, resulting
        config ``cfg``), or None."""
        if self.nocache:
            return None
        hit = self.local(k)
        if self.sources is None:
            return hit
        if hit and any(self._is_ancestor(hit, s) for s, _ in self.sources):
            return hit
        return self._from_sources(parent, created_by, cfg)

    def put(self, k: str, image_id: str) -> None:
        self.images.state.put_build_step(k, image_id)

    def local(self, k: str) -> str | None:
        """This daemon's own entry for ``k`` (whose image still exists)."""
        if self.nocache:
            return None
        image_id = self.images.state.build_step(k)
        if image_id is None:
            return None
        try:
            self.images.get(image_id)
        except DockyardError:
            return None
        return image_id

    def _is_ancestor(self, image_id: str, of: str) -> bool:
        cur: str | None = of
        while cur:
            if cur == image_id:
                return True
            cur = self.images.parent_of(cur)
        return False

    def _from_sources(self, parent: str | None, created_by: str, cfg: dict[str, Any]) -> str | None:
        """dockerd's ``ImageCache.GetCache`` over the ``cachefrom`` images."""
        pcfg = self.images.config(parent) if parent else {}
        phist = pcfg.get("history") or []
        pdiffs = (pcfg.get("rootfs") or {}).get("diff_ids") or []
        for sid, scfg in self.sources or ():
            hist = scfg.get("history") or []
            diffs = (scfg.get("rootfs") or {}).get("diff_ids") or []
            n = len(phist)
            if len(hist) <= n or not _same_history(hist[:n], phist) or diffs[:len(pdiffs)] != pdiffs:
                continue
            entry = hist[n]
            if entry.get("created_by") != created_by:
                continue
            if n == len(hist) - 1 and _plain(scfg.get("config") or {}) == _plain(cfg):
                if parent:
                    self.images.set_parent(sid, parent)
                return sid
            diff_id = None if entry.get("empty_layer") else diffs[len(pdiffs)]
            self.sources = [(sid, scfg)]  # as dockerd: keep to this image from now on
            return self.restore(parent, cfg, entry, diff_id)
        return None


def _plain(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k != "Image" and v not in (None, "", {}, [])}


def _same_history(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return all(x.get("created_by") == y.get("created_by") and
               bool(x.get("empty_layer")) == bool(y.get("empty_layer")) for x, y in zip(a, b))


# -- records: prune and system df ------------------------------------------------------------------
TYPES = ("regular", "exec.cachemount", "source.local", "source.git.checkout", "internal", "frontend")


@dataclasses.dataclass
class Record:
    id: str
    type: str
    description: str
    created: float
    last_used: float
    size: int = 0
    in_use: bool = False
    shared: bool = False
    labels: dict[str, str] | None = None
    usage: int = 0

    def df(self) -> dict[str, Any]:
        from dockyard.hookspecs.host.timefmt import rfc3339
        return {"ID": self.id, "Parent": "", "Parents": [], "Type": self.type,
                "Description": self.description, "InUse": self.in_use, "Shared": self.shared,
                "Size": self.size, "CreatedAt": rfc3339(self.created),
                "LastUsedAt": rfc3339(self.last_used), "UsageCount": self.usage}


def step_records(d: Any) -> list[Record]:
    from ..listing import image_view
    used = _images_in_use(d)
    out = []
    for key, image_id in d.state.build_steps():
        try:
            view = image_view(d, d.images.get(image_id))
        except NotFound:
            out.append(Record(key, "regular", "a step whose image is gone", 0.0, 0.0))
            continue
        out.append(Record(key, "regular", f"build step {image_id[7:19]}", view.created,
                          view.created, shared=image_id in used, labels=dict(view.labels or {})))
    return out


def _images_in_use(d: Any) -> set[str]:
    """Images tagged or used by a container, and every image they were built on."""
    roots = d.state.tagged_image_ids()
    roots |= {c["Image"] for c in d.containers.all()}
    seen: set[str] = set()
    for image_id in roots:
        cur: str | None = image_id
        while cur and cur not in seen:
            seen.add(cur)
            cur = d.images.parent_of(cur)
    return seen


def records(d: Any) -> list[Record]:
    return step_records(d) + d.build_mounts.records()


def _select(args: Args, recs: list[Record], all_: bool, now: float) -> list[Record]:
    args.validate(BUILD_PRUNE_KEYS)
    if args.contains("until") and args.contains("unused-for"):
        raise InvalidParameter('conflicting filters: "until" and "unused-for"')
    for k in ("id", "parent", "type", "description"):
        if len(args.get(k)) > 1:
            raise InvalidParameter(f"filter '{k}' takes one value")
    for t in args.get("type"):
        if t not in TYPES:
            raise InvalidParameter(f"invalid filter 'type={t}' (one of {', '.join(TYPES)})")
    cut = until_time(Args({"until": args.get("until") + args.get("unused-for")}), now) \
        if args.contains("until") or args.contains("unused-for") else None
    out = []
    for r in recs:
        if r.in_use or (r.shared and not all_):
            continue
        if cut is not None and r.last_used > cut:
            continue
        if not _fields_match(args, r) or not labels_match(args, r.labels):
            continue
        out.append(r)
    return out


def _fields_match(args: Args, r: Record) -> bool:
    checks: Iterable[tuple[str, bool]] = (
        ("id", any(r.id.startswith(v) for v in args.get("id"))),
        ("type", r.type in args.get("type")),
        ("description", r.description in args.get("description")),
        ("parent", False),
        ("inuse", r.in_use), ("shared", r.shared), ("private", not r.shared))
    return all(ok for k, ok in checks if args.contains(k))


def prune(d: Any, args: Args, all_: bool = False, keep_storage: int = 0) -> tuple[list[str], int]:
    """``POST /build/prune``: the ids forgotten and the bytes freed. Without ``all`` only cache
    no image uses goes; with ``keep_storage``, the most recently used records are kept while the
    cache's total size stays within it."""
    now = time.time()
    recs = records(d)
    chosen = sorted(_select(args, recs, all_, now), key=lambda r: r.last_used)
    if keep_storage:
        total = sum(r.size for r in recs)
        kept = []
        for r in chosen:
            if total <= keep_storage:
                kept.append(r)
                continue
            total -= r.size
        chosen = [r for r in chosen if r not in kept]
    steps = [r.id for r in chosen if r.type == "regular"]
    d.state.drop_build_steps(steps)
    freed = d.build_mounts.remove([r.id for r in chosen if r.type == "exec.cachemount"])
    return [r.id for r in chosen], freed
