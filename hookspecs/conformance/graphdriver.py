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

import inspect
import os
import shutil
import subprocess
import tempfile
from importlib.metadata import entry_points
from typing import Any, Callable

import pytest

from ..errors import Conflict, DockyardError, DriverNotSupported, InvalidParameter, NotFound
from ..graphdriver import GraphDriver
from ..idmap import IDMap
from .graphdriver_diffs import LayerDiffSuite
from .graphdriver_files import REMAP, Env, layer, mounts_under, outside_state, read, write
from .graphdriver_ids import LayerListingSuite
from .graphdriver_preserve import PreservationSuite
from .graphdriver_size import SizeLimitSuite
from .loopfs import LoopFilesystem, LoopUnavailable, session_loopfs

GROUP = "dockyard.graphdrivers"
Factory = Callable[..., GraphDriver]  # factory(home) or factory(home, id_map=IDMap)


def _loop_base(config: Any, fstype: str) -> str:
    """A loop-mounted ``fstype`` shared by the session's tests (each still gets a fresh
    directory in it), removed when the session ends."""
    got = session_loopfs(config, fstype, lambda: LoopFilesystem(fstype, 2 << 30))
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
        before = outside_state(outside)
        yield Env(driver, home, outside)
        assert outside_state(outside) == before, "the driver wrote outside its home"
    finally:
        try:
            if driver is not None:
                driver.cleanup()
            left = mounts_under(top)
        finally:
            for mp in sorted(mounts_under(top), reverse=True):
                subprocess.run(["umount", "-l", mp], check=False)
            shutil.rmtree(top, ignore_errors=True)
        assert not left, f"still mounted after cleanup(): {left}"


# ------------------------------------------------------------------------------------------------
# the suite
# ------------------------------------------------------------------------------------------------
class GraphDriverSuite(LayerDiffSuite, PreservationSuite, LayerListingSuite, SizeLimitSuite):
    """The tests: the core here, the diff side (:mod:`.graphdriver_diffs`), preservation
    (:mod:`.graphdriver_preserve`), layer listing (:mod:`.graphdriver_ids`). Subclasses provide
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
    layer = staticmethod(layer)

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
        layer(env, "base", None, {"a": "1"})
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
        layer(env, "base", None, {"etc/hostname": "base", "bin/sh": "#!", "empty": "<dir>"})
        layer(env, "child", "base")
        root = env.driver.get("child")
        try:
            assert read(root, "etc/hostname") == b"base"
            assert read(root, "bin/sh") == b"#!"
            assert os.path.isdir(os.path.join(root, "empty"))
        finally:
            env.driver.put("child")

    def test_get_put_refcount(self, env: Env) -> None:
        d = env.driver
        layer(env, "base", None, {"f": "x"})
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
        layer(env, "base", None, {"keep": "k", "mod": "old", "gone": "g", "d/x": "x"})
        layer(env, "child", "base", {"mod": "new", "gone": None, "added": "a", "d": None})
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
            parent = layer(env, f"l{i}", parent, {f"f{i}": str(i), "top": str(i)})
        root = env.driver.get("l127")
        try:
            for i in range(128):
                assert read(root, f"f{i}") == str(i).encode()
            assert read(root, "top") == b"127"
        finally:
            env.driver.put("l127")

    def test_remove(self, env: Env) -> None:
        d = env.driver
        layer(env, "base", None, {"f": "x"})
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
        layer(env, "base", None, {"f": "x"})
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
        layer(env, "base", None, {"f": "x"})
        layer(env, "child", "base", {"g": "y"})
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
        layer(env, "base", None, {"f": "x"})
        layer(env, "child", "base", {"g": "y"}, rw=True)
        d.get("child")  # then "killed": no put, no cleanup
        before = mounts_under(env.home)
        again = graphdriver_factory(env.home)
        try:
            root = again.get("child")
            assert read(root, "f") == b"x" and read(root, "g") == b"y"
            assert mounts_under(env.home) == before, "mounted a second time"
            again.put("child")
            assert mounts_under(env.home) == [], "put did not unmount the adopted mount"
            again.get("child")
        finally:
            again.cleanup()
        assert mounts_under(env.home) == []
        again.remove("child")
        assert not again.exists("child")

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
