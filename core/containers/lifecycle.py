"""A container's lifecycle after create: stop, kill, restart, wait, remove, pause, update,
rename, prune, and the daemon's restore of its containers at start."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal as signal_mod
import time
from typing import Any

from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter, NotFound, NotModified
from dockyard.hookspecs.execdriver import ExitStatus

from .. import links as linksmod, resources as resourcesmod, spec as specmod
from ..attach import check_removable, end_pending
from ..filters import Args
from ..filtersets import prune_matcher
from . import config
from .config import parse_signal
from .running import Running

log = logging.getLogger(__name__)

KILL_WAIT = 10  # seconds a SIGKILL waits for the exit, as dockerd


class Lifecycle(Running):
    # -- stop / kill / wait ---------------------------------------------------------------------
    async def kill(self, ref: str, sig: str | int | None) -> None:
        """Send ``sig``; as dockerd, a SIGKILL is answered once the container has exited (up
        to 10 s): clients read ``State.Running`` right after."""
        c = self.get(ref)
        num = parse_signal(sig)
        if not c["State"]["Running"]:
            raise Conflict(f"cannot kill container: {ref}: container {c['Id']} is not running")
        self._mark_manually_stopped(c)
        exited = self._exit_future(c) if num == signal_mod.SIGKILL else None
        try:
            await self.drv(c["Id"]).kill(c["Id"], num)
        except BaseException:
            if exited is not None:
                exited.cancel()
            raise
        self._event("kill", c, signal=str(num))
        if exited is not None:
            try:
                await asyncio.wait_for(exited, KILL_WAIT)
            except asyncio.TimeoutError:
                log.warning("container %s did not exit within %d s of SIGKILL", c["Id"][:12], KILL_WAIT)

    async def stop(self, ref: str, timeout: int | None, sig: str | None = None) -> None:
        c = self.get(ref)
        # the user wants it stopped: no restart policy brings it back, even one in flight
        self._mark_manually_stopped(c)
        if c["State"].get("Restarting"):  # waiting out the restart back-off: just cancel it
            c["State"].update(Status="exited", Restarting=False)
            self.save(c)
            return
        if not c["State"]["Running"]:
            raise NotModified("container already stopped")
        if timeout is None:
            timeout = c["Config"].get("StopTimeout", 10)
        num = parse_signal(sig or c["Config"].get("StopSignal") or "SIGTERM")
        fut = self._exit_future(c)
        with contextlib.suppress(DockyardError):
            await self.drv(c["Id"]).kill(c["Id"], num)
            self._event("kill", c, signal=str(num))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout if timeout >= 0 else None)
        except asyncio.TimeoutError:
            with contextlib.suppress(DockyardError):
                await self.drv(c["Id"]).kill(c["Id"], signal_mod.SIGKILL)
                self._event("kill", c, signal=str(int(signal_mod.SIGKILL)))
            await fut
        self._event("stop", c)

    async def restart(self, ref: str, timeout: int | None, sig: str | None = None) -> None:
        """``docker restart``: stop it if it runs (``timeout``, ``sig`` as for stop), then start it."""
        c = self.get(ref)
        if c["State"]["Running"]:
            await self.stop(c["Id"], timeout, sig)
        await self.start(c["Id"])

    def wait_future(self, ref: str, condition: str) -> asyncio.Future[int]:
        """A future of the exit code for ``condition`` (not-running, next-exit, removed)."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition == "removed":
            fut: asyncio.Future[int] = loop.create_future()
            self.rt(c["Id"]).remove_waiters.append(fut)
            return fut
        if condition in ("not-running", "") and not c["State"]["Running"]:
            fut = loop.create_future()
            fut.set_result(c["State"]["ExitCode"])
            return fut
        return self._exit_future(c)

    # -- remove ---------------------------------------------------------------------------------
    async def remove_link(self, name: str) -> None:
        """``docker rm --link /web/db``: :func:`dockyard.core.links.remove`."""
        linksmod.remove(self, name)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm [-f] [-v]``: ``volumes`` (and ``--rm``) also removes the container's
        anonymous volumes."""
        c = self.get(ref)
        cid = c["Id"]
        rt = self.rt(cid)
        check_removable(c, ref, force)
        if c["State"].get("Restarting"):  # waiting out the restart back-off: no more restarts
            self._mark_manually_stopped(c)
            c["State"].update(Status="exited", Restarting=False)
            self.save(c)
        if c["State"]["Running"]:
            rt.stopping = True
            fut = self._exit_future(c)
            with contextlib.suppress(DockyardError):
                await self.drv(cid).kill(cid, signal_mod.SIGKILL)
            self._event("kill", c, signal=str(int(signal_mod.SIGKILL)))
            try:
                await asyncio.wait_for(fut, 30)
            except asyncio.TimeoutError:
                raise DockyardError(f"container {cid[:12]} did not exit after SIGKILL") from None
        async with rt.lock:
            if cid not in self._cache:
                return
            rt.stopping = True
            with contextlib.suppress(NotFound):
                await self.drv(cid).delete(cid)
            if self.d.networks.set_up(c):
                await self.d.networks.teardown(c)  # prepared (attached) but never started
            if rt.prepared:
                rt.prepared = False
                await asyncio.to_thread(self.d.volumes.unmount, c)
                await asyncio.to_thread(self.graph.put, cid)
                self.d.volumes.mount_events(c, "unmount")
            if self.graph.exists(cid):
                await asyncio.to_thread(self.graph.remove, cid)
            self.forget(c, volumes)
        end_pending(rt.pending)
        self._rt.pop(cid, None)
        for fut in rt.remove_waiters:
            if not fut.done():
                fut.set_result(c["State"]["ExitCode"])
        self.d.emit("dockyard_container_removed", container_id=cid)
        self._event("destroy", c)

    def forget(self, c: dict[str, Any], volumes: bool = False) -> None:
        """Drop a container whose writable layer is gone: its record, directory, exec records
        and (with ``volumes`` or ``--rm``) its anonymous volumes."""
        cid = c["Id"]
        self.state.delete_container(cid)
        self._cache.pop(cid, None)
        self.d.volumes.release(c, volumes or bool(c["HostConfig"].get("AutoRemove")))
        self.d.execs.forget_container(cid)
        shutil.rmtree(os.path.join(self.root, cid), ignore_errors=True)

    # -- pause / stats ----------------------------------------------------------------------------
    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id']} is not running")
        if c["State"]["Paused"]:
            raise Conflict(f"Container {c['Id']} is already paused")
        await self.drv(c["Id"]).pause(c["Id"])
        c["State"].update(Paused=True, Status="paused")
        self.save(c)
        self._event("pause", c)

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c["State"]["Paused"]:
            raise Conflict(f"Container {c['Id']} is not paused")
        await self.drv(c["Id"]).resume(c["Id"])
        c["State"].update(Paused=False, Status="running")
        self.save(c)
        self._event("unpause", c)

    # -- update -----------------------------------------------------------------------------------
    async def update(self, ref: str, body: Any) -> dict[str, Any]:
        """``docker update``: new resource limits (applied at once to a running container, kept
        for later starts) and restart policy. ``body``: checked by
        :class:`dockyard.core.schema.ContainerUpdate`."""
        c = self.get(ref)
        host = c["HostConfig"]
        new, updated = config.update_values(body, host)
        warnings = resourcesmod.check_update(host, new, updated, self.drv(c["Id"]))
        if new and (c["State"]["Running"] or self.rt(c["Id"]).prepared):
            await self.drv(c["Id"]).update(c["Id"], specmod.resources_of(updated))
        policy = config.updated_policy(body)
        if policy is not None:
            updated["RestartPolicy"] = policy
        c["HostConfig"] = updated
        self.save(c)
        self._event("update", c)
        return {"Warnings": warnings}

    # -- rename / prune -------------------------------------------------------------------------
    async def rename(self, ref: str, new: str) -> None:
        full = config.full_name(new)
        c = self.get(ref)
        if full == c["Name"]:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        self._check_name_free(full)
        old = c["Name"]
        c["Name"] = full
        self.save(c)
        self._event("rename", c, oldName=old)

    async def prune(self, args: Args) -> tuple[list[str], int]:
        """``docker container prune``: remove every container not running that the ``until``,
        ``label`` and ``label!`` filters select; the ids removed and the bytes their writable
        layers held."""
        ok = prune_matcher(args)
        deleted, reclaimed = [], 0
        for c in list(self._cache.values()):
            if c["State"]["Running"] or c["State"].get("Restarting"):
                continue
            if not ok(c["_created"], c["Config"].get("Labels")):
                continue
            _top, parent = self._image_top(c)
            try:
                size = await asyncio.to_thread(self.graph.diff_size, c["Id"], parent)
            except DockyardError:
                size = 0
            try:
                await self.remove(c["Id"])
            except DockyardError as exc:  # as dockerd: one that cannot go is skipped
                log.warning("prune: container %s not removed: %s", c["Id"][:12], exc)
                continue
            reclaimed += size
            deleted.append(c["Id"])
        return deleted, reclaimed

    # -- daemon start / stop --------------------------------------------------------------------
    async def restore(self) -> None:
        """Re-adopt containers still running in the exec driver; record the ones that died."""
        held, owner = await self.d.runtimes.restore()
        plugins = {pid: held.pop(pid) for pid in self.d.plugin_runner.ids() if pid in held}
        for c in list(self._cache.values()):
            cid = c["Id"]
            proc = held.pop(cid, None)
            if c["State"]["Running"]:
                if proc is not None and proc.status in ("running", "paused"):
                    rt = self.rt(cid)
                    await asyncio.to_thread(self.graph.get, cid)
                    rt.prepared = True
                    c["State"]["Pid"] = proc.pid
                    self.save(c)
                    rt.watcher = asyncio.create_task(self._watch(cid))
                    self._start_health(c)
                    log.info("re-adopted running container %s", cid[:12])
                else:
                    self.rt(cid).prepared = proc is not None
                    if proc is not None:
                        await asyncio.to_thread(self.graph.get, cid)
                    status = proc.exit if proc is not None and proc.exit else \
                        ExitStatus(255, time.time(), error="container lost while the daemon was down")
                    await self._record_exit(c, status)
                    if c["HostConfig"].get("AutoRemove"):
                        await self.remove(cid, force=True)
            elif proc is not None:
                with contextlib.suppress(DockyardError):
                    await self.drv(cid).delete(cid)
        running = [c for c in self._cache.values() if c["State"]["Running"]]
        await asyncio.to_thread(self.d.volumes.restore, running)
        await self.d.networks.reconcile(running)
        for c in list(self._cache.values()):
            if c["State"].get("Restarting"):
                c["State"].update(Status="exited", Restarting=False)
                self.save(c)
            if not c["State"]["Running"] and c["HostConfig"].get("RestartPolicy", {}).get("Name") in (
                    "always", "unless-stopped") and not c.get("_manually_stopped"):
                try:
                    await self.start(c["Id"])
                    log.info("restarted %s (restart policy)", c["Id"][:12])
                except DockyardError as exc:
                    log.warning("restart policy: starting %s failed: %s", c["Id"][:12], exc)
        for cid in held:  # a driver holds containers we have no record of
            log.warning("deleting unknown container %s found in exec driver %s", cid[:12], owner[cid].name)
            with contextlib.suppress(DockyardError):
                await owner[cid].delete(cid)
        await self.d.plugin_runner.restore(plugins)  # managed plugins run in the driver too

    async def shutdown(self) -> None:
        for rt in self._rt.values():
            for task in (rt.watcher, rt.health):
                if task is not None:
                    task.cancel()
