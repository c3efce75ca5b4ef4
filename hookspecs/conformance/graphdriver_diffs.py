"""Conformance cases for a graph driver's diff side — ``changes``, ``diff``, ``diff_size``,
``apply_diff`` and the tars it must refuse — part of the graph-driver suite
(:class:`~dockyard.hookspecs.conformance.graphdriver.GraphDriverSuite` inherits them)."""
from __future__ import annotations

import io
import os
import shutil
import stat

import pytest

from ..errors import InvalidParameter
from .graphdriver_files import (CAP_NET_RAW, Env, layer, make_tar, needs_root, read, snapshot,
                                tar_names, write, xattrs_supported)


class LayerDiffSuite:
    """Needs the suite's ``env`` fixture; not collected itself (no ``Test``)."""

    def test_applied_whiteouts_and_opaque_round_trip(self, env: Env) -> None:
        """Whiteouts and opaque dirs applied from a tar come back out of ``diff`` as OCI
        whiteouts, and that diff applied elsewhere gives the same tree."""
        d = env.driver
        layer(env, "base", None, {"e/x": "x", "e/keep": "k", "o/a": "a", "o/sub/b": "b",
                                       "gonedir/f": "f", "top": "t"})
        d.create("l", "base")
        d.apply_diff("l", "base", make_tar(
            ("dir", "e"), ("file", "e/.wh.x"), ("file", ".wh.gonedir"), ("dir", "o"),
            ("file", "o/.wh..wh..opq"), ("file", "o/c", "ccc"), ("file", "new", "n")))
        with d.diff("l", "base") as s:
            blob = s.read()
        names = tar_names(io.BytesIO(blob))
        assert "e/.wh.x" in names and ".wh.gonedir" in names and "new" in names
        assert "o/.wh..wh..opq" in names or {"o/.wh.a", "o/.wh.sub"} <= set(names)
        assert "o/c" in names and "e/keep" not in names and "top" not in names
        assert {c["Path"]: c["Kind"] for c in d.changes("l", "base")}["/gonedir"] == 2
        d.create("again", "base")
        d.apply_diff("again", "base", io.BytesIO(blob))
        want = d.get("l")
        try:
            got = d.get("again")
            try:
                assert snapshot(got, times=False) == snapshot(want, times=False)
                assert sorted(os.listdir(os.path.join(got, "o"))) == ["c"]
                assert sorted(os.listdir(os.path.join(got, "e"))) == ["keep"]
                assert not os.path.exists(os.path.join(got, "gonedir"))
            finally:
                d.put("again")
        finally:
            d.put("l")

    def test_changes(self, env: Env) -> None:
        layer(env, "base", None, {"keep": "k", "mod": "old", "gone": "g", "deldir/x": "x",
                                       "sub/keep": "k", "sub/mod": "m"})
        layer(env, "child", "base", {"mod": "new!", "gone": None, "added": "a",
                                          "deldir": None, "sub/mod": "changed", "sub/new": "n",
                                          "newdir/f": "f"})
        got = {c["Path"]: c["Kind"] for c in env.driver.changes("child", "base")}
        assert got == {"/mod": 0, "/gone": 2, "/added": 1, "/deldir": 2, "/sub": 0,
                       "/sub/mod": 0, "/sub/new": 1, "/newdir": 1, "/newdir/f": 1}
        base = {c["Path"]: c["Kind"] for c in env.driver.changes("base", None)}
        assert base["/keep"] == 1 and base["/deldir/x"] == 1 and set(base.values()) == {1}

    def test_diff_size(self, env: Env) -> None:
        layer(env, "base", None, {"a": "x" * 100})
        layer(env, "child", "base", {"b": "y" * 1000, "c": "z" * 24, "a": None})
        assert env.driver.diff_size("child", "base") == 1024
        assert env.driver.diff_size("base", None) == 100

    def test_diff_of_base_layer(self, env: Env) -> None:
        layer(env, "base", None, {"a": "1", "d/b": "2"})
        with env.driver.diff("base", None) as s:
            names = tar_names(s)
        assert set(names) == {"a", "d", "d/b"}
        assert names["d"].isdir() and names["a"].isreg()

    def test_diff_whiteouts(self, env: Env) -> None:
        layer(env, "base", None, {"gone": "g", "deldir/x": "x", "deldir/y/z": "z",
                                       "repl/a": "a", "repl/b": "b", "part/a": "a", "part/b": "b"})
        layer(env, "child", "base", {"gone": None, "deldir": None, "repl": None,
                                          "part/a": None})
        with env.driver.diff("child", "base") as s:
            names = tar_names(s)
        assert ".wh.gone" in names and ".wh.deldir" in names
        assert not any(n.startswith("deldir/") for n in names), "a deleted dir is one whiteout"
        assert "part/.wh.a" in names and "part" in names and ".wh.repl" in names

    def test_diff_apply_roundtrip(self, env: Env) -> None:
        d = env.driver
        layer(env, "base", None, {"gone": "g", "deldir/x": "x", "deldir/y/z": "z",
                                       "repl/a": "a", "repl/b": "b", "part/a": "a", "part/b": "b",
                                       "mod": "old", "f2d": "file", "d2f/x": "x", "ln": "t"})
        d.create("child", "base")
        root = d.get("child")
        try:
            os.unlink(os.path.join(root, "gone"))
            shutil.rmtree(os.path.join(root, "deldir"))
            shutil.rmtree(os.path.join(root, "repl"))
            write(root, "repl/new", "replaced")               # a replaced directory
            os.unlink(os.path.join(root, "part/a"))
            write(root, "mod", "new content", mode=0o600)
            os.unlink(os.path.join(root, "f2d"))
            write(root, "f2d/inside", "now a dir")
            shutil.rmtree(os.path.join(root, "d2f"))
            write(root, "d2f", "now a file")
            write(root, "new/deep/file", b"\0" * 5000 + b"x", mode=0o4755)
            os.link(os.path.join(root, "new/deep/file"), os.path.join(root, "new/hard"))
            os.symlink("../new/deep/file", os.path.join(root, "new/sym"))
            os.symlink("/etc/passwd", os.path.join(root, "abs-sym"))
            os.mkfifo(os.path.join(root, "fifo"))
            os.unlink(os.path.join(root, "ln"))
            os.symlink("mod", os.path.join(root, "ln"))
            if xattrs_supported(root):
                os.setxattr(os.path.join(root, "new/deep/file"), "user.k", b"\xff\x00bin")
            if os.geteuid() == 0:
                os.chown(os.path.join(root, "new"), 1234, 5678)
                os.lchown(os.path.join(root, "new/sym"), 42, 43)
                os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
                os.setxattr(os.path.join(root, "mod"), "security.capability", CAP_NET_RAW)
                os.setxattr(os.path.join(root, "new"), "trusted.t", b"dir-xattr")
            want = snapshot(root)
        finally:
            d.put("child")
        with d.diff("child", "base") as s:
            blob = s.read()
        names = tar_names(io.BytesIO(blob))
        assert "repl/.wh..wh..opq" in names or {"repl/.wh.a", "repl/.wh.b"} <= set(names)
        d.create("copy", "base")
        size = d.apply_diff("copy", "base", io.BytesIO(blob))
        assert size >= len("new content") + 5001
        root = d.get("copy")
        try:
            assert snapshot(root) == want
        finally:
            d.put("copy")
        # the same layer on top of nothing: only what the child added or changed
        assert {c["Path"] for c in d.changes("copy", "base")} == \
            {c["Path"] for c in d.changes("child", "base")}

    def test_apply_diff_whiteouts_and_opaque(self, env: Env) -> None:
        d = env.driver
        layer(env, "base", None, {"e/x": "x", "e/keep": "k", "o/a": "a", "o/sub/b": "b",
                                       "gonedir/f": "f", "top": "t"})
        d.create("l", "base")
        tar = make_tar(("dir", "e"), ("file", "e/.wh.x"), ("file", ".wh.gonedir"),
                       ("dir", "o"), ("file", "o/.wh..wh..opq"), ("file", "o/c", "ccc"),
                       ("file", ".wh.missing"), ("file", "nodir/.wh.x"),
                       ("file", "new", "12345", {"uid": 0, "gid": 0, "mode": 0o640,
                                                 "pax_headers": {"SCHILY.xattr.user.a": "v"}}))
        assert d.apply_diff("l", "base", tar) == 8
        root = d.get("l")
        try:
            assert sorted(os.listdir(os.path.join(root, "e"))) == ["keep"]
            assert sorted(os.listdir(os.path.join(root, "o"))) == ["c"]
            assert read(root, "o/c") == b"ccc"
            assert not os.path.exists(os.path.join(root, "gonedir"))
            assert not os.path.exists(os.path.join(root, "nodir"))
            assert read(root, "top") == b"t"
            st = os.stat(os.path.join(root, "new"))
            assert stat.S_IMODE(st.st_mode) == 0o640 and int(st.st_mtime) == 1_600_000_000
            if xattrs_supported(root):
                assert os.getxattr(os.path.join(root, "new"), "user.a") == b"v"
            assert not any(".wh." in n for _, ds, fs in os.walk(root) for n in ds + fs)
        finally:
            d.put("l")

    def test_apply_diff_whiteout_then_new_dir(self, env: Env) -> None:
        """``.wh.d`` followed by ``d/`` in one tar replaces the parent's directory: none of its
        old entries may show through."""
        d = env.driver
        layer(env, "base", None, {"d/old": "o", "d/sub/x": "x"})
        d.create("l", "base")
        d.apply_diff("l", "base", make_tar(("file", ".wh.d"), ("dir", "d"), ("file", "d/new", "n")))
        root = d.get("l")
        try:
            assert sorted(os.listdir(os.path.join(root, "d"))) == ["new"]
        finally:
            d.put("l")

    @needs_root
    def test_apply_diff_keeps_parent_dir_metadata_without_dir_entry(self, env: Env) -> None:
        """A tar with ``tmp/x`` but no ``tmp/`` entry must not change the parent's ``tmp``."""
        d = env.driver
        d.create("base", None)
        root = d.get("base")
        try:
            os.makedirs(os.path.join(root, "tmp/deep"))
            os.chmod(os.path.join(root, "tmp"), 0o1777)
            os.chown(os.path.join(root, "tmp/deep"), 1234, 5678)
            os.chmod(os.path.join(root, "tmp/deep"), 0o750)
        finally:
            d.put("base")
        d.create("l", "base")
        d.apply_diff("l", "base", make_tar(("file", "tmp/deep/x", "x")))
        root = d.get("l")
        try:
            st = os.stat(os.path.join(root, "tmp"))
            assert stat.S_IMODE(st.st_mode) == 0o1777
            st = os.stat(os.path.join(root, "tmp/deep"))
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1234, 5678)
            assert read(root, "tmp/deep/x") == b"x"
        finally:
            d.put("l")

    def test_apply_diff_rejects_garbage(self, env: Env) -> None:
        env.driver.create("l", None)
        with pytest.raises(InvalidParameter):
            env.driver.apply_diff("l", None, io.BytesIO(b"this is not a tar archive" * 100))

    def test_apply_diff_rejects_truncated_tar(self, env: Env) -> None:
        env.driver.create("l", None)
        blob = make_tar(("file", "a", "x" * 5000)).getvalue()
        with pytest.raises(InvalidParameter):
            env.driver.apply_diff("l", None, io.BytesIO(blob[:3000]))

    def test_apply_diff_empty_stream(self, env: Env) -> None:
        env.driver.create("l", None)
        assert env.driver.apply_diff("l", None, io.BytesIO(b"")) == 0

    def test_diff_stream_closed_early(self, env: Env) -> None:
        layer(env, "base", None, {f"f{i}": os.urandom(1 << 16) for i in range(64)})
        s = env.driver.diff("base", None)
        assert len(s.read(1000)) == 1000
        s.close()
        env.driver.remove("base")  # the diff's reference was released
        assert not env.driver.exists("base")

    # -- safety of apply_diff -------------------------------------------------------------------
    def _bad_tar_cases(self, outside: str) -> dict[str, tuple]:
        rel = "../" * 64 + outside.lstrip("/")
        return {
            "dotdot": (("file", "../x", "pwn"),),
            "dotdot-deep": (("dir", "a"), ("file", "a/../../x", "pwn")),
            "absolute": (("file", outside + "/x", "pwn"),),
            "symlink-escape-write": (("symlink", "esc", rel), ("file", "esc/x", "pwn")),
            "symlink-escape-nested": (("dir", "a"), ("symlink", "a/esc", "../" + rel),
                                      ("file", "a/esc/x", "pwn")),
            "symlink-escape-mkdir": (("symlink", "esc", rel), ("dir", "esc/newdir")),
            "symlink-escape-whiteout": (("symlink", "esc", rel), ("file", "esc/.wh.sentinel")),
            "symlink-escape-opaque": (("symlink", "esc", rel), ("file", "esc/.wh..wh..opq")),
            "hardlink-dotdot": (("hardlink", "h", rel + "/sentinel"),),
            "hardlink-absolute": (("hardlink", "h", outside + "/sentinel"),),
            "hardlink-via-symlink": (("symlink", "esc", rel), ("hardlink", "h", "esc/sentinel")),
            "whiteout-dotdot": (("dir", "a"), ("file", "a/.wh..."),),
        }

    @pytest.mark.parametrize("case", [
        "dotdot", "dotdot-deep", "absolute", "symlink-escape-write", "symlink-escape-nested",
        "symlink-escape-mkdir", "symlink-escape-whiteout", "symlink-escape-opaque",
        "hardlink-dotdot", "hardlink-absolute", "hardlink-via-symlink", "whiteout-dotdot"])
    def test_bad_tar_refused(self, env: Env, case: str) -> None:
        d = env.driver
        d.create("l", None)
        before = snapshot(env.outside)
        with pytest.raises(InvalidParameter):
            d.apply_diff("l", None, make_tar(*self._bad_tar_cases(env.outside)[case]))
        assert snapshot(env.outside) == before
        assert not os.path.exists(os.path.join(os.path.dirname(env.home), "x"))

    def test_tar_never_writes_through_links(self, env: Env) -> None:
        """Not refused, but contained: a file replacing a symlink replaces the link; a symlink
        with an absolute target met in a path resolves inside the layer (or is refused)."""
        d = env.driver
        d.create("l", None)
        before = snapshot(env.outside)
        d.apply_diff("l", None, make_tar(("symlink", "s", env.outside + "/sentinel"),
                                         ("file", "s", "replaced")))
        try:
            d.apply_diff("l", None, make_tar(("symlink", "abs", env.outside),
                                             ("file", "abs/x", "contained")))
        except InvalidParameter:
            pass
        assert snapshot(env.outside) == before
        root = d.get("l")
        try:
            assert not os.path.islink(os.path.join(root, "s"))
            assert read(root, "s") == b"replaced"
        finally:
            d.put("l")
