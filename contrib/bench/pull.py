#!/usr/bin/env python3
"""Benchmark (not a test): cold pull of a multi-layer image of about 200 MB from a local registry.

dockyard vs dockerd (and podman when installed), in the same run, each into a fresh store on a
fresh tmpfs (see HOST-FACTS: the root ext4 is slow right after large deletes). The image: the
busybox base plus N layers of mixed compressible/incompressible files, pushed with skopeo to
Debian's docker-registry on a loopback port. Throughput = unpacked bytes / wall time of the pull
(API call start → last progress message), median of the runs.

    sudo .venv/bin/python contrib/bench/pull.py [--layers 7] [--mb 200] [--runs 3]

Everything it starts it stops; everything it mounts it unmounts; nothing leaves loopback.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from conftest import Daemon  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def tmpfs(size: str = "3g") -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dky-bench-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=False)
        shutil.rmtree(d, ignore_errors=True)


def make_layer(rng: random.Random, target: int) -> bytes:
    """A layer tar of about ``target`` bytes: a third random, two thirds text-like."""
    buf = io.BytesIO()
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        n = 0
        i = 0
        while n < target:
            size = rng.choice([4 << 10, 64 << 10, 512 << 10, 2 << 20])
            if i % 3 == 0:
                data = rng.randbytes(size)
            else:
                data = b" ".join(rng.choice(words) for _ in range(size // 5))[:size]
            ti = tarfile.TarInfo(f"data/d{i % 17}/f{i}")
            ti.size, ti.mtime = len(data), 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))
            n += len(data)
            i += 1
    return buf.getvalue()


def make_archive(path: str, busybox_tar: str, layers: int, total_mb: int) -> int:
    """A docker-archive with busybox + ``layers - 1`` data layers; return the unpacked size."""
    rng = random.Random(42)
    with open(busybox_tar, "rb") as f:
        tars = [f.read()]
    per = (total_mb << 20) // max(layers - 1, 1)
    tars += [make_layer(rng, per) for _ in range(layers - 1)]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(tars))]}).encode()
    with tarfile.open(path, "w") as tf:
        names = []
        for t, d in zip(tars, diff_ids):
            ti = tarfile.TarInfo(f"{d[7:]}/layer.tar")
            ti.size = len(t)
            tf.addfile(ti, io.BytesIO(t))
            names.append(ti.name)
        ti = tarfile.TarInfo("config.json")
        ti.size = len(config)
        tf.addfile(ti, io.BytesIO(config))
        m = json.dumps([{"Config": "config.json", "RepoTags": ["bench:1"], "Layers": names}]).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(m)
        tf.addfile(ti, io.BytesIO(m))
    return sum(len(t) for t in tars)


@contextlib.contextmanager
def docker_registry(root: str) -> Iterator[str]:
    port = free_port()
    cfg = os.path.join(root, "registry.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/reg\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    p = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        p.terminate()
        p.wait(10)


def time_dockyard(ref: str, storage_driver: str | None) -> float:
    with tmpfs() as root:
        d = Daemon(root, ["--storage-driver", storage_driver] if storage_driver else [])
        d.start()
        try:
            repo, tag = ref.rsplit(":", 1)
            t0 = time.perf_counter()
            status, body = d.api.post(f"/images/create?fromImage={repo}&tag={tag}", timeout=600)
            dt = time.perf_counter() - t0
            assert status == 200 and not any(m.get("error") for m in body), body
            return dt
        finally:
            d.stop()


def time_dockerd(ref: str, driver: str) -> float | None:
    if not shutil.which("dockerd"):
        return None
    with tmpfs() as root:
        sock = os.path.join(root, "docker.sock")
        log = open(os.path.join(root, "dockerd.log"), "wb")
        p = subprocess.Popen(["dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
                              "--pidfile", f"{root}/pid", "-H", f"unix://{sock}", "--iptables=false",
                              "--ip-masq=false", "--bridge=none", "--storage-driver", driver],
                             stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while subprocess.run(["docker", "-H", f"unix://{sock}", "version"], capture_output=True).returncode:
                if time.monotonic() > deadline or p.poll() is not None:
                    return None
                time.sleep(0.2)
            t0 = time.perf_counter()
            subprocess.run(["docker", "-H", f"unix://{sock}", "pull", "-q", ref], check=True, capture_output=True)
            return time.perf_counter() - t0
        finally:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
            if p.poll() is None:
                p.kill()
                p.wait()
            subprocess.run(f"grep ' {root}/' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l",
                           shell=True, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dockyard-driver", default=None, help="dockyardd --storage-driver (default: its choice)")
    ap.add_argument("--dockerd-drivers", default="overlay2,vfs")
    args = ap.parse_args()
    from dockyard.core.busybox import main as make_busybox
    with tmpfs("4g") as work:
        bb = os.path.join(work, "busybox.tar")
        make_busybox([bb])
        archive = os.path.join(work, "bench.tar")
        unpacked = make_archive(archive, bb, args.layers, args.mb)
        with docker_registry(work) as reg:
            ref = f"{reg}/bench/img:1"
            subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{archive}",
                            f"docker://{ref}"], check=True, capture_output=True)
            os.unlink(archive)
            results: dict[str, list[float]] = {"dockyard": []}
            for d in args.dockerd_drivers.split(","):
                results[f"dockerd-{d}"] = []
            for _ in range(args.runs):
                results["dockyard"].append(time_dockyard(ref, args.dockyard_driver))
                for d in args.dockerd_drivers.split(","):
                    t = time_dockerd(ref, d)
                    if t is not None:
                        results[f"dockerd-{d}"].append(t)
    mb = unpacked / 1e6
    print(f"image: {args.layers} layers, {mb:.0f} MB unpacked; runs: {args.runs}")
    med = {k: statistics.median(v) for k, v in results.items() if v}
    for k, v in med.items():
        print(f"{k:18s} median {v:6.2f} s  {mb / v:7.1f} MB/s  (runs: {', '.join(f'{x:.2f}' for x in results[k])})")
    for k in med:
        if k != "dockyard":
            print(f"throughput ratio dockyard / {k}: {med[k] / med['dockyard']:.2f}x")


if __name__ == "__main__":
    main()
