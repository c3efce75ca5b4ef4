"""Putting COPY/ADD sources into a layer's file system.

The sources become a tar (names relative to the destination directory, owners and modes as the
instruction asks) that the one safe extractor unpacks into the destination, found inside the
rootfs without following a link out of it; missing destination directories are made (owned
by ``--chown``'s user). ADD's local archives are unpacked into the destination.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
import tarfile
import tempfile
from typing import Callable

from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.host.tarsafe import SecureRoot

from ... import archive
from ..context import Patterns
from ..errors import BuildError
from .sources import Src, excluded, scoped, walk


@dataclasses.dataclass
class CopyPlan:
    name: str                                # COPY or ADD
    srcs: list[Src]
    dest: str                                # absolute, normalized
    into_dir: bool                           # the destination was written as a directory
    chown: str = ""
    chmod: Callable[[int, bool], int] | None = None
    exclude: Patterns = dataclasses.field(default_factory=list)
    parents: bool = False


def lookup_owner(root: str, spec: str) -> tuple[int, int] | None:
    """``--chown=user[:group]`` (names looked up in the rootfs' /etc/passwd and /etc/group)."""
    if not spec:
        return None
    user, _, group = spec.partition(":")

    def entry(name: str, file: str) -> list[str] | None:
        try:
            with open(scoped(root, f"/etc/{file}"), errors="replace") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if fields[0] == name and len(fields) > 3:
                        return fields
        except OSError:
            pass
        return None
    if user.isdigit():
        uid, primary = int(user), int(user)
    else:
        pw = entry(user, "passwd")
        if pw is None or not pw[2].isdigit():
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find "
                             f"uid for user {user}: no such user: {user}")
        uid, primary = int(pw[2]), int(pw[3]) if pw[3].isdigit() else int(pw[2])
    if not group:
        return uid, primary
    if group.isdigit():
        return uid, int(group)
    gr = entry(group, "group")
    if gr is None or not gr[2].isdigit():
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find "
                         f"gid for group {group}: no such group: {group}")
    return uid, int(gr[2])


def is_dir_in(root: str, path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    try:
        with SecureRoot(root, label="build destination") as sroot:
            os.close(sroot.open_dir(parts, what=path))
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except BuildError:
        raise
    except Exception:  # noqa: BLE001 - a non-directory on the way (InvalidParameter)
        return False


def make_dirs(root: str, path: str, owner: tuple[int, int] | None, id_map: IDMap | None) -> None:
    """``path`` and its missing parents (0755, owned by ``owner``)."""
    uid, gid = owner or (0, 0)
    if id_map is not None:
        uid, gid = id_map.to_host(uid, gid)

    def made(parent_fd: int, name: str, _parts: list[str]) -> None:
        os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
    with SecureRoot(root, label="build destination") as sroot:
        try:
            os.close(sroot.open_dir([p for p in path.split("/") if p], create=True, what=path,
                                    made=made))
        except (NotADirectoryError, FileExistsError):
            raise BuildError(f"cannot copy to {path}: a parent is not a directory") from None


def copy_into(root: str, plan: CopyPlan, id_map: IDMap | None, tmp: str) -> bool:
    """Run ``plan`` on the rootfs at ``root`` (True: the layer is committed, even empty, as
    dockerd's)."""
    owner = lookup_owner(root, plan.chown)
    dest_dir_exists = is_dir_in(root, plan.dest)
    single_dir = len(plan.srcs) == 1 and plan.srcs[0].is_dir
    all_archives = all(s.archive for s in plan.srcs)
    if plan.into_dir or dest_dir_exists or single_dir or all_archives:
        target, file_name = plan.dest, None
    else:
        target, file_name = posixpath.dirname(plan.dest), posixpath.basename(plan.dest)
        if not file_name:
            raise BuildError(f"{plan.name}: cannot copy a file onto /")
    make_dirs(root, target, owner, id_map)
    entries: list[tuple[tarfile.TarInfo, str | None]] = []
    for src in plan.srcs:
        if src.archive:
            continue
        prefix = src.parents_rel if plan.parents else ""
        if src.is_dir:
            if prefix:
                entries.append(_entry(plan, src, src.host, prefix, os.stat(src.host), owner, id_map))
            for host, sub, st in walk(src, plan.exclude):
                entries.append(_entry(plan, src, host, posixpath.join(prefix, sub), st, owner, id_map))
        elif not excluded(src, plan.exclude):
            arc = file_name or prefix or src.base_name
            entries.append(_entry(plan, src, src.host, arc, os.stat(src.host), owner, id_map))
    if entries:
        with tempfile.TemporaryFile(dir=tmp) as buf:
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for ti, path in entries:
                    if path is None:
                        tar.addfile(ti)
                    else:
                        with open(path, "rb") as f:
                            tar.addfile(ti, f)
            buf.seek(0)
            archive.extract_in(root, target, buf, id_map)
    for src in plan.srcs:
        if src.archive:
            # the scratch layer is discarded if the archive is refused: no need to check first
            archive.extract_in(root, plan.dest, src.host, id_map, check_first=False)
    return True


def _entry(plan: CopyPlan, src: Src, host: str, arc: str, st: os.stat_result,
           owner: tuple[int, int] | None, id_map: IDMap | None) -> tuple[tarfile.TarInfo, str | None]:
    """The tar entry of one file. The top of a file source is read through its links (``st``
    is a ``stat``); inside a directory, links are copied as links."""
    ti = tarfile.TarInfo(arc)
    ti.mtime = int(src.mtime if src.mtime is not None else st.st_mtime)
    mode = src.mode if src.mode is not None else stat.S_IMODE(st.st_mode)
    is_dir = stat.S_ISDIR(st.st_mode)
    ti.mode = plan.chmod(mode, is_dir) if plan.chmod else mode
    if owner is not None:
        ti.uid, ti.gid = owner
    elif src.keep_owner:
        ti.uid, ti.gid = (id_map.to_container(st.st_uid, st.st_gid) if id_map is not None
                          else (st.st_uid, st.st_gid))
    path: str | None = None
    if is_dir:
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(host)
    elif stat.S_ISREG(st.st_mode):
        ti.size, path = st.st_size, host
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
    else:
        raise BuildError(f"{plan.name}: {arc}: a socket cannot be copied")
    return ti, path
