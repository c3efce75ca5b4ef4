"""Multi-stage builds and today's Dockerfile syntax through ``POST /build``, driven as a new user
would: the docker CLI (``DOCKER_BUILDKIT=0``), docker-py and ``dockyard build``.

The daemon has a loopback registry (Debian's docker-registry) as its docker.io mirror, so that
an image the build pulls (a missing base, ``COPY --from=<image>``) never leaves the host.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import urllib.parse
from typing import Any, Iterator

import pytest

from conftest import Daemon, running_daemon
from test_build import _inspect, _no_containers, _write, docker
from test_registry import docker_registry, push

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with docker_registry() as r:
        yield r


@pytest.fixture(scope="module")
def bd(busybox_tar: str, registry: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar, ["--registry-mirror", f"http://{registry}"]) as d:
        yield d


def uid() -> str:
    return os.urandom(4).hex()


def ok(d: Daemon, *args: str, **kw: Any) -> str:
    r = docker(d, *args, timeout=600, **kw)
    assert r.returncode == 0, (args, r.stdout.decode()[-3000:], r.stderr.decode())
    return r.stdout.decode()


def steps(out: str) -> dict[str, list[str]]:
    """A prefixed build output, as ``{"stage N/M": [its lines]}``."""
    got: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = re.match(r"^\[([a-z0-9_.-]+ \d+/\d+)\] (.*)$", line)
        if m:
            got.setdefault(m.group(1), []).append(m.group(2))
    return got


def cached(lines: list[str]) -> bool:
    return " ---> Using cache" in lines and not any("Running in" in x for x in lines)


def build_api(d: Daemon, files: dict[str, bytes], query: str = "",
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return d.api.post("/build?" + query, raw=buf.getvalue(), timeout=600,
                      headers={"Content-Type": "application/x-tar", **(headers or {})})


def messages(body: Any) -> list[dict[str, Any]]:
    return body if isinstance(body, list) else [body]


def stream_text(body: Any) -> str:
    return "".join(m.get("stream", "") for m in messages(body) if isinstance(m, dict))


def stream_error(body: Any) -> str:
    return " ".join(m.get("error", "") for m in messages(body) if isinstance(m, dict) and m.get("error"))


MULTISTAGE = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
ARG VERSION=1.0
FROM $BASE AS build
ARG VERSION
ENV APP_HOME=/src
WORKDIR $APP_HOME
COPY src/ ./
RUN test ! -e ignored.tmp && echo "v$VERSION" > version.txt && cat main.txt > built.txt
FROM $BASE AS assets
WORKDIR /assets
COPY assets/ ./
RUN ls > index.txt
FROM busybox AS unused
RUN echo never-runs && exit 1
FROM $BASE
ARG VERSION
LABEL org.example.version=$VERSION
COPY --from=build /src/built.txt /src/version.txt /app/
COPY --from=assets /assets /app/assets
USER 1000
EXPOSE 8080
WORKDIR /app
CMD ["sh", "-c", "cat built.txt version.txt assets/index.txt; id -u"]
"""


@pytest.fixture
def ms_ctx(tmp_path: Any) -> str:
    ctx = str(tmp_path)
    _write(ctx, "Dockerfile", MULTISTAGE)
    os.makedirs(os.path.join(ctx, "src"))
    os.makedirs(os.path.join(ctx, "assets"))
    _write(ctx, "src/main.txt", "main\n")
    _write(ctx, "src/ignored.tmp", "not sent\n")
    _write(ctx, "assets/a.txt", "a\n")
    _write(ctx, "assets/b.txt", "b\n")
    _write(ctx, ".dockerignore", "**/*.tmp\n")
    return ctx


def test_multistage_docker_cli_cache_and_partial_rebuild(bd: Daemon, ms_ctx: str) -> None:
    tag = f"ms{uid()}:1"
    out = ok(bd, "build", "--build-arg", "VERSION=2.0", "-t", tag, ms_ctx)
    assert "never-runs" not in out and "[unused" not in out, out
    by_step = steps(out)
    assert set(k.split()[0] for k in by_step) == {"global", "build", "assets", "stage-3"}, out
    assert ok(bd, "run", "--rm", tag) == "main\nv2.0\na.txt\nb.txt\nindex.txt\n1000\n"
    cfg = _inspect(bd, tag)["Config"]
    assert cfg["Labels"] == {"org.example.version": "2.0"} and cfg["User"] == "1000"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}} and cfg["WorkingDir"] == "/app"
    assert not any(e.startswith("VERSION=") for e in cfg["Env"] or [])
    first_id = _inspect(bd, tag)["Id"]

    # the same build again: every step from the cache, the same image
    out = ok(bd, "build", "--build-arg", "VERSION=2.0", "-t", tag, ms_ctx)
    assert "Running in" not in out, out
    for key, lines in steps(out).items():
        if not key.startswith("global") and not lines[0].split(" : ", 1)[1].startswith("FROM"):
            assert cached(lines), (key, lines)
    assert _inspect(bd, tag)["Id"] == first_id

    # a change to the assets stage's input: that stage from the changed COPY on, and the final
    # stage from its COPY --from=assets on; the build stage stays cached
    _write(ms_ctx, "assets/b.txt", "b changed\n")
    out = ok(bd, "build", "--build-arg", "VERSION=2.0", "-t", tag, ms_ctx)
    by_step = steps(out)
    redone = sorted((k for k, v in by_step.items() if not cached(v) and "FROM" not in v[0]
                     and not k.startswith("global")), key=lambda k: int(k.split()[1].split("/")[0]))
    texts = [by_step[k][0].split(" : ", 1)[1] for k in redone]
    assert texts == ["COPY assets/ ./", "RUN ls > index.txt", "COPY --from=assets /assets /app/assets",
                     "USER 1000", "EXPOSE 8080", "WORKDIR /app",
                     'CMD ["sh", "-c", "cat built.txt version.txt assets/index.txt; id -u"]'], out
    assert all(cached(v) for k, v in by_step.items() if k.startswith("build ") and "FROM" not in v[0])
    assert ok(bd, "run", "--rm", tag, "cat", "/app/assets/b.txt") == "b changed\n"
    _no_containers(bd)
    docker(bd, "rmi", tag)


def test_multistage_dockyard_cli_docker_py_and_target(bd: Daemon, ms_ctx: str) -> None:
    """The same Dockerfile through ``dockyard build`` and docker-py; ``--target`` builds only
    the stages it needs."""
    docker_py = pytest.importorskip("docker")
    g = uid()
    r = bd.cli("build", "--build-arg", "VERSION=3.0", "-t", f"ours{g}:1", ms_ctx, timeout=600)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert ok(bd, "run", "--rm", f"ours{g}:1") == "main\nv3.0\na.txt\nb.txt\nindex.txt\n1000\n"
    client = docker_py.DockerClient(base_url=bd.host, version="auto", timeout=600)
    try:
        image, logs = client.images.build(path=ms_ctx, tag=f"dpy{g}:1", rm=True,
                                          buildargs={"VERSION": "3.0"})
        text = "".join(x.get("stream", "") for x in logs)
        assert "Running in" not in text, text   # dockyard build made every step already
        assert image.id == _inspect(bd, f"ours{g}:1")["Id"]
        image, _ = client.images.build(path=ms_ctx, tag=f"dpy{g}:assets", target="assets", rm=True)
        assert client.containers.run(image.id, ["cat", "/assets/index.txt"], remove=True) == \
            b"a.txt\nb.txt\nindex.txt\n"
    finally:
        client.close()
    tag = f"tgt{g}:1"
    r = bd.cli("build", "--target", "build", "-t", tag, ms_ctx, timeout=600)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    # one stage: dockerd's plain output, numbered over what is built (2 global ARGs + 6 steps)
    assert "Step 1/8 : ARG BASE=busybox" in out and "Step 3/8 : FROM $BASE AS build" in out
    assert "never-runs" not in out and "index.txt" not in out and "[" not in out.split("Step 1/8")[1]
    assert ok(bd, "run", "--rm", tag, "cat", "/src/version.txt") == "v1.0\n"
    r = bd.cli("build", "--target", "nosuch", ms_ctx)
    assert r.returncode != 0 and b"failed to reach build target nosuch in Dockerfile" in r.stderr
    docker(bd, "rmi", tag, f"ours{g}:1", f"dpy{g}:1", f"dpy{g}:assets")


def test_independent_stages_run_at_the_same_time(bd: Daemon, tmp_path: Any) -> None:
    """Each of two independent stages waits for the other through a shared cache mount: built
    one after the other, the first would give up (exit 9) and the build would fail."""
    docker_py = pytest.importorskip("docker")
    rv = f"rendezvous-{uid()}"
    wait = ("touch /rv/{me} && i=0 && while [ ! -e /rv/{other} ]; do i=$((i+1)); "
            "[ $i -gt 1200 ] && exit 9; sleep 0.1; done")
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox AS left\nRUN --mount=type=cache,id={rv},target=/rv "
        + wait.format(me="left", other="right") + " && echo left > /side\n"
        f"FROM busybox AS right\nRUN --mount=type=cache,id={rv},target=/rv "
        + wait.format(me="right", other="left") + " && echo right > /side\n"
        "FROM busybox\nCOPY --from=left /side /left\nCOPY --from=right /side /right\n")
    client = docker_py.DockerClient(base_url=bd.host, version="auto", timeout=600)
    try:
        image, logs = client.images.build(path=str(tmp_path), tag=f"rv{uid()}:1", rm=True)
        text = "".join(x.get("stream", "") for x in logs)
        assert "[left 2/7]" in text and "[right 4/7]" in text, text
        assert client.containers.run(image.id, ["cat", "/left", "/right"], remove=True) == b"left\nright\n"
        client.images.remove(image.id, force=True)
    finally:
        client.close()


def test_heredocs_cache_mount_and_secret_with_dockyard_build(bd: Daemon, tmp_path: Any) -> None:
    ctx = str(tmp_path / "ctx")
    os.makedirs(ctx)
    secret_value = f"tok-{uid()}-value"
    secret = tmp_path / "token.txt"
    secret.write_text(secret_value)
    cache_dir = f"/var/cache/app{uid()}"
    _write(ctx, "Dockerfile", f"""\
# check=skip=JSONArgsRecommended
FROM busybox
ARG RUNID
RUN --mount=type=cache,target={cache_dir} <<EOF
set -e
ls {cache_dir} > /seen-before.txt
echo "$RUNID" > {cache_dir}/run-$RUNID
EOF
COPY <<EOF /etc/app.conf
name=app-$RUNID
EOF
RUN --mount=type=secret,id=token,target=/run/secrets/token <<EOF
md5sum < /run/secrets/token > /file.md5
echo used-secret > /used.txt
EOF
RUN --mount=type=secret,id=token,env=TOKEN printf %s "$TOKEN" | md5sum > /env.md5
RUN --mount=type=secret,id=optional,required=false test ! -e /run/secrets/optional
CMD cat /seen-before.txt /etc/app.conf /used.txt
""")
    tag = f"hd{uid()}:1"

    def build(runid: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
        return bd.cli("build", "--secret", f"id=token,src={secret}", "--build-arg", f"RUNID={runid}",
                      *extra, "-t", tag, ctx, timeout=600)

    r = build("one")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert ok(bd, "run", "--rm", tag) == "name=app-one\nused-secret\n"
    md5 = hashlib.md5(secret_value.encode()).hexdigest()
    assert ok(bd, "run", "--rm", tag, "cat", "/file.md5", "/env.md5").split() == [md5, "-", md5, "-"]
    r = build("two")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    # the second build's RUN found what the first left in the cache mount
    assert ok(bd, "run", "--rm", tag) == "run-one\nname=app-two\nused-secret\n"
    # the secret is in no layer and no history entry, and its mount point is not in the image
    saved = docker(bd, "save", tag).stdout
    assert len(saved) > 100_000 and secret_value.encode() not in saved
    assert secret_value not in ok(bd, "history", "--no-trunc", tag)
    assert ok(bd, "run", "--rm", tag, "sh", "-c", "ls /run/secrets 2>&1 || echo none").strip().endswith("none")
    # a secret the request does not give fails the step that needs it
    r = bd.cli("build", "--build-arg", "RUNID=three", "--no-cache", ctx, timeout=600)
    assert r.returncode != 0 and b"secret token not found" in r.stderr, r.stderr
    # builder prune -a clears the cache mount: the next build starts empty
    status, body = bd.api.post("/build/prune?all=1&filters=" + urllib.parse.quote(
        json.dumps({"type": ["exec.cachemount"]})))
    assert status == 200 and body["CachesDeleted"] and body["SpaceReclaimed"] > 0, body
    r = build("four")
    assert r.returncode == 0, r.stderr
    assert ok(bd, "run", "--rm", tag, "cat", "/seen-before.txt") == ""
    _no_containers(bd)
    docker(bd, "rmi", tag)


def test_broken_dockerfile_fails_before_any_step(bd: Daemon) -> None:
    before = bd.api.get("/containers/json?all=1")[1]
    text = ("FROM busybox\nRUN echo one\nRUN echo two\nRUN echo three\nRUN echo four\n"
            "RUN echo five\nBOGUS instruction\n")
    status, body = build_api(bd, {"Dockerfile": text.encode()})
    assert status == 400 and body["message"] == \
        "dockerfile parse error line 7: unknown instruction: BOGUS", body
    status, body = build_api(bd, {"Dockerfile": b"FROM busybox\nRUN echo early\n"
                                                b"COPY --from=nosuch /x /y\n"})
    assert status == 200
    text_out, err = stream_text(body), stream_error(body)
    assert "Step " not in text_out and "early" not in text_out, body
    # the mirror lacks it, then Docker Hub is tried last (main's mirror fallback, as dockerd):
    # its error (here: unreachable) is the pull's, named by the line
    assert err.startswith("Dockerfile line 3: invalid from flag value nosuch: ") and (
        "pull access denied for nosuch" in err or "nosuch:latest failed" in err), body
    status, body = build_api(bd, {"Dockerfile": b"FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\n"})
    assert status == 400 and "line 2" in body["message"] and "circular dependency" in body["message"]
    status, body = build_api(bd, {"Dockerfile": b"# check=error=true\nFROM busybox\nMAINTAINER me\n"})
    assert status == 400 and "lint violation found for rules: MaintainerDeprecated" in body["message"]
    assert bd.api.get("/containers/json?all=1")[1] == before


def test_docker_py_options_scratch_labels_and_onbuild(bd: Daemon, tmp_path: Any) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=bd.host, version="auto", timeout=600)
    g = uid()
    try:
        # labels on FROM scratch: the option, and the instruction
        (tmp_path / "Dockerfile").write_text("FROM scratch\n")
        img, _ = client.images.build(path=str(tmp_path), labels={"only": "label"}, tag=f"empty{g}:1")
        assert img.labels == {"only": "label"} and img.attrs["RootFS"].get("Layers") in (None, [])
        (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL from=instruction\n")
        img, _ = client.images.build(path=str(tmp_path), tag=f"empty{g}:2")
        assert img.labels == {"from": "instruction"}
        # RUN steps see the build's options
        (tmp_path / "Dockerfile").write_text(
            "FROM busybox AS x\nRUN echo skipped\nFROM busybox AS t\n"
            "RUN grep myhost /etc/hosts > /hosts && ip -o link | wc -l > /links && "
            "df -k /dev/shm | tail -1 | awk '{print $2}' > /shm && ulimit -n > /nofile\n")
        img, logs = client.images.build(path=str(tmp_path), target="t", tag=f"opts{g}:1", rm=True,
                                        extra_hosts={"myhost": "10.9.8.7"}, network_mode="none",
                                        shmsize=32 << 20, container_limits={"memory": 64 << 20})
        got = client.containers.run(img.id, ["cat", "/hosts", "/links", "/shm", "/nofile"], remove=True)
        hosts, links, shm, _nofile = got.decode().split("\n")[:4]
        assert "10.9.8.7" in hosts and "myhost" in hosts
        assert links.strip() == "1"   # networkmode=none: lo only
        assert shm.strip() == str(32 << 10)
        assert "skipped" not in "".join(x.get("stream", "") for x in logs)
        # ONBUILD triggers run in the child and are not passed on
        (tmp_path / "Dockerfile").write_text("FROM busybox\nONBUILD RUN echo triggered > /trig\n")
        client.images.build(path=str(tmp_path), tag=f"onb{g}:1")
        (tmp_path / "Dockerfile").write_text(f"FROM onb{g}:1\nCMD [\"cat\", \"/trig\"]\n")
        img, logs = client.images.build(path=str(tmp_path), tag=f"onb{g}:2", rm=True)
        assert "# Executing 1 build trigger" in "".join(x.get("stream", "") for x in logs)
        assert client.containers.run(img.id, remove=True) == b"triggered\n"
        assert not img.attrs["Config"].get("OnBuild")
        for t in ("empty{g}:1", "empty{g}:2", "opts{g}:1", "onb{g}:2", "onb{g}:1"):
            client.images.remove(t.format(g=g), force=True)
    finally:
        client.close()


def test_step_containers_get_the_limits_and_bad_options_are_refused(bd: Daemon, tmp_path: Any) -> None:
    g = uid()
    dockerfile = f"FROM busybox\nRUN echo {g}\n".encode()
    ulimits = urllib.parse.quote(json.dumps([{"Name": "nofile", "Soft": 1000, "Hard": 2000}]))
    status, body = build_api(bd, {"Dockerfile": dockerfile},
                             f"rm=0&memory={96 << 20}&cpushares=512&cpuquota=50000&shmsize={16 << 20}"
                             f"&ulimits={ulimits}&extrahosts=a.example:10.1.1.1&networkmode=none")
    assert status == 200 and not stream_error(body), body
    kept = [c for c in bd.api.get("/containers/json?all=1")[1] if c["Command"].endswith(g)]
    assert len(kept) == 1
    host = bd.api.get(f"/containers/{kept[0]['Id']}/json")[1]["HostConfig"]
    assert (host["Memory"], host["CpuShares"], host["CpuQuota"], host["ShmSize"]) == \
        (96 << 20, 512, 50000, 16 << 20)
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1000, "Hard": 2000}]
    assert host["ExtraHosts"] == ["a.example:10.1.1.1"] and host["NetworkMode"] == "none"
    bd.api.delete(f"/containers/{kept[0]['Id']}?force=1")
    for query, words in (("squash=1", "squash is only supported with experimental mode"),
                         ("platform=linux/arm64", "linux/arm64"),
                         ("isolation=hyperv", 'Unsupported isolation: "hyperv"'),
                         ("securityopt=seccomp=unconfined", "security options"),
                         ("version=2", "builder version"),
                         ("frobnicate=1", "unknown build option(s): frobnicate"),
                         ("ulimits=%7B%7D", "ulimit"),
                         ("shmsize=-1", "shmsize"),
                         ("networkmode=nosuchnet", "networkmode"),
                         ("outputs=" + urllib.parse.quote('[{"Type":"local","Attrs":{"dest":"/x"}}]'),
                          "outputs"),
                         ("session=abc", "session")):
        status, body = build_api(bd, {"Dockerfile": dockerfile}, query)
        assert status == 400 and words in body["message"], (query, body)
    status, body = build_api(bd, {"Dockerfile": b"FROM --platform=linux/s390x busybox\n"})
    assert status == 400 and "line 1" in body["message"] and "s390x" in body["message"]
    # outputs with the image exporter: its name is a tag
    outputs = urllib.parse.quote(json.dumps([{"Type": "moby", "Attrs": {"name": f"out{g}:1"}}]))
    status, body = build_api(bd, {"Dockerfile": dockerfile}, f"outputs={outputs}")
    assert status == 200 and not stream_error(body) and _inspect(bd, f"out{g}:1")
    docker(bd, "rmi", f"out{g}:1")


def test_pull_missing_base_and_cachefrom(bd: Daemon, registry: str, tmp_path: Any) -> None:
    g = uid()
    base = f"{registry}/lib/base{g}:1"
    assert bd.api.post(f"/images/busybox/tag?repo={registry}/lib/base{g}&tag=1")[0] == 201
    push(bd, base)
    docker(bd, "rmi", base)
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo {g} > /g\nLABEL grp={g}\n")
    out = ok(bd, "build", "-t", f"pulled{g}:1", str(tmp_path))
    assert f"Pulling {base}" in out and f"Status: Downloaded newer image for {base}" in out, out
    assert _inspect(bd, base)["Id"] == _inspect(bd, "busybox")["Id"]
    out = ok(bd, "build", "--pull", "-t", f"pulled{g}:1", str(tmp_path))
    assert f"Pulling {base}" in out and out.count("Using cache") == 2, out
    assert f"Status: Image is up to date for {base}" in out, out  # a pull's last words

    # cachefrom: an image pushed, then the local cache and images gone, then pulled back
    built = _inspect(bd, f"pulled{g}:1")["Id"]
    remote = f"{registry}/lib/cached{g}:1"
    ok(bd, "tag", f"pulled{g}:1", remote)
    push(bd, remote)
    docker(bd, "rmi", f"pulled{g}:1", remote)
    docker(bd, "image", "prune", "-f")
    status, _ = bd.api.post("/build/prune?all=1")
    assert status == 200
    ok(bd, "pull", remote)
    out = ok(bd, "build", "--cache-from", remote, "-t", f"again{g}:1", str(tmp_path))
    assert out.count("Using cache") == 2 and "Running in" not in out, out
    assert _inspect(bd, f"again{g}:1")["Id"] == built
    out = ok(bd, "build", "--cache-from", "127.0.0.1:9/absent:1", "-t", f"again{g}:2", str(tmp_path))
    assert "cache-from image 127.0.0.1:9/absent:1 not found" in out
    # as dockerd: with cache-from, only those images are cache; none found is no cache at all
    assert "Using cache" not in out and "Running in" in out, out
    docker(bd, "rmi", remote, f"again{g}:1", f"again{g}:2", base)


def test_copy_link_layer_is_reused_on_another_base(bd: Daemon, tmp_path: Any) -> None:
    g = uid()
    for n in (1, 2):
        (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN echo {g}-{n} > /base\n")
        ok(bd, "build", "-t", f"linkbase{g}:{n}", str(tmp_path))
    _write(str(tmp_path), "payload.txt", "linked\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG B\nFROM $B\nCOPY --link --chmod=u=rwx,go=r payload.txt /opt/p/\n")
    ok(bd, "build", "--build-arg", f"B=linkbase{g}:1", "-t", f"linked{g}:1", str(tmp_path))
    out = ok(bd, "build", "--build-arg", f"B=linkbase{g}:2", "-t", f"linked{g}:2", str(tmp_path))
    assert "Reusing the linked layer" in out, out
    one, two = (_inspect(bd, f"linked{g}:{n}")["RootFS"]["Layers"] for n in (1, 2))
    assert one[-1] == two[-1] and one[-2] != two[-2]
    assert ok(bd, "run", "--rm", f"linked{g}:2", "sh", "-c",
              "cat /base /opt/p/payload.txt; stat -c %a /opt/p/payload.txt") == f"{g}-2\nlinked\n744\n"
    docker(bd, "rmi", *(f"linked{g}:{n}" for n in (1, 2)), *(f"linkbase{g}:{n}" for n in (1, 2)))


def test_build_prune_all_filters_and_keep_storage(bd: Daemon, tmp_path: Any) -> None:
    g = uid()
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nLABEL grp={g}\nRUN --mount=type=cache,id=prune{g},target=/c "
        f"dd if=/dev/zero of=/c/blob bs=1024 count=512 2>/dev/null\n")
    tag = f"pr{g}:1"
    ok(bd, "build", "-t", tag, str(tmp_path))
    df = bd.api.get("/system/df?type=build-cache")[1]["BuildCache"]
    mine = [r for r in df if r["Type"] == "exec.cachemount" and f"prune{g}" in r["Description"]]
    assert len(mine) == 1 and mine[0]["Size"] >= 512 << 10
    # the steps of a tagged image are shared: only -a removes them
    flt = urllib.parse.quote(json.dumps({"label": [f"grp={g}"]}))
    status, body = bd.api.post(f"/build/prune?filters={flt}")
    assert status == 200 and not body["CachesDeleted"], body
    # within keep-storage, nothing goes
    status, body = bd.api.post(f"/build/prune?all=1&keep-storage={1 << 40}")
    assert status == 200 and not body["CachesDeleted"], body
    status, body = bd.api.post(f"/build/prune?all=1&filters={flt}")
    assert status == 200 and len(body["CachesDeleted"]) == 2, body
    assert "Using cache" not in ok(bd, "build", "-t", tag, str(tmp_path))
    status, body = bd.api.post("/build/prune?filters=" + urllib.parse.quote(json.dumps(
        {"id": [mine[0]["ID"]]})))
    assert status == 200 and body["CachesDeleted"] == [mine[0]["ID"]], body
    assert body["SpaceReclaimed"] >= 512 << 10
    for flt_value, words in (({"type": ["nonsense"]}, "invalid filter 'type=nonsense'"),
                             ({"bogus": ["1"]}, "invalid filter 'bogus'")):
        status, body = bd.api.post("/build/prune?filters=" + urllib.parse.quote(json.dumps(flt_value)))
        assert status == 400 and words in body["message"], body
    status, body = bd.api.post("/build/prune?keep-storage=lots")
    assert status == 400 and "keep-storage" in body["message"]
    r = bd.cli("builder", "prune", "-a", "-f")
    assert r.returncode == 0 and b"Total reclaimed space" in r.stdout, r.stderr
    docker(bd, "rmi", tag)


def _secrets_header(values: dict[str, bytes]) -> str:
    doc = json.dumps({k: base64.b64encode(v).decode() for k, v in values.items()}).encode()
    return base64.urlsafe_b64encode(doc).decode()


def test_secret_header_through_the_api(bd: Daemon) -> None:
    dockerfile = b"FROM busybox\nRUN --mount=type=secret,id=k,mode=0440,uid=1000 " \
                 b"stat -c '%a %u' /run/secrets/k > /perm && cat /run/secrets/k > /dev/null\n"
    status, body = build_api(bd, {"Dockerfile": dockerfile}, "t=sec:1",
                             {"X-Dockyard-Build-Secrets": _secrets_header({"k": b"v"})})
    assert status == 200 and not stream_error(body), body
    assert ok(bd, "run", "--rm", "sec:1", "cat", "/perm") == "440 1000\n"
    status, body = build_api(bd, {"Dockerfile": dockerfile}, "", {"X-Dockyard-Build-Secrets": "!!"})
    assert status == 400 and "X-Dockyard-Build-Secrets" in body["message"]
    docker(bd, "rmi", "sec:1")


def test_a_failing_stage_stops_the_others(bd: Daemon, tmp_path: Any) -> None:
    """One stage fails at once while another still runs: the build ends with the failure
    (exit code and words of the failing step) without waiting for the other, whose step
    container is stopped and removed (the guard: the client gives up after 10 minutes)."""
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS slow\nRUN sleep 900\n"
        "FROM busybox AS broken\nRUN echo failing && exit 5\n"
        "FROM busybox\nCOPY --from=slow /etc/hostname /a\nCOPY --from=broken /etc/hostname /b\n")
    r = docker(bd, "build", str(tmp_path), timeout=600)
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert b"The command '/bin/sh -c echo failing && exit 5' returned a non-zero code: 5" in r.stderr
    assert b"[broken 4/7] failing" in r.stdout
    # the failed step's container stays for the user to look into, as dockerd's; the other
    # stage's, stopped by the failure, is gone
    out = docker(bd, "ps", "-aq").stdout
    left = (out.decode() if isinstance(out, bytes) else out).split()
    assert len(left) == 1, left
    docker(bd, "rm", left[0])
    _no_containers(bd)


def _wait_for(cond: Any, what: str, timeout: float = 180) -> None:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting: {what}")


def _step_containers(d: Daemon, word: str) -> list[dict[str, Any]]:
    return [c for c in d.api.get("/containers/json?all=1")[1] if word in c["Command"]]


def test_client_hang_up_and_build_cancel_stop_the_build(bd: Daemon, tmp_path: Any) -> None:
    import threading
    g = uid()
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN echo started-{g} && sleep 900\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=bd.host, DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false",
               DOCKER_CONFIG=os.path.join(bd.root, "docker-config"))
    proc = subprocess.Popen([shutil.which("docker") or "docker", "build", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if f"started-{g}".encode() in line and b"Step" not in line:
                break
        assert _step_containers(bd, f"started-{g}")
    finally:
        proc.kill()
        proc.wait()
    _wait_for(lambda: not _step_containers(bd, f"started-{g}"), "the step container to go")

    # POST /build/cancel?id= stops a build started with that buildid
    got: dict[str, Any] = {}
    files = {"Dockerfile": f"FROM busybox\nRUN echo second-{g} && sleep 900\n".encode()}
    worker = threading.Thread(target=lambda: got.update(
        res=build_api(bd, files, f"buildid=b{g}")))
    worker.start()
    _wait_for(lambda: bool(_step_containers(bd, f"second-{g}")), "the step to start")
    assert bd.api.post(f"/build/cancel?id=b{g}")[0] == 200
    worker.join(300)
    status, body = got["res"]
    assert status == 200 and "the build was cancelled" in stream_error(body), body
    _wait_for(lambda: not _step_containers(bd, f"second-{g}"), "the cancelled step's container to go")
