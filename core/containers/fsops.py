"""A container's files: ``docker cp`` (archive), ``diff`` (changes), ``commit`` and ``export``."""
from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any, AsyncIterator, Callable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter
from dockyard.hookspecs.host.timefmt import rfc3339

from .base import ServiceBase
from .config import committed_config


class FsOps(ServiceBase):
    # -- docker cp ------------------------------------------------------------------------------
    async def _view(self, ref: str) -> tuple[dict[str, Any], Any]:
        """``(container, view)``: the container's files as it sees them, its volumes, bind
        mounts, ``/etc`` files (and, running, its tmpfs mounts) at their places (core.cpview).
        The rootfs stays mounted until the view is closed (``view.close()``, in a thread)."""
        from .. import cpview
        c = self.get(ref)
        cid = c["Id"]
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.d.volumes.prepare_binds, c)
        user = f"{cid}/cp-{secrets.token_hex(4)}"  # volumes with options are mounted for it
        await asyncio.to_thread(self.d.volumes.mount, c, user)
        try:
            root = await asyncio.to_thread(self.graph.get, cid)
        except BaseException:
            await asyncio.to_thread(self.d.volumes.unmount, c, user)
            raise
        running = bool(c["State"]["Running"] and c["State"].get("Pid"))
        id_map = self.id_map(c)
        view = cpview.ContainerView(root, cpview.mounts_of(c, running),
                                    c["State"]["Pid"] if running else 0,
                                    None if id_map.is_identity else id_map.root)
        try:
            await asyncio.to_thread(view.open)
        except BaseException:
            await asyncio.to_thread(self.graph.put, cid)
            await asyncio.to_thread(self.d.volumes.unmount, c, user)
            raise
        self.d.volumes.mount_events(c, "mount")
        view.on_close(lambda: self.graph.put(cid))
        view.on_close(lambda: self.d.volumes.unmount(c, user))
        view.on_close(lambda: loop.call_soon_threadsafe(self.d.volumes.mount_events, c, "unmount"))
        return c, view

    async def archive_stat(self, ref: str, path: str) -> str:
        from .. import archive
        _c, view = await self._view(ref)
        try:
            return await asyncio.to_thread(view.call, archive.stat_header, view.root, path)
        finally:
            await asyncio.to_thread(view.close)

    async def archive_get(self, ref: str, path: str) -> tuple[str, Any]:
        """``(stat header, tar stream)``; the view stays open until the stream is done."""
        from .. import archive
        _c, view = await self._view(ref)
        try:
            header = await asyncio.to_thread(view.call, archive.stat_header, view.root, path)
            resolved = await asyncio.to_thread(view.call, archive.resolve_out, view.root, path)
            # the writer is started here, in the host's mount namespace (a thread is born in
            # its creator's): it reads through the view's descriptors, and its closing the view
            # (which releases the rootfs) must unmount in the host's namespace
            stream = await asyncio.to_thread(archive.tar_stream, resolved, view.close,
                                             getattr(self.graph, "id_map", None))
        except BaseException:
            await asyncio.to_thread(view.close)
            raise
        return header, stream

    async def archive_put(self, ref: str, path: str, tar_path: str,
                          no_overwrite_dir_nondir: bool = False, copy_uid_gid: bool = False) -> None:
        """Unpack the tar file ``tar_path`` (maybe compressed; checked whole before anything
        is written) into directory ``path`` of the container, as the container sees it (its
        volumes, bind mounts...: core.cpview). ``copy_uid_gid``: dockerd then chowns every entry
        to the container's ``User``; with no ``User`` that is the default."""
        from .. import archive, cpview
        c = self.get(ref)
        if copy_uid_gid and (c.get("Config") or {}).get("User"):
            raise InvalidParameter("copyUIDGID (docker cp -a) is not supported for a container "
                                   "with a User: entries keep the owners the archive records")
        c, view = await self._view(ref)

        def run(root: str) -> int:
            cpview.check_writable(c, root, path)  # read-only volume or rootfs, as dockerd
            return archive.extract_in(root, path, tar_path, getattr(self.graph, "id_map", None),
                                      no_overwrite_dir_nondir=no_overwrite_dir_nondir)
        try:
            await asyncio.to_thread(view.call, run, view.root)
        finally:
            await asyncio.to_thread(view.close)

    async def changes(self, ref: str) -> list[dict[str, Any]]:
        """``docker diff``: what the container changed in its image's file system."""
        from ..initlayer import hide_init_layer
        c = self.get(ref)
        _top, parent = self._image_top(c)
        return hide_init_layer(await asyncio.to_thread(self.graph.changes, c["Id"], parent))

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                     author: str = "", changes: list[str] | None = None,
                     config: dict[str, Any] | None = None, pause: bool = True) -> str:
        """``docker commit``: a new image whose top layer is the container's changes (as a
        layer tar whose blob is kept, so it can be pushed and saved as is) and whose config is
        the container's, with ``config`` overrides and Dockerfile-style ``changes`` on top."""
        from ..images import apply_changes

        c = self.get(ref)
        cid = c["Id"]
        top, parent = self._image_top(c)
        paused = False
        if pause and c["State"]["Running"] and not c["State"]["Paused"]:
            with contextlib.suppress(NotImplementedError, DockyardError):
                await self.drv(cid).pause(cid)
                paused = True
        try:
            def layer() -> str:
                stream = self.graph.diff(cid, parent)
                try:
                    return self.images.register_layer(stream, top, keep_blob=True)
                finally:
                    stream.close()
            chain = await asyncio.to_thread(layer)
        finally:
            if paused:
                with contextlib.suppress(DockyardError):
                    await self.drv(cid).resume(cid)
        base = self.images.config(c["Image"])
        ccfg = committed_config(c["Config"], config)
        apply_changes(ccfg, changes or [])
        created = rfc3339()
        new = dict(base)
        new.update(created=created, config=ccfg, container=cid)
        if author:
            new["author"] = author
        new["rootfs"] = {"type": "layers",
                         "diff_ids": list((base.get("rootfs") or {}).get("diff_ids") or [])
                         + [self.images.layer(chain)["diff_id"]]}
        new["history"] = list(base.get("history") or []) + [
            {"created": created, "created_by": " ".join([c["Path"], *c["Args"]]),
             **({"comment": comment} if comment else {}), **({"author": author} if author else {})}]
        image_id = await asyncio.to_thread(self.images.create_image, new, chain)
        # as dockerd: inspect's Parent, and ps --filter ancestor= finds the image's containers
        self.images.set_parent(image_id, c["Image"])
        tags = []
        if repo:
            from .. import reference
            r = reference.parse(repo, default_tag=False)
            tags.append(self.images.tag(image_id, str(r.with_tag(tag or r.tag or "latest"))))
        self.d.emit("dockyard_image_built", image_id=image_id, tags=tags)
        self._event("commit", c, imageID=image_id)
        return image_id

    # -- export ---------------------------------------------------------------------------------
    async def export(self, ref: str) -> ExportStream:
        """``docker export``: the container's whole file system as one tar, read through the
        graph driver's mount (so it works for any driver), which is held until the stream is
        closed. Refused while a storage migration runs, as everything that mounts a rootfs."""
        from dockyard.hookspecs.host.changes import compute_changes
        from dockyard.hookspecs.host.layertar import stream_from_writer, write_layer_tar
        c = self.get(ref)
        cid = c["Id"]
        self._check_not_migrating()
        root = await asyncio.to_thread(self.graph.get, cid)
        try:
            changes = await asyncio.to_thread(compute_changes, root, None)
            id_map = getattr(self.graph, "id_map", None)
            stream = stream_from_writer(lambda out: write_layer_tar(out, root, changes, id_map))
        except BaseException:
            await asyncio.to_thread(self.graph.put, cid)
            raise
        return ExportStream(stream, lambda: self.graph.put(cid), lambda: self._event("export", c))


class ExportStream:
    """A container's tar being exported: :meth:`chunks` reads it (an ``export`` event once it
    was read whole); :meth:`close` (always called) ends it and releases the rootfs."""

    CHUNK = 1 << 20

    def __init__(self, stream: Any, release: Callable[[], None], done: Callable[[], None]) -> None:
        self._stream, self._release, self._done = stream, release, done
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(self._stream.read, self.CHUNK):
            yield chunk
        self._done()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.close()
        finally:
            await asyncio.to_thread(self._release)
