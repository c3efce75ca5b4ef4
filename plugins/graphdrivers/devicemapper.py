"""The ``devicemapper`` graph driver: a dm-thin pool, a thin device per layer, snapshots for
children, ext4 made once on the base device.

Learned from moby's ``daemon/graphdriver/devmapper`` design; written from scratch on ``dmsetup``
(device-mapper's own tool: no libdevmapper binding needed)::

    <home>/devicemapper/data, metadata   sparse loop-backed pool files (development set-up)
    <home>/metadata/deviceset.json       pool name, next thin device id, base device size
    <home>/metadata/<id>.json            {"device_id": N, "size": bytes}
    <home>/mnt/<id>/                     where the layer's device is mounted while referenced;
                                         the layer's files are in its ``rootfs/``

* ``create(id, parent)``: ``create_snap N <parent's device id>`` (the base device 0 for a base
  layer); an active origin is suspended around the snapshot, as dm-thin requires.
* ``get``: activate ``thin <pool> N`` as ``<pool>-<id>``, mount it (ext4), return ``rootfs/``;
  ``put`` at zero unmounts and removes the mapping. ``remove``: ``delete N``.
* Storage options: ``dm.thinpooldev=/dev/mapper/NAME`` uses an existing pool (production, e.g. an
  LVM thin pool); otherwise ``dm.loopdatasize`` (default 100G) and ``dm.loopmetadatasize``
  (default 2G) size the sparse loop files. ``dm.basesize`` (default 10G) sizes every layer's
  file system; ``dm.blocksize`` (default 64K) the pool's data block.
* Checked before anything else: ``/dev/mapper/control``. Without it the kernel has no
  device-mapper and the constructor raises ``DriverNotSupported`` saying so.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import (Conflict, DockyardError, DriverNotSupported,
                                       InvalidParameter, NotFound)
from dockyard.hookspecs.graphdriver import GraphDriver
from dockyard.hookspecs.host import RefCounter
from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.naivediff import NaiveDiff

from .dirlayers import check_id

log = logging.getLogger(__name__)

_SECTOR = 512
_OPTIONS = {"dm.thinpooldev", "dm.loopdatasize", "dm.loopmetadatasize", "dm.basesize", "dm.blocksize"}


def _size(value: str, what: str) -> int:
    """``10G``, ``512M``, ``64K``, ``100GiB``, ``4096`` -> bytes."""
    try:
        return host.ram_in_bytes(value)
    except ValueError:
        raise InvalidParameter(f"devicemapper: invalid size {value!r} for {what}") from None


class DevicemapperDriver(NaiveDiff, GraphDriver):
    name = "devicemapper"

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        if not os.path.exists("/dev/mapper/control"):
            raise DriverNotSupported("devicemapper: /dev/mapper/control not found: the kernel "
                                     "has no device-mapper support")
        super().__init__(home, options, id_map)
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise InvalidParameter(f"devicemapper: unknown storage option(s): {', '.join(unknown)}; "
                                   f"valid: {', '.join(sorted(_OPTIONS))}")
        for tool in ("dmsetup", "losetup", "mkfs.ext4", "blockdev"):
            if shutil.which(tool) is None:
                raise DriverNotSupported(f"devicemapper: {tool} not found in PATH")
        targets = self._dm("targets")
        if "thin-pool" not in targets:
            raise DriverNotSupported("devicemapper: the thin-pool target is not available "
                                     "(dm-thin-pool module)")
        self.base_size = _size(self.options.get("dm.basesize", "10G"), "dm.basesize")
        self.block_sectors = _size(self.options.get("dm.blocksize", "64K"), "dm.blocksize") // _SECTOR
        self._meta = os.path.join(home, "metadata")
        self._mnt = os.path.join(home, "mnt")
        for d in (self._meta, self._mnt):
            os.makedirs(d, mode=0o700, exist_ok=True)
        if not self.id_map.is_identity:  # root of the user namespace must reach mnt/<id>
            for d in (home, self._mnt):
                os.chown(d, 0, self.id_map.root[1])
                os.chmod(d, 0o710)
        self._lock = threading.RLock()
        self._refs = RefCounter(self._lock, "devicemapper")
        self._loops: list[str] = []
        self.deviceset = self._load_deviceset()
        self.pool = self.options.get("dm.thinpooldev") or self.deviceset["pool"]
        if not self.pool.startswith("/dev/mapper/"):
            self.pool = "/dev/mapper/" + self.pool
        self._ensure_pool()
        self._ensure_base()

    # -- dmsetup ----------------------------------------------------------------------------------
    def _run(self, argv: list[str], input: bytes | None = None) -> str:
        proc = subprocess.run(argv, input=input, capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise DockyardError(f"devicemapper: {' '.join(argv)} failed: "
                                f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode(errors="replace").strip()

    def _dm(self, *args: str) -> str:
        return self._run(["dmsetup", *args])

    def _message(self, text: str) -> None:
        self._dm("message", self.pool, "0", text)

    def _dev_name(self, id: str) -> str:
        base = os.path.basename(self.pool)
        return f"{base[:-len('-pool')] if base.endswith('-pool') else base}-{id}"

    # -- state ----------------------------------------------------------------------------------
    def _load_deviceset(self) -> dict:
        path = os.path.join(self._meta, "deviceset.json")
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            st = os.stat(self.home)
            ds = {"pool": f"dockyard-{os.major(st.st_dev)}:{os.minor(st.st_dev)}-{st.st_ino}-pool",
                  "next_device_id": 1, "base_size": self.base_size, "base_ready": False}
            self._save_deviceset(ds)
            return ds

    def _save_deviceset(self, ds: dict | None = None) -> None:
        ds = ds if ds is not None else self.deviceset
        tmp = os.path.join(self._meta, ".deviceset.json.tmp")
        with open(tmp, "w") as f:
            json.dump(ds, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self._meta, "deviceset.json"))

    def _layer_meta(self, id: str) -> dict | None:
        try:
            with open(os.path.join(self._meta, check_id(id) + ".json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def _save_layer_meta(self, id: str, meta: dict) -> None:
        tmp = os.path.join(self._meta, f".{id}.json.tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self._meta, id + ".json"))

    # -- pool and base device -------------------------------------------------------------------
    def _active(self, name: str) -> bool:
        return subprocess.run(["dmsetup", "info", name], capture_output=True).returncode == 0

    def _ensure_pool(self) -> None:
        if self._active(self.pool):
            return
        if "dm.thinpooldev" in self.options:
            raise DockyardError(f"devicemapper: thin pool {self.pool} (dm.thinpooldev) is not active")
        files = os.path.join(self.home, "devicemapper")
        os.makedirs(files, mode=0o700, exist_ok=True)
        sizes = {"data": _size(self.options.get("dm.loopdatasize", "100G"), "dm.loopdatasize"),
                 "metadata": _size(self.options.get("dm.loopmetadatasize", "2G"), "dm.loopmetadatasize")}
        devs = {}
        for name, size in sizes.items():
            path = os.path.join(files, name)
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.truncate(size)
            devs[name] = self._run(["losetup", "--find", "--show", path])
            self._loops.append(devs[name])
        sectors = int(self._run(["blockdev", "--getsz", devs["data"]]))
        table = (f"0 {sectors} thin-pool {devs['metadata']} {devs['data']} "
                 f"{self.block_sectors} 32768 1 skip_block_zeroing")
        self._dm("create", os.path.basename(self.pool), "--table", table)

    def _ensure_base(self) -> None:
        if self.deviceset.get("base_ready"):
            return
        try:
            self._message("create_thin 0")
        except DockyardError as e:
            if "File exists" not in str(e):
                raise
        name = self._dev_name("base")
        self._activate(name, 0, self.base_size)
        try:
            self._run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0", f"/dev/mapper/{name}"])
            tmp = os.path.join(self._mnt, ".base")
            os.makedirs(tmp, exist_ok=True)
            host.mount(f"/dev/mapper/{name}", tmp, "ext4", 0, None)
            try:
                os.mkdir(os.path.join(tmp, "rootfs"), 0o755)
                # userns-remap: every layer is a snapshot of the base, so its root is the
                # container root's
                os.chown(os.path.join(tmp, "rootfs"), *self.id_map.root)
            finally:
                host.umount2(tmp, 0)
                os.rmdir(tmp)
        finally:
            self._dm("remove", name)
        self.deviceset["base_ready"] = True
        self._save_deviceset()

    def _activate(self, name: str, device_id: int, size: int) -> None:
        if not self._active(name):
            self._dm("create", name, "--table",
                     f"0 {size // _SECTOR} thin {self.pool} {device_id}")

    # -- the core -------------------------------------------------------------------------------
    def create(self, id: str, parent: str | None) -> None:
        check_id(id)
        with self._lock:
            if self._layer_meta(id) is not None:
                raise Conflict(f"devicemapper: layer {id} already exists")
            origin = 0
            if parent is not None:
                pm = self._layer_meta(parent)
                if pm is None:
                    raise NotFound(f"devicemapper: parent layer {parent} not found")
                origin = pm["device_id"]
            dev_id = self.deviceset["next_device_id"]
            self.deviceset["next_device_id"] = dev_id + 1
            self._save_deviceset()
            origin_name = self._dev_name(parent) if parent is not None else None
            suspended = origin_name is not None and self._active(origin_name)
            if suspended:
                self._dm("suspend", origin_name)  # type: ignore[arg-type]
            try:
                self._message(f"create_snap {dev_id} {origin}")
            finally:
                if suspended:
                    self._dm("resume", origin_name)  # type: ignore[arg-type]
            self._save_layer_meta(id, {"device_id": dev_id, "size": self.base_size})
            os.makedirs(os.path.join(self._mnt, id), mode=0o755, exist_ok=True)

    def remove(self, id: str) -> None:
        with self._lock:
            meta = self._layer_meta(id)
            if meta is None:
                raise NotFound(f"devicemapper: layer {id} not found")
            self._refs.refuse_if_held(id, f"devicemapper: layer {id}")
            self._deactivate(id)
            self._message(f"delete {meta['device_id']}")
            os.unlink(os.path.join(self._meta, id + ".json"))
            shutil.rmtree(os.path.join(self._mnt, id), ignore_errors=True)

    def _deactivate(self, id: str) -> None:
        mp = os.path.join(self._mnt, id)
        if any(m == mp for m, _, _ in host.mountinfo()):
            host.umount2(mp, 0)
        if self._active(self._dev_name(id)):
            self._dm("remove", self._dev_name(id))

    def get(self, id: str) -> str:
        with self._lock:
            meta = self._layer_meta(id)
            if meta is None:
                raise NotFound(f"devicemapper: layer {id} not found")
            mp = os.path.join(self._mnt, id)

            def mount() -> None:
                if not any(m == mp for m, _, _ in host.mountinfo()):
                    name = self._dev_name(id)
                    self._activate(name, meta["device_id"], meta["size"])
                    os.makedirs(mp, mode=0o755, exist_ok=True)
                    host.mount(f"/dev/mapper/{name}", mp, "ext4", 0, "discard")
            self._refs.acquire(id, first=mount)
            return os.path.join(mp, "rootfs")

    def put(self, id: str) -> None:
        self._refs.release(id, last=lambda: self._deactivate(id))

    def exists(self, id: str) -> bool:
        return self._layer_meta(id) is not None

    def ids(self) -> list[str]:
        # a layer is its metadata file (written once its thin snapshot exists)
        return sorted(n[:-len(".json")] for n in os.listdir(self._meta)
                      if n.endswith(".json") and not n.startswith(".") and n != "deviceset.json")

    def status(self) -> list[tuple[str, str]]:
        out = [("Pool Name", os.path.basename(self.pool)),
               ("Base Device Size", str(self.base_size)),
               ("Backing Filesystem", "extfs"),
               ("Data loop file" if "dm.thinpooldev" not in self.options else "Thin pool device",
                os.path.join(self.home, "devicemapper", "data")
                if "dm.thinpooldev" not in self.options else self.pool)]
        try:
            out.append(("Library Version", self._dm("version").splitlines()[0].split(":", 1)[1].strip()))
        except (DockyardError, IndexError):
            pass
        return out

    def metadata(self, id: str) -> dict[str, str]:
        meta = self._layer_meta(id)
        if meta is None:
            raise NotFound(f"devicemapper: layer {id} not found")
        return {"DeviceId": str(meta["device_id"]), "DeviceSize": str(meta["size"]),
                "DeviceName": self._dev_name(id), "MergedDir": os.path.join(self._mnt, id, "rootfs")}

    def cleanup(self) -> None:
        with self._lock:
            for id in self._refs.clear():
                try:
                    self._deactivate(id)
                except (OSError, DockyardError):
                    log.exception("devicemapper: cannot deactivate %s", id)
            if "dm.thinpooldev" not in self.options and self._active(self.pool):
                try:
                    self._dm("remove", os.path.basename(self.pool))
                except DockyardError:
                    log.warning("devicemapper: pool %s still busy", self.pool)
                files = os.path.join(self.home, "devicemapper")
                for name in ("data", "metadata"):  # ours, or attached by an earlier run
                    found = subprocess.run(["losetup", "-j", os.path.join(files, name)],
                                           capture_output=True, text=True).stdout
                    for line in found.splitlines():
                        subprocess.run(["losetup", "-d", line.split(":", 1)[0]], capture_output=True)
                self._loops.clear()
