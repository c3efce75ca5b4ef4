"""Pulling from a hostile registry: every lie is refused with a clear error and nothing is kept.

The registry is a tiny real HTTP server (aiohttp, loopback, in a thread) serving hand-made
manifests and blobs; the daemon is a real dockyardd. It also serves one honest multi-platform
OCI index with a zstd layer, to show platform selection and zstd unpacking.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from typing import Any, Iterator

import pytest
from aiohttp import web

from conftest import Daemon, serve_app

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries: list[tuple[str, str, bytes]]) -> bytes:
    """(kind, name, data or link target) → an uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, data.decode()
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, data.decode()
                tf.addfile(ti)
    return buf.getvalue()


class Hostile:
    def __init__(self, outside: str) -> None:
        self.blobs: dict[str, bytes] = {}       # what the server sends for a digest
        self.manifests: dict[str, tuple[str, bytes, str]] = {}  # repo:ref → (media, body, digest header)
        self.outside = outside

    def image(self, repo: str, layers: list[bytes], *, compress: str = "gzip", diff_ids: list[str] | None = None,
              arch: str = "amd64", tag: str | None = "latest", media: str = DOCKER_MANIFEST) -> tuple[str, bytes]:
        descs = []
        for plain in layers:
            if compress == "gzip":
                blob, lt = gzip.compress(plain, mtime=0), "application/vnd.docker.image.rootfs.diff.tar.gzip"
            else:
                import zstandard
                blob, lt = zstandard.ZstdCompressor().compress(plain), "application/vnd.oci.image.layer.v1.tar+zstd"
            self.blobs[sha(blob)] = blob
            descs.append({"mediaType": lt, "size": len(blob), "digest": sha(blob)})
        config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(x) for x in layers]},
                             "history": [{"created_by": "test"}]}).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps({"schemaVersion": 2, "mediaType": media,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json"
                                          if media == OCI_MANIFEST else
                                          "application/vnd.docker.container.image.v1+json",
                                          "size": len(config), "digest": sha(config)},
                               "layers": descs}).encode()
        self.manifests[f"{repo}:{sha(manifest)}"] = (media, manifest, sha(manifest))
        if tag:
            self.manifests[f"{repo}:{tag}"] = (media, manifest, sha(manifest))
        return sha(manifest), manifest

    async def handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "":
            return web.json_response({})
        if "/manifests/" in tail:
            repo, ref = tail.split("/manifests/")
            item = self.manifests.get(f"{repo}:{ref}")
            if item is None:
                return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                         status=404)
            media, body, digest = item
            headers = {"Content-Type": media, "Docker-Content-Digest": digest}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(body))
                return web.Response(headers=headers)
            return web.Response(body=body, headers=headers)
        if "/blobs/" in tail:
            digest = tail.rsplit("/", 1)[1]
            data = self.blobs.get(digest)
            if data is None:
                return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]},
                                         status=404)
            return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404)


@pytest.fixture
def hostile() -> Iterator[tuple[str, Hostile]]:
    outside = tempfile.mkdtemp(prefix="dky-outside-")
    h = Hostile(outside)
    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", h.handle)
    try:
        with serve_app(app) as addr:
            yield addr, h
    finally:
        import shutil
        shutil.rmtree(outside, ignore_errors=True)


def snapshot(d: Daemon) -> tuple[Any, ...]:
    """What the daemon holds: images, blob files, graph-driver directories."""
    imgs = sorted(i["Id"] for i in d.api.get("/images/json")[1])
    blobs = sorted(os.listdir(os.path.join(d.data_root, "image", "blobs", "sha256")))
    graph = sorted(os.path.join(top, name) for top in os.listdir(d.data_root)
                   if os.path.isdir(os.path.join(d.data_root, top)) and top not in ("image", "tmp", "containers")
                   for name in os.listdir(os.path.join(d.data_root, top)))
    return imgs, blobs, graph


def pull_error(d: Daemon, ref: str) -> str:
    repo, tag = ref.rsplit(":", 1)
    status, body = d.api.post(f"/images/create?fromImage={repo}&tag={tag}", timeout=120)
    msgs = body if isinstance(body, list) else [body]
    errors = [m.get("error") or m.get("message") for m in msgs if isinstance(m, dict)
              and (m.get("error") or (status != 200 and m.get("message")))]
    assert errors, (status, body)
    return errors[0]


GOOD = layer_tar([("dir", "etc", b""), ("file", "etc/hello", b"hello\n")])


def test_hostile_registry_is_refused_and_nothing_kept(daemon: Daemon, hostile: tuple[str, Hostile]) -> None:
    host, h = hostile
    before = snapshot(daemon)

    # 1. a blob whose bytes are not its digest
    digest, manifest = h.image("wrongdigest", [GOOD])
    layer = json.loads(manifest)["layers"][0]["digest"]
    h.blobs[layer] = bytes(len(h.blobs[layer]))
    assert "digest mismatch" in pull_error(daemon, f"{host}/wrongdigest:latest")
    assert snapshot(daemon) == before

    # 2. a truncated blob
    digest, manifest = h.image("truncated", [GOOD + b"\0" * 10])
    layer = json.loads(manifest)["layers"][0]["digest"]
    h.blobs[layer] = h.blobs[layer][: len(h.blobs[layer]) // 2]
    assert "truncated" in pull_error(daemon, f"{host}/truncated:latest")
    assert snapshot(daemon) == before

    # 3. a manifest naming a blob the registry does not have (after a good first layer)
    second = layer_tar([("file", "two", b"2")])
    digest, manifest = h.image("missing", [GOOD, second])
    del h.blobs[json.loads(manifest)["layers"][1]["digest"]]
    assert "blob unknown" in pull_error(daemon, f"{host}/missing:latest")
    assert snapshot(daemon) == before

    # 4. a manifest whose bytes are not the digest the registry announces
    digest, manifest = h.image("liar", [GOOD])
    media, body, _ = h.manifests["liar:latest"]
    for key in ("liar:latest", f"liar:{digest}"):
        h.manifests[key] = (media, body.replace(b'"schemaVersion": 2', b'"schemaVersion":  2'), digest)
    assert "manifest verification failed" in pull_error(daemon, f"{host}/liar:latest")
    assert snapshot(daemon) == before

    # 5. a layer whose content is not the config's diff id
    h.image("diffid", [GOOD], diff_ids=[sha(b"something else")])
    assert "diff id mismatch" in pull_error(daemon, f"{host}/diffid:latest")
    assert snapshot(daemon) == before

    # 6. a layer tar climbing out with ../
    h.image("dotdot", [layer_tar([("file", "../../../../../../../../" + h.outside.lstrip("/") + "/pwned", b"x")])])
    assert "layer tar" in pull_error(daemon, f"{host}/dotdot:latest")
    assert os.listdir(h.outside) == []
    assert snapshot(daemon) == before

    # 7. a symlink climbing out, then a file written through it
    climb = ("../" * 12 + h.outside.lstrip("/")).encode()
    h.image("symlink", [layer_tar([("symlink", "out", climb), ("file", "out/pwned", b"x")])])
    assert "layer tar" in pull_error(daemon, f"{host}/symlink:latest")
    assert os.listdir(h.outside) == []
    assert snapshot(daemon) == before

    # 8. a hard link to a file outside the layer
    h.image("hardlink", [layer_tar([("hardlink", "passwd", b"../../../../../../etc/passwd")])])
    assert "layer tar" in pull_error(daemon, f"{host}/hardlink:latest")
    assert snapshot(daemon) == before

    # 9. an index without linux/amd64
    digest, manifest = h.image("armonly", [GOOD], arch="arm64", tag=None, media=OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    h.manifests["armonly:latest"] = h.manifests[f"armonly:{sha(index)}"] = (OCI_INDEX, index, sha(index))
    assert "no matching manifest for linux/amd64" in pull_error(daemon, f"{host}/armonly:latest")
    assert snapshot(daemon) == before

    # 10. an absolute symlink is resolved inside the layer, as the container sees it: accepted,
    # and still nothing lands outside
    h.image("abslink", [layer_tar([("symlink", "out", h.outside.encode()), ("file", "out/inside", b"x")])])
    status, body = daemon.api.post(f"/images/create?fromImage={host}/abslink&tag=latest", timeout=120)
    assert status == 200 and not any(m.get("error") for m in body), body
    assert os.listdir(h.outside) == []


def test_index_platform_selection_and_zstd(daemon: Daemon, hostile: tuple[str, Hostile]) -> None:
    host, h = hostile
    arm, arm_m = h.image("multi", [layer_tar([("file", "arch", b"arm64")])], arch="arm64", tag=None,
                         media=OCI_MANIFEST)
    amd, amd_m = h.image("multi", [GOOD], compress="zstd", tag=None, media=OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": len(arm_m),
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": len(amd_m),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    h.manifests["multi:v1"] = h.manifests[f"multi:{sha(index)}"] = (OCI_INDEX, index, sha(index))
    status, body = daemon.api.post(f"/images/create?fromImage={host}/multi&tag=v1", timeout=120)
    assert status == 200 and not any(m.get("error") for m in body), body
    status, info = daemon.api.get(f"/images/{host}/multi:v1/json")
    assert info["Architecture"] == "amd64"
    assert info["RootFS"]["Layers"] == [sha(GOOD)]
    # RepoDigests name the index, as Docker's do
    assert info["RepoDigests"] == [f"{host}/multi@{sha(index)}"]


def test_rmi_of_a_pulled_image_leaves_no_blob(daemon: Daemon, hostile: tuple[str, Hostile]) -> None:
    host, h = hostile
    before = snapshot(daemon)
    h.image("gc", [GOOD, layer_tar([("file", "x", b"x")])])
    status, body = daemon.api.post(f"/images/create?fromImage={host}/gc&tag=latest", timeout=120)
    assert status == 200 and not any(m.get("error") for m in body), body
    assert snapshot(daemon) != before
    assert daemon.api.delete(f"/images/{host}/gc:latest")[0] == 200
    assert snapshot(daemon) == before
