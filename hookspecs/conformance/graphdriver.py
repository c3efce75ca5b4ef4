"""The graph-driver conformance suite.

Like containerd's ``SnapshotterSuite``: the suite owns the list of tests, a driver supplies only a
factory ``factory(home) -> GraphDriver``. Every test gets a fresh, empty ``home`` in a new temp
directory (``--dockyard-basetemp DIR`` or ``$DOCKYARD_CONFORMANCE_BASETEMP`` choose where), next to
an ``outside`` sentinel directory that must stay untouched; a driver declaring ``required_fs`` (e.g. ``"btrfs"``) gets its temp
directories on a loop-mounted file system of that type the suite makes once per session and
removes at its end (a factory function may carry a ``required_fs`` attribute too). A factory raising
:class:`~dockyard.hookspecs.errors.DriverNotSupported` skips the test with its reason; any other
failure fails it. After each test the driver's ``cleanup()`` runs, nothing may remain mounted under
the temp directory, and the directory is removed.

A third-party driver runs the whole suite with one line in one of its test modules::

    from dockyard.hookspecs.conformance.graphdriver import graphdriver_suite
    TestMyDriverConformance = graphdriver_suite(MyDriver)            # or a factory:
    # TestMyDriverConformance = graphdriver_suite(lambda home: MyDriver(home, {"size": "1G"}))

Every installed driver (entry-point group ``dockyard.graphdrivers``) is run by::

    from dockyard.hookspecs.conformance.graphdriver import installed_graphdriver_suite
    TestInstalledGraphDrivers = installed_graphdriver_suite()

(restrict with ``--dockyard-graphdriver NAME``). The ``userns-remap`` tests build the driver with
``factory(home, id_map=IDMap(...))`` (a factory function without that keyword skips them); the
size-limit tests (:mod:`.graphdriver_size`) use ``size_limit_fs``. Root-only tests skip when
not root; xattr tests skip where the file system has no xattrs."""
from __future__ import annotations

import errno
import hashlib
import inspect
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

import pytest

from ..errors import Conflict, DockyardError, DriverNotSupported, InvalidParameter, NotFound
from ..graphdriver import GraphDriver
from ..idmap import IDMap
from .graphdriver_ids import LayerListingSuite
from .graphdriver_size import SizeLimitSuite
from .loopfs import LoopFilesystem, LoopUnavailable

GROUP = "dockyard.graphdrivers"
Factory = Callable[..., GraphDriver]  # factory(home) or factory(home, id_map=IDMap)

#: the user-namespace remapping the remap tests use: container 0 is host uid 200000 / gid 300000
REMAP = IDMap(uids=((0, 200000, 65536),), gids=((0, 300000, 65536),))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
# a v2 security.capability value: cap_net_raw in permitted, effective flag set
CAP_NET_RAW = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
@dataclass
class Env:
    driver: GraphDriver
    home: str
    outside: str     #: a directory outside the driver's home that must never be written


def _mounts_under(path: str) -> list[str]:
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
            arg = e[2] if len(e) > 2 else None
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


def _loop_base(config: Any, fstype: str) -> str:
    """A loop-mounted ``fstype`` shared by the session's tests (each still gets a fresh
    directory in it), removed when the session ends."""
    cache = getattr(config, "_dockyard_loopfs", None)
    if cache is None:
        cache = config._dockyard_loopfs = {}
    if fstype not in cache:
        lfs = LoopFilesystem(fstype, 2 << 30)
        try:
            lfs.open()
        except LoopUnavailable as e:
            cache[fstype] = e
        else:
            cache[fstype] = lfs
            config.add_cleanup(lfs.close)
    got = cache[fstype]
    if isinstance(got, LoopUnavailable):
        pytest.skip(f"no loop-mounted {fstype} for this driver: {got}")
    return got.path


def _takes_id_map(factory: Any) -> bool:
    """Whether ``factory`` (or the class behind a factory of :func:`_class_factory`) accepts
    ``id_map=``: drivers written before ``userns-remap`` skip the remap tests."""
    known = getattr(factory, "takes_id_map", None)
    if known is not None:
        return bool(known)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "id_map" or p.kind == p.VAR_KEYWORD for p in params)


def _driver_env(graphdriver_factory: Any, request: Any, make: Callable[[str], GraphDriver],
                base: str | None = None) -> Any:
    """A fresh home (and ``outside``) for one test (in ``base``), its driver ``make(home)``."""
    base = base or (request.config.getoption("dockyard_basetemp", None)
            or os.environ.get("DOCKYARD_CONFORMANCE_BASETEMP") or None)
    fstype = getattr(graphdriver_factory, "required_fs", None)
    if base is None and fstype:
        base = _loop_base(request.config, fstype)
    top = os.path.realpath(tempfile.mkdtemp(prefix="dockyard-gd-", dir=base))
    home, outside = os.path.join(top, "home"), os.path.join(top, "outside")
    os.mkdir(outside)
    write(outside, "sentinel", b"do not touch")
    driver = None
    try:
        try:
            driver = make(home)
        except DriverNotSupported as e:
            pytest.skip(f"driver not supported here: {e.reason}")
        e = Env(driver, home, outside)
        before = snapshot(outside)
        yield e
        assert snapshot(outside) == before, "the driver wrote outside its home"
    finally:
        try:
            if driver is not None:
                driver.cleanup()
            left = _mounts_under(top)
        finally:
            for mp in sorted(_mounts_under(top), reverse=True):
                subprocess.run(["umount", "-l", mp], check=False)
            shutil.rmtree(top, ignore_errors=True)
        assert not left, f"still mounted after cleanup(): {left}"


# ------------------------------------------------------------------------------------------------
# the suite
# ------------------------------------------------------------------------------------------------
class GraphDriverSuite(LayerListingSuite, SizeLimitSuite):
    """The tests (those of :meth:`GraphDriver.ids`: :mod:`.graphdriver_ids`). Subclasses provide
    ``graphdriver_factory`` (see :func:`graphdriver_suite`); not collected itself (no ``Test``)."""

    @pytest.fixture
    def graphdriver_factory(self) -> Factory:  # pragma: no cover - overridden
        raise NotImplementedError("subclass GraphDriverSuite with a graphdriver_factory fixture")

    @pytest.fixture
    def env(self, graphdriver_factory: Factory, request: Any) -> Any:
        yield from _driver_env(graphdriver_factory, request, graphdriver_factory)

    @pytest.fixture
    def remap_env(self, graphdriver_factory: Factory, request: Any) -> Any:
        """Like ``env``, the driver built with ``id_map=REMAP``."""
        if os.geteuid() != 0:
            pytest.skip("needs root")
        if not _takes_id_map(graphdriver_factory):
            pytest.skip("the factory takes no id_map keyword")
        yield from _driver_env(graphdriver_factory, request,
                               lambda home: graphdriver_factory(home, id_map=REMAP))
    # -- helpers bound to a driver --------------------------------------------------------------
    @staticmethod
    def layer(env: Env, id: str, parent: str | None = None, files: dict[str, Any] | None = None,
              rw: bool = False) -> str:
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

    # -- the core ---------------------------------------------------------------------------------
    def test_create_empty(self, env: Env) -> None:
        d = env.driver
        assert not d.exists("base")
        d.create("base", None)
        assert d.exists("base")
        root = d.get("base")
        try:
            assert os.path.isdir(root)
            assert [n for n in os.listdir(root) if n != "lost+found"] == []
        finally:
            d.put("base")
        assert isinstance(d.status(), list)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.status())
        assert isinstance(d.metadata("base"), dict)

    def test_create_rw(self, env: Env) -> None:
        self.layer(env, "base", None, {"a": "1"})
        env.driver.create_rw("ctr", "base")
        root = env.driver.get("ctr")
        try:
            assert read(root, "a") == b"1"
            write(root, "b", "2")
            assert read(root, "b") == b"2"
        finally:
            env.driver.put("ctr")

    def test_create_existing_fails(self, env: Env) -> None:
        env.driver.create("a", None)
        with pytest.raises(DockyardError):
            env.driver.create("a", None)

    @pytest.mark.parametrize("bad", ["a/b", "..", "../x", "x/../y", "/abs", ""])
    def test_bad_ids_refused(self, env: Env, bad: str) -> None:
        with pytest.raises(InvalidParameter):
            env.driver.create(bad, None)
        assert not os.path.exists(os.path.join(env.outside, "x"))

    def test_unknown_layers(self, env: Env) -> None:
        d = env.driver
        with pytest.raises(NotFound):
            d.get("nope")
        with pytest.raises(NotFound):
            d.remove("nope")
        with pytest.raises(NotFound):
            d.create("child", "nope")
        assert not d.exists("child")

    def test_create_from_parent_sees_parent_files(self, env: Env) -> None:
        self.layer(env, "base", None, {"etc/hostname": "base", "bin/sh": "#!", "empty": "<dir>"})
        self.layer(env, "child", "base")
        root = env.driver.get("child")
        try:
            assert read(root, "etc/hostname") == b"base"
            assert read(root, "bin/sh") == b"#!"
            assert os.path.isdir(os.path.join(root, "empty"))
        finally:
            env.driver.put("child")

    def test_get_put_refcount(self, env: Env) -> None:
        d = env.driver
        self.layer(env, "base", None, {"f": "x"})
        p1 = d.get("base")
        p2 = d.get("base")
        assert p1 == p2
        d.put("base")
        assert read(p1, "f") == b"x"  # still one reference: still there
        d.put("base")
        p3 = d.get("base")
        assert read(p3, "f") == b"x"
        d.put("base")

    def test_write_in_child_does_not_change_parent(self, env: Env) -> None:
        self.layer(env, "base", None, {"keep": "k", "mod": "old", "gone": "g", "d/x": "x"})
        self.layer(env, "child", "base", {"mod": "new", "gone": None, "added": "a", "d": None})
        root = env.driver.get("base")
        try:
            assert read(root, "mod") == b"old"
            assert read(root, "gone") == b"g"
            assert read(root, "d/x") == b"x"
            assert not os.path.exists(os.path.join(root, "added"))
        finally:
            env.driver.put("base")

    def test_chain_128_layers(self, env: Env) -> None:
        parent = None
        for i in range(128):
            parent = self.layer(env, f"l{i}", parent, {f"f{i}": str(i), "top": str(i)})
        root = env.driver.get("l127")
        try:
            for i in range(128):
                assert read(root, f"f{i}") == str(i).encode()
            assert read(root, "top") == b"127"
        finally:
            env.driver.put("l127")

    def test_remove(self, env: Env) -> None:
        d = env.driver
        self.layer(env, "base", None, {"f": "x"})
        d.remove("base")
        assert not d.exists("base")
        with pytest.raises(NotFound):
            d.get("base")
        with pytest.raises(NotFound):
            d.remove("base")
        d.create("base", None)  # the id is free again
        assert d.exists("base")

    def test_remove_while_mounted(self, env: Env) -> None:
        d = env.driver
        self.layer(env, "base", None, {"f": "x"})
        root = d.get("base")
        try:
            d.remove("base")
        except (Conflict, DockyardError):
            # refused: the layer must be intact and usable
            assert d.exists("base")
            assert read(root, "f") == b"x"
            d.put("base")
            d.remove("base")
        else:
            # accepted: it must be gone for good, and the late put harmless
            assert not d.exists("base")
            d.put("base")
        assert not d.exists("base")

    def test_cleanup_and_reopen(self, env: Env, graphdriver_factory: Factory) -> None:
        d = env.driver
        self.layer(env, "base", None, {"f": "x"})
        self.layer(env, "child", "base", {"g": "y"})
        d.get("child")
        d.get("base")
        d.cleanup()
        again = graphdriver_factory(env.home)
        try:
            assert again.exists("base") and again.exists("child")
            root = again.get("child")
            try:
                assert read(root, "f") == b"x" and read(root, "g") == b"y"
            finally:
                again.put("child")
        finally:
            again.cleanup()

    def test_restart_after_kill_adopts_mounts(self, env: Env, graphdriver_factory: Factory) -> None:
        """A daemon killed with SIGKILL leaves its layers mounted: a new driver on the same home
        must count them, not mount them twice, and leave nothing mounted after put/cleanup."""
        d = env.driver
        self.layer(env, "base", None, {"f": "x"})
        self.layer(env, "child", "base", {"g": "y"}, rw=True)
        d.get("child")  # then "killed": no put, no cleanup
        before = _mounts_under(env.home)
        again = graphdriver_factory(env.home)
        try:
            root = again.get("child")
            assert read(root, "f") == b"x" and read(root, "g") == b"y"
            assert _mounts_under(env.home) == before, "mounted a second time"
            again.put("child")
            assert _mounts_under(env.home) == [], "put did not unmount the adopted mount"
            again.get("child")
        finally:
            again.cleanup()
        assert _mounts_under(env.home) == []
        again.remove("child")
        assert not again.exists("child")

    # -- the diff side ----------------------------------------------------------------------------
    def test_applied_whiteouts_and_opaque_round_trip(self, env: Env) -> None:
        """Whiteouts and opaque dirs applied from a tar come back out of ``diff`` as OCI
        whiteouts, and that diff applied elsewhere gives the same tree."""
        d = env.driver
        self.layer(env, "base", None, {"e/x": "x", "e/keep": "k", "o/a": "a", "o/sub/b": "b",
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
        self.layer(env, "base", None, {"keep": "k", "mod": "old", "gone": "g", "deldir/x": "x",
                                       "sub/keep": "k", "sub/mod": "m"})
        self.layer(env, "child", "base", {"mod": "new!", "gone": None, "added": "a",
                                          "deldir": None, "sub/mod": "changed", "sub/new": "n",
                                          "newdir/f": "f"})
        got = {c["Path"]: c["Kind"] for c in env.driver.changes("child", "base")}
        assert got == {"/mod": 0, "/gone": 2, "/added": 1, "/deldir": 2, "/sub": 0,
                       "/sub/mod": 0, "/sub/new": 1, "/newdir": 1, "/newdir/f": 1}
        base = {c["Path"]: c["Kind"] for c in env.driver.changes("base", None)}
        assert base["/keep"] == 1 and base["/deldir/x"] == 1 and set(base.values()) == {1}

    def test_diff_size(self, env: Env) -> None:
        self.layer(env, "base", None, {"a": "x" * 100})
        self.layer(env, "child", "base", {"b": "y" * 1000, "c": "z" * 24, "a": None})
        assert env.driver.diff_size("child", "base") == 1024
        assert env.driver.diff_size("base", None) == 100

    def test_diff_of_base_layer(self, env: Env) -> None:
        self.layer(env, "base", None, {"a": "1", "d/b": "2"})
        with env.driver.diff("base", None) as s:
            names = tar_names(s)
        assert set(names) == {"a", "d", "d/b"}
        assert names["d"].isdir() and names["a"].isreg()

    def test_diff_whiteouts(self, env: Env) -> None:
        self.layer(env, "base", None, {"gone": "g", "deldir/x": "x", "deldir/y/z": "z",
                                       "repl/a": "a", "repl/b": "b", "part/a": "a", "part/b": "b"})
        self.layer(env, "child", "base", {"gone": None, "deldir": None, "repl": None,
                                          "part/a": None})
        with env.driver.diff("child", "base") as s:
            names = tar_names(s)
        assert ".wh.gone" in names and ".wh.deldir" in names
        assert not any(n.startswith("deldir/") for n in names), "a deleted dir is one whiteout"
        assert "part/.wh.a" in names and "part" in names and ".wh.repl" in names

    def test_diff_apply_roundtrip(self, env: Env) -> None:
        d = env.driver
        self.layer(env, "base", None, {"gone": "g", "deldir/x": "x", "deldir/y/z": "z",
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
        self.layer(env, "base", None, {"e/x": "x", "e/keep": "k", "o/a": "a", "o/sub/b": "b",
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
        self.layer(env, "base", None, {"d/old": "o", "d/sub/x": "x"})
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
        self.layer(env, "base", None, {f"f{i}": os.urandom(1 << 16) for i in range(64)})
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

    # -- preservation ---------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
# builders
# ------------------------------------------------------------------------------------------------
def graphdriver_suite(factory: Factory | type, name: str | None = None) -> type:
    """A test class running the whole suite against ``factory(home)`` (a driver class or any
    callable). Assign it to a ``Test*`` name in a test module."""
    cls_name = name or f"GraphDriverConformance_{getattr(factory, 'name', '') or getattr(factory, '__name__', 'driver')}"

    @pytest.fixture
    def graphdriver_factory(self: Any) -> Factory:
        if isinstance(factory, type):
            return _with_fs(_class_factory(factory), factory)
        return factory  # type: ignore[return-value]

    return type(cls_name, (GraphDriverSuite,), {"graphdriver_factory": graphdriver_factory})


def _class_factory(cls: Any) -> Factory:
    """``cls(home, {})``; with an ``id_map``, ``cls(home, {}, id_map=id_map)``."""
    def factory(home: str, id_map: IDMap | None = None) -> GraphDriver:
        if id_map is None:
            return cls(home, {})
        return cls(home, {}, id_map=id_map)
    factory.takes_id_map = _takes_id_map(cls)  # type: ignore[attr-defined]
    return factory


def _with_fs(factory: Any, cls: type) -> Any:
    for attr in ("required_fs", "size_limit_fs"):
        setattr(factory, attr, getattr(cls, attr, None))
    return factory


def installed_graphdrivers() -> dict[str, Any]:
    """The entry points of every installed graph driver, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def installed_graphdriver_suite() -> type:
    """A test class running the suite once per installed graph driver (parametrized by name)."""
    eps = installed_graphdrivers()

    @pytest.fixture(params=sorted(eps))
    def graphdriver_factory(self: Any, request: Any) -> Factory:
        wanted = request.config.getoption("dockyard_graphdriver", None)
        if wanted and request.param not in wanted:
            pytest.skip(f"graph driver {request.param} not selected (--dockyard-graphdriver)")
        cls = eps[request.param].load()  # a driver that fails to import fails the suite
        assert getattr(cls, "name", None) == request.param, \
            f"entry point {request.param!r} loads a driver named {getattr(cls, 'name', None)!r}"
        return _with_fs(_class_factory(cls), cls)

    return type("InstalledGraphDrivers", (GraphDriverSuite,),
                {"graphdriver_factory": graphdriver_factory})
