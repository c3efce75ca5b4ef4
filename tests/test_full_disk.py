"""A full data-root: removals (rm, rmi, volume rm, every prune) and start-up work at 0 bytes free.

The data-root is a 64 MB tmpfs of the test's own (exact accounting, no blocks reserved for root),
filled to the last byte by a file written until ENOSPC.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from typing import Iterator

import pytest

from conftest import (Daemon, _kill_pidfile_tree, _unmount_under, make_root, network_args,
                      remove_network_leftovers)


def free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: str, name: str) -> None:
    """Write ``path/name`` until the file system has not a byte left."""
    fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\1" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    assert free(path) == 0


@pytest.fixture
def small_disk(busybox_tar: str) -> Iterator[Daemon]:
    root = make_root()
    data = os.path.join(root, "data")
    os.makedirs(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0711", "tmpfs", data], check=True)
    bridge, net = network_args()
    d = Daemon(root, net)
    d.bridge_name = bridge
    try:
        d.start()
        d.import_busybox(busybox_tar)
        yield d
    finally:
        with contextlib.suppress(Exception):
            if d.proc is not None:
                d.remove_all_containers()
        d.stop()
        _kill_pidfile_tree(d.exec_root)
        _unmount_under(root)
        remove_network_leftovers(d)
        shutil.rmtree(root, ignore_errors=True)


def ok(p: subprocess.CompletedProcess[bytes]) -> str:
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def _tar(path: str, size: int) -> str:
    import io
    import tarfile
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as tf:
        data = os.urandom(size)
        ti = tarfile.TarInfo("data")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return path


class Full:
    """Runs each removal on a data-root with not a byte free (and the reserve held)."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.fillers: list[str] = []

    def zero(self) -> None:
        for name in self.fillers:  # room again, then any removal request re-arms the reserve
            os.unlink(os.path.join(self.d.data_root, name))
        self.fillers.clear()
        assert self.d.api.delete("/volumes/no-such-volume")[0] == 404
        assert os.path.exists(os.path.join(self.d.data_root, "disk-reserve"))
        self.fillers.append(f"filler{len(self.fillers)}")
        fill(self.d.data_root, self.fillers[-1])

    def run(self, *args: str) -> str:
        self.zero()
        return ok(self.d.cli(*args))


def test_removals_and_start_at_zero_bytes_free(small_disk: Daemon) -> None:
    d = small_disk
    full = Full(d)
    ok(d.cli("import", _tar(os.path.join(d.root, "big.tar"), 12 << 20), "big:1"))
    ok(d.cli("import", _tar(os.path.join(d.root, "a.tar"), 4 << 20), "dangling:1"))
    ok(d.cli("import", _tar(os.path.join(d.root, "b.tar"), 4 << 20), "dangling:1"))  # the first: <none>
    ok(d.cli("run", "--name", "c1", "-v", "vol1:/v", "busybox", "sh", "-c", "echo x > /v/x"))
    ok(d.cli("run", "--name", "c2", "busybox", "true"))
    ok(d.cli("volume", "create", "vol2"))
    images = ok(d.cli("images", "-q")).split()
    assert len(images) == 4

    assert "c1" in full.run("rm", "c1")
    assert "vol2" in full.run("volume", "rm", "vol2")
    assert "Deleted: sha256:" in full.run("rmi", "big:1")
    c2 = ok(d.cli("inspect", "-f", "{{.Id}}", "c2")).strip()
    assert c2 in full.run("container", "prune", "-f")
    assert ok(d.cli("ps", "-aq")) == ""
    assert "deleted: sha256:" in full.run("image", "prune", "-f")
    assert len(ok(d.cli("images", "-q")).split()) == 2  # busybox and dangling:1
    assert "vol1" in full.run("volume", "prune", "-a", "-f")
    assert ok(d.cli("volume", "ls", "-q")) == ""
    full.zero()
    status, body = d.api.post("/build/prune")
    assert status == 200, body

    # start-up on a disk with not a byte left
    full.zero()
    d.stop()
    assert free(d.data_root) == 0
    d.start()
    assert "busybox" in ok(d.cli("images", "--format", "{{.Repository}}"))
    for name in full.fillers:
        os.unlink(os.path.join(d.data_root, name))
    assert ok(d.cli("run", "--rm", "--network", "none", "busybox", "echo", "ok")) == "ok\n"


def test_a_write_on_a_full_disk_says_so(small_disk: Daemon) -> None:
    d = small_disk
    fill(d.data_root, "filler")
    p = d.cli("volume", "create", "onemore")
    assert p.returncode != 0
    assert b"no space left on device" in p.stderr, p.stderr
