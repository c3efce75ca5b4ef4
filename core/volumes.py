"""Volumes (Docker's ``local`` driver) and the mounts a container asks for.

A named volume is a directory ``<data-root>/volumes/<name>/_data`` recorded in SQLite; an
anonymous one is the same with a random name and the ``com.docker.volume.anonymous`` label (as
Docker 23+ marks them). ``HostConfig.Binds`` (``-v``), ``HostConfig.Mounts`` (``--mount``),
``HostConfig.Tmpfs`` (``--tmpfs``) and the image's ``VOLUME``s become the container's ``Mounts``
(inspect's shape) at create; the spec builder turns them into bind and tmpfs mounts. A volume
created with options (``type``/``device``/``o``) is a mount on its ``_data`` directory, made
while containers use it (:mod:`.localvolumes`).
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import posixpath
import re
import secrets
import shutil
import stat
import subprocess
from typing import Any, Callable

from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter, NotFound

from . import localvolumes, propagation, subpath
from .volumeplugins import VolumePlugins, is_plugin_driver

log = logging.getLogger(__name__)

ANON_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_BIND_MODES = {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private",
               "rprivate", "nocopy", "consistent", "cached", "delegated"}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dest(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidParameter(f"invalid mount destination {path!r}: it must be an absolute path")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise InvalidParameter("invalid mount destination '/': cannot mount over the root")
    return clean


class VolumeService:
    def __init__(self, daemon: Any) -> None:
        self.state = daemon.state
        self.d = daemon
        self.root = os.path.join(daemon.data_root, "volumes")
        #: Docker volume plugins (the VolumeDriver protocol), by the name a volume records
        self.plugins = VolumePlugins(daemon.docker_plugins)
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.mounts = localvolumes.Mounts()

    # -- volumes --------------------------------------------------------------------------------
    def _row(self, name: str) -> dict[str, Any]:
        vol = self.state.volume(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def get(self, name: str) -> dict[str, Any]:
        """The volume as ``docker volume inspect`` shows it: a plugin's volume with the
        mount point and status its plugin reports now; a name dockyard has no record of as the
        first volume plugin that has it shows it (as dockerd). Blocking."""
        try:
            vol = self._row(name)
        except NotFound:
            found = self.plugins.find(name)
            if found is None:
                raise
            return found
        if is_plugin_driver(vol.get("Driver")):
            seen = self.plugins.get(vol["Driver"], name)
            vol["Mountpoint"] = seen.get("Mountpoint") or ""
            if seen.get("Status"):
                vol["Status"] = seen["Status"]
        return vol

    def list(self, warnings: list[str] | None = None, plugins: bool = True) -> list[dict[str, Any]]:
        """Every volume: dockyard's records, and (``plugins``) the volumes its volume plugins
        list that it has no record of (created behind its back, or by another daemon), as
        dockerd lists them. Plugins that cannot answer add to ``warnings``. Blocking."""
        vols = self.state.volumes()
        if not plugins:
            return vols
        known = {v["Name"] for v in vols}
        for vol in self.plugins.everywhere([] if warnings is None else warnings):
            if vol["Name"] not in known:
                known.add(vol["Name"])
                vols.append(vol)
        return vols

    def create(self, name: str | None, driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> dict[str, Any]:
        """``docker volume create``; ``driver`` "" takes an existing volume of any driver (a
        container's ``-v name:/dst``), else a new local one. Blocking for a plugin's volume."""
        if is_plugin_driver(driver):
            self.plugins.check(driver)
        else:
            options = localvolumes.check_options(options)
        anonymous = not name
        name = name or secrets.token_hex(32)
        if not _NAME.match(name):
            raise InvalidParameter(f"volume name {name!r} includes invalid characters, only "
                                   "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if len(name) > 255:  # the volume is a directory of that name
            raise InvalidParameter(f"volume name {name[:32]}... is too long: at most 255 "
                                   f"characters")
        existing = self.state.volume(name)
        if existing is not None:  # Docker: creating an existing volume returns it
            vol = existing
            if driver and driver != (vol.get("Driver") or "local"):
                raise Conflict(f"create {name}: volume name is already in use with driver "
                               f"{vol.get('Driver') or 'local'}, not {driver}")
            if options and options != (vol.get("Options") or {}):
                raise Conflict(f"volume {name} already exists with other options "
                               f"({json.dumps(vol.get('Options'))}): remove it first")
            return vol
        labels = dict(labels or {})
        if anonymous:
            labels[ANON_LABEL] = ""
        found = None if driver or anonymous else self.plugins.find(name)
        if found is not None:  # a plugin's volume dockyard had no record of: used, and kept
            return self._adopt(found)
        if is_plugin_driver(driver):
            return self._create_in_plugin(name, driver, labels, options or {})
        data_dir = os.path.join(self.root, name, "_data")
        os.makedirs(data_dir, mode=0o755, exist_ok=True)
        id_map = getattr(self.d, "id_map", None)
        if id_map is not None and not id_map.is_identity:  # writable by the containers' root
            os.chown(data_dir, *id_map.root)
        vol = {"Name": name, "Driver": "local", "Mountpoint": data_dir, "CreatedAt": _now(),
               "Labels": labels, "Scope": "local", "Options": options or None}
        self.state.add_volume(vol)
        self.d.event("volume", "create", name, {"driver": "local"})
        return vol

    def _create_in_plugin(self, name: str, driver: str, labels: dict[str, str],
                          options: dict[str, str]) -> dict[str, Any]:
        self.plugins.create(driver, name, options)
        vol = {"Name": name, "Driver": driver, "Mountpoint": "", "CreatedAt": _now(),
               "Labels": labels, "Scope": self.plugins.scope(driver), "Options": options or None}
        self.state.add_volume(vol)
        self.d.event("volume", "create", name, {"driver": driver})
        return vol

    def _adopt(self, vol: dict[str, Any]) -> dict[str, Any]:
        vol = {**vol, "CreatedAt": vol.get("CreatedAt") or _now(), "Labels": {},
               "Mountpoint": ""}
        vol.pop("Status", None)
        self.state.add_volume(vol)
        return vol

    def users(self, name: str) -> list[str]:
        return [c["Id"] for c in self.d.containers.all()
                if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.get("Mounts") or [])]

    def remove(self, name: str, force: bool = False) -> None:
        try:
            self._row(name)
        except NotFound:
            found = self.plugins.find(name)
            if found is None:
                if force:
                    return
                raise
            self._adopt(found)  # removed through its plugin below, as dockerd removes it
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._destroy(name)

    def _destroy(self, name: str) -> None:
        """The record and directory of an unused volume; a plugin's volume is removed by its
        plugin first (a refusal keeps the record); a local one still mounted (a leftover) is
        unmounted first, never removed through its mount (a bind volume's files are the
        host's)."""
        driver = self._row(name).get("Driver") or "local"
        if is_plugin_driver(driver):
            self.plugins.remove(driver, name)
        else:
            localvolumes.unmount(os.path.join(self.root, name, "_data"))
        self.state.delete_volume(name)
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        self.d.event("volume", "destroy", name, {"driver": driver})

    def prune(self, args: Any) -> tuple[list[str], int]:
        """``docker volume prune``: the unused volumes the filters (an ``Args``) select; the
        names removed and the bytes they held."""
        from .listing import volumes as select
        deleted, reclaimed = [], 0
        for vol in select(self, args, prune=True):
            size = directory_size(vol["Mountpoint"])
            try:
                self.remove(vol["Name"])
            except Conflict:  # taken by a container meanwhile
                continue
            reclaimed += max(size, 0)
            deleted.append(vol["Name"])
        return deleted, reclaimed

    # -- what a container mounts ----------------------------------------------------------------
    def mounts_for(self, host: dict[str, Any], volumes: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The ``Mounts`` of a new container, creating the named and anonymous volumes it needs.
        ``volumes`` are the image's and the request's ``Volumes`` (anonymous unless a bind or
        named volume already covers the destination). A volume plugin named and not found is a
        400 naming its field — when a volume would be made with it: as dockerd, a container with
        no volume may name any ``VolumeDriver``."""
        if volumes or any(not b.split(":")[0].startswith("/") for b in host.get("Binds") or []):
            self._check_driver("HostConfig.VolumeDriver", host.get("VolumeDriver"))
        out: dict[str, dict[str, Any]] = {}
        for spec in host.get("Binds") or []:
            parts = spec.split(":")
            if len(parts) not in (2, 3):
                raise InvalidParameter(f"invalid volume specification: {spec!r}")
            src, dst = parts[0], _dest(parts[1])
            modes = set(parts[2].split(",")) if len(parts) == 3 and parts[2] else set()
            if modes - _BIND_MODES:
                raise InvalidParameter(f"invalid mode {parts[2]!r} in volume specification {spec!r}")
            rw = "ro" not in modes
            if src.startswith("/"):
                prop = propagation.of(modes)
                # a missing source is made (a directory) when the container starts: prepare_binds
                out[dst] = {"Type": "bind", "Source": posixpath.normpath(src), "Destination": dst,
                            "Mode": parts[2] if len(parts) == 3 else "", "RW": rw,
                            "Propagation": prop}
            else:
                vol = self.create(src, host.get("VolumeDriver") or "")
                out[dst] = {"Type": "volume", "Name": vol["Name"], "Source": vol["Mountpoint"],
                            "Destination": dst, "Driver": vol["Driver"],
                            "Mode": parts[2] if len(parts) == 3 else "z", "RW": rw, "Propagation": ""}
        for i, m in enumerate(host.get("Mounts") or []):
            typ, dst = m.get("Type"), _dest(m.get("Target"))
            ro = bool(m.get("ReadOnly"))
            if typ == "bind":
                src = m.get("Source") or ""
                if not src.startswith("/") or not os.path.exists(src):
                    raise InvalidParameter(f"invalid mount config for type \"bind\": bind source path "
                                           f"does not exist: {src}")
                prop = (m.get("BindOptions") or {}).get("Propagation") or propagation.DEFAULT
                out[dst] = {"Type": "bind", "Source": posixpath.normpath(src), "Destination": dst,
                            "Mode": "", "RW": not ro, "Propagation": prop}
            elif typ == "volume":
                vopts = m.get("VolumeOptions") or {}
                # --mount volume-driver=..., volume-opt=...: the driver and options of a volume
                # this creates
                dcfg = vopts.get("DriverConfig") or {}
                self._check_driver(f"HostConfig.Mounts[{i}].VolumeOptions.DriverConfig.Name",
                                   dcfg.get("Name"))
                vol = self.create(m.get("Source") or None, dcfg.get("Name") or "",
                                  labels=vopts.get("Labels"), options=dcfg.get("Options"))
                # NoCopy (--mount volume-nocopy): no copy of the image's content, as -v :nocopy
                src = subpath.source(vol["Mountpoint"], vopts.get("Subpath") or "")
                out[dst] = {"Type": "volume", "Name": vol["Name"], "Source": src,
                            "Destination": dst, "Driver": vol["Driver"],
                            "Mode": "nocopy" if vopts.get("NoCopy") else "z", "RW": not ro,
                            "Propagation": ""}
            elif typ == "tmpfs":
                opts = m.get("TmpfsOptions") or {}
                data = []
                if opts.get("SizeBytes"):
                    data.append(f"size={int(opts['SizeBytes'])}")
                if opts.get("Mode"):
                    data.append(f"mode={int(opts['Mode']):o}")
                out[dst] = {"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": ",".join(data),
                            "RW": not ro, "Propagation": ""}
            else:
                raise InvalidParameter(f"mount type {typ!r} is not supported; use bind, volume or tmpfs")
        for dst, opts in (host.get("Tmpfs") or {}).items():
            dst = _dest(dst)
            out[dst] = {"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": opts or "",
                        "RW": "ro" not in (opts or "").split(","), "Propagation": ""}
        for dst in volumes or {}:
            dst = _dest(dst)
            if dst not in out:
                vol = self.create(None, host.get("VolumeDriver") or "")
                out[dst] = {"Type": "volume", "Name": vol["Name"], "Source": vol["Mountpoint"],
                            "Destination": dst, "Driver": vol["Driver"], "Mode": "", "RW": True,
                            "Propagation": ""}
        return [out[k] for k in sorted(out)]

    def volumes_from(self, specs: Any, mounts: list[dict[str, Any]],
                     peer: Callable[[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
        """``--volumes-from name[:ro|:rw]``: the other container's volumes and binds, at the
        same places (its own mode unless one is given), after the container's own mounts.
        ``peer(name, what)`` finds the other container."""
        taken = {m["Destination"] for m in mounts}
        out = list(mounts)
        for spec in specs or ():
            if not spec:
                raise InvalidParameter(f"invalid VolumesFrom entry {spec!r}")
            name, _, mode = spec.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidParameter(f"invalid mode for volumes-from: {mode}")
            other = peer(name, "mount the volumes of")
            for m in other.get("Mounts") or []:
                if m.get("Type") not in ("volume", "bind") or m["Destination"] in taken:
                    continue
                m = dict(m)
                if mode:
                    m["RW"] = mode == "rw"
                    m["Mode"] = mode
                out.append(m)
                taken.add(m["Destination"])
        return out

    def _check_driver(self, field: str, driver: str | None) -> None:
        if is_plugin_driver(driver):
            try:
                self.plugins.check(driver or "")
            except NotFound as e:
                raise InvalidParameter(f"{field}: {e.message}") from None

    def _subpath_of(self, m: dict[str, Any]) -> str:
        """The volume's mount point when mount ``m`` binds a subpath of it, else ""."""
        try:
            mountpoint = self._row(m["Name"])["Mountpoint"]
        except NotFound:
            return ""
        return mountpoint if m["Source"] != mountpoint else ""

    def copy_up(self, c: dict[str, Any], rootfs: str) -> None:
        """Docker's copy-up: an empty volume mounted where the image has content gets a copy
        of it (once, at first start). Runs in a worker thread."""
        from .archive import Resolved

        if c.get("_volumes_copied"):
            return
        c["_volumes_copied"] = True
        for m in c.get("Mounts") or []:
            if m.get("Type") != "volume" or m.get("Mode") == "nocopy" or self._subpath_of(m):
                continue  # a volume-subpath mount gets no copy of the image's content
            if os.listdir(m["Source"]):
                continue
            try:
                with Resolved(rootfs, m["Destination"]) as r:
                    if not os.path.isdir(r.host_path) or os.path.islink(r.host_path):
                        continue
                    src = os.readlink(f"/proc/self/fd/{r.dir_fd}") + "/" + r.name
            except NotFound:
                continue
            subprocess.run(["cp", "-a", "--", src + "/.", m["Source"]], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def release(self, c: dict[str, Any], remove_anonymous: bool) -> None:
        """A container goes away: with ``remove_anonymous`` (``rm -v``, ``--rm``) its anonymous
        volumes go too, unless another container uses them."""
        if not remove_anonymous:
            return
        for m in c.get("Mounts") or []:
            if m.get("Type") != "volume":
                continue
            try:
                vol = self._row(m["Name"])
            except NotFound:
                continue
            if ANON_LABEL in (vol.get("Labels") or {}) and not [u for u in self.users(m["Name"]) if u != c["Id"]]:
                try:
                    self._destroy(m["Name"])
                except DockyardError as e:  # a plugin refused: the volume stays, listed
                    log.warning("removing anonymous volume %s failed: %s", m["Name"], e)

    def prepare_binds(self, c: dict[str, Any]) -> None:
        """Before a start or a ``docker cp``, as dockerd: a missing bind source given with ``-v``
        is made (a directory); one given with ``--mount`` is refused."""
        propagation.check_sources(c.get("Mounts") or [])
        strict = {_dest(m.get("Target")) for m in c["HostConfig"].get("Mounts") or []
                  if isinstance(m, dict) and m.get("Type") == "bind"}
        for m in c.get("Mounts") or []:
            if m.get("Type") != "bind" or os.path.exists(m["Source"]):
                continue
            if m["Destination"] in strict:
                raise InvalidParameter(f"invalid mount config for type \"bind\": bind source path "
                                       f"does not exist: {m['Source']}")
            try:
                os.makedirs(m["Source"], mode=0o755, exist_ok=True)
            except OSError as e:
                raise InvalidParameter(f"error while creating mount source path "
                                       f"'{m['Source']}': mkdir {e.filename}: "
                                       f"{(e.strerror or str(e)).lower()}") from None

    def mount_events(self, c: dict[str, Any], action: str) -> None:
        """dockerd's ``mount`` / ``unmount`` events of the container's volumes (at start and
        stop, and around a ``docker cp``)."""
        for m in c.get("Mounts") or []:
            if m.get("Type") != "volume":
                continue
            attrs = {"driver": m.get("Driver") or "local", "container": c["Id"]}
            if action == "mount":
                attrs.update({"destination": m["Destination"],
                              "read/write": "true" if m.get("RW", True) else "false",
                              "propagation": m.get("Propagation") or ""})
            self.d.event("volume", action, m["Name"], attrs)

    # -- volumes with options: mounted while containers use them ------------------------------
    def _mounted_volumes(self, c: dict[str, Any]) -> list[tuple[str, dict[str, str], str]]:
        out = []
        for m in c.get("Mounts") or []:
            if m.get("Type") != "volume":
                continue
            try:
                opts = self._row(m["Name"]).get("Options") or {}
            except NotFound:
                continue
            if localvolumes.needs_mount(opts):
                out.append((m["Name"], opts, os.path.join(self.root, m["Name"], "_data")))
        return out

    def mount(self, c: dict[str, Any], user: str = "") -> None:
        """Before container ``c`` starts (or a ``docker cp`` reads or writes its files: another
        ``user``): mount its volumes that have options (the first user mounts), then check its
        volume-subpaths. Runs in a worker thread; a failed mount is the start's error."""
        own = not user  # the container's own start: its plugin volumes too (VolumeDriver.Mount)
        user = user or c["Id"]
        done = []
        try:
            for name, opts, target in self._mounted_volumes(c):
                self.mounts.acquire(name, opts, target, user)
                done.append((name, target))
            for m in c.get("Mounts") or []:  # volume-subpath: checked in the mounted volume
                if m.get("Type") == "volume" and (mountpoint := self._subpath_of(m)):
                    subpath.check(mountpoint, m["Source"])
            if own:  # last: nothing after it can fail and leave a plugin's volume mounted
                self.plugins.mount(c)
        except BaseException:
            for name, target in done:
                self.mounts.release(name, target, user)
            raise

    def unmount(self, c: dict[str, Any], user: str = "") -> None:
        """Container ``c`` stopped (or the ``user`` is done): release its volumes (the last user
        unmounts)."""
        if not user:
            self.plugins.unmount(c)  # VolumeDriver.Unmount of each of its Mount IDs
        for name, _opts, target in self._mounted_volumes(c):
            try:
                self.mounts.release(name, target, user or c["Id"])
            except Conflict as e:
                log.warning("volume %s: %s", name, e.message)

    def restore(self, running: list[dict[str, Any]]) -> None:
        """At daemon start: the running containers' volumes stay mounted and counted; the
        others are unmounted."""
        users: dict[str, set[str]] = {}
        for c in running:
            for name, _opts, _target in self._mounted_volumes(c):
                users.setdefault(name, set()).add(c["Id"])
        mounted = {v["Name"]: v["Mountpoint"] for v in self.list()
                   if localvolumes.needs_mount(v.get("Options"))}
        self.mounts.restore(users, mounted)


def spec_mounts(c: dict[str, Any]) -> list[dict[str, Any]]:
    """The runtime-spec mounts of a container's ``Mounts``."""
    out = []
    for m in c.get("Mounts") or []:
        if m["Type"] == "tmpfs":
            # Docker's defaults; the given options come after and win (exec, suid, dev)
            opts = ["noexec", "nosuid", "nodev"] + [o for o in (m.get("Mode") or "").split(",") if o]
            if not m.get("RW", True) and "ro" not in opts:
                opts.append("ro")
            out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": opts})
        else:
            opts = ["rbind", m.get("Propagation") or propagation.DEFAULT] + \
                ([] if m.get("RW", True) else ["ro"])
            out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                        "options": opts})
    return out


def directory_size(root: str) -> int:
    """Bytes in the files under ``root`` as dockerd counts a volume: apparent sizes, each
    inode once, directories not counted, symbolic links not followed; -1 if ``root`` is not a
    directory."""
    if not os.path.isdir(root):
        return -1
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or not st.st_size or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
