"""Running managed plugins: ``enable`` starts a plugin's root file system through the exec driver
(as moby's plugin manager does through containerd) with ``/run/docker/plugins/<id>/`` on the
host bind-mounted at ``/run/docker/plugins`` inside, and waits until the plugin listens on its
``Interface.Socket`` there; ``disable`` stops it. An enabled plugin that exits is started again
(after 0.1 s, doubling up to a minute while it keeps failing), as dockerd restarts it, and a
daemon that starts re-adopts the enabled plugins still running or starts them again.

What the plugin's spec holds is moby's ``InitSpec``: the default namespaces (minus the network,
pid or ipc namespace the config shares with the host), the default capabilities plus the
config's, its mounts (``/etc/hosts`` and ``/etc/resolv.conf`` of the host when it names a
network), its devices (all of them with ``AllowAllDevices``), ``PATH`` and its env settings,
its entrypoint and argument settings. A plugin with a ``PropagatedMount`` is refused (this
engine cannot give it an rshared root yet).

Talking to a running plugin (the ``VolumeDriver``/``NetworkDriver`` protocol over its socket) is
not this module's: until that exists, an enabled plugin runs and is listed, and no volume or
network can use it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from typing import Any

from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter

from . import devices as devicesmod
from . import spec as specmod

log = logging.getLogger(__name__)

#: where plugins' sockets live on the host, as dockerd's (``/run/docker/plugins/<id>/<socket>``)
SOCKET_ROOT = "/run/docker/plugins"
#: where a plugin finds that directory
RUNTIME_DESTINATION = "/run/docker/plugins"
#: how long a started plugin has to listen (dockerd: 0.5 s, then three tries 3 s apart)
LISTEN_TIMEOUT = 10.0


def plugin_spec(p: dict[str, Any], rootfs: str, sockdir: str, log_driver: str = "json-file"
                ) -> dict[str, Any]:
    cfg, settings = p["Config"], p["Settings"]
    if cfg["PropagatedMount"]:
        raise InvalidParameter(f"plugin {p['Name']}: PropagatedMount is not supported by this "
                               f"engine (its root cannot be rshared yet)")
    shared = {"network": cfg["Network"]["Type"] == "host", "pid": cfg["PidHost"],
              "ipc": cfg["IpcHost"]}
    namespaces = [{"type": t} for t in ("pid", "network", "mount", "ipc", "uts") if not shared.get(t)]
    mounts = specmod.base_mounts()
    for m in [*(cfg["Mounts"] or ()),
              {"Source": sockdir, "Destination": RUNTIME_DESTINATION, "Type": "bind",
               "Options": ["rbind", "rshared"]},
              *([{"Source": f, "Destination": f, "Type": "bind", "Options": ["rbind", "ro"]}
                 for f in ("/etc/hosts", "/etc/resolv.conf")] if cfg["Network"]["Type"] else [])]:
        if m.get("Source") is None:
            raise InvalidParameter(f"plugin {p['Name']}: mount source is not specified")
        mounts.append({"destination": m["Destination"], "type": m["Type"], "source": m["Source"],
                       "options": list(m.get("Options") or ())})
    host = {"Devices": [{"PathOnHost": d["Path"], "PathInContainer": d["Path"],
                         "CgroupPermissions": "rwm"} for d in settings["Devices"] if d.get("Path")]}
    dev_nodes, dev_rules = devicesmod.for_container(host)
    if cfg["Linux"]["AllowAllDevices"]:
        dev_rules = list(devicesmod.ALLOW_ALL)
    caps = list(dict.fromkeys([*specmod.DEFAULT_CAPS, *[
        c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
        for c in cfg["Linux"]["Capabilities"] or ()]]))
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                    "args": [*(cfg["Entrypoint"] or ()), *settings["Args"]],
                    "env": [f"PATH={specmod.DEFAULT_PATH}", *settings["Env"]],
                    "cwd": cfg["WorkDir"] or "/",
                    "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                                     "inheritable": caps, "ambient": []},
                    "noNewPrivileges": False, "rlimits": []},
        "root": {"path": rootfs, "readonly": False},
        "hostname": "",
        "mounts": mounts,
        "linux": {"namespaces": namespaces, "devices": dev_nodes,
                  "resources": {"devices": dev_rules},
                  "maskedPaths": specmod.MASKED_PATHS, "readonlyPaths": specmod.READONLY_PATHS},
        "annotations": {"io.dockyard.stop-signal": "SIGTERM", "io.dockyard.log.driver": log_driver},
    }


class PluginRunner:
    """Enable, disable and keep alive the managed plugins of a :class:`PluginService`."""

    def __init__(self, daemon: Any, service: Any) -> None:
        self.d, self.svc = daemon, service
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    @property
    def execdrv(self) -> Any:
        return self.d.execdriver

    def ids(self) -> set[str]:
        return set(self.svc.plugins)

    def sockdir(self, p: dict[str, Any]) -> str:
        return os.path.join(SOCKET_ROOT, p["Id"])

    def lock(self, pid: str) -> asyncio.Lock:
        return self.locks.setdefault(pid, asyncio.Lock())

    async def enable(self, ref: str, timeout: float = LISTEN_TIMEOUT) -> None:
        p = self.svc.get(ref)
        async with self.lock(p["Id"]):
            if p["Enabled"]:
                raise Conflict(f"plugin already enabled: plugin {p['Name']} is enabled")
            await self._run(p, timeout)
            p["Enabled"] = True
            self.svc.save(p)
        self.d.event("plugin", "enable", p["Id"], {"name": p["Name"]})

    async def _run(self, p: dict[str, Any], timeout: float) -> None:
        """Start ``p`` and wait until it listens; nothing is left running if it does not."""
        pid, sockdir = p["Id"], self.sockdir(p)
        os.makedirs(sockdir, mode=0o700, exist_ok=True)
        spec = plugin_spec(p, os.path.join(self.svc.dir(p), "rootfs"), sockdir)
        log_path = os.path.join(self.svc.dir(p), "plugin-json.log")
        try:
            await self.execdrv.create(pid, spec, log_path=log_path)
            await self.execdrv.start(pid)
            await self._wait_listening(p, log_path, timeout)
        except BaseException:
            await self._stop(pid)
            shutil.rmtree(sockdir, ignore_errors=True)
            raise
        self.watchers[pid] = asyncio.create_task(self._watch(pid), name=f"plugin-{pid[:12]}")

    async def _wait_listening(self, p: dict[str, Any], log_path: str, timeout: float) -> None:
        path = os.path.join(self.sockdir(p), p["Config"]["Interface"]["Socket"])
        deadline = time.monotonic() + max(timeout, 1.0)
        err: OSError | None = None
        while time.monotonic() < deadline:
            if (await self.execdrv.state(p["Id"])).status == "exited":
                raise DockyardError(f"plugin {p['Name']} exited before it listened on {path}: "
                                    f"{_tail(log_path)}")
            try:
                await asyncio.to_thread(_dial, path)
                return
            except OSError as exc:
                err = exc
            await asyncio.sleep(0.1)
        raise DockyardError(f"plugin {p['Name']}: dial unix {path}: {err.strerror if err else 'timeout'}")

    async def _stop(self, pid: str) -> None:
        """SIGTERM, SIGKILL after 10 s (dockerd's ``shutdownPlugin``), then forget it."""
        task = self.watchers.pop(pid, None)
        if task is not None:
            task.cancel()
        with contextlib.suppress(DockyardError):
            st = await self.execdrv.state(pid)
            if st.status in ("running", "paused"):
                await self.execdrv.kill(pid, 15)
                try:
                    await asyncio.wait_for(self.execdrv.wait(pid), 10)
                except asyncio.TimeoutError:
                    await self.execdrv.kill(pid, 9)
                    await asyncio.wait_for(self.execdrv.wait(pid), 30)
        with contextlib.suppress(DockyardError):
            await self.execdrv.delete(pid)

    async def disable(self, ref: str, force: bool = False) -> None:
        p = self.svc.get(ref)
        async with self.lock(p["Id"]):
            if not p["Enabled"]:
                raise Conflict(f"plugin {p['Name']} is already disabled")
            await self._stop(p["Id"])
            p["Enabled"] = False
            self.svc.save(p)
            shutil.rmtree(self.sockdir(p), ignore_errors=True)
        self.d.event("plugin", "disable", p["Id"], {"name": p["Name"]})

    async def remove(self, ref: str, force: bool = False) -> None:
        """Stop a plugin being removed with ``force`` while enabled; then the store removes it."""
        p = self.svc.get(ref)
        async with self.lock(p["Id"]):
            if p["Enabled"] and force:
                await self._stop(p["Id"])
                shutil.rmtree(self.sockdir(p), ignore_errors=True)
            self.svc.remove(p["Id"], force)

    async def _watch(self, pid: str) -> None:
        """Start an enabled plugin again when it exits, backing off while it keeps failing."""
        delay = 0.1
        while True:
            started = time.monotonic()
            await self.execdrv.wait(pid)
            p = self.svc.plugins.get(pid)
            if p is None or not p["Enabled"]:
                return
            delay = 0.1 if time.monotonic() - started > 10 else min(delay * 2, 60.0)
            log.warning("plugin %s exited; starting it again in %.1f s", p["Name"], delay)
            await asyncio.sleep(delay)
            async with self.lock(pid):
                if not p["Enabled"]:
                    return
                with contextlib.suppress(DockyardError):
                    await self.execdrv.delete(pid)
                try:
                    spec = plugin_spec(p, os.path.join(self.svc.dir(p), "rootfs"), self.sockdir(p))
                    await self.execdrv.create(pid, spec, log_path=os.path.join(
                        self.svc.dir(p), "plugin-json.log"))
                    await self.execdrv.start(pid)
                except DockyardError as exc:
                    log.warning("plugin %s: start failed: %s", p["Name"], exc)

    async def restore(self, held: dict[str, Any]) -> None:
        """At start-up: re-adopt the enabled plugins the exec driver still runs (``held``: its
        process states by id), start the others again; stop what a disabled plugin left."""
        for pid, p in list(self.svc.plugins.items()):
            st = held.get(pid)
            if p["Enabled"] and st is not None and st.status in ("running", "paused"):
                self.watchers[pid] = asyncio.create_task(self._watch(pid), name=f"plugin-{pid[:12]}")
                log.info("re-adopted plugin %s", p["Name"])
                continue
            if st is not None:
                await self._stop(pid)
            if p["Enabled"]:
                try:
                    await self._run(p, LISTEN_TIMEOUT)
                except DockyardError as exc:
                    log.warning("plugin %s could not be enabled again: %s", p["Name"], exc)
                    p["Enabled"] = False
                    self.svc.save(p)

    async def shutdown(self) -> None:
        """The daemon stops: plugins keep running (as containers do); stop watching them."""
        for task in self.watchers.values():
            task.cancel()
        self.watchers.clear()


def _dial(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(path)


def _tail(log_path: str) -> str:
    import json
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()[-5:]
        return "".join(json.loads(line).get("log", "") for line in lines).strip() or "no output"
    except (OSError, ValueError):
        return "no output"
