"""The Docker Hub images a client suite asks for, made here from Debian's busybox-static and pushed
to the sandbox's registry (the daemons use it as their ``docker.io`` mirror).

Each image is written as a ``docker save`` archive (manifest.json, config, layer tars) and copied
into the registry by ``skopeo``. The rootfs is the project's busybox one
(``dockyard.core.busybox``); images that stand for others (``alpine``, ``hello-world``) differ
from it by their config and by a layer of files (alpine's users, hello-world's ``/hello``), so
every name gets an id of its own, as on Docker Hub. Which images a suite needs is said in suites.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field

from dockyard.core.busybox import write_rootfs_tar

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "2020-01-01T00:00:00Z"


@dataclass
class SeedImage:
    repo: str                    # Docker Hub repository, e.g. "library/alpine"
    tag: str
    cmd: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    # a second layer over the busybox rootfs: path -> (mode, content), content None for a directory
    files: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return f"{self.repo.removeprefix('library/')}:{self.tag}"


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files_layer(path: str, files: dict[str, tuple[int, bytes | None]]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, (mode, data) in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = mode, 1577836800
            if data is None:
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))


def write_archive(image: SeedImage, workdir: str, base_layer: str) -> str:
    """A ``docker save`` archive of ``image`` (layers: the busybox rootfs, then its files)."""
    d = os.path.join(workdir, image.short.replace("/", "_").replace(":", "_"))
    os.makedirs(d, exist_ok=True)
    layers = [base_layer]
    if image.files:
        layers.append(os.path.join(d, "files.tar"))
        _files_layer(layers[-1], image.files)
    digests = [_sha256_file(p) for p in layers]
    history = [{"created": CREATED, "created_by": "busybox-static rootfs (dockyard contrib/fidelity)"}]
    if image.files:
        history.append({"created": CREATED, "created_by": "COPY " + " ".join(sorted(image.files)) + " /"})
    config = {
        "architecture": _arch(), "os": "linux", "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": image.cmd, "Labels": image.labels or None},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{x}" for x in digests]},
        "history": history,
    }
    raw = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(raw).hexdigest() + ".json"
    out = os.path.join(d, "image.tar")
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        names = []
        for path, digest in zip(layers, digests):
            names.append(f"{digest}/layer.tar")
            tar.add(path, arcname=names[-1])
        manifest = [{"Config": config_name, "RepoTags": [image.short], "Layers": names}]
        for name, data in ((config_name, raw), ("manifest.json", json.dumps(manifest).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out


def seed_registry(net: list[str], registry_addr: str, workdir: str,
                  images: list[SeedImage]) -> list[str]:
    """Push ``images`` to the registry at ``registry_addr`` (plain HTTP). ``net`` prefixes a
    command so it runs where the registry listens. Returns the short names pushed."""
    build = os.path.join(workdir, "seed")
    os.makedirs(build, exist_ok=True)
    base = os.path.join(build, "busybox-rootfs.tar")
    with open(base, "wb") as f:
        write_rootfs_tar(f)
    pushed = []
    for image in images:
        archive = write_archive(image, build, base)
        dest = f"docker://{registry_addr}/{image.repo}:{image.tag}"
        subprocess.run([*net, "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        f"docker-archive:{archive}", dest], check=True, capture_output=True)
        pushed.append(image.short)
    shutil.rmtree(build, ignore_errors=True)
    return pushed
