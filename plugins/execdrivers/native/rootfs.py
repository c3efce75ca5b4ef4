"""The container's file system view, made by its init in its own mount namespace between fork
and exec: entering the root and pivoting into it with the mount propagation the spec asks for
(``linux.rootfsPropagation``), as runc does; the spec's mounts, /dev, masked and read-only
paths."""
from __future__ import annotations

import os
import stat
from typing import Any

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host import devices
from dockyard.hookspecs.host.mounts import secure_join
from dockyard.hookspecs.host.process import ProcessError, go_error


def enter(spec: dict[str, Any]) -> int:
    """Set the propagation of every mount (private unless a bind is shared or a slave), bind
    the rootfs on itself and chdir there; return the propagation flags for :func:`pivot`. The
    rootfs's own mount is private either way: pivot_root refuses a shared parent."""
    prop = host.PROPAGATION_OPTIONS.get((spec.get("linux") or {}).get("rootfsPropagation")
                                        or "rprivate", host.MS_REC | host.MS_PRIVATE)
    host.mount(None, "/", None, prop | host.MS_REC)
    rootfs = os.path.realpath(spec["root"]["path"])
    if not prop & host.MS_PRIVATE:
        host.mount(None, host.mount_of(rootfs)[0], None, host.MS_PRIVATE)
    host.mount(rootfs, rootfs, None, host.MS_BIND | host.MS_REC)
    os.chdir(rootfs)  # on the bind mount: every path below is relative to it
    return prop


def pivot(prop: int) -> None:
    """pivot_root into the current directory; the old root, stacked on "/" after it (reached
    through its fd, as runc), becomes a slave before it is detached, so that no unmount
    reaches the host's mounts through a shared peer group; then the new root gets ``prop``."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    host.pivot_root(".", ".")
    os.fchdir(old_root)
    os.close(old_root)
    host.mount(None, ".", None, host.MS_SLAVE | host.MS_REC)
    host.umount2(".", host.MNT_DETACH)
    os.chdir("/")
    if not prop & host.MS_PRIVATE:
        host.mount(None, "/", None, prop | host.MS_REC)


def remount_readonly(paths: list[str]) -> None:
    """Each tmpfs that held mount points (the /sys/fs/cgroup view): read-only now they are in."""
    for dest in paths:
        host.mount(None, dest, None, host.MS_REMOUNT | host.MS_RDONLY | host.mount_flags(dest))


def set_uts_names(spec: dict[str, Any]) -> None:
    """The spec's ``hostname`` and ``domainname`` (in a UTS namespace of the container's own)."""
    if spec.get("hostname"):
        host.sethostname(spec["hostname"])
    if spec.get("domainname"):
        host.setdomainname(spec["domainname"])


#: the nodes of every container's /dev (runc's defaults): name, major, minor (character, 0666)
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
             ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))


def ensure_file(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def populate_dev(dev: str) -> None:
    for name, target in DEV_LINKS:
        try:
            os.symlink(target, os.path.join(dev, name))
        except FileExistsError:
            pass


def is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or "bind" in (m.get("options") or ()) \
        or "rbind" in (m.get("options") or ())


def open_sources(mounts: list[dict[str, Any]]) -> dict[int, int]:
    """``O_PATH`` descriptors of the bind-mount sources, opened while this process is still the
    host's root: once it is the root of a user namespace, host directories it may not search
    (a data-root under a 0700 directory, ``-v /root/x:/x``) stay reachable through them."""
    fds: dict[int, int] = {}
    for i, m in enumerate(mounts):
        if is_bind(m):
            try:
                fds[i] = os.open(m.get("source") or "", os.O_PATH | os.O_CLOEXEC)
            except OSError as e:
                raise ProcessError(f"error mounting \"{m.get('source')}\" to rootfs at "
                                f"\"{m['destination']}\": {go_error(e)}") from None
    return fds


def mount_one(rootfs: str, m: dict[str, Any], src_fd: int | None = None) -> None:
    dest = secure_join(rootfs, m["destination"])
    typ = m.get("type") or ""
    source = m.get("source") or typ or "none"
    flags, prop, data = host.parse_mount_options(m.get("options"))
    if flags & host.MS_BIND or typ == "bind":
        flags |= host.MS_BIND
        if src_fd is not None:
            is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
            source = f"/proc/self/fd/{src_fd}"
        else:
            is_dir = os.path.isdir(source)
        if is_dir:
            os.makedirs(dest, exist_ok=True)
        else:
            ensure_file(dest)
        host.mount(source, dest, None, flags & (host.MS_BIND | host.MS_REC))
        extra = flags & ~(host.MS_BIND | host.MS_REC)
        if extra:
            host.remount_bind(dest, extra)
    else:
        os.makedirs(dest, exist_ok=True)
        try:
            host.mount(source, dest, typ, flags, data or None)
        except PermissionError:
            if typ != "sysfs":
                raise
            bind_host_sys(dest)
        if typ == "tmpfs" and os.path.normpath(m["destination"]) == "/dev":
            populate_dev(dest)
    if prop:
        host.mount(None, dest, None, prop)


def bind_host_sys(dest: str) -> None:
    """sysfs of a network namespace this user namespace does not own (the network driver made
    it) cannot be mounted: bind the host's, read-only. The bind must be recursive (the host's
    submounts are locked to it), so each file system mounted under the host's /sys (cgroups,
    securityfs, debugfs...) is covered by an empty read-only tmpfs: a fresh sysfs shows those
    directories empty too."""
    subs = sorted({p for p, _, _ in host.mountinfo() if p.startswith("/sys/")})
    host.mount("/sys", dest, None, host.MS_BIND | host.MS_REC)
    host.remount_bind(dest, host.MS_RDONLY)
    covered: list[str] = []
    for path in subs:
        if any(path.startswith(c + "/") for c in covered):
            continue
        covered.append(path)
        try:
            host.mount("tmpfs", dest + path[4:], "tmpfs",
                        host.MS_RDONLY | host.MS_NOSUID | host.MS_NODEV | host.MS_NOEXEC,
                        "size=0,mode=755")
        except OSError:  # gone meanwhile, or not a directory: nothing to hide
            pass


def make_devices(spec: dict[str, Any], mounts: list[dict[str, Any]], userns: bool) -> None:
    """The spec's ``linux.devices``, then the standard nodes, in the container's ``/dev``:
    made with mknod (a node of the container's own: chmod in it cannot reach the host's), or,
    in a user namespace where mknod is refused, the host's nodes bind-mounted. Nothing when
    ``/dev`` is a bind mount (the host's own /dev, as runc)."""
    if any(os.path.normpath(m["destination"]) == "/dev" and is_bind(m) for m in mounts):
        return
    nodes = list((spec.get("linux") or {}).get("devices") or ())
    nodes += [{"path": "/dev/" + name, "type": "c", "major": major, "minor": minor,
               "fileMode": 0o666, "uid": 0, "gid": 0} for name, major, minor in DEV_NODES
              if not userns or os.path.exists("/dev/" + name)]
    bind = (lambda src, dst: host.mount(src, dst, None, host.MS_BIND)) if userns else None
    try:
        devices.create_nodes(".", nodes, secure_join, bind)
    except InvalidParameter as e:
        raise ProcessError(f"creating device nodes: {e}") from None
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise ProcessError(f"creating device nodes: {e.strerror or e}{where}") from None


def mask_paths(masked: list[str], readonly: list[str]) -> None:
    for path in masked:
        try:
            if os.path.isdir(path):
                host.mount("tmpfs", path, "tmpfs", host.MS_RDONLY)
            elif os.path.exists(path):
                host.mount("/dev/null", path, None, host.MS_BIND)
        except FileNotFoundError:
            pass
    for path in readonly:
        try:
            if not os.path.exists(path):
                continue
            host.mount(path, path, None, host.MS_BIND | host.MS_REC)
            host.remount_bind(path, host.MS_RDONLY | host.MS_REC)
        except FileNotFoundError:
            pass
