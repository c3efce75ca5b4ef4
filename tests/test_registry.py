"""Images and registries against real peers on loopback: Debian's docker-registry, skopeo, umoci,
the docker CLI, and ``dockyard registry serve``.

Two dockyardd daemons per test: one pushes or saves, the other pulls or loads and runs.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from typing import Any, Iterator

import pytest

from conftest import DOCKYARD, Daemon, running_daemon

SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")
REGISTRY = shutil.which("docker-registry")
DOCKER = shutil.which("docker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not come up")


@contextlib.contextmanager
def docker_registry() -> Iterator[str]:
    """Debian's docker-registry (distribution 2.8) on a free loopback port; yields host:port."""
    if not REGISTRY:
        pytest.skip("docker-registry not installed (make sysdeps)")
    root = tempfile.mkdtemp(prefix="dky-reg-")
    port = free_port()
    cfg = os.path.join(root, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([REGISTRY, "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def dockyard_registry(htpasswd: str | None = None, tls: tuple[str, str] | None = None) -> Iterator[str]:
    """``dockyard registry serve`` on a free loopback port; yields host:port."""
    root = tempfile.mkdtemp(prefix="dky-dreg-")
    port = free_port()
    argv = [DOCKYARD, "registry", "serve", "--addr", f"127.0.0.1:{port}", "--root", os.path.join(root, "data")]
    if htpasswd:
        argv += ["--htpasswd", htpasswd]
    if tls:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    log = open(os.path.join(root, "log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    log.close()
    try:
        wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def stream_ok(status: int, body: Any) -> list[dict[str, Any]]:
    assert status == 200, body
    msgs = body if isinstance(body, list) else [body]
    errors = [m for m in msgs if isinstance(m, dict) and m.get("error")]
    assert not errors, errors
    return msgs


def push(d: Daemon, ref: str, auth: str = "e30=") -> list[dict[str, Any]]:
    repo, tag = ref.rsplit(":", 1)
    return stream_ok(*d.api.post(f"/images/{repo}/push?tag={tag}", headers={"X-Registry-Auth": auth},
                                 timeout=300))


def pull(d: Daemon, ref: str) -> list[dict[str, Any]]:
    repo, tag = ref.rsplit(":", 1)
    return stream_ok(*d.api.post(f"/images/create?fromImage={repo}&tag={tag}", timeout=300))


def inspect(d: Daemon, ref: str) -> dict[str, Any]:
    status, body = d.api.get(f"/images/{ref}/json")
    assert status == 200, body
    return body


def run_echo(d: Daemon, ref: str, word: str) -> None:
    r = d.cli("run", "--rm", ref, "echo", word, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{word}\n".encode()


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with docker_registry() as r:
        yield r


@pytest.fixture
def pair(busybox_tar: str) -> Iterator[tuple[Daemon, Daemon]]:
    with running_daemon(busybox_tar) as a, running_daemon(None) as b:
        yield a, b


def test_push_skopeo_inspect_pull_run_same_repo_digests(pair: tuple[Daemon, Daemon], registry: str) -> None:
    a, b = pair
    ref = f"{registry}/dky/busybox:v1"
    assert a.api.post(f"/images/busybox/tag?repo={registry}/dky/busybox&tag=v1")[0] == 201
    msgs = push(a, ref)
    aux = [m["aux"] for m in msgs if m.get("aux")][0]
    assert aux["Tag"] == "v1" and aux["Digest"].startswith("sha256:")
    # a real client reads what we pushed
    if SKOPEO:
        out = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{ref}"],
                             capture_output=True, check=True, timeout=60)
        info = json.loads(out.stdout)
        assert info["Digest"] == aux["Digest"]
        assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    # the second daemon pulls it, with Docker's progress messages, and runs it
    msgs = pull(b, ref)
    statuses = [m.get("status", "") for m in msgs]
    assert "Pulling fs layer" in statuses and "Pull complete" in statuses
    assert f"Digest: {aux['Digest']}" in statuses
    assert statuses[-1] == f"Status: Downloaded newer image for {ref}"
    ia, ib = inspect(a, ref), inspect(b, ref)
    assert ia["Id"] == ib["Id"]
    assert ia["RepoDigests"] == ib["RepoDigests"] == [f"{registry}/dky/busybox@{aux['Digest']}"]
    run_echo(b, ref, "pulled")
    # a second pull fetches nothing
    statuses = [m.get("status", "") for m in pull(b, ref)]
    assert "Pulling fs layer" not in statuses and statuses[-1].startswith("Status: Image is up to date")
    # by digest too; and pushing the pulled image elsewhere keeps the digest (the manifest is reused)
    status, _ = b.api.post(f"/images/create?fromImage={registry}/dky/busybox&tag={aux['Digest']}", timeout=120)
    assert status == 200
    assert b.api.post(f"/images/{ref}/tag?repo={registry}/other/copy&tag=x")[0] == 201
    msgs = push(b, f"{registry}/other/copy:x")
    assert [m["aux"] for m in msgs if m.get("aux")][0]["Digest"] == aux["Digest"]
    assert any(m.get("status", "").startswith("Mounted from") or m.get("status") == "Layer already exists"
               for m in msgs)


def test_save_load_runs_in_another_daemon(pair: tuple[Daemon, Daemon], tmp_path: Any) -> None:
    a, b = pair
    assert a.api.post("/images/busybox/tag?repo=saved/one&tag=t1")[0] == 201
    out = tmp_path / "save.tar"
    r = a.cli("save", "-o", str(out), "busybox", "saved/one:t1")
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(manifest[0]["RepoTags"]) == ["busybox:latest", "saved/one:t1"]
    r = b.cli("load", "-i", str(out))
    assert r.returncode == 0, r.stderr
    assert b"Loaded image: busybox:latest" in r.stdout
    assert inspect(a, "busybox")["Id"] == inspect(b, "saved/one:t1")["Id"]
    run_echo(b, "saved/one:t1", "loaded")
    # history is there too
    status, hist = b.api.get("/images/busybox/history")
    assert status == 200 and hist[0]["Id"] == inspect(b, "busybox")["Id"]


@pytest.mark.skipif(not SKOPEO, reason="skopeo not installed")
def test_skopeo_copy_docker_archive_then_pull(pair: tuple[Daemon, Daemon], registry: str, tmp_path: Any) -> None:
    a, b = pair
    out = tmp_path / "bb.tar"
    assert a.cli("save", "-o", str(out), "busybox").returncode == 0
    dest = f"{registry}/skopeo/bb:copied"
    subprocess.run([SKOPEO, "copy", "--dest-tls-verify=false", f"docker-archive:{out}", f"docker://{dest}"],
                   check=True, capture_output=True, timeout=120)
    pull(b, dest)
    run_echo(b, dest, "via-skopeo")
    assert inspect(b, dest)["Id"] == inspect(a, "busybox")["Id"]


@pytest.mark.skipif(not (SKOPEO and UMOCI), reason="skopeo and umoci needed")
def test_skopeo_and_umoci_read_our_oci_layout(daemon: Daemon, tmp_path: Any) -> None:
    out = tmp_path / "bb.tar"
    assert daemon.cli("save", "-o", str(out), "busybox").returncode == 0
    layout = tmp_path / "layout"
    with tarfile.open(out) as tf:
        tf.extractall(layout)
    info = json.loads(subprocess.run([SKOPEO, "inspect", f"oci:{layout}:latest"], check=True,
                                     capture_output=True, timeout=60).stdout)
    assert info["Os"] == "linux"
    subprocess.run([SKOPEO, "inspect", f"oci-archive:{out}:latest"], check=True, capture_output=True, timeout=60)
    ls = subprocess.run([UMOCI, "ls", "--layout", str(layout)], check=True, capture_output=True, timeout=60)
    assert b"latest" in ls.stdout
    bundle = tmp_path / "bundle"
    subprocess.run([UMOCI, "unpack", "--image", f"{layout}:latest", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    assert (bundle / "rootfs" / "bin" / "busybox").exists()


def test_registry_serve_with_docker_cli_and_skopeo(pair: tuple[Daemon, Daemon], tmp_path: Any) -> None:
    a, b = pair
    with dockyard_registry() as reg:
        ref = f"{reg}/served/bb:1"
        env = {"DOCKER_CONFIG": str(tmp_path / "dockercfg")}
        if DOCKER:
            for cmd in (["tag", "busybox", ref], ["push", ref]):
                r = subprocess.run([DOCKER, "-H", a.host, *cmd], capture_output=True, timeout=120,
                                   env={**os.environ, **env})
                assert r.returncode == 0, r.stderr
            r = subprocess.run([DOCKER, "-H", b.host, "pull", ref], capture_output=True, timeout=120,
                               env={**os.environ, **env})
            assert r.returncode == 0, r.stderr
            assert b"Downloaded newer image" in r.stdout
        else:
            assert a.api.post(f"/images/busybox/tag?repo={reg}/served/bb&tag=1")[0] == 201
            push(a, ref)
            pull(b, ref)
        run_echo(b, ref, "served")
        assert inspect(a, ref)["RepoDigests"] == inspect(b, ref)["RepoDigests"]
        if SKOPEO:
            info = json.loads(subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{ref}"],
                                             check=True, capture_output=True, timeout=60).stdout)
            assert [info["Digest"]] == [x.split("@")[1] for x in inspect(b, ref)["RepoDigests"]]
            # skopeo pushes into it too (monolithic and chunked uploads), and we pull that
            subprocess.run([SKOPEO, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                            f"docker://{ref}", f"docker://{reg}/served/copy:2"], check=True,
                           capture_output=True, timeout=120)
            pull(b, f"{reg}/served/copy:2")
        # catalog, tags, delete over the API
        import urllib.request
        cat = json.load(urllib.request.urlopen(f"http://{reg}/v2/_catalog", timeout=10))
        assert "served/bb" in cat["repositories"]
        tags = json.load(urllib.request.urlopen(f"http://{reg}/v2/served/bb/tags/list", timeout=10))
        assert tags["tags"] == ["1"]
        digest = inspect(b, ref)["RepoDigests"][0].split("@")[1]
        req = urllib.request.Request(f"http://{reg}/v2/served/bb/manifests/{digest}", method="DELETE")
        assert urllib.request.urlopen(req, timeout=10).status == 202
        status, body = b.api.post(f"/images/create?fromImage={reg}/served/bb&tag=1", timeout=60)
        assert status == 404, body


def test_registry_serve_htpasswd_login_push_pull(pair: tuple[Daemon, Daemon], tmp_path: Any) -> None:
    import bcrypt
    a, b = pair
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    with dockyard_registry(str(htpasswd)) as reg:
        ref = f"{reg}/private/bb:1"
        assert a.api.post(f"/images/busybox/tag?repo={reg}/private/bb&tag=1")[0] == 201
        # no credentials: refused, nothing pushed
        status, body = a.api.post(f"/images/{reg}/private/bb/push?tag=1", timeout=60)
        assert "authentication required" in json.dumps(body)
        # a wrong password fails login; the right one is kept in config.json and used
        env = {"DOCKER_CONFIG": str(tmp_path / "cfg")}
        r = a.cli("login", "-u", "alice", "-p", "nope", reg, env=env)
        assert r.returncode != 0
        r = a.cli("login", "-u", "alice", "--password-stdin", reg, input=b"s3cret\n", env=env)
        assert r.returncode == 0, r.stderr
        cfg = json.loads((tmp_path / "cfg" / "config.json").read_text())
        assert base64.b64decode(cfg["auths"][reg]["auth"]) == b"alice:s3cret"
        r = a.cli("push", ref, env=env)
        assert r.returncode == 0, r.stderr
        r = b.cli("pull", ref, env=env)
        assert r.returncode == 0, r.stderr
        run_echo(b, ref, "private")
        if DOCKER:  # the docker CLI logs in through the daemon's /auth and pushes with its config
            denv = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "dcfg")}
            r = subprocess.run([DOCKER, "-H", a.host, "login", "-u", "alice", "--password-stdin", reg],
                               input=b"s3cret\n", capture_output=True, timeout=60, env=denv)
            assert r.returncode == 0 and b"Login Succeeded" in r.stdout, r.stderr
            assert a.api.post(f"/images/busybox/tag?repo={reg}/private/viadocker&tag=2")[0] == 201
            r = subprocess.run([DOCKER, "-H", a.host, "push", f"{reg}/private/viadocker:2"],
                               capture_output=True, timeout=120, env=denv)
            assert r.returncode == 0, r.stderr
        assert a.cli("logout", reg, env=env).returncode == 0
        assert reg not in json.loads((tmp_path / "cfg" / "config.json").read_text()).get("auths", {})


def test_images_filters_digests_prune_export(daemon: Daemon, tmp_path: Any) -> None:
    d = daemon
    assert d.api.post("/images/busybox/tag?repo=keep/me&tag=1")[0] == 201
    status, imgs = d.api.get('/images/json?filters={"reference":["keep/*"]}')
    # as dockerd: the reference filter narrows RepoTags to the tags it matches
    assert status == 200 and [sorted(i["RepoTags"]) for i in imgs] == [["keep/me:1"]]
    status, imgs = d.api.get('/images/json?filters={"dangling":["true"]}')
    assert imgs == []
    r = d.cli("images", "--digests")
    assert r.returncode == 0 and b"DIGEST" in r.stdout
    # export a container's filesystem
    r = d.cli("create", "--name", "exp", "busybox", "true")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "fs.tar"
    r = d.cli("export", "-o", str(out), "exp")
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tf:
        assert "bin/busybox" in tf.getnames()
    assert d.api.delete("/containers/exp?force=1")[0] == 204
    # prune -a removes the now unused image
    r = d.cli("image", "prune", "-a", "-f")
    assert r.returncode == 0, r.stderr
    assert b"deleted: sha256:" in r.stdout
    assert d.api.get("/images/json")[1] == []


def test_distribution_backend_chunked_upload_mount_catalog(registry: str) -> None:
    """The backend alone against the real registry: chunked and streamed uploads, mount, delete."""
    import hashlib
    import io

    from dockyard.hookspecs.errors import InvalidParameter, NotFound
    from dockyard.plugins.registries.distribution import DistributionBackend
    data = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    chunked = DistributionBackend(registry, {"chunk_size": 65536})
    chunked.put_blob("chunk/a", digest, io.BytesIO(data), len(data))
    assert chunked.has_blob("chunk/a", digest) == len(data)
    with contextlib.closing(chunked.get_blob("chunk/a", digest)) as f:
        assert f.read() == data
    plain = DistributionBackend(registry)
    # cross-repository mount: no bytes sent
    assert plain.mount_blob("chunk/b", digest, "chunk/a")
    assert plain.has_blob("chunk/b", digest) == len(data)
    # size unknown: a streamed (chunked transfer-encoding) upload
    other = os.urandom(1000)
    plain.put_blob("chunk/c", "sha256:" + hashlib.sha256(other).hexdigest(), io.BytesIO(other))
    # a lying source is refused by the registry or by our own verifier
    with pytest.raises((InvalidParameter, Exception)):
        plain.put_blob("chunk/c", digest, io.BytesIO(b"not it"), 6)
    with pytest.raises(NotFound):
        plain.resolve("chunk/a", "nope")
    assert "chunk/a" in plain.catalog()


def test_registry_mirror_serves_docker_io(busybox_tar: str, registry: str) -> None:
    """``--registry-mirror``: docker.io names are pulled from the (loopback) mirror."""
    with running_daemon(busybox_tar) as a:
        assert a.api.post(f"/images/busybox/tag?repo={registry}/library/mirrored&tag=m1")[0] == 201
        push(a, f"{registry}/library/mirrored:m1")
    with running_daemon(None, ["--registry-mirror", f"http://{registry}"]) as b:
        pull(b, "mirrored:m1")
        run_echo(b, "mirrored:m1", "mirror")
        assert inspect(b, "docker.io/library/mirrored:m1")["RepoTags"] == ["mirrored:m1"]


def test_interrupted_pull_leaves_no_image_and_resumes(busybox_tar: str, tmp_path: Any) -> None:
    """Kill the daemon while a layer is downloading: after a restart there is no image, no
    temporary file; the next pull completes, fetching only what is missing."""
    import asyncio
    import gzip
    import hashlib
    import io
    import threading

    from aiohttp import web

    def sha(b: bytes) -> str:
        return "sha256:" + hashlib.sha256(b).hexdigest()

    with open(busybox_tar, "rb") as f:
        base = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("big")
        payload = os.urandom(4 << 20)
        ti.size = len(payload)
        tf.addfile(ti, io.BytesIO(payload))
    second = buf.getvalue()
    blobs = {sha(gzip.compress(x, mtime=0)): gzip.compress(x, mtime=0) for x in (base, second)}
    layer_digests = list(blobs)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(base), sha(second)]}}).encode()
    blobs[sha(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "size": len(config), "digest": sha(config)},
                           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                       "size": len(blobs[d]), "digest": d} for d in layer_digests]}).encode()
    stall = threading.Event()
    stall.set()
    requested = threading.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "":
            return web.json_response({})
        if "/manifests/" in tail:
            return web.Response(body=manifest if request.method == "GET" else None, headers={
                "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
                "Docker-Content-Digest": sha(manifest)})
        digest = tail.rsplit("/", 1)[1]
        data = blobs[digest]
        if digest == layer_digests[1] and stall.is_set():
            resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[:1000])
            requested.set()
            while stall.is_set():
                await asyncio.sleep(0.1)
            raise ConnectionResetError("stalled download ends")
        return web.Response(body=data)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", handle)
    runner = web.AppRunner(app)
    port = free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    ref = f"127.0.0.1:{port}/slow/img"
    try:
        with running_daemon(None) as d:
            from conftest import UnixHTTPConnection
            conn = UnixHTTPConnection(d.sock, 60)
            conn.request("POST", f"/images/create?fromImage={ref}&tag=latest")
            conn.getresponse()
            assert requested.wait(60)
            time.sleep(0.5)
            d.stop(sig=9)
            conn.close()
            d.start()
            assert d.api.get("/images/json")[1] == []
            blobdir = os.path.join(d.data_root, "image", "blobs", "sha256")
            assert not [n for n in os.listdir(blobdir) if n.startswith(".tmp-")]
            stall.clear()
            msgs = pull(d, f"{ref}:latest")
            by_layer = {m.get("id"): m.get("status") for m in msgs if m.get("id")}
            assert by_layer[layer_digests[0][7:19]] in ("Already exists", "Pull complete")
            run_echo(d, f"{ref}:latest", "resumed")
    finally:
        stall.clear()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def test_bearer_token_auth_through_a_token_server(pair: tuple[Daemon, Daemon], registry: str) -> None:
    """A registry that wants Bearer tokens (as Docker Hub does): the daemon asks the realm for
    a token per scope, with the login's credentials, then pushes and pulls with it."""
    import asyncio
    import secrets
    import threading

    import aiohttp
    from aiohttp import web

    token = secrets.token_hex(16)
    port = free_port()
    scopes: list[str] = []

    async def token_handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"bob:pw").decode():
            return web.Response(status=401)
        scopes.append(request.query.get("scope", ""))
        return web.json_response({"token": token})

    async def proxy(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "token needed"}]},
                                     status=401, headers={"WWW-Authenticate":
                                     f'Bearer realm="http://127.0.0.1:{port}/token",service="test"'})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "authorization")}
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.request(request.method, f"http://{registry}{request.rel_url}", headers=headers,
                                 data=await request.read(), allow_redirects=False) as r:
                body = await r.read()
                out = {k: v.replace(registry, f"127.0.0.1:{port}") for k, v in r.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "date", "server")}
                return web.Response(status=r.status, body=body, headers=out)

    loop = asyncio.new_event_loop()
    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/token", token_handler)
    app.router.add_route("*", "/v2/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        a, b = pair
        host = f"127.0.0.1:{port}"
        auth = base64.urlsafe_b64encode(json.dumps({"username": "bob", "password": "pw"}).encode()).decode()
        assert a.api.post(f"/images/busybox/tag?repo={host}/tok/bb&tag=1")[0] == 201
        status, body = a.api.post(f"/images/{host}/tok/bb/push?tag=1", timeout=60)
        assert "token request failed" in json.dumps(body) or "unauthorized" in json.dumps(body).lower()
        push(a, f"{host}/tok/bb:1", auth)
        assert "repository:tok/bb:pull,push" in scopes
        status, body = b.api.post(f"/images/create?fromImage={host}/tok/bb&tag=1", timeout=120,
                                  headers={"X-Registry-Auth": auth})
        assert status == 200 and not any(m.get("error") for m in body), body
        run_echo(b, f"{host}/tok/bb:1", "bearer")
        status, body = b.api.post("/auth", {"username": "bob", "password": "pw", "serveraddress": host})
        assert status == 200 and body["Status"] == "Login Succeeded"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl needed to make a certificate")
def test_registry_serve_tls(pair: tuple[Daemon, Daemon], tmp_path: Any) -> None:
    """``--tls-cert/--tls-key``: HTTPS; the daemon reaches the loopback registry over HTTPS
    without verification (loopback is insecure by default), skopeo with --tls-verify=false."""
    a, b = pair
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with dockyard_registry(tls=(cert, key)) as reg:
        ref = f"{reg}/tls/bb:1"
        assert a.api.post(f"/images/busybox/tag?repo={reg}/tls/bb&tag=1")[0] == 201
        push(a, ref)
        pull(b, ref)
        run_echo(b, ref, "tls")
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=cert)
        tags = json.load(urllib.request.urlopen(f"https://{reg}/v2/tls/bb/tags/list", timeout=10, context=ctx))
        assert tags["tags"] == ["1"]
        if SKOPEO:
            subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{ref}"], check=True,
                           capture_output=True, timeout=60)


@pytest.mark.skipif(not (shutil.which("dockerd") and DOCKER), reason="dockerd (Debian docker.io) not installed")
def test_real_dockerd_pushes_to_and_pulls_from_registry_serve(busybox_tar: str, tmp_path: Any) -> None:
    """Docker's own registry client (dockerd: streamed PATCH uploads, HEAD checks, mounts) against
    ``dockyard registry serve``; then dockyardd pulls what dockerd pushed, and dockerd pulls back."""
    root = tempfile.mkdtemp(prefix="dky-dd-")
    sock = f"unix://{root}/docker.sock"
    log = open(os.path.join(root, "dockerd.log"), "wb")
    proc = subprocess.Popen(["dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
                             "--pidfile", f"{root}/pid", "-H", sock, "--iptables=false", "--ip-masq=false",
                             "--bridge=none", "--storage-driver", "vfs"], stdout=log, stderr=log)
    log.close()
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "cfg")}

    def docker(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, "-H", sock, *args], capture_output=True, timeout=180, env=env)

    try:
        deadline = time.monotonic() + 60
        while docker("version").returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("dockerd did not start here")
            time.sleep(0.3)
        with dockyard_registry() as reg:
            ref = f"{reg}/fromdocker/bb:1"
            r = docker("import", busybox_tar, ref)
            assert r.returncode == 0, r.stderr
            r = docker("push", ref)
            assert r.returncode == 0, r.stderr
            pushed = docker("inspect", "-f", "{{json .RepoDigests}}", ref)
            with running_daemon(None) as d:
                pull(d, ref)
                assert inspect(d, ref)["RepoDigests"] == json.loads(pushed.stdout)
                run_echo(d, ref, "from-dockerd")
                # and back: dockyardd pushes under a new name, dockerd pulls it
                assert d.api.post(f"/images/{ref}/tag?repo={reg}/fromdockyard/bb&tag=2")[0] == 201
                push(d, f"{reg}/fromdockyard/bb:2")
            r = docker("pull", f"{reg}/fromdockyard/bb:2")
            assert r.returncode == 0, r.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(f"grep ' {root}/' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l",
                       shell=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
