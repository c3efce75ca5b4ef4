"""Graph drivers through their own API (no daemon in between), as the former
``contrib/bench/graphdrivers.py`` measured them: per driver, on a file system made for the run
(a loop-mounted ext4 without journal, or the file system the driver requires, e.g. btrfs; the
loop image in /dev/shm when it has room).

* ``create``: ``create_rw`` of a container layer on a one-layer image of 2 MB (200 files) and of
  1 GB (1024 files of 1 MB) — overlay and btrfs stay flat, vfs copies the image — and ``get`` +
  ``put`` of the layer on the 1 GB image;
* ``layer``: the diff of a layer holding 100 MB (100 files of 1 MB) read to its end, and that tar
  applied to a fresh layer.

Peers have no such API: these scenarios measure dockyard's graph drivers only (each driver once).
"""
from __future__ import annotations

import io
import os
import tarfile
from typing import Any

from .. import host
from ..subjects.base import CAP_GRAPH, Subject
from .base import Metric, Scenario

MB = 1 << 20


def image_tar(files: int, size: int) -> Any:
    """A layer tar streamed from a thread: ``files`` files of ``size`` incompressible bytes."""
    from dockyard.hookspecs.host.layertar import stream_from_writer
    block = os.urandom(size)

    def write(out: Any) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            d = tarfile.TarInfo("data")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(d)
            for i in range(files):
                ti = tarfile.TarInfo(f"data/f{i:05d}")
                ti.size, ti.mode, ti.mtime = size, 0o644, 1_600_000_000
                tf.addfile(ti, io.BytesIO(i.to_bytes(8, "little") + block[8:]))
    return stream_from_writer(write)


def drain(stream: Any) -> int:
    n = 0
    with stream:
        while chunk := stream.read(MB):
            n += len(chunk)
    return n


class DriverHome:
    """One graph driver on a fresh loop file system of its own."""

    def __init__(self, name: str) -> None:
        from dockyard.core.plugins import DriverRegistry
        from dockyard.hookspecs.conformance.loopfs import LoopFilesystem
        self.cls = DriverRegistry("graph").get_class(name)
        self.fstype = getattr(self.cls, "required_fs", None) or "ext4"
        size = 8 << 30
        self.fs = LoopFilesystem(self.fstype, size, dir=host.shm_backing(size))
        self.driver: Any = None

    def open(self) -> Any:
        """The driver, constructed on the new file system (DriverNotSupported propagates)."""
        from dockyard.hookspecs.errors import DriverNotSupported
        from ..subjects.base import Skip
        self.fs.open()
        try:
            self.driver = self.cls(os.path.join(self.fs.path, self.cls.name), {})
        except DriverNotSupported as e:
            self.close()
            raise Skip(f"not supported here: {e.reason}") from None
        return self.driver

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.cleanup()
            finally:
                self.driver = None
        self.fs.close()


class GraphScenario(Scenario):
    needs = frozenset({CAP_GRAPH})
    needs_reason = "has no dockyard graph driver to call in process (no peer equivalent)"

    def __init__(self) -> None:
        self.homes: dict[str, DriverHome] = {}
        self.graphs: dict[str, str] = {}  # graph driver → the subject measuring it

    def applies(self, subject: Subject, ctx: Any) -> str | None:
        reason = super().applies(subject, ctx)
        if reason:
            return reason
        graph = subject.dims.get("graph", "")
        first = self.graphs.setdefault(graph, subject.id)
        return None if first == subject.id else f"graph driver {graph} is measured under {first}"

    def prepare(self, ctx: Any, subject: Subject) -> None:
        home = self.homes[subject.id] = DriverHome(subject.dims["graph"])
        self.setup_driver(home.open())

    def setup_driver(self, driver: Any) -> None:
        raise NotImplementedError

    def finish(self, ctx: Any, subject: Subject) -> None:
        home = self.homes.pop(subject.id, None)
        if home is not None:
            home.close()


class Create(GraphScenario):
    """A graph driver called in process (no daemon) on a loop file system of its own (ext4
    without journal, or the one the driver requires): ``create_rw`` of a container layer on a
    one-layer image of 2 MB (200 files) and of 1 GB (1024 files of 1 MB), and ``get`` + ``put``
    of the one on the 1 GB image. Peers have no such API."""

    name = "create"
    title = "container layer create on a 2 MB and a 1 GB image (graph driver API)"
    metrics = (Metric("create-2mb", "create_rw on a 2 MB image", "ms"),
               Metric("create-1gb", "create_rw on a 1 GB image", "ms"),
               Metric("mount-umount", "get + put of a container layer (1 GB image)", "ms"))
    full = {"images": {"2mb": [200, 10 * 1024], "1gb": [1024, MB]}}
    runs_full, runs_quick = 5, 3

    def setup_driver(self, driver: Any) -> None:
        for label, (files, size) in self.full["images"].items():
            driver.create(f"img{label}", None)
            driver.apply_diff(f"img{label}", None, image_tar(files, size))

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        d = self.homes[subject.id].driver
        out = {}
        for label in self.full["images"]:
            cid = f"ctr{label}{index}"
            out[f"create-{label}"] = host.measure(
                lambda cid=cid, label=label: d.create_rw(cid, f"img{label}")) * 1000

        def cycle() -> None:
            d.get(f"ctr1gb{index}")
            d.put(f"ctr1gb{index}")
        out["mount-umount"] = host.measure(cycle) * 1000
        for label in self.full["images"]:
            d.remove(f"ctr{label}{index}")  # vfs copies: do not keep a copy per sample
        return out


class LayerDiffApply(GraphScenario):
    """A graph driver called in process on a loop file system of its own: the diff of a layer
    holding 100 MB (100 files of 1 MB) read to its end, and that tar applied to a new layer.
    Peers have no such API."""

    name = "layer"
    title = "layer diff and apply of 100 MB (graph driver API)"
    metrics = (Metric("diff-100mb", "diff of a 100 MB layer, read to the end", "s"),
               Metric("apply-100mb", "apply of that 100 MB diff to a new layer", "s"))
    full = {"files": 100, "file_size": MB}
    runs_full, runs_quick = 3, 2

    def setup_driver(self, driver: Any) -> None:
        driver.create("base", None)
        driver.apply_diff("base", None, image_tar(200, 10 * 1024))
        driver.create("big", "base")
        root = driver.get("big")
        try:
            payload = os.urandom(self.full["file_size"])
            os.makedirs(os.path.join(root, "payload"))
            for i in range(self.full["files"]):
                with open(os.path.join(root, "payload", f"p{i:03d}"), "wb") as f:
                    f.write(i.to_bytes(8, "little") + payload[8:])
        finally:
            driver.put("big")
        os.sync()

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        home = self.homes[subject.id]
        d = home.driver
        diff = host.measure(lambda: drain(d.diff("big", "base")))
        tar_path = os.path.join(home.fs.path, "layer.tar")
        with d.diff("big", "base") as s, open(tar_path, "wb") as f:
            while chunk := s.read(MB):
                f.write(chunk)
        d.create(f"applied{index}", "base")
        try:
            with open(tar_path, "rb") as f:
                def apply() -> Any:
                    return d.apply_diff(f"applied{index}", "base", f)
                applied = host.measure(apply)
        finally:
            os.unlink(tar_path)
            d.remove(f"applied{index}")
        return {"diff-100mb": diff, "apply-100mb": applied}
