#!/usr/bin/env python3
"""Graph-driver benchmark (not a test): what each storage driver costs on this host.

Per driver, on a file system made for the run (a loop-mounted ext4 without journal; btrfs for
the btrfs driver), with the driver's own API (no daemon in between):

* ``create 2MB`` / ``create 1GB``: ``create_rw`` of a container layer on top of a one-layer image
  of 2 MB (200 files) and of 1 GB (1024 files of 1 MB): overlay and btrfs should stay flat, vfs
  copies the image;
* ``mount+umount``: ``get`` + ``put`` of that container layer (the 1 GB image);
* ``diff 100MB`` / ``apply 100MB``: the tar of a layer holding 100 MB (100 files of 1 MB) read to
  the end, and that tar applied to a fresh layer.

Medians of ``--repeat`` runs (create, mount) or single runs (diff, apply; each moves 100 MB).
The loop images live in ``/dev/shm`` when it has room (``--backing DIR`` otherwise): the root
file system of the development VM slows file creation for minutes after a large delete (see
HOST-FACTS), which made figures from loop images on it swing by 5x between runs.
Run as root from the repository::

    .venv/bin/python contrib/bench/graphdrivers.py [--driver overlay ...] [--repeat 5]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tarfile
import time
from typing import Any, Callable

from dockyard.hookspecs.conformance.loopfs import LoopFilesystem
from dockyard.hookspecs.errors import DriverNotSupported
from dockyard.hookspecs.host.layertar import stream_from_writer

DRIVERS = ["overlay", "btrfs", "fuse-overlayfs", "vfs"]
MB = 1 << 20


def image_tar(files: int, size: int, seed: bytes) -> Any:
    """A layer tar streamed from a thread: ``files`` files of ``size`` incompressible bytes."""
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


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def drain(stream: Any) -> int:
    n = 0
    with stream:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                return n
            n += len(chunk)


def bench(name: str, repeat: int, backing: str | None) -> dict[str, str]:
    from importlib.metadata import entry_points
    eps = {ep.name: ep for ep in entry_points(group="dockyard.graphdrivers")}
    cls = eps[name].load()
    fstype = getattr(cls, "required_fs", None) or "ext4"
    with LoopFilesystem(fstype, 8 << 30, dir=backing) as fs:
        home = os.path.join(fs.path, name)
        try:
            d = cls(home, {})
        except DriverNotSupported as e:
            return {"driver": name, "note": f"not supported: {e.reason}"}
        try:
            row = {"driver": name, "fs": fstype}
            for label, files, size in (("2MB", 200, 10 * 1024), ("1GB", 1024, MB)):
                d.create(f"img{label}", None)
                d.apply_diff(f"img{label}", None, image_tar(files, size, label.encode()))
                times = []
                for i in range(repeat):
                    cid = f"ctr{label}{i}"
                    times.append(timed(lambda: d.create_rw(cid, f"img{label}")))
                row[f"create {label}"] = f"{statistics.median(times) * 1000:.1f} ms"
            mounts = []
            for i in range(repeat):
                def mount_cycle() -> None:
                    d.get("ctr1GB0")
                    d.put("ctr1GB0")
                mounts.append(timed(mount_cycle))
            row["mount+umount"] = f"{statistics.median(mounts) * 1000:.2f} ms"
            d.create("big", "img2MB")
            root = d.get("big")
            try:
                payload = os.urandom(MB)
                os.makedirs(os.path.join(root, "payload"))
                for i in range(100):
                    with open(os.path.join(root, "payload", f"p{i:03d}"), "wb") as f:
                        f.write(i.to_bytes(8, "little") + payload[8:])
            finally:
                d.put("big")
            os.sync()
            sizes: list[int] = []
            t = timed(lambda: sizes.append(drain(d.diff("big", "img2MB"))))
            row["diff 100MB"] = f"{t:.2f} s ({sizes[0] / MB / t:.0f} MB/s)"
            tar_path = os.path.join(fs.path, "layer.tar")
            with d.diff("big", "img2MB") as s, open(tar_path, "wb") as f:
                while chunk := s.read(1 << 20):
                    f.write(chunk)
            d.create("applied", "img2MB")
            with open(tar_path, "rb") as f:
                t = timed(lambda: d.apply_diff("applied", "img2MB", f))
            row["apply 100MB"] = f"{t:.2f} s ({os.path.getsize(tar_path) / MB / t:.0f} MB/s)"
            os.unlink(tar_path)
            return row
        finally:
            d.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", action="append", help="driver(s) to measure (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backing", default=None,
                    help="directory for the loop image files (default: /dev/shm when it has 6 GB "
                         "free, so the host's own file system does not colour the figures)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, mounts)")
    backing = args.backing
    if backing is None and os.path.isdir("/dev/shm"):
        st = os.statvfs("/dev/shm")
        backing = "/dev/shm" if st.f_bavail * st.f_frsize > 6 << 30 else None
    print(f"loop images in {backing or 'the system temp dir'}; medians of {args.repeat} runs "
          "for create and mount", file=sys.stderr)
    rows = [bench(n, args.repeat, backing) for n in (args.driver or DRIVERS)]
    cols = ["driver", "fs", "create 2MB", "create 1GB", "mount+umount", "diff 100MB", "apply 100MB", "note"]
    cols = [c for c in cols if any(c in r for r in rows)]
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in cols}
    print("| " + " | ".join(c.ljust(widths[c]) for c in cols) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in cols) + "|")
    for r in rows:
        print("| " + " | ".join(r.get(c, "").ljust(widths[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
