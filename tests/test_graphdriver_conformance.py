"""The graph-driver conformance suite, run for every installed graph driver (entry-point group
``dockyard.graphdrivers``), plus a few checks of vfs's own promises."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from dockyard.hookspecs.conformance.graphdriver import (installed_graphdriver_suite,
                                                        installed_graphdrivers)
from dockyard.hookspecs.errors import InvalidParameter

TestInstalledGraphDrivers = installed_graphdriver_suite()


def test_vfs_is_installed() -> None:
    assert "vfs" in installed_graphdrivers()


@pytest.fixture
def home():
    top = tempfile.mkdtemp(prefix="dockyard-vfs-")
    yield os.path.join(top, "vfs")
    shutil.rmtree(top, ignore_errors=True)


def test_vfs_refuses_unknown_options(home: str) -> None:
    from dockyard.plugins.graphdrivers.vfs import VfsDriver
    with pytest.raises(InvalidParameter):
        VfsDriver(home, {"size": "10G"})


def test_vfs_removes_leftovers_of_a_crash(home: str) -> None:
    from dockyard.plugins.graphdrivers.vfs import VfsDriver
    d = VfsDriver(home)
    d.create("a", None)
    os.makedirs(os.path.join(home, "dir", ".tmp-b-123456", "half"))
    os.makedirs(os.path.join(home, "dir", ".rm-c-123456"))
    d = VfsDriver(home)
    assert sorted(os.listdir(os.path.join(home, "dir"))) == ["a"]
    assert d.exists("a") and not d.exists("b")


def test_btrfs_refuses_other_file_systems(home: str) -> None:
    from dockyard.hookspecs.errors import DriverNotSupported
    from dockyard.plugins.graphdrivers.btrfs import BtrfsDriver
    with pytest.raises(DriverNotSupported, match=r"is on \w+, not btrfs"):
        BtrfsDriver(home)


def test_btrfs_removes_nested_subvolumes() -> None:
    from dockyard.hookspecs.conformance.loopfs import LoopFilesystem, LoopUnavailable
    from dockyard.plugins.graphdrivers.btrfs import BtrfsDriver
    try:
        fs = LoopFilesystem("btrfs", 1 << 30).open()
    except LoopUnavailable as e:
        pytest.skip(str(e))
    try:
        import btrfsutil
        d = BtrfsDriver(os.path.join(fs.path, "btrfs"))
        d.create("base", None)
        d.create_rw("ctr", "base")
        root = d.get("ctr")
        btrfsutil.create_subvolume(os.path.join(root, "nested"))  # btrfs inside a container
        btrfsutil.create_subvolume(os.path.join(root, "nested", "deeper"))
        d.put("ctr")
        d.remove("ctr")
        assert not d.exists("ctr") and d.exists("base")
        assert sorted(os.listdir(os.path.join(fs.path, "btrfs", "subvolumes"))) == ["base"]
        d.remove("base")
    finally:
        fs.close()


def test_overlay_mount_options_stay_under_a_page_for_deep_chains(home: str) -> None:
    from dockyard.plugins.graphdrivers.overlay import OverlayDriver
    d = OverlayDriver(home)
    parent = None
    for i in range(160):
        d.create(f"layer-{i:03d}", parent)
        parent = f"layer-{i:03d}"
    try:
        root = d.get(parent)
        assert os.path.isdir(root)
        opts = next(line for line in open("/proc/self/mountinfo") if os.path.join(home, parent) in line)
        assert ".l/" in opts
    finally:
        d.cleanup()


def test_fuse_overlayfs_replaces_a_dead_mount(home: str) -> None:
    """A fuse-overlayfs process that died leaves a mount answering ENOTCONN: the next driver
    drops it and mounts afresh instead of adopting it."""
    import signal
    import time
    from dockyard.hookspecs.errors import DriverNotSupported
    from dockyard.plugins.graphdrivers.fuse_overlayfs import FuseOverlayfsDriver
    try:
        d = FuseOverlayfsDriver(home)
    except DriverNotSupported as e:
        pytest.skip(e.reason)
    try:
        d.create("base", None)
        d.create_rw("ctr", "base")
        d.get("ctr")
        with open(os.path.join(home, "base", "link")) as f:
            lower = f"lowerdir=.l/{f.read().strip()}".encode()  # unique: a random link name
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"ctr/merged" in argv and any(a.startswith(lower) for a in argv):
                pids.append(int(pid))
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.stat(os.path.join(home, "ctr", "merged"))
            except OSError:
                break
            time.sleep(0.05)
        again = FuseOverlayfsDriver(home)
        root = again.get("ctr")
        assert os.listdir(root) == []
        again.put("ctr")
        again.cleanup()
    finally:
        d.cleanup()


def test_drivers_without_id_map_keep_working_and_skip_remap_tests(home: str) -> None:
    """A third-party driver written before userns-remap (constructor ``(home, options)``) gets the
    identity map from GraphDriver and is not asked to remap by the suite; ours take ``id_map``."""
    from dockyard.hookspecs.conformance.graphdriver import _class_factory, _takes_id_map
    from dockyard.hookspecs.idmap import IDMap
    from dockyard.plugins.graphdrivers.vfs import VfsDriver

    class OldVfs(VfsDriver):
        def __init__(self, home: str, options: dict[str, str] | None = None) -> None:
            super().__init__(home, options)

    assert OldVfs(home).id_map.is_identity
    assert not _takes_id_map(_class_factory(OldVfs))
    assert _takes_id_map(_class_factory(VfsDriver))
    for name, ep in installed_graphdrivers().items():
        assert _takes_id_map(_class_factory(ep.load())), f"{name} takes no id_map"
    m = IDMap(uids=((0, 100000, 65536),), gids=((0, 100000, 65536),))
    assert VfsDriver(home, {}, id_map=m).id_map == m


def test_daemon_refuses_a_driver_without_id_map_when_remapping(home: str) -> None:
    """The core hands a remapping daemon's map only to drivers that take one; an older driver
    is refused by name rather than silently storing unshifted layers."""
    from dockyard.core.daemon.app import Daemon
    from dockyard.core.plugins import DriverRegistry
    from dockyard.hookspecs.errors import DriverNotSupported
    from dockyard.hookspecs.idmap import IDMap
    from dockyard.plugins.graphdrivers.vfs import VfsDriver

    class OldVfs(VfsDriver):
        name = "oldvfs"

        def __init__(self, home: str, options: dict[str, str] | None = None) -> None:
            super().__init__(home, options)

    class Registry(DriverRegistry):
        def get_class(self, name: str) -> type:
            return {"oldvfs": OldVfs, "vfs": VfsDriver}[name]

    d = object.__new__(Daemon)  # only what create_graph reads
    d.registries = {"graph": Registry("graph")}
    d.data_root = home
    d.id_map = IDMap(uids=((0, 100000, 65536),), gids=((0, 100000, 65536),))
    with pytest.raises(DriverNotSupported, match="oldvfs storage driver takes no ID map"):
        d.create_graph("oldvfs", {})
    assert d.create_graph("vfs", {}).id_map == d.id_map
    d.id_map = IDMap.identity()
    assert d.create_graph("oldvfs", {}).id_map.is_identity
