"""Docker Hub's mirrors and ``GET /distribution/{name}/json``, against Debian's docker-registry on
loopback.

dockerd applies ``registry-mirrors`` to Docker Hub only, so these tests point dockyardd's Hub
address at a loopback registry (the test-only ``DOCKYARD_TEST_HUB_ENDPOINT``): the "upstream".
A second loopback registry is the mirror. Nothing leaves the machine.
"""
from __future__ import annotations

import base64
import contextlib
import json
import urllib.request
from typing import Any, Iterator

import docker
import pytest

from conftest import Daemon, running_daemon
from test_registry import docker_registry, dockyard_registry, free_port, push

MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def registries(busybox_tar: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(mirror, upstream, digests): ``library/upstreamonly:1`` and a two-platform manifest list
    of it, ``library/upstreamonly:multi``, on the upstream only; ``library/mirroronly:1`` on the
    mirror only."""
    with docker_registry() as mirror, docker_registry() as upstream, \
            running_daemon(busybox_tar) as seed:
        digests = {}
        for reg, repo in ((upstream, "upstreamonly"), (mirror, "mirroronly")):
            assert seed.api.post(f"/images/busybox/tag?repo={reg}/library/{repo}&tag=1")[0] == 201
            aux = [m["aux"] for m in push(seed, f"{reg}/library/{repo}:1") if "aux" in m]
            digests[repo] = aux[0]["Digest"]
        digests["multi"] = put_manifest_list(upstream, "library/upstreamonly",
                                             digests["upstreamonly"], "multi")
        yield mirror, upstream, digests


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def put_manifest_list(reg: str, repo: str, digest: str, tag: str) -> str:
    """A manifest list naming image ``digest`` of ``repo`` twice (linux/amd64 and
    linux/arm64/v8), put to ``repo:tag``."""
    status, _, raw = http("GET", f"http://{reg}/v2/{repo}/manifests/{digest}",
                          headers={"Accept": MANIFEST})
    assert status == 200
    entry = {"mediaType": MANIFEST, "digest": digest, "size": len(raw)}
    doc = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": [
        {**entry, "platform": {"architecture": "amd64", "os": "linux"}},
        {**entry, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]}).encode()
    status, headers, body = http("PUT", f"http://{reg}/v2/{repo}/manifests/{tag}", doc,
                                 {"Content-Type": MANIFEST_LIST})
    assert status == 201, body
    return headers["Docker-Content-Digest"]


@contextlib.contextmanager
def hub_daemon(monkeypatch: pytest.MonkeyPatch, upstream: str, mirrors: list[str]) -> Iterator[Daemon]:
    """A dockyardd whose Docker Hub is ``upstream``, with ``mirrors``."""
    monkeypatch.setenv("DOCKYARD_TEST_HUB_ENDPOINT", f"http://{upstream}")
    args = [arg for m in mirrors for arg in ("--registry-mirror", m)]
    with running_daemon(None, args) as d:
        yield d


def client(d: Daemon) -> docker.DockerClient:
    return docker.DockerClient(base_url=d.host, version="1.45", timeout=120)


def catalog(reg: str) -> list[str]:
    return json.loads(http("GET", f"http://{reg}/v2/_catalog")[2])["repositories"]


def test_pull_falls_back_from_a_mirror_that_lacks_the_image(
        registries: tuple[str, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """dockerd tries the mirror and, when it lacks the image, pulls from the registry; an
    image the mirror has comes from the mirror."""
    mirror, upstream, digests = registries
    with hub_daemon(monkeypatch, upstream, [f"http://{mirror}"]) as d:
        c = client(d)
        img = c.images.pull("upstreamonly", tag="1")
        assert f"upstreamonly@{digests['upstreamonly']}" in img.attrs["RepoDigests"]
        img = c.images.pull("mirroronly", tag="1")
        assert f"mirroronly@{digests['mirroronly']}" in img.attrs["RepoDigests"]
        r = d.cli("run", "--rm", "upstreamonly:1", "echo", "from upstream", timeout=120)
        assert r.returncode == 0 and r.stdout == b"from upstream\n", r.stderr
        # on neither: the registry's (last source's) answer
        with pytest.raises(docker.errors.NotFound) as exc:
            c.images.pull("nowhere", tag="1")
        assert "pull access denied for nowhere" in exc.value.explanation
        assert "Attempting next endpoint for pull" in d.logs()
        c.close()


def test_pull_falls_back_from_a_mirror_that_does_not_answer(
        registries: tuple[str, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    _mirror, upstream, digests = registries
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with hub_daemon(monkeypatch, upstream, [dead]) as d:
        c = client(d)
        img = c.images.pull("upstreamonly", tag="1")
        assert f"upstreamonly@{digests['upstreamonly']}" in img.attrs["RepoDigests"]
        c.close()


def test_push_goes_to_the_registry_never_to_a_mirror(
        registries: tuple[str, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
        busybox_tar: str) -> None:
    mirror, upstream, _ = registries
    with hub_daemon(monkeypatch, upstream, [f"http://{mirror}"]) as d:
        d.import_busybox(busybox_tar, "pushedhere:1")
        c = client(d)
        out = list(c.images.push("pushedhere", tag="1", stream=True, decode=True))
        assert not [m for m in out if "error" in m], out
        c.close()
    assert "library/pushedhere" in catalog(upstream)
    assert "library/pushedhere" not in catalog(mirror)


def test_inspect_distribution(registries: tuple[str, str, dict[str, str]],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-py ``inspect_distribution``: the manifest's descriptor; a manifest list gives
    every platform it lists, an image manifest its config's platform. The mirror is asked
    first, the registry when it lacks the image."""
    mirror, upstream, digests = registries
    with hub_daemon(monkeypatch, upstream, [f"http://{mirror}"]) as d:
        api = client(d).api
        data = api.inspect_distribution("mirroronly:1")
        assert data["Descriptor"]["digest"] == digests["mirroronly"]
        assert data["Descriptor"]["mediaType"] == MANIFEST and data["Descriptor"]["size"] > 0
        assert data["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        data = api.inspect_distribution("upstreamonly:multi")
        assert data["Descriptor"] == {"mediaType": MANIFEST_LIST, "digest": digests["multi"],
                                      "size": data["Descriptor"]["size"]}
        assert data["Platforms"] == [{"architecture": "amd64", "os": "linux"},
                                     {"architecture": "arm64", "os": "linux", "variant": "v8"}]
        data = api.inspect_distribution(f"upstreamonly@{digests['upstreamonly']}")
        assert data["Descriptor"]["digest"] == digests["upstreamonly"]
        assert data["Descriptor"]["mediaType"] == MANIFEST
        with pytest.raises(docker.errors.NotFound) as exc:  # in the registry's words, as dockerd
            api.inspect_distribution("nowhere:1")
        assert exc.value.explanation == "manifest unknown: manifest unknown"
        with pytest.raises(docker.errors.APIError) as exc:
            api.inspect_distribution("a" * 64)
        assert exc.value.status_code == 500
        assert exc.value.explanation == "no manifest found for full image ID"


def test_inspect_distribution_with_credentials(busybox_tar: str, tmp_path: Any) -> None:
    """The credentials come in ``X-Registry-Auth``; without them the registry refuses."""
    import bcrypt
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    auth = {"username": "alice", "password": "s3cret"}
    with dockyard_registry(str(htpasswd)) as reg, running_daemon(busybox_tar) as d:
        assert d.api.post(f"/images/busybox/tag?repo={reg}/private/bb&tag=1")[0] == 201
        aux = [m["aux"] for m in push(d, f"{reg}/private/bb:1", base64.urlsafe_b64encode(
            json.dumps(auth).encode()).decode()) if "aux" in m]
        api = client(d).api
        data = api.inspect_distribution(f"{reg}/private/bb:1", auth_config=auth)
        assert data["Descriptor"]["digest"] == aux[0]["Digest"]
        with pytest.raises(docker.errors.APIError) as exc:
            api.inspect_distribution(f"{reg}/private/bb:1")
        assert "authentication required" in exc.value.explanation
