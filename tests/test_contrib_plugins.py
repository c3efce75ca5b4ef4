"""The example third-party drivers of contrib/plugins, installed from their own packages (``make
contrib-plugins``, run by ``make test``), in a real daemon: reflink chosen by daemon.json runs
containers, macvlan networks connect containers. Their conformance suites run through
test_graphdriver_conformance.py / test_netdriver_conformance.py (every installed driver) and
their own one-line test modules."""
from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterator

import pytest

from conftest import Daemon, running_daemon, unique_subnet
from dockyard.hookspecs.conformance.loopfs import LoopFilesystem, LoopUnavailable


def _installed(dist: str) -> bool:
    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


needs_contrib = pytest.mark.skipif(
    not (_installed("dockyard-graph-reflink") and _installed("dockyard-net-macvlan")),
    reason="contrib plugins not installed in this venv: make contrib-plugins")


def ok(r: subprocess.CompletedProcess[bytes]) -> bytes:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


def rows(d: Daemon, *args: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = ok(d.cli("plugins", "ls", "--format", "json", *args))
    return {(r["Kind"], r["Name"]): r for r in map(json.loads, out.splitlines())}


@pytest.fixture
def reflink_daemon(busybox_tar: str) -> Iterator[Daemon]:
    """A daemon whose data-root is on a fresh btrfs and whose daemon.json selects reflink."""

    class ReflinkDaemon(Daemon):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.config["storage-driver"] = "reflink"

    try:
        fs = LoopFilesystem("btrfs", 1 << 30).open()
    except LoopUnavailable as e:
        pytest.skip(f"no loop-mounted btrfs: {e}")
    try:
        with running_daemon(busybox_tar, root_dir=fs.path, daemon_class=ReflinkDaemon) as d:
            yield d
    finally:
        fs.close()


def test_contrib_drivers_import_only_the_contract() -> None:
    """As dockyard's own drivers (test_architecture.py): a third-party driver imports
    dockyard.hookspecs and nothing else of dockyard."""
    from test_architecture import violations

    bad = [v for v in violations("contrib/plugins", ("dockyard.core", "dockyard.cli",
                                                     "dockyard.plugins"))
           if "/build/" not in v]  # pip's copies when a package is built in place
    assert not bad, bad


@needs_contrib
def test_reflink_selected_by_daemon_json_runs_containers(reflink_daemon: Daemon) -> None:
    d = reflink_daemon
    _, info = d.api.get("/info")
    assert info["Driver"] == "reflink"
    assert ["Backing Filesystem", "btrfs"] in info["DriverStatus"]
    ok(d.cli("run", "--name", "rw1", "busybox", "sh", "-c", "echo layered > /f"))
    assert ok(d.cli("diff", "rw1")).split() == [b"A", b"/f"]
    ok(d.cli("commit", "rw1", "committed:1"))
    assert ok(d.cli("run", "--rm", "committed:1", "cat", "/f")) == b"layered\n"
    row = rows(d)[("graph", "reflink")]
    assert (row["Package"], row["Version"], row["State"]) == ("dockyard-graph-reflink", "0.1.0",
                                                            "active")


@needs_contrib
def test_reflink_refuses_a_file_system_without_reflinks(busybox_tar: str) -> None:
    """On ext4 (no FICLONE) the explicit choice stops the daemon with the driver's reason."""
    try:
        fs = LoopFilesystem("ext4", 256 << 20).open()
    except LoopUnavailable as e:
        pytest.skip(f"no loop-mounted ext4: {e}")
    try:
        os.mkdir(fs.path + "/r")
        d = Daemon(fs.path + "/r", ["--storage-driver", "reflink"])
        with open(d.config_path, "w") as f:
            f.write("{}")
        r = subprocess.run(d.argv(), capture_output=True, timeout=60)
        assert r.returncode != 0 and b"cannot clone file data" in r.stdout + r.stderr
    finally:
        fs.close()


@needs_contrib
def test_macvlan_network_connects_containers(daemon: Daemon) -> None:
    d = daemon
    assert rows(d)[("network", "macvlan")]["State"] == "active"
    # only Docker's predefined networks: a macvlan network is made by network create
    _, nets = d.api.get("/networks")
    assert {n["Name"] for n in nets} == {"bridge", "host", "none"}
    subnet = unique_subnet()
    net = ok(d.cli("network", "create", "-d", "macvlan", "--subnet", subnet, "mvnet")).strip()
    parent = "dm-" + net.decode()[:12]
    try:
        assert parent.encode() in ok(subprocess.run(["ip", "-o", "link", "show"],
                                                    capture_output=True))
        cid = ok(d.cli("run", "-d", "--network", "mvnet", "busybox", "sleep", "300")).strip()
        ip = ok(d.cli("inspect", "-f", "{{.NetworkSettings.Networks.mvnet.IPAddress}}",
                      cid.decode())).strip().decode()
        assert ip.startswith(subnet.rsplit(".", 1)[0] + ".")
        out = ok(d.cli("run", "--rm", "--network", "mvnet", "busybox", "sh", "-c",
                       f"ip -o link show eth0; ping -c 1 -W 5 {ip}"))
        assert b"macvlan" in out or b"@" in out
        assert b"1 packets received" in out
        r = d.cli("network", "create", "-d", "macvlan", "-o", "colour=blue", "bad")
        assert r.returncode != 0 and b"unknown option(s) colour" in r.stderr
        ok(d.cli("rm", "-f", cid.decode()))
    finally:
        d.cli("network", "rm", "mvnet")
    assert parent.encode() not in ok(subprocess.run(["ip", "-o", "link", "show"],
                                                    capture_output=True))
