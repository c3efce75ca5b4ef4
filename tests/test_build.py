"""Dockerfile builds through ``POST /build`` (the classic builder), driven by the docker CLI
(``DOCKER_BUILDKIT=0``), docker-py and our own CLI."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from typing import Any, Iterator

import pytest

from conftest import Daemon

DOCKER = shutil.which("docker")
pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


def docker(d: Daemon, *args: str, timeout: float = 120,
           input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=os.path.join(d.root, "docker-config"),
               DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0")
    return subprocess.run([DOCKER, *args], capture_output=True, timeout=timeout, env=env,
                          input=input)


DOCKERFILE = """\
# a comment
ARG BASE=busybox
FROM $BASE
ARG GREETING=hello
ARG WHO
ENV APP_HOME=/app \\
    MSG="${GREETING} world"
ENV OLD style value
WORKDIR $APP_HOME
COPY greet.txt ./
COPY --chown=1000:1000 data/ data/
ADD bundle.tar.gz /opt/
RUN echo "built by ${WHO:-nobody}" > /app/built.txt && chmod 600 /app/built.txt
USER 1000
LABEL org.example.name="my app" version=1
EXPOSE 8080 53/udp
STOPSIGNAL SIGINT
VOLUME /data
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/greet.txt /app/data/sub/b.txt /opt/bundle/inner.txt; echo $MSG; id -u"]
"""


@pytest.fixture
def ctx() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dockyard-build-")
    with open(os.path.join(d, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    with open(os.path.join(d, "greet.txt"), "w") as f:
        f.write("greetings\n")
    os.chmod(os.path.join(d, "greet.txt"), 0o640)
    os.makedirs(os.path.join(d, "data", "sub"))
    with open(os.path.join(d, "data", "a.txt"), "w") as f:
        f.write("a\n")
    with open(os.path.join(d, "data", "sub", "b.txt"), "w") as f:
        f.write("b\n")
    os.chmod(os.path.join(d, "data", "sub", "b.txt"), 0o755)
    with tarfile.open(os.path.join(d, "bundle.tar.gz"), "w:gz") as tar:
        payload = b"from the tarball\n"
        ti = tarfile.TarInfo("bundle/inner.txt")
        ti.size, ti.mode = len(payload), 0o644
        tar.addfile(ti, io.BytesIO(payload))
    with open(os.path.join(d, "secret.txt"), "w") as f:
        f.write("do not send\n")
    with open(os.path.join(d, ".dockerignore"), "w") as f:
        f.write("# comment\nsecret.txt\n*.log\n")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _inspect(d: Daemon, ref: str) -> dict[str, Any]:
    r = docker(d, "image", "inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def _rmi(d: Daemon, *refs: str) -> None:
    for ref in refs:
        docker(d, "rmi", "-f", ref)
    docker(d, "image", "prune", "-f")


def _no_containers(d: Daemon) -> None:
    r = docker(d, "ps", "-aq")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"", "intermediate containers left behind"


def test_build_run_inspect_and_cache(daemon: Daemon, ctx: str) -> None:
    r = docker(daemon, "build", "--build-arg", "WHO=tests", "-t", "t:1", ctx)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "Step 1/18 : ARG BASE=busybox" in out
    assert "Running in " in out and "Successfully tagged t:1" in out
    assert "Using cache" not in out
    _no_containers(daemon)

    r = docker(daemon, "run", "--rm", "t:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "greetings\nb\nfrom the tarball\nhello world\n1000\n"

    cfg = _inspect(daemon, "t:1")["Config"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Cmd"] == ["cat /app/greet.txt /app/data/sub/b.txt /opt/bundle/inner.txt; echo $MSG; id -u"]
    assert "APP_HOME=/app" in cfg["Env"] and "MSG=hello world" in cfg["Env"]
    assert "OLD=style value" in cfg["Env"]
    assert not any(e.startswith(("GREETING=", "WHO=")) for e in cfg["Env"])
    assert cfg["WorkingDir"] == "/app"
    assert cfg["User"] == "1000"
    assert cfg["Labels"] == {"org.example.name": "my app", "version": "1"}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"

    # content, modes and owners of what was copied and run
    r = docker(daemon, "run", "--rm", "--user", "0", "--entrypoint", "", "t:1", "sh", "-c",
               "stat -c '%n %a %u:%g' /app/greet.txt /app/data /app/data/a.txt "
               "/app/data/sub/b.txt /opt/bundle/inner.txt /app/built.txt; cat /app/built.txt; "
               "ls /app")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:6] == ["/app/greet.txt 640 0:0", "/app/data 755 1000:1000",
                         "/app/data/a.txt 644 1000:1000", "/app/data/sub/b.txt 755 1000:1000",
                         "/opt/bundle/inner.txt 644 0:0", "/app/built.txt 600 0:0"]
    assert lines[6] == "built by tests"
    assert "secret.txt" not in lines[7:]

    # metadata-only steps add no layers: base + WORKDIR + 2 COPY + ADD + RUN
    layers = _inspect(daemon, "t:1")["RootFS"]["Layers"]
    base_layers = _inspect(daemon, "busybox")["RootFS"]["Layers"]
    assert len(layers) == len(base_layers) + 5
    hist = json.loads(docker(daemon, "history", "--format", "{{json .}}", "t:1").stdout.decode()
                      .splitlines()[0])
    assert "CMD" in hist["CreatedBy"] and hist["Size"] in ("0B", "0")

    image_id = _inspect(daemon, "t:1")["Id"]
    # the same build again: every step from the cache, the same image
    r = docker(daemon, "build", "--build-arg", "WHO=tests", "-t", "t:2", ctx)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert out.count("Using cache") == 16, out
    assert _inspect(daemon, "t:2")["Id"] == image_id

    # a changed file invalidates the cache from its COPY on
    with open(os.path.join(ctx, "data", "a.txt"), "w") as f:
        f.write("changed\n")
    r = docker(daemon, "build", "--build-arg", "WHO=tests", "-t", "t:3", ctx)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    steps = out.split("Step ")[1:]
    cached = [s.split(" :")[0] for s in steps if "Using cache" in s]
    assert cached == [f"{i}/18" for i in range(3, 9)], out
    assert _inspect(daemon, "t:3")["Id"] != image_id
    # --no-cache rebuilds every step
    r = docker(daemon, "build", "--no-cache", "--build-arg", "WHO=tests", "-t", "t:3", ctx)
    assert r.returncode == 0 and b"Using cache" not in r.stdout, r.stdout + r.stderr
    _no_containers(daemon)
    _rmi(daemon, "t:1", "t:2", "t:3")


def _write(ctx: str, name: str, text: str) -> None:
    with open(os.path.join(ctx, name), "w") as f:
        f.write(text)


def test_build_failure_and_errors(shared_daemon: Daemon, tmp_path: Any) -> None:
    d = shared_daemon
    ctx = str(tmp_path)
    _write(ctx, "Dockerfile", "FROM busybox\nRUN echo before\nRUN exit 3\nCMD [\"true\"]\n")
    r = docker(d, "build", "-t", "fail:1", ctx)
    # dockerd puts the code in errorDetail, and the docker CLI exits with it
    assert r.returncode == 3
    err = (r.stdout + r.stderr).decode()
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in err
    assert "before" in r.stdout.decode()
    # as dockerd: the failed step's container stays for the user to look into ...
    left = docker(d, "ps", "-aq").stdout.decode().split()
    assert len(left) == 1, left
    assert docker(d, "inspect", "-f", "{{.State.ExitCode}}", left[0]).stdout.strip() == b"3"
    assert docker(d, "rm", left[0]).returncode == 0
    # ... unless --force-rm
    r = docker(d, "build", "--force-rm", "-t", "fail:1", ctx)
    assert r.returncode == 3
    _no_containers(d)
    assert docker(d, "image", "inspect", "fail:1").returncode != 0

    # found before any step runs: a 400 naming the line, as dockerd's
    _write(ctx, "Dockerfile", "FROM busybox\nRUN echo first\nFOO bar\n")
    r = docker(d, "build", ctx)
    assert r.returncode != 0
    assert b"dockerfile parse error line 3: unknown instruction: FOO" in r.stderr, r.stderr
    assert b"first" not in r.stdout and b"Step 1/" not in r.stdout

    # a missing base image is pulled (here from a loopback port nothing listens on)
    _write(ctx, "Dockerfile", "FROM 127.0.0.1:9/no-such-image:here\n")
    r = docker(d, "build", ctx)
    assert r.returncode != 0 and b"Dockerfile line 1: FROM 127.0.0.1:9/no-such-image:here" in r.stderr

    _write(ctx, "Dockerfile", "FROM busybox\nCOPY missing.txt /\n")
    r = docker(d, "build", ctx)
    assert r.returncode != 0 and b"missing.txt" in r.stderr + r.stdout

    # a missing Dockerfile: 400 before any stream
    os.unlink(os.path.join(ctx, "Dockerfile"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("other")
        tar.addfile(ti, io.BytesIO(b""))
    status, body = d.api.post("/build", raw=buf.getvalue(), headers={"Content-Type": "application/x-tar"})
    assert status == 400 and body["message"] == "Cannot locate specified Dockerfile: Dockerfile"
    _no_containers(d)
    docker(d, "image", "prune", "-f")


def test_build_ignore_args_and_file(shared_daemon: Daemon, tmp_path: Any) -> None:
    d = shared_daemon
    ctx = str(tmp_path)
    _write(ctx, "Dockerfile.alt", "FROM busybox\nARG COLOR=red\nCOPY . /ctx/\n"
                                  "RUN echo $COLOR > /color\nCMD [\"cat\", \"/color\"]\n")
    _write(ctx, "keep.txt", "k\n")
    _write(ctx, "drop.log", "x\n")
    _write(ctx, "important.log", "i\n")
    os.makedirs(os.path.join(ctx, "cache"))
    _write(ctx, "cache/c.txt", "c\n")
    for name in ("ignored/x", "ignored/sub/excepted", "ignored/sub/other"):
        os.makedirs(os.path.dirname(os.path.join(ctx, name)), exist_ok=True)
        _write(ctx, name, name + "\n")
    _write(ctx, ".dockerignore", "*.log\n!important.log\ncache\nignored\n!ignored/sub/excepted\n")
    r = docker(d, "build", "-f", os.path.join(ctx, "Dockerfile.alt"), "--build-arg", "COLOR=blue",
               "-t", "alt:1", ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    r = docker(d, "run", "--rm", "alt:1")
    assert r.stdout == b"blue\n", r.stderr
    r = docker(d, "run", "--rm", "alt:1", "ls", "/ctx")
    names = r.stdout.decode().split()
    assert "keep.txt" in names and "important.log" in names
    assert "drop.log" not in names and "cache" not in names
    # a '!' pattern reaches into an excluded directory (moby's archiver walks it)
    r = docker(d, "run", "--rm", "alt:1", "find", "/ctx/ignored")
    assert sorted(r.stdout.decode().split()) == ["/ctx/ignored", "/ctx/ignored/sub",
                                                 "/ctx/ignored/sub/excepted"], r.stdout
    # the default applies without --build-arg
    r = docker(d, "build", "-q", "-f", os.path.join(ctx, "Dockerfile.alt"), "-t", "alt:2", ctx)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip().startswith("sha256:")
    assert docker(d, "run", "--rm", "alt:2").stdout == b"red\n"
    # no Dockerfile at all
    r = docker(d, "build", ctx)
    assert r.returncode != 0
    _no_containers(d)
    # intermediate images: only with -a; removed with the image built on them
    r = docker(d, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert sorted(r.stdout.decode().split()) == ["alt:1", "alt:2", "busybox:latest"]
    r = docker(d, "images", "-a", "--format", "{{.Repository}}:{{.Tag}}")
    assert "<none>:<none>" in r.stdout.decode().split()
    busybox_id = _inspect(d, "busybox")["Id"]
    parent = _inspect(d, "alt:1")["Parent"]
    assert parent.startswith("sha256:")
    r = docker(d, "rmi", "-f", parent)
    assert r.returncode != 0 and b"image has dependent child images" in r.stderr
    r = docker(d, "rmi", "alt:1", "alt:2")
    assert r.returncode == 0, r.stderr
    r = docker(d, "images", "-aq", "--no-trunc")
    assert r.stdout.decode().split() == [busybox_id]


def test_build_docker_py(shared_daemon: Daemon, tmp_path: Any) -> None:
    docker_mod = pytest.importorskip("docker")
    ctx = str(tmp_path)
    _write(ctx, "Dockerfile", "FROM busybox\nRUN echo from-docker-py > /f\nCMD [\"cat\", \"/f\"]\n")
    client = docker_mod.DockerClient(base_url=shared_daemon.host, version="auto", timeout=60)
    try:
        # docker-py's default is rm=False, which keeps intermediate containers (as dockerd)
        image, logs = client.images.build(path=ctx, tag="dpy:1", rm=True)
        logs = list(logs)
        assert any("from-docker-py" in (x.get("stream") or "") for x in logs)
        assert "dpy:1" in image.tags
        out = client.containers.run("dpy:1", remove=True)
        assert out == b"from-docker-py\n"
        with pytest.raises(docker_mod.errors.BuildError) as exc:
            _write(ctx, "Dockerfile", "FROM busybox\nRUN exit 7\n")
            # forcerm: the failed step's container goes too (with rm only, it stays: dockerd)
            client.images.build(path=ctx, tag="dpy:2", rm=True, forcerm=True)
        assert "returned a non-zero code: 7" in str(exc.value)
        client.images.remove("dpy:1", force=True)
        client.images.prune()
    finally:
        client.close()
    _no_containers(shared_daemon)


def test_dockyard_cli_build(shared_daemon: Daemon, tmp_path: Any) -> None:
    d = shared_daemon
    ctx = str(tmp_path)
    _write(ctx, "build.Dockerfile", "FROM busybox\nARG X=1\nCOPY a.txt /a.txt\n"
                                    "RUN echo \"x=$X\" >> /a.txt\nCMD [\"cat\", \"/a.txt\"]\n")
    _write(ctx, "a.txt", "a\n")
    _write(ctx, "ignored.txt", "i\n")
    _write(ctx, ".dockerignore", "ignored.txt\n")
    r = d.cli("build", "-t", "ours:1", "-f", "build.Dockerfile", "--build-arg", "X=2", ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.decode()
    assert "Step 1/5 : FROM busybox" in out and "Successfully tagged ours:1" in out
    assert docker(d, "run", "--rm", "ours:1").stdout == b"a\nx=2\n"
    r = d.cli("build", "-t", "ours:1", "-f", "build.Dockerfile", "--build-arg", "X=2", ctx)
    assert r.returncode == 0 and r.stdout.decode().count("Using cache") == 4, r.stdout
    _write(ctx, "build.Dockerfile", "FROM busybox\nRUN exit 3\n")
    r = d.cli("build", "--force-rm", "-f", "build.Dockerfile", ctx)
    assert r.returncode != 0 and b"returned a non-zero code: 3" in r.stderr + r.stdout
    r = d.cli("build", "--no-cache", "-q", "-f", "nope", ctx)
    assert r.returncode != 0 and b"Cannot locate specified Dockerfile" in r.stderr + r.stdout
    _no_containers(d)
    _rmi(d, "ours:1")


def test_build_more_instructions(shared_daemon: Daemon, tmp_path: Any) -> None:
    d = shared_daemon
    ctx = str(tmp_path)
    _write(ctx, "Dockerfile", "FROM busybox\nMAINTAINER someone <s@example.com>\n"
                              "SHELL [\"/bin/sh\", \"-ec\"]\nRUN [\"/bin/sh\", \"-c\", \"echo exec-form > /e\"]\n"
                              "RUN echo shell-form >> /e\n"
                              "HEALTHCHECK --interval=5s --retries=2 CMD test -f /e\n"
                              "ONBUILD RUN echo later\nENTRYPOINT cat /e\n")
    r = docker(d, "build", "--label", "extra=yes", "-t", "more:1", ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    info = _inspect(d, "more:1")
    cfg = info["Config"]
    assert cfg["Labels"] == {"extra": "yes"}
    r = docker(d, "build", "--label", "extra=yes", "-t", "more:1", ctx)
    assert r.returncode == 0 and _inspect(d, "more:1")["Id"] == info["Id"]
    assert info["Author"] == "someone <s@example.com>"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "test -f /e"], "Interval": 5_000_000_000,
                                  "Retries": 2}
    assert cfg["OnBuild"] == ["RUN echo later"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-ec", "cat /e"]
    assert cfg["Cmd"] is None  # ENTRYPOINT drops the base image's CMD
    assert docker(d, "run", "--rm", "more:1").stdout == b"exec-form\nshell-form\n"

    # FROM scratch: only the layers the Dockerfile makes
    _write(ctx, "Dockerfile", "FROM scratch\nCOPY f /f\nCMD [\"/f\"]\n")
    _write(ctx, "f", "x\n")
    r = docker(d, "build", "-t", "scratchy:1", ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    info = _inspect(d, "scratchy:1")
    assert len(info["RootFS"]["Layers"]) == 1 and info["Config"]["Cmd"] == ["/f"]
    _no_containers(d)
    _rmi(d, "more:1", "scratchy:1")


def test_build_dockerfile_from_stdin_and_compressed_context(shared_daemon: Daemon, tmp_path: Any) -> None:
    """``docker build -f-`` sends a context tar with no end-of-archive blocks (accepted, as
    dockerd does); a gzip-compressed context works too; a context with a hard link to a host
    file is a 400 that names the link, not the file's content."""
    d = shared_daemon
    ctx = str(tmp_path / "ctx")
    os.makedirs(ctx)
    _write(ctx, "hello.txt", "from stdin\n")
    r = docker(d, "build", "-f-", "-t", "stdin:1", ctx, input=b"FROM busybox\nCOPY hello.txt /\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert docker(d, "run", "--rm", "stdin:1", "cat", "/hello.txt").stdout == b"from stdin\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY z.txt /\n"), ("z.txt", b"zipped\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    status, body = d.api.post("/build?t=gz:1", raw=buf.getvalue(),
                              headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert status == 200 and not any("error" in m for m in body), body
    secret = tmp_path / "host-secret"
    secret.write_text("do not print me\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("Dockerfile")
        ti.type, ti.linkname = tarfile.LNKTYPE, str(secret)
        tf.addfile(ti)
    status, body = d.api.post("/build?t=bad:1", raw=buf.getvalue(),
                              headers={"Content-Type": "application/x-tar"}, timeout=120)
    assert status == 400 and "hard link" in body["message"], body
    assert "do not print me" not in json.dumps(body)
    _no_containers(d)
    _rmi(d, "stdin:1", "gz:1")
