"""Options of the ``local`` volume driver: ``type``, ``device`` and ``o``, as dockerd's
(``docker volume create -o type=tmpfs -o device=tmpfs -o o=size=10m``, compose ``driver_opts``).

A volume with options is a mount of ``device`` (file system ``type``, mount options ``o``) on
the volume's ``_data`` directory: ``type=tmpfs``, a bind mount (``type=none o=bind
device=/host/dir``), any file system the kernel mounts (``type=ext4 device=/dev/loop3``, ``nfs``
with ``o=addr=...``). It is mounted when the first container using it starts and unmounted when
the last one stops (a reference count, rebuilt from the running containers when the daemon
starts again). ``o`` is split as dockerd (moby/sys/mount) splits it: words such as ``ro``,
``nosuid``, ``bind`` become mount flags, the rest is the file system's data. ``size`` (a quota
on a plain volume) needs project quotas, which this engine does not manage: refused, as dockerd
refuses it on a file system without them.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from urllib.parse import urlsplit

from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter
from dockyard.hookspecs.host import mounts, units

log = logging.getLogger(__name__)

VALID_OPTS = ("type", "o", "device", "size")
#: an option -> the options it needs
MANDATORY = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def check_options(opts: dict[str, str] | None) -> dict[str, str]:
    """``opts`` checked as dockerd's local driver checks them (400 naming the problem)."""
    opts = dict(opts or {})
    for key in opts:
        if key not in VALID_OPTS:
            raise InvalidParameter(f'invalid option: "{key}"')
    if opts.get("type") == "cifs" and opts.get("device"):
        try:
            port = urlsplit(opts["device"]).port
        except ValueError as e:
            raise InvalidParameter(f"error parsing mount device url: {e}") from None
        if port:
            raise InvalidParameter("port not allowed in CIFS device URL, include 'port' in 'o='")
    if "size" in opts:
        try:
            size = units.ram_in_bytes(opts["size"])
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if size > 0:
            raise InvalidParameter("quota size requested but no quota support")
    for key, needs in MANDATORY.items():
        if key in opts:
            for need in needs:
                if need not in opts:
                    raise InvalidParameter(f'missing required option: "{need}"')
    return opts


def is_mounted(path: str) -> bool:
    """Whether ``path`` is a mount point. From mountinfo: ``os.path.ismount`` misses a bind
    mount of a directory of the same file system."""
    real = os.path.realpath(path)
    return any(point == real for point, _type, _source in mounts.mountinfo())


def mounts_under(path: str) -> list[str]:
    real = os.path.realpath(path)
    return [p for p, _t, _s in mounts.mountinfo() if p == real or p.startswith(real + "/")]


def needs_mount(opts: dict[str, str] | None) -> bool:
    return bool(opts and (opts.get("device") or opts.get("type")))


def _resolved(opts: dict[str, str]) -> tuple[str, str]:
    """``(device, o)`` with an nfs/cifs ``addr=`` host name resolved to an address, as dockerd
    does before mounting (the kernel takes addresses only)."""
    device, data = opts.get("device") or "", opts.get("o") or ""
    if opts.get("type") in ("nfs", "nfs4", "cifs"):
        for word in data.split(","):
            if word.startswith("addr="):
                host = word[len("addr="):]
                try:
                    ipaddress.ip_address(host)
                except ValueError:
                    try:
                        addr = str(socket.getaddrinfo(host, None)[0][4][0])
                    except OSError as e:
                        raise DockyardError(f"error resolving passed in network volume address: "
                                            f"{e}") from None
                    data = data.replace(word, "addr=" + addr, 1)
    return device, data


def mount(opts: dict[str, str], target: str) -> None:
    """Mount the volume described by ``opts`` on ``target``."""
    if not opts.get("device"):
        raise DockyardError("missing device in volume options")
    device, data = _resolved(opts)
    flags, prop, rest = mounts.parse_mount_options([w for w in data.split(",") if w])
    fstype = opts.get("type") or ""
    try:
        mounts.mount(device, target, fstype or None, flags & ~mounts.MS_REMOUNT, rest or None)
        if flags & mounts.MS_BIND and flags & mounts.MS_RDONLY:  # a bind mount is read-only
            mounts.remount_bind(target, mounts.MS_RDONLY)       # only after a remount
        if prop:
            mounts.mount(None, target, None, prop)
    except OSError as e:
        if is_mounted(target):
            mounts.umount2(target, mounts.MNT_DETACH)
        shown = data.replace(_password(data), "********") if _password(data) else data
        raise DockyardError(f"error while mounting volume '{target}': failed to mount local "
                            f"volume: mount {device}:{target}, data: {shown}: "
                            f"{(e.strerror or str(e)).lower()}") from None


def _password(data: str) -> str:
    return next((w[len("password="):] for w in data.split(",") if w.startswith("password=")), "")


def unmount(target: str) -> None:
    """Unmount ``target`` and whatever is mounted under it; Conflict if something stays."""
    for point in sorted(mounts_under(target), reverse=True):
        try:
            mounts.umount2(point)
        except OSError as e:
            if is_mounted(point):
                raise Conflict(f"error while unmounting volume '{target}': {e.strerror}") from None


class Mounts:
    """The reference count of mounted volumes: name -> the containers using it."""

    def __init__(self) -> None:
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, opts: dict[str, str], target: str, user: str) -> None:
        """``user`` starts using volume ``name``: mounted on ``target`` if it is the first."""
        with self._lock:
            users = self._users.setdefault(name, set())
            if not users and not is_mounted(target):
                try:
                    mount(opts, target)
                except BaseException:
                    del self._users[name]
                    raise
                log.info("volume %s mounted (%s on %s)", name, opts.get("device"), target)
            users.add(user)

    def release(self, name: str, target: str, user: str) -> None:
        """``user`` no longer uses volume ``name``: unmounted if it was the last."""
        with self._lock:
            users = self._users.get(name)
            if users is None or user not in users:
                return
            users.discard(user)
            if not users:
                del self._users[name]
                unmount(target)
                log.info("volume %s unmounted", name)

    def restore(self, users: dict[str, set[str]], mounted: dict[str, str]) -> None:
        """At daemon start: ``users`` (volume -> running containers) becomes the count; a volume
        of ``mounted`` (name -> target) that no one uses is unmounted."""
        with self._lock:
            self._users = {name: set(ids) for name, ids in users.items() if ids}
            for name, target in mounted.items():
                if name not in self._users:
                    try:
                        unmount(target)
                    except DockyardError as e:
                        log.warning("volume %s: %s", name, e)

    def in_use(self, name: str) -> bool:
        return bool(self._users.get(name))
