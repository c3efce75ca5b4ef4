"""Cold pull of a multi-layer image from a loopback registry, as the former
``contrib/bench/pull.py`` measured it.

The image is the busybox base plus data layers of mixed compressible and incompressible files
(the same seed every run, so every run pulls the same bytes), pushed with skopeo to Debian's
docker-registry on a free loopback port. Each sample starts a *fresh* engine of the subject's
configuration on a fresh file system (a cold store) and times its CLI's ``pull`` to the end.
Nothing leaves loopback.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
from typing import Any

from .. import host
from ..subjects.base import CAP_IMAGES, Skip, Subject
from .base import Metric, Scenario


def make_layer(rng: random.Random, target: int) -> bytes:
    """A layer tar of about ``target`` bytes: a third random, two thirds text-like."""
    buf = io.BytesIO()
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        n = i = 0
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


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def make_archive(path: str, base_tar: str, layers: int, total_mb: int) -> int:
    """A docker-archive of ``base_tar`` + ``layers - 1`` data layers; return the unpacked size."""
    rng = random.Random(42)
    with open(base_tar, "rb") as f:
        tars = [f.read()]
    per = (total_mb << 20) // max(layers - 1, 1)
    tars += [make_layer(rng, per) for _ in range(layers - 1)]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(tars))]})
    with tarfile.open(path, "w") as tf:
        names = []
        for t, d in zip(tars, diff_ids):
            names.append(f"{d[7:]}/layer.tar")
            add_bytes(tf, names[-1], t)
        add_bytes(tf, "config.json", config.encode())
        add_bytes(tf, "manifest.json", json.dumps(
            [{"Config": "config.json", "RepoTags": ["bench:1"], "Layers": names}]).encode())
    return sum(len(t) for t in tars)


class LoopbackRegistry:
    """Debian's docker-registry (distribution) on a free 127.0.0.1 port, storage under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = ""

    def start(self) -> str:
        if shutil.which("docker-registry") is None:
            raise Skip("docker-registry not installed (apt-get install docker-registry)")
        port = host.free_port()
        cfg = os.path.join(self.root, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {self.root}/storage\nhttp:\n  addr: 127.0.0.1:{port}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        host.wait_port(port)
        self.addr = f"127.0.0.1:{port}"
        return self.addr

    def stop(self) -> None:
        host.stop_process(self.proc, 10)
        self.proc = None


class Pull(Scenario):
    """A fresh engine of the subject's configuration on a fresh file system (a cold store) per
    sample, pulling through its CLI from a loopback registry (Debian's docker-registry, pushed
    with skopeo) an image of the busybox base plus data layers, a third incompressible, two
    thirds text-like (the same bytes every run). Timed from the ``pull`` command's start to its
    end; the engine's start is not timed."""

    name = "pull"
    title = "cold pull of a multi-layer image from a loopback registry"
    needs = frozenset({CAP_IMAGES})
    needs_reason = "cannot pull images"
    metrics = (Metric("pull", "cold pull of {layers} layers, {unpacked_mb} MB unpacked (fresh store)", "s"),)
    full = {"layers": 7, "mb": 200}
    quick = {"mb": 40}
    runs_full, runs_quick = 3, 1

    def __init__(self) -> None:
        self.registry: LoopbackRegistry | None = None
        self.ref = ""

    def setup(self, ctx: Any, subjects: list[Subject]) -> None:
        if shutil.which("skopeo") is None:
            raise Skip("skopeo not installed (apt-get install skopeo)")
        root = os.path.join(ctx.work, "pull")
        os.makedirs(root)
        self.registry = LoopbackRegistry(root)
        addr = self.registry.start()
        archive = os.path.join(root, "image.tar")
        unpacked = make_archive(archive, ctx.image_tar, ctx.params["layers"], ctx.params["mb"])
        ctx.params["unpacked_mb"] = round(unpacked / 1e6, 1)
        self.ref = f"{addr}/bench/img:1"
        host.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{archive}",
                  f"docker://{self.ref}"])
        os.unlink(archive)

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        fresh = subject.engine.fresh()
        try:
            fresh.start(None)
            argv = fresh.client.argv("pull", "-q", *fresh.client.pull_opts, self.ref)
            return {"pull": host.timed(argv, fresh.client.env)}
        finally:
            fresh.stop()

    def teardown(self, ctx: Any) -> None:
        if self.registry is not None:
            self.registry.stop()
