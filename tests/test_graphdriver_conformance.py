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
