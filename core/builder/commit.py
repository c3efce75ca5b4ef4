"""Making a step's image: a config change only (an ``empty_layer`` history entry), or a layer
from a graph-driver read-write layer's changes. Every step image records its parent (dockerd's
intermediate images: untagged, hidden from ``images`` without ``-a``)."""
from __future__ import annotations

import contextlib
import platform
import secrets
from typing import Any, Callable

from dockyard.hookspecs.host.timefmt import rfc3339

#: Go's names of this host's architecture (what an image built here says it runs on)
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    return GO_ARCH.get(platform.machine(), platform.machine())


class Committer:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.images = daemon.images

    def top(self, image_id: str | None) -> str | None:
        return self.images.get(image_id)["top_layer"] if image_id else None

    def new_config(self, parent: str | None, cfg: dict[str, Any], entry: dict[str, Any],
                   diff_id: str | None, author: str | None = None) -> dict[str, Any]:
        """The image config of ``parent`` + ``cfg`` + history ``entry`` (+ a layer ``diff_id``)."""
        base: dict[str, Any] = self.images.config(parent) if parent else {
            "architecture": host_arch(), "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        new = {k: v for k, v in base.items() if k not in ("container", "container_config")}
        clean = {k: v for k, v in cfg.items() if v not in (None, "", {}, [])}
        if parent:
            clean["Image"] = parent
        new.update(created=entry["created"], config=clean)
        if author:
            new["author"] = author
        diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
        if diff_id is not None:
            diff_ids.append(diff_id)
        new["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        new["history"] = list(base.get("history") or []) + [entry]
        return new

    def make(self, parent: str | None, cfg: dict[str, Any], entry: dict[str, Any],
             chain: str | None, author: str | None = None) -> str:
        """Record the image (``chain``: its new top layer, None for a config-only step)."""
        diff_id = self.images.layer(chain)["diff_id"] if chain is not None else None
        top = chain if chain is not None else self.top(parent)
        image_id = self.images.create_image(self.new_config(parent, cfg, entry, diff_id, author), top)
        if parent:
            self.images.set_parent(image_id, parent)
        return image_id

    def config_only(self, parent: str | None, cfg: dict[str, Any], created_by: str,
                    author: str | None = None) -> str:
        entry = {"created": rfc3339(), "created_by": created_by, "empty_layer": True}
        return self.make(parent, cfg, entry, None, author)

    def commit_rw(self, rw_id: str, parent: str | None, cfg: dict[str, Any], created_by: str,
                  author: str | None = None) -> str:
        """An image of ``parent`` plus the changes of graph layer ``rw_id``."""
        top = self.top(parent)
        parent_cache = self.images.layer(top)["cache_id"] if top else None
        stream = self.d.graph.diff(rw_id, parent_cache)
        try:
            chain = self.images.register_layer(stream, top, keep_blob=True)
        finally:
            stream.close()
        entry = {"created": rfc3339(), "created_by": created_by}
        return self.make(parent, cfg, entry, chain, author)

    def restore(self, parent: str | None, cfg: dict[str, Any], entry: dict[str, Any],
                diff_id: str | None, author: str | None = None) -> str:
        """A step taken from a ``cachefrom`` image: its history ``entry`` (and layer) on
        ``parent``; the layer must be present (it is, the image being local)."""
        from ..images import chain_id
        chain = chain_id(self.top(parent), diff_id) if diff_id is not None else None
        return self.make(parent, cfg, entry, chain, author)

    # -- scratch layers ----------------------------------------------------------------------------
    def scratch(self, image_id: str | None) -> tuple[str, str]:
        """A new read-write layer over ``image_id``, mounted: its id and path."""
        rw = "build-" + secrets.token_hex(16)
        top = self.top(image_id)
        parent_cache = self.images.layer(top)["cache_id"] if top else None
        self.d.graph.create_rw(rw, parent_cache)
        try:
            return rw, self.d.graph.get(rw)
        except BaseException:
            with contextlib.suppress(Exception):
                self.d.graph.remove(rw)
            raise

    def drop(self, rw: str) -> None:
        with contextlib.suppress(Exception):
            self.d.graph.put(rw)
        with contextlib.suppress(Exception):
            self.d.graph.remove(rw)

    def layer_from(self, image_id: str | None, fill: Callable[[str], bool], cfg: dict[str, Any],
                   created_by: str, author: str | None = None) -> str:
        """Run ``fill(rootfs)`` on a scratch layer over ``image_id`` and commit what it changed;
        ``fill`` returning False means it changed nothing (a config-only step)."""
        rw, root = self.scratch(image_id)
        try:
            try:
                changed = fill(root)
            finally:
                self.d.graph.put(rw)
            if not changed:
                return self.config_only(image_id, cfg, created_by, author)
            return self.commit_rw(rw, image_id, cfg, created_by, author)
        finally:
            with contextlib.suppress(Exception):
                self.d.graph.remove(rw)

    @contextlib.contextmanager
    def mounted(self, image_id: str | None) -> Any:
        """``image_id``'s file system, mounted (on a throw-away layer) for reading."""
        rw, root = self.scratch(image_id)
        try:
            yield root
        finally:
            self.drop(rw)
