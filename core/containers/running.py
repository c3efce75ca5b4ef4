"""Running a container: preparing it (rootfs, volumes, network, spec), starting it, watching
for its exit, recording the exit and applying the restart policy."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal as signal_mod
import time
from typing import TYPE_CHECKING, Any

from dockyard.hookspecs.errors import Conflict, DockyardError, ExecError, InvalidParameter, NotFound, NotModified
from dockyard.hookspecs.execdriver import ExitStatus
from dockyard.hookspecs.host import ns
from dockyard.hookspecs.host.timefmt import rfc3339
from dockyard.hookspecs.idmap import IDMap

from .. import health, links as linksmod, spec as specmod
from ..attach import StartFailed, connect_pending, end_pending, record_start_failure
from ..blobs import atomic_write
from ..networks import DEFAULT_NETWORKS
from .base import ServiceBase
from .config import NS_MODES, parse_time

log = logging.getLogger(__name__)


class Running(ServiceBase):
    if TYPE_CHECKING:  # in .lifecycle; an auto-removed container is removed from here
        async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...

    # -- prepare / start ------------------------------------------------------------------------
    async def _prepare(self, c: dict[str, Any]) -> None:
        """Mount the rootfs and hand the exec driver its spec (before attach or start)."""
        rt = self.rt(c["Id"])
        if rt.prepared:
            return
        cid = c["Id"]
        self._check_not_migrating()
        await asyncio.to_thread(self.d.volumes.prepare_binds, c)
        rootfs = await asyncio.to_thread(self.graph.get, cid)
        networked = volumes_mounted = False
        try:
            await asyncio.to_thread(self.d.volumes.mount, c)  # volumes with mount options
            volumes_mounted = True
            if not c.get("_volumes_copied") and c.get("Mounts"):
                await asyncio.to_thread(self.d.volumes.copy_up, c, rootfs)
                self.save(c)
            namespaces = self._own_namespaces(c)
            id_map = self.id_map(c)
            mode = c["HostConfig"].get("NetworkMode") or ""
            if mode.startswith("container:"):
                peer = self._cache.get(mode[len("container:"):])
                if peer is None or not peer["State"]["Running"] or not peer["State"].get("Pid"):
                    raise Conflict(f"cannot join network namespace of a non running container: "
                                   f"{mode[len('container:'):][:12]}")
                namespaces.append({"type": "network", "path": f"/proc/{peer['State']['Pid']}/ns/net"})
            else:
                # the sandbox is ready (endpoints plumbed, ports published) before the process runs
                networked = True
                namespaces += await self.d.networks.setup(c)
                self.save(c)
                c["_link_env"] = linksmod.environment(c, self._find_name, DEFAULT_NETWORKS[0])
                self._write_etc_files(c, id_map)
            spec = specmod.build(c, rootfs, namespaces, id_map,
                                 no_new_privs=self.d.config["no-new-privileges"],
                                 rt_budget=(self.d.config["cpu-rt-period"],
                                            self.d.config["cpu-rt-runtime"]))
            cfg = c["Config"]
            await self.drv(cid).create(cid, spec, log_path=c["LogPath"], tty=cfg["Tty"],
                                      open_stdin=cfg["OpenStdin"], stdin_once=cfg["StdinOnce"])
        except BaseException:
            if networked:
                await self.d.networks.teardown(c)
                self.save(c)
            if volumes_mounted:
                await asyncio.to_thread(self.d.volumes.unmount, c)
            await asyncio.to_thread(self.graph.put, cid)
            raise
        rt.prepared = True
        self.d.volumes.mount_events(c, "mount")

    def _own_namespaces(self, c: dict[str, Any]) -> list[dict[str, str]]:
        """The namespaces the container creates or joins, other than the network's: its own,
        the host's (``host``: none made), or a running container's (``container:<name>``);
        a cgroup namespace of its own with ``--cgroupns private``."""
        out = [{"type": "mount"}]
        if c["HostConfig"].get("CgroupnsMode") == "private":
            out.append({"type": "cgroup"})
        for key, typ in NS_MODES:
            mode = c["HostConfig"].get(key) or ""
            if mode == "host":
                continue
            if mode.startswith("container:"):
                peer = self.get(mode[len("container:"):])
                if not peer["State"]["Running"] or not peer["State"].get("Pid"):
                    raise Conflict(f"cannot join the {typ} namespace of container "
                                   f"{peer['Name'][1:]}: it is not running")
                out.append({"type": typ, "path":
                            f"/proc/{peer['State']['Pid']}/ns/{ns.NAMESPACE_FILES[typ]}"})
                continue
            out.append({"type": typ})
        return out

    def _start_health(self, c: dict[str, Any]) -> None:
        """Run the container's health check, if it has one, while it runs."""
        rt = self.rt(c["Id"])
        if rt.health is not None:
            rt.health.cancel()
            rt.health = None
        check = c["Config"].get("Healthcheck")
        try:
            check = health.effective(None, check)
        except InvalidParameter:
            check = None
        if check is None:
            c["State"].pop("Health", None)
            return
        rt.health = asyncio.create_task(health.HealthMonitor(self, c["Id"], check).run(),
                                        name=f"health-{c['Id'][:12]}")

    def _write_etc_files(self, c: dict[str, Any], id_map: IDMap) -> None:
        # rewritten on every start, so a crash cannot lose them: no fsync (six of them, on the
        # event loop, were the largest cost on the start path in a cProfile of the daemon)
        hostname = c["Config"]["Hostname"]
        files = ((c["HostnamePath"], hostname + "\n"), (c["HostsPath"], self.d.networks.hosts_file(c)),
                 (c["ResolvConfPath"], self.d.networks.resolv_conf(c)))
        for path, text in files:
            atomic_write(path, text.encode(), durable=False)
            if not id_map.is_identity:  # the container's root may edit them, as in Docker
                os.chown(path, *id_map.root)

    async def start(self, ref: str, _policy: bool = False) -> None:
        """Start the container's process. ``_policy``: a restart policy's start, which gives way
        to a user's stop that arrives before or while it runs. As dockerd, a container that
        could not start records why (``State.Error``) and, with ``AutoRemove``, is removed
        before the error is answered (``docker run --rm`` waits for that)."""
        c = self.get(ref)
        try:
            await self._start(c, _policy)
        except StartFailed as failed:
            if c["HostConfig"].get("AutoRemove"):
                await self._auto_remove(c["Id"])
            raise failed.error from None

    async def _start(self, c: dict[str, Any], _policy: bool) -> None:
        cid = c["Id"]
        rt = self.rt(cid)
        async with rt.lock:
            if cid not in self._cache:  # removed while we waited for the lock
                raise NotFound(f"No such container: {cid}")
            if _policy and (c.get("_manually_stopped") or not c["State"].get("Restarting")):
                return
            if c["State"]["Running"]:
                raise NotModified("container already started")
            if rt.stopping:
                raise Conflict(f"container {cid[:12]} is being removed")
            now = time.time()
            try:
                await self._prepare(c)
                await connect_pending(rt.pending, self.drv(cid), cid)
                pid = await self.drv(cid).start(cid)
            except DockyardError as exc:
                end_pending(rt.pending)
                if isinstance(exc, ExecError):
                    await self._record_exit(c, ExitStatus(exc.exit_code, time.time(), error=exc.message))
                else:
                    record_start_failure(c, exc)
                    self.save(c)
                raise StartFailed(exc) from exc
            # FinishedAt keeps the last exit's time, as dockerd's SetRunning
            c["State"].update(Status="running", Running=True, Paused=False, Restarting=False,
                              Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339(now),
                              OOMKilled=False)
            if not _policy:
                c.pop("_manually_stopped", None)
            self.save(c)
            rt.watcher = asyncio.create_task(self._watch(cid), name=f"watch-{cid[:12]}")
            await self._initial_console_size(c)
            self._start_health(c)
            if _policy and c.get("_manually_stopped"):  # stopped while we were starting it
                with contextlib.suppress(DockyardError):
                    await self.drv(cid).kill(cid, signal_mod.SIGKILL)
        self.d.emit("dockyard_container_started", container=self.public(c))
        self._event("start", c)

    async def _initial_console_size(self, c: dict[str, Any]) -> None:
        """``HostConfig.ConsoleSize`` ([height, width], what ``docker run -t`` sends): the TTY's
        size right after start, before the client's own resize."""
        size = c["HostConfig"].get("ConsoleSize") or []
        if c["Config"]["Tty"] and len(size) == 2 and all(size):
            with contextlib.suppress(DockyardError, NotImplementedError):
                await self.drv(c["Id"]).resize(c["Id"], size[0], size[1])

    async def _watch(self, cid: str) -> None:
        try:
            status = await self.drv(cid).wait(cid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the driver lost it: record it as dead
            log.exception("waiting for %s failed", cid[:12])
            status = ExitStatus(255, time.time(), error=str(exc))
        c = self._cache.get(cid)
        if c is None:
            return
        rt = self.rt(cid)
        async with rt.lock:
            if cid not in self._cache:  # removed while we waited: nothing to record
                return
            # decided before anything awaits, so a stop arriving meanwhile sees "restarting"
            restart = not c["HostConfig"].get("AutoRemove") and self._should_restart(c, status.exit_code)
            await self._record_exit(c, status, restarting=restart)
        if c["HostConfig"].get("AutoRemove"):
            await self._auto_remove(cid)
        elif restart:
            await self._restart_later(c)

    def _should_restart(self, c: dict[str, Any], exit_code: int) -> bool:
        """Docker's restart policies: ``always`` and ``unless-stopped`` restart unless the user
        stopped or killed the container; ``on-failure[:N]`` only after a non-zero exit, N times."""
        policy = c["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "no" or c.get("_manually_stopped") or self.rt(c["Id"]).stopping:
            return False
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return exit_code != 0 and (limit == 0 or c["RestartCount"] < limit)
        return name in ("always", "unless-stopped")

    async def _restart_later(self, c: dict[str, Any]) -> None:
        cid = c["Id"]
        rt = self.rt(cid)
        ran = parse_time(c["State"]["FinishedAt"]) - parse_time(c["State"]["StartedAt"])
        # as dockerd: 100 ms, doubled while it keeps dying within 10 s of starting, at most 1 min
        rt.restart_delay = 0.1 if ran >= 10 or rt.restart_delay == 0 else min(rt.restart_delay * 2, 60.0)
        await asyncio.sleep(rt.restart_delay)
        cur = self._cache.get(cid)
        if cur is None or not cur["State"]["Restarting"] or rt.stopping or cur.get("_manually_stopped"):
            return
        c = cur
        c["RestartCount"] += 1
        try:
            await self.start(cid, _policy=True)
        except DockyardError as exc:
            log.warning("restart of %s failed: %s", cid[:12], exc)
            if cid in self._cache:  # not removed meanwhile
                c["State"].update(Status="exited", Restarting=False)
                self.save(c)

    async def _auto_remove(self, cid: str) -> None:
        if cid not in self._cache:
            return
        try:
            await self.remove(cid, force=True)
        except DockyardError:
            log.exception("auto-remove of %s failed", cid[:12])

    async def _record_exit(self, c: dict[str, Any], status: ExitStatus,
                           restarting: bool = False) -> None:
        cid = c["Id"]
        rt = self.rt(cid)
        if rt.health is not None:
            rt.health.cancel()
            rt.health = None
        c["State"].update(Status="restarting" if restarting else "exited", Restarting=restarting,
                          Running=False, Paused=False, Pid=0,
                          ExitCode=status.exit_code, OOMKilled=status.oom_killed,
                          Error=status.error, FinishedAt=rfc3339(status.finished_at))
        self.save(c)
        if self.d.networks.set_up(c):
            await self.d.networks.teardown(c)
            self.save(c)
        if rt.prepared:
            rt.prepared = False
            await asyncio.to_thread(self.d.volumes.unmount, c)
            try:
                await asyncio.to_thread(self.graph.put, cid)
            except Exception:  # noqa: BLE001
                log.exception("unmounting %s failed", cid[:12])
            self.d.volumes.mount_events(c, "unmount")
        waiters, rt.exit_waiters = rt.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(status.exit_code)
        self.d.emit("dockyard_container_exited", container=self.public(c), exit_code=status.exit_code)
        self._event("die", c, exitCode=str(status.exit_code))
