"""The hostile-archive corpus (tests/hostile/make_tars.py) through every entry point that takes
a tar: image import, ``docker load`` (wrapped in a docker-archive), pull from a loopback
registry (Debian's docker-registry), ``PUT /containers/{id}/archive`` (cp in), a build context,
and ``ADD`` of a local tar in a build.

After every request: the canary files the archives aim at are unchanged (content, mode, owner,
no new entry), the canary secret is in no response and in no image or container the request
made, no answer is a 5xx or an "internal error", and the daemon still serves ``/_ping`` and
``/images/json``. Each case also says what each entry point must answer (accepted or refused).
One daemon and one registry serve the whole module.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
import urllib.request
from typing import Any, Iterator

import pytest

from conftest import Daemon, running_daemon
from hostile.make_tars import END, ENTRY_POINTS, OK, REFUSED, Case, cases, d, member
from test_registry import docker_registry

CANARY = os.path.join(tempfile.gettempdir(), "dky-canary-" + secrets.token_hex(6))
SECRET = b"canary-secret-" + secrets.token_hex(16).encode()
CASES = cases(CANARY)


def setup_module() -> None:
    os.mkdir(CANARY, 0o755)
    with open(os.path.join(CANARY, "secret"), "wb") as f:
        f.write(SECRET + b"\n")
    os.chmod(os.path.join(CANARY, "secret"), 0o600)
    with open(os.path.join(CANARY, "victim"), "wb") as f:
        f.write(b"victim\n")
    os.chmod(os.path.join(CANARY, "victim"), 0o644)
    os.mkdir(os.path.join(CANARY, "sub"), 0o750)


def teardown_module() -> None:
    shutil.rmtree(CANARY, ignore_errors=True)


def canary_state() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dp, ds, fs in os.walk(CANARY):
        for n in sorted(ds + fs) + ([] if dp != CANARY else ["."]):
            p = os.path.join(dp, n)
            st = os.lstat(p)
            content = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    content = f.read()
            out[os.path.relpath(p, CANARY)] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, content)
    return out


@pytest.fixture(scope="module")
def hd(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with docker_registry() as r:
        yield r


@pytest.fixture(scope="module")
def box(hd: Daemon) -> str:
    status, body = hd.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201, body
    return body["Id"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def no_secret(body: Any, what: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert SECRET not in raw, f"{what}: the secret is in the answer"


def stream_outcome(status: int, body: Any, what: str) -> str:
    """OK or REFUSED from a JSON progress stream (or an error before it started)."""
    assert status < 500, f"{what}: {status} {body}"
    no_secret(body, what)
    if status == 400:
        return REFUSED
    assert status == 200, f"{what}: {status} {body}"
    msgs = body if isinstance(body, list) else [body]
    errors = [m for m in msgs if isinstance(m, dict) and (m.get("error") or m.get("errorDetail"))]
    for m in errors:
        assert "internal error" not in json.dumps(m), f"{what}: {m}"
    return REFUSED if errors else OK


def plain_outcome(status: int, body: Any, what: str) -> str:
    assert status < 500, f"{what}: {status} {body}"
    no_secret(body, what)
    assert status in (200, 201, 400), f"{what}: {status} {body}"
    return OK if status in (200, 201) else REFUSED


# -- entry points: each returns (outcome, things to look into for the secret) ------------------
def via_import(hd: Daemon, case: Case, reg: str, box: str) -> tuple[str, list[str]]:
    status, body = hd.api.post(f"/images/create?fromSrc=-&repo=hostile-import&tag={case.name}",
                               raw=case.data, headers={"Content-Type": "application/x-tar"},
                               timeout=120)
    out = plain_outcome(status, body, "import")
    return out, [f"hostile-import:{case.name}"] if out == OK else []


def docker_archive(case: Case, tag: str) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha(case.data)]},
                         "history": [{"created_by": "hostile"}]}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                            "Layers": ["l/layer.tar"]}]).encode()
    return (member(b"manifest.json", manifest) + member(b"config.json", config) + d(b"l")
            + member(b"l/layer.tar", case.data) + END)


def via_load(hd: Daemon, case: Case, reg: str, box: str) -> tuple[str, list[str]]:
    # the archive itself as the docker-archive: never a docker save, never a 5xx
    status, body = hd.api.post("/images/load?quiet=1", raw=case.data,
                               headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert stream_outcome(status, body, "load (as the outer archive)") == REFUSED
    tag = f"hostile-load:{case.name}"
    status, body = hd.api.post("/images/load?quiet=0", raw=docker_archive(case, tag),
                               headers={"Content-Type": "application/x-tar"}, timeout=120)
    out = stream_outcome(status, body, "load")
    return out, [tag] if out == OK else []


def _registry_put(reg: str, repo: str, data: bytes) -> str:
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30) as r:
        loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{reg}{loc}"
    req = urllib.request.Request(f"{loc}{'&' if '?' in loc else '?'}digest={sha(data)}",
                                 method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=30):
        pass
    return sha(data)


def via_pull(hd: Daemon, case: Case, reg: str, box: str) -> tuple[str, list[str]]:
    repo = "hostile/pull"
    gz = case.data.startswith(b"\x1f\x8b")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha(case.data)]},
                         "history": [{"created_by": "hostile"}]}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": _registry_put(reg, repo, config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar" + (".gzip" if gz else ""),
                    "size": len(case.data), "digest": _registry_put(reg, repo, case.data)}]}).encode()
    req = urllib.request.Request(
        f"http://{reg}/v2/{repo}/manifests/{case.name}", method="PUT", data=manifest,
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=30):
        pass
    status, body = hd.api.post(f"/images/create?fromImage={reg}/{repo}&tag={case.name}",
                               timeout=120)
    out = stream_outcome(status, body, "pull")
    return out, [f"{reg}/{repo}:{case.name}"] if out == OK else []


def via_cp(hd: Daemon, case: Case, reg: str, box: str) -> tuple[str, list[str]]:
    status, body = hd.api.request("PUT", f"/containers/{box}/archive?path=/",
                                  raw=d(b"cp") + d(b"cp/" + case.name.encode()) + END,
                                  headers={"Content-Type": "application/x-tar"})
    assert status == 200, body
    status, body = hd.api.request("PUT", f"/containers/{box}/archive?path=/cp/{case.name}",
                                  raw=case.data, headers={"Content-Type": "application/x-tar"},
                                  timeout=120)
    out = plain_outcome(status, body, "cp")
    status, tar = hd.api.get(f"/containers/{box}/archive?path=/cp/{case.name}", timeout=120)
    assert status == 200, tar
    assert SECRET not in tar, "cp: the secret reached the container"
    if out == REFUSED and not case.on_disk:  # checked whole before anything was written
        names = [n for n in _tar_names(tar) if n.strip("/") != case.name]
        assert names == [], f"cp: a refused archive left {names}"
    return out, []


def _tar_names(data: bytes) -> list[str]:
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getnames()


def _build(hd: Daemon, context: bytes, tag: str) -> tuple[str, list[str]]:
    status, body = hd.api.post(f"/build?t={tag}&rm=1&forcerm=1", raw=context,
                               headers={"Content-Type": "application/x-tar"}, timeout=300)
    out = stream_outcome(status, body, "build")
    return out, [tag] if out == OK else []


def via_context(hd: Daemon, case: Case, reg: str, box: str) -> tuple[str, list[str]]:
    dockerfile = member(b"Dockerfile", b"FROM busybox\nCOPY . /ctx/\n")
    return _build(hd, dockerfile + case.data, f"hostile-ctx:{case.name}")


def via_add(hd: Daemon, case: Case, reg: str, box: str) -> tuple[str, list[str]]:
    context = (member(b"Dockerfile", b"FROM busybox\nADD h.tar /add/\n")
               + member(b"h.tar", case.data) + END)
    return _build(hd, context, f"hostile-add:{case.name}")


VIA = {"import": via_import, "load": via_load, "pull": via_pull, "cp": via_cp,
       "context": via_context, "add": via_add}


def healthy(hd: Daemon) -> None:
    assert hd.api.get("/_ping", timeout=30)[0] == 200
    status, body = hd.api.get("/images/json", timeout=30)
    assert status == 200, body


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_archive_everywhere(hd: Daemon, registry: str, box: str, case: Case) -> None:
    before = canary_state()
    got: dict[str, str] = {}
    for ep in ENTRY_POINTS:
        outcome, images = VIA[ep](hd, case, registry, box)
        got[ep] = outcome
        assert canary_state() == before, f"{ep}: a canary file changed"
        healthy(hd)
        for ref in images:
            status, saved = hd.api.get(f"/images/{ref}/get", timeout=120)
            assert status == 200, saved
            assert SECRET not in saved, f"{ep}: the secret reached image {ref}"
            hd.api.delete(f"/images/{ref}?force=1", timeout=60)
    want = {ep: case.expect(ep) for ep in ENTRY_POINTS}
    assert got == want, case.why


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def test_nothing_left_behind(hd: Daemon, box: str) -> None:
    """After the corpus (and its refusals): no spooled body, build context or half-made layer
    is left in the daemon's temporary directory, and no stray image exists."""
    tmp = os.path.join(hd.data_root, "tmp")
    # a build removes its context after its last answer went out: give it a moment
    deadline = time.monotonic() + 30
    while os.path.isdir(tmp) and os.listdir(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
    status, images = hd.api.get("/images/json", timeout=30)
    assert status == 200
    assert [t for i in images for t in i["RepoTags"] or [] if "hostile" in t] == []
