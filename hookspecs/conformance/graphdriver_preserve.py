"""Conformance cases for what a graph driver must preserve — metadata, sparse files, ownership
shifted under ``userns-remap`` — part of the graph-driver suite
(:class:`~dockyard.hookspecs.conformance.graphdriver.GraphDriverSuite` inherits them)."""
from __future__ import annotations

import io
import os
import stat

import pytest

from ..errors import InvalidParameter
from .graphdriver_files import (CAP_NET_RAW, REMAP, Env, make_tar, needs_root, read, snapshot,
                                tar_names, write, xattrs_supported)


class PreservationSuite:
    """Needs the suite's ``env`` and ``remap_env`` fixtures; not collected itself (no ``Test``)."""

    @needs_root
    def test_create_from_parent_preserves_metadata(self, env: Env) -> None:
        d = env.driver
        d.create("base", None)
        root = d.get("base")
        try:
            write(root, "owned", "o")
            os.chown(os.path.join(root, "owned"), 1234, 5678)
            write(root, "suid", "s", mode=0o4755)
            os.makedirs(os.path.join(root, "sticky"))
            os.chmod(os.path.join(root, "sticky"), 0o1777)
            write(root, "old", "t")
            os.utime(os.path.join(root, "old"), ns=(1_000_000_123, 1_500_000_000_123_456_789))
            write(root, "hl1", "hard")
            os.link(os.path.join(root, "hl1"), os.path.join(root, "sticky/hl2"))
            os.symlink("owned", os.path.join(root, "sym"))
            os.lchown(os.path.join(root, "sym"), 7, 8)
            os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
            os.mknod(os.path.join(root, "blk"), stat.S_IFBLK | 0o600, os.makedev(7, 0))
            os.mkfifo(os.path.join(root, "fifo"), 0o620)
            os.mknod(os.path.join(root, "sock"), stat.S_IFSOCK | 0o755)
            write(root, "cap", "c", mode=0o755)
            os.setxattr(os.path.join(root, "cap"), "security.capability", CAP_NET_RAW)
            os.setxattr(os.path.join(root, "owned"), "trusted.x", b"\x00\x01")
            if xattrs_supported(root):
                os.setxattr(os.path.join(root, "owned"), "user.y", b"why")
            os.utime(os.path.join(root, "sticky"), (1_234_567_890, 1_234_567_890))
            want = snapshot(root)
            want_ns = os.lstat(os.path.join(root, "old")).st_mtime_ns
        finally:
            d.put("base")
        d.create("child", "base")
        root = d.get("child")
        limits = getattr(d, "limitations", ())
        try:
            if "hardlinks-in-lower" in limits:
                # the names keep content and metadata, but are not shown as one inode
                unlink = lambda snap: {k: v[:7] + (None,) + v[8:] for k, v in snap.items()}  # noqa: E731
                assert unlink(snapshot(root)) == unlink(want)
            else:
                assert snapshot(root) == want
            assert os.lstat(os.path.join(root, "old")).st_mtime_ns == want_ns
            a, b = os.lstat(os.path.join(root, "hl1")), os.lstat(os.path.join(root, "sticky/hl2"))
            assert a.st_nlink == 2
            if "hardlinks-in-lower" not in limits:
                assert a.st_ino == b.st_ino
            assert stat.S_ISSOCK(os.lstat(os.path.join(root, "sock")).st_mode)
            assert os.getxattr(os.path.join(root, "cap"), "security.capability") == CAP_NET_RAW
            # the child's hard link pair is its own, not shared with the parent
            with open(os.path.join(root, "hl1"), "ab") as f:
                f.write(b"!")
            if {"hardlink-copy-up", "hardlinks-in-lower"} & set(limits):
                # overlayfs without index=on breaks the pair on copy-up (so does Docker's overlay2)
                assert read(root, "sticky/hl2") in (b"hard", b"hard!")
            else:
                assert read(root, "sticky/hl2") == b"hard!"
        finally:
            d.put("child")
        proot = d.get("base")
        try:
            assert read(proot, "hl1") == b"hard"
        finally:
            d.put("base")

    def test_create_from_parent_preserves_sparse_files(self, env: Env) -> None:
        d = env.driver
        d.create("base", None)
        root = d.get("base")
        try:
            with open(os.path.join(root, "sparse"), "wb") as f:
                f.write(b"head")
                f.seek(1 << 30)
                f.write(b"tail")
            st = os.stat(os.path.join(root, "sparse"))
            if st.st_blocks * 512 >= st.st_size:
                pytest.skip("this file system has no sparse files")
        finally:
            d.put("base")
        d.create("child", "base")
        root = d.get("child")
        try:
            p = os.path.join(root, "sparse")
            st = os.stat(p)
            assert st.st_size == (1 << 30) + 4
            assert st.st_blocks * 512 < 16 << 20, "holes were filled in"
            with open(p, "rb") as f:
                assert f.read(4) == b"head"
                f.seek(1 << 29)
                assert f.read(8) == bytes(8)
                f.seek(1 << 30)
                assert f.read() == b"tail"
        finally:
            d.put("child")

    # -- userns-remap (the driver built with id_map=REMAP) ----------------------------------------
    @staticmethod
    def _owner(root: str, rel: str = "") -> tuple[int, int]:
        st = os.lstat(os.path.join(root, rel) if rel else root)
        return st.st_uid, st.st_gid

    def test_remap_applied_layer_is_stored_shifted(self, remap_env: Env) -> None:
        d = remap_env.driver
        assert d.id_map == REMAP
        d.create("base", None)
        d.apply_diff("base", None, make_tar(
            ("dir", "etc"), ("file", "etc/passwd", "root:x:0:0"),
            ("file", "home/u/f", "mine", {"uid": 1000, "gid": 1000}),
            ("dir", "d", None, {"uid": 5, "gid": 7}),
            ("symlink", "l", "home/u/f", {"uid": 1000, "gid": 1001}),
            ("hardlink", "h", "home/u/f", {"uid": 1000, "gid": 1000})))
        root = d.get("base")
        try:
            own = self._owner
            assert own(root, "etc") == own(root, "etc/passwd") == (200000, 300000)
            assert own(root, "home/u/f") == own(root, "h") == (201000, 301000)
            assert own(root, "d") == (200005, 300007)
            assert own(root, "l") == (201000, 301001)
            # directories the tar implies without entries, and the layer's root: container root
            assert own(root, "home") == own(root, "home/u") == own(root) == (200000, 300000)
        finally:
            d.put("base")

    def test_remap_diff_gives_container_ids(self, remap_env: Env) -> None:
        d = remap_env.driver
        blob = make_tar(("dir", "etc"), ("file", "etc/passwd", "x"), ("file", "etc/keep", "k"),
                        ("file", "u", "u", {"uid": 1000, "gid": 1000}),
                        ("dir", "d", None, {"uid": 5, "gid": 7}),
                        ("symlink", "l", "u", {"uid": 3, "gid": 4})).getvalue()
        d.create("base", None)
        d.apply_diff("base", None, io.BytesIO(blob))
        with d.diff("base", None) as s:
            names = tar_names(s)
        owners = {n: (ti.uid, ti.gid) for n, ti in names.items()}
        assert owners == {"etc": (0, 0), "etc/passwd": (0, 0), "etc/keep": (0, 0),
                          "u": (1000, 1000), "d": (5, 7), "l": (3, 4)}
        # a child layer: the native (overlay) and naive diffs both shift back, whiteouts included
        d.create("child", "base")
        d.apply_diff("child", "base", make_tar(
            ("file", "etc/.wh.passwd"), ("dir", "d", None, {"uid": 5, "gid": 7}),
            ("file", "d/new", "n", {"uid": 6, "gid": 8}), ("dir", "o", None, {"uid": 9, "gid": 9}),
            ("file", "o/.wh..wh..opq")))
        root = d.get("child")
        try:
            assert self._owner(root, "d/new") == (200006, 300008)
            assert not os.path.lexists(os.path.join(root, "etc/passwd"))
            assert self._owner(root, "etc") == (200000, 300000)
        finally:
            d.put("child")
        with d.diff("child", "base") as s:
            names = tar_names(s)
        assert "etc/.wh.passwd" in names
        assert (names["d/new"].uid, names["d/new"].gid) == (6, 8)
        assert all((ti.uid, ti.gid) != (200000, 300000) for ti in names.values())
        # and the diff applied to a fresh remapped layer gives the same tree
        d.create("again", None)
        d.apply_diff("again", None, io.BytesIO(blob))
        a, b = d.get("base"), d.get("again")
        try:
            assert snapshot(a, times=False) == snapshot(b, times=False)
        finally:
            d.put("again")
            d.put("base")

    def test_remap_rw_layer_root_and_host_written_files(self, remap_env: Env) -> None:
        d = remap_env.driver
        d.create("base", None)
        d.apply_diff("base", None, make_tar(("dir", "etc"), ("file", "etc/x", "x"),
                                            ("dir", "tmp", None, {"mode": 0o1777})))
        d.create_rw("ctr", "base")
        d.create_rw("scratch", None)
        root = d.get("ctr")
        try:
            assert self._owner(root) == (200000, 300000)
            # what root of the container (host 200000) and others write
            write(root, "mine", "m")
            os.chown(os.path.join(root, "mine"), 200005, 300007)
            os.mkdir(os.path.join(root, "tmp/sub"))
            os.chown(os.path.join(root, "tmp/sub"), 200000, 300000)
            write(root, "stranger", "s")
            os.chown(os.path.join(root, "stranger"), 12345, 12345)  # no mapping: overflow ID
            write(root, "etc/x", "changed")  # copied up: keeps its shifted owner
            assert self._owner(root, "etc/x") == (200000, 300000)
            assert stat.S_IMODE(os.lstat(os.path.join(root, "tmp")).st_mode) == 0o1777
        finally:
            d.put("ctr")
        root = d.get("scratch")
        try:
            assert self._owner(root) == (200000, 300000)
        finally:
            d.put("scratch")
        kinds = {c["Path"]: c["Kind"] for c in d.changes("ctr", "base")}
        assert kinds["/mine"] == 1 and kinds["/etc/x"] == 0
        with d.diff("ctr", "base") as s:
            names = tar_names(s)
        owners = {n: (ti.uid, ti.gid) for n, ti in names.items()}
        assert owners["mine"] == (5, 7)
        assert owners["stranger"] == (65534, 65534)
        assert owners["etc/x"] == owners["tmp/sub"] == owners["tmp"] == (0, 0)

    def test_remap_implied_dir_keeps_parent_owner(self, remap_env: Env) -> None:
        """``tmp/x`` without a ``tmp/`` entry over a parent's ``tmp`` owned 5:7 (stored
        200005:300007): the layer's ``tmp`` keeps that owner and mode."""
        d = remap_env.driver
        d.create("base", None)
        d.apply_diff("base", None, make_tar(("dir", "tmp", None, {"uid": 5, "gid": 7, "mode": 0o1777})))
        d.create("l", "base")
        d.apply_diff("l", "base", make_tar(("file", "tmp/x", "x", {"uid": 1, "gid": 2})))
        root = d.get("l")
        try:
            st = os.lstat(os.path.join(root, "tmp"))
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (200005, 300007, 0o1777)
            assert self._owner(root, "tmp/x") == (200001, 300002)
        finally:
            d.put("l")

    def test_remap_unmapped_owner_refused(self, remap_env: Env) -> None:
        d = remap_env.driver
        d.create("l", None)
        with pytest.raises(InvalidParameter, match="70000"):
            d.apply_diff("l", None, make_tar(("file", "ok", "1"),
                                             ("file", "bad", "2", {"uid": 70000, "gid": 0})))
        root = d.get("l")
        try:
            assert not os.path.lexists(os.path.join(root, "bad"))
        finally:
            d.put("l")
        d.create("g", None)
        with pytest.raises(InvalidParameter, match="70001"):
            d.apply_diff("g", None, make_tar(("dir", "x", None, {"gid": 70001})))
