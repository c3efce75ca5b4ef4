"""What the graph-driver conformance suite's tests share (:mod:`.graphdriver`): the test's
environment, files written and read, tree snapshots, tars built, layers made."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import Any

import pytest

from ..graphdriver import GraphDriver
from ..idmap import IDMap

#: the user-namespace remapping the remap tests use: container 0 is host uid 200000 / gid 300000
REMAP = IDMap(uids=((0, 200000, 65536),), gids=((0, 300000, 65536),))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
# a v2 security.capability value: cap_net_raw in permitted, effective flag set
CAP_NET_RAW = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


@dataclass
class Env:
    driver: GraphDriver
    home: str
    outside: str     #: a directory outside the driver's home that must never be written


def mounts_under(path: str) -> list[str]:
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp == path or mp.startswith(path.rstrip("/") + "/"):
                    out.append(mp)
    except FileNotFoundError:
        pass
    return out


def write(root: str, rel: str, data: bytes | str = b"", mode: int | None = None) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def read(root: str, rel: str) -> bytes:
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


def xattrs_supported(root: str) -> bool:
    probe = os.path.join(root, ".xattr-probe")
    open(probe, "wb").close()
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    finally:
        os.unlink(probe)


def _lxattrs(path: str) -> dict[str, bytes]:
    try:
        return {n: os.getxattr(path, n, follow_symlinks=False)
                for n in os.listxattr(path, follow_symlinks=False)
                if not n.startswith(("security.selinux", "trusted.overlay.", "user.overlay."))}
    except OSError:
        return {}


def snapshot(root: str, times: bool = True) -> dict[str, tuple]:
    """Everything visible about a tree: type, mode, owner, size, content digest, link target,
    device, xattrs, mtime (seconds) and hard-link grouping; the root itself excluded."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            content: Any = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            link_group = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                link_group = inodes.setdefault((st.st_dev, st.st_ino), rel)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid,
                        None if stat.S_ISDIR(st.st_mode) else st.st_size, content,
                        st.st_rdev if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else 0,
                        tuple(sorted(_lxattrs(path).items())), link_group,
                        int(st.st_mtime) if times and not stat.S_ISLNK(st.st_mode) else None)
    return out


def make_tar(*entries: tuple) -> io.BytesIO:
    """A PAX tar from ``(kind, name, arg)``: kind file (arg data), dir, symlink/hardlink (arg
    target); an optional 4th item is a dict of TarInfo attributes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            kind, name = e[0], e[1]
            arg: Any = e[2] if len(e) > 2 else None
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            ti.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                data = arg if isinstance(arg, bytes) else (arg or "").encode()
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            for k, v in (e[3] if len(e) > 3 else {}).items():
                setattr(ti, k, v)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def tar_names(stream: Any) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        return {ti.name.rstrip("/"): ti for ti in tf}


def outside_state(outside: str) -> dict[str, tuple]:
    return snapshot(outside)


def layer(env: Env, id: str, parent: str | None = None, files: dict[str, Any] | None = None,
          rw: bool = False) -> str:
    """Layer ``id`` made on ``parent`` (read-write with ``rw``), with ``files`` written in it
    (``None`` removes a path, ``"<dir>"`` makes a directory)."""
    (env.driver.create_rw if rw else env.driver.create)(id, parent)
    if files:
        root = env.driver.get(id)
        try:
            for rel, data in files.items():
                if data is None:
                    p = os.path.join(root, rel)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
                elif data == "<dir>":
                    os.makedirs(os.path.join(root, rel), exist_ok=True)
                else:
                    write(root, rel, data)
        finally:
            env.driver.put(id)
    return id
