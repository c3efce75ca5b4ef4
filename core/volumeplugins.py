"""Volumes served by Docker volume plugins (the ``VolumeDriver`` protocol).

dockyard keeps the record of every volume (name, driver, labels, options) as it does for its
``local`` ones; the plugin owns the data. ``Create``/``Remove`` follow ``docker volume
create``/``rm``; ``List`` adds the plugins' other volumes to ``volume ls``; ``Get`` refreshes the mount point and status for ``inspect``; each container
start asks ``Mount`` with a fresh ``ID`` and binds the path the plugin answers, and the stop or
removal answers it with ``Unmount`` of the same ID, as dockerd does.
"""
from __future__ import annotations

import logging
import secrets
from typing import Any

from dockyard.hookspecs.errors import NotFound

from .dockerplugins import PluginDirs, PluginError

log = logging.getLogger(__name__)

IMPLEMENTS = "VolumeDriver"
#: the container key holding the IDs of its plugin mounts (destination -> ID)
MOUNT_IDS = "_plugin_mount_ids"


class VolumePlugins:
    def __init__(self, dirs: PluginDirs) -> None:
        self.dirs = dirs

    def _plugin(self, driver: str):  # noqa: ANN202
        try:
            return self.dirs.get(driver, IMPLEMENTS)
        except NotFound as e:
            raise NotFound(f"error looking up volume plugin {driver}: {e.message}") from None

    def check(self, driver: str) -> None:
        """NotFound unless ``driver`` is a reachable volume plugin."""
        self._plugin(driver)

    def scope(self, driver: str) -> str:
        try:
            caps = self._plugin(driver).call("VolumeDriver.Capabilities")
        except PluginError:  # optional in the protocol: an old plugin answers 404
            return "local"
        scope = (caps.get("Capabilities") or {}).get("Scope") or "local"
        return scope if scope in ("local", "global") else "local"

    def create(self, driver: str, name: str, options: dict[str, str]) -> None:
        self._plugin(driver).call("VolumeDriver.Create", {"Name": name, "Opts": options or {}})

    def remove(self, driver: str, name: str) -> None:
        self._plugin(driver).call("VolumeDriver.Remove", {"Name": name})

    def get(self, driver: str, name: str) -> dict[str, Any]:
        """The plugin's view of ``name``: ``Mountpoint`` and ``Status`` (``Get``; ``Path`` for a
        plugin whose ``Get`` answers no volume)."""
        plugin = self._plugin(driver)
        vol = plugin.call("VolumeDriver.Get", {"Name": name}).get("Volume") or {}
        if "Mountpoint" not in vol:
            vol["Mountpoint"] = plugin.call("VolumeDriver.Path", {"Name": name}).get("Mountpoint") or ""
        return vol

    def everywhere(self, warnings: list[str]) -> list[dict[str, Any]]:
        """The volumes every reachable volume plugin lists (``VolumeDriver.List``), each as
        ``docker volume ls`` shows a volume: with its plugin's name as ``Driver``. A plugin
        that cannot be reached or refuses adds to ``warnings`` (dockerd's ``ls`` Warnings)."""
        plugins, errors = self.dirs.all(IMPLEMENTS)
        warnings += errors
        out = []
        for plugin in plugins:
            try:
                listed = plugin.call("VolumeDriver.List").get("Volumes") or []
            except PluginError as e:
                warnings.append(f"volume plugin {plugin.name}: {e.message}")
                continue
            out += [_shown(plugin.name, v, self.scope(plugin.name)) for v in listed
                    if isinstance(v, dict) and v.get("Name")]
        return out

    def find(self, name: str) -> dict[str, Any] | None:
        """The volume ``name`` as the first volume plugin that has it shows it (``Get``), or
        None (dockerd's store asks every driver for a volume it has no record of)."""
        plugins, _ = self.dirs.all(IMPLEMENTS)
        for plugin in plugins:
            try:
                vol = plugin.call("VolumeDriver.Get", {"Name": name}).get("Volume")
            except PluginError:  # "no such volume", in the plugin's words
                continue
            if isinstance(vol, dict):
                return _shown(plugin.name, {**vol, "Name": name}, self.scope(plugin.name))
        return None

    def mount(self, c: dict[str, Any]) -> None:
        """Mount every plugin volume of container ``c``; each mount's ``Source`` becomes the
        path the plugin answers. A failure unmounts what was mounted and propagates."""
        ids: dict[str, str] = c.setdefault(MOUNT_IDS, {})
        try:
            for m in _plugin_mounts(c):
                if m["Destination"] in ids:
                    continue
                mount_id = secrets.token_hex(32)
                answer = self._plugin(m["Driver"]).call(
                    "VolumeDriver.Mount", {"Name": m["Name"], "ID": mount_id})
                ids[m["Destination"]] = mount_id
                path = answer.get("Mountpoint") or ""
                if not path.startswith("/"):
                    raise PluginError(f"VolumeDriver.Mount: plugin {m['Driver']} answered no "
                                      f"absolute Mountpoint for volume {m['Name']}: {path!r}")
                m["Source"] = path
        except BaseException:
            self.unmount(c)
            raise

    def unmount(self, c: dict[str, Any]) -> None:
        """Answer every ``Mount`` of container ``c`` with its ``Unmount`` (errors logged: the
        container is gone either way, as with dockerd)."""
        ids: dict[str, str] = c.get(MOUNT_IDS) or {}
        for m in _plugin_mounts(c):
            mount_id = ids.pop(m["Destination"], None)
            if mount_id is None:
                continue
            try:
                self._plugin(m["Driver"]).call("VolumeDriver.Unmount",
                                               {"Name": m["Name"], "ID": mount_id})
            except (PluginError, NotFound) as e:
                log.warning("unmounting volume %s of plugin %s failed: %s", m["Name"],
                            m["Driver"], e)
        c.pop(MOUNT_IDS, None)


def _shown(driver: str, vol: dict[str, Any], scope: str) -> dict[str, Any]:
    """A volume a plugin reports and dockyard has no record of, as ``volume ls``/``inspect``
    show it (no labels or options: those are the daemon's record, as with dockerd)."""
    out = {"Name": vol["Name"], "Driver": driver, "Mountpoint": vol.get("Mountpoint") or "",
           "Labels": None, "Scope": scope, "Options": None}
    if vol.get("CreatedAt"):
        out["CreatedAt"] = vol["CreatedAt"]
    if vol.get("Status"):
        out["Status"] = vol["Status"]
    return out


def _plugin_mounts(c: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in c.get("Mounts") or []
            if m.get("Type") == "volume" and (m.get("Driver") or "local") != "local"]


def is_plugin_driver(driver: str | None) -> bool:
    return bool(driver) and driver != "local"
