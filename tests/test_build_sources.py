"""What builds read besides the local context: ``ADD`` of http(s) URLs (``--checksum``) and git
repositories, remote contexts (a tarball, a git repository, a plain Dockerfile), all served by
an HTTP server on 127.0.0.1 that the test runs; and the local context's finer points
(``<Dockerfile>.dockerignore``, ``COPY --exclude/--parents/--chown``, bind mounts from a stage,
``ADD --unpack=false``, ``# escape=``)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import os
import shutil
import subprocess
import tarfile
import threading
import urllib.parse
from typing import Any, Iterator

import pytest

from conftest import Daemon
from test_build import _no_containers, _write, docker
from test_build_multistage import bd, build_api, ok, registry, stream_error, uid  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(shutil.which("docker") is None or shutil.which("git") is None,
                                reason="the docker CLI and git are needed")


@contextlib.contextmanager
def http_server(root: str) -> Iterator[str]:
    """A static file server on a free loopback port; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def git(cwd: str, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": cwd, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``(base URL, served directory)``: a file, a context tarball, a plain Dockerfile and a
    git repository (the "dumb" HTTP protocol) with a tag and a subdirectory."""
    root = str(tmp_path_factory.mktemp("served"))
    _write(root, "hello.txt", "hello over http\n")
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY in-tar.txt /\n"),
                           ("in-tar.txt", b"from a remote tarball\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    with open(os.path.join(root, "ctx.tar.gz"), "wb") as f:
        f.write(ctx.getvalue())
    _write(root, "just.Dockerfile", "FROM busybox\nRUN echo plain > /plain\n")
    work = os.path.join(root, "work")
    os.makedirs(os.path.join(work, "sub"))
    git(work, "init", "-q", "-b", "main")
    _write(work, "README", "top\n")
    _write(work, "sub/Dockerfile", "FROM busybox\nCOPY data.txt /from-git.txt\n")
    _write(work, "sub/data.txt", "git data v1\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "v1")
    git(work, "tag", "v1")
    _write(work, "sub/data.txt", "git data v2\n")
    git(work, "commit", "-q", "-am", "v2")
    bare = os.path.join(root, "repo.git")
    git(root, "clone", "-q", "--bare", work, bare)
    git(bare, "update-server-info")
    with http_server(root) as url:
        yield url, root


def test_add_url_with_and_without_checksum(bd: Daemon, served: tuple[str, str], tmp_path: Any) -> None:
    url, root = served
    digest = hashlib.sha256(b"hello over http\n").hexdigest()
    tag = f"addurl{uid()}:1"
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nADD {url}/hello.txt /downloads/\n"
        f"ADD --checksum=sha256:{digest} --chmod=644 {url}/hello.txt /checked.txt\n")
    out = ok(bd, "build", "-t", tag, str(tmp_path))
    got = ok(bd, "run", "--rm", tag, "sh", "-c", "cat /downloads/hello.txt /checked.txt; "
             "stat -c %a /downloads/hello.txt /checked.txt")
    assert got == "hello over http\nhello over http\n600\n644\n", out
    # the same content again: the step is cached; another content: it is not
    assert ok(bd, "build", "-t", tag, str(tmp_path)).count("Using cache") == 2
    _write(root, "hello.txt", "changed\n")
    try:
        r = docker(bd, "build", "-t", tag, str(tmp_path))
        assert r.returncode != 0 and b"digest mismatch" in r.stdout + r.stderr, r.stdout
        assert b"Using cache" not in r.stdout  # the new content is a new step
    finally:
        _write(root, "hello.txt", "hello over http\n")
    r = docker(bd, "build", str(tmp_path / "nothere"))
    assert r.returncode != 0
    status, body = build_api(bd, {"Dockerfile": f"FROM busybox\nADD {url}/missing.txt /m\n".encode()})
    assert status == 200 and "404" in stream_error(body), body
    status, body = build_api(bd, {"Dockerfile": b"FROM busybox\nADD --checksum=sha256:"
                                  + b"0" * 64 + b" local.txt /x\n", "local.txt": b"x"})
    assert status == 200 and "checksum can't be specified for local sources" in stream_error(body)
    # a downloaded archive stays as it is, unless --unpack=true
    status, body = build_api(bd, {"Dockerfile": (
        f"FROM busybox\nADD {url}/ctx.tar.gz /kept/\nADD --unpack=true {url}/ctx.tar.gz /unpacked/\n"
    ).encode()}, f"t={tag}")
    assert status == 200 and not stream_error(body), body
    assert ok(bd, "run", "--rm", tag, "ls", "/kept", "/unpacked") == \
        "/kept:\nctx.tar.gz\n\n/unpacked:\nDockerfile\nin-tar.txt\n"
    docker(bd, "rmi", tag)


def test_add_git_repository(bd: Daemon, served: tuple[str, str], tmp_path: Any) -> None:
    url, _ = served
    tag = f"addgit{uid()}:1"
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nADD {url}/repo.git#v1:sub /v1/\nADD {url}/repo.git /head/\n"
        f"ADD --keep-git-dir {url}/repo.git#main /withgit/\n")
    ok(bd, "build", "-t", tag, str(tmp_path))
    got = ok(bd, "run", "--rm", tag, "sh", "-c",
             "cat /v1/data.txt /head/sub/data.txt /head/README; test -d /withgit/.git && "
             "test ! -e /head/.git && echo git-dir-kept")
    assert got == "git data v1\ngit data v2\ntop\ngit-dir-kept\n"
    status, body = build_api(bd, {"Dockerfile": b"FROM busybox\nADD git@github.com:x/y.git /y\n"})
    assert status == 200 and "git over SSH is not supported" in stream_error(body)
    docker(bd, "rmi", tag)


def test_remote_contexts(bd: Daemon, served: tuple[str, str]) -> None:
    url, _ = served
    g = uid()
    for remote, dockerfile, check in (
            (f"{url}/ctx.tar.gz", "", ("cat", "/in-tar.txt", "from a remote tarball\n")),
            (f"{url}/repo.git#v1:sub", "", ("cat", "/from-git.txt", "git data v1\n")),
            (f"{url}/just.Dockerfile", "", ("cat", "/plain", "plain\n"))):
        tag = f"remote{g}:{len(check[1])}"
        q = f"remote={urllib.parse.quote(remote)}&t={tag}" + (f"&dockerfile={dockerfile}" if dockerfile else "")
        status, body = bd.api.post("/build?" + q, timeout=600)
        assert status == 200 and not stream_error(body), (remote, body)
        assert ok(bd, "run", "--rm", tag, *check[:2]) == check[2]
        docker(bd, "rmi", tag)
    # the docker CLI and dockyard's own send a URL as the remote context
    r = bd.cli("build", "-t", f"remote{g}:cli", f"{url}/repo.git#main:sub", timeout=600)
    assert r.returncode == 0, r.stderr
    assert ok(bd, "run", "--rm", f"remote{g}:cli", "cat", "/from-git.txt") == "git data v2\n"
    r = docker(bd, "build", "-t", f"remote{g}:docker", f"{url}/ctx.tar.gz", timeout=600)
    assert r.returncode == 0, r.stderr
    status, body = bd.api.post("/build?remote=" + urllib.parse.quote(f"{url}/nothere.tar"))
    assert status >= 400 or "404" in stream_error(body), body
    docker(bd, "rmi", f"remote{g}:cli", f"remote{g}:docker")


def test_context_finer_points(bd: Daemon, tmp_path: Any) -> None:
    ctx = str(tmp_path)
    g = uid()
    os.makedirs(os.path.join(ctx, "app", "src", "deep"))
    os.makedirs(os.path.join(ctx, "build"))
    for name, text in (("app/src/a.go", "a"), ("app/src/a_test.go", "t"), ("app/src/deep/b.go", "b"),
                       ("app/notes.md", "n"), ("skipped-by-f.txt", "s"), ("kept.txt", "k")):
        _write(ctx, name, text + "\n")
    _write(ctx, "build/app.Dockerfile", """\
# escape=`
FROM busybox AS tools
RUN mkdir -p /opt/tool && echo tool > /opt/tool/version && `
    echo appuser:x:4321:4321::/:/bin/sh >> /etc/passwd && echo appuser:x:4321: >> /etc/group
FROM tools
COPY --exclude=*_test.go --exclude=**/deep app/src /src/
COPY --parents app/./src/deep/b.go /parents/
COPY --chown=appuser:appuser kept.txt /owned.txt
RUN --mount=type=bind,from=tools,source=/opt/tool,target=/mnt/tool cp /mnt/tool/version /tool-version
COPY . /ctx/
""")
    # the Dockerfile's own ignore file wins over .dockerignore
    _write(ctx, "build/app.Dockerfile.dockerignore", "skipped-by-f.txt\n")
    _write(ctx, ".dockerignore", "kept.txt\n")
    tag = f"fine{g}:1"
    r = bd.cli("build", "-f", os.path.join(ctx, "build/app.Dockerfile"), "-t", tag, ctx, timeout=600)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    got = ok(bd, "run", "--rm", tag, "sh", "-c",
             "ls /src; ls /parents/src/deep; stat -c '%U %u' /owned.txt; cat /tool-version; "
             "ls /ctx | tr '\\n' ' '; echo; ls -d /mnt/tool 2>&1 | grep -c 'No such'")
    lines = got.splitlines()
    assert lines[0] == "a.go" and lines[1] == "b.go" and lines[2] == "appuser 4321", got
    assert lines[3] == "tool" and "skipped-by-f.txt" not in lines[4] and "kept.txt" in lines[4]
    assert lines[5] == "1"  # the bind mount's mount point did not stay in the image
    # a change in a bind mount's source is a cache miss for its RUN
    docker(bd, "rmi", tag)

    # ADD --unpack=false keeps an archive as it is; a local archive is unpacked by default
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        ti = tarfile.TarInfo("inside.txt")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"in\n"))
    status, body = build_api(bd, {"Dockerfile": b"FROM busybox\nADD a.tar /unpacked/\n"
                                                b"ADD --unpack=false a.tar /kept/\n",
                                  "a.tar": tar.getvalue()}, f"t=unpack{g}:1")
    assert status == 200 and not stream_error(body), body
    assert ok(bd, "run", "--rm", f"unpack{g}:1", "ls", "/unpacked", "/kept") == \
        "/kept:\na.tar\n\n/unpacked:\ninside.txt\n"
    for text, words in ((b"FROM busybox\nRUN --network=host true\n", "network.host entitlement"),
                        (b"FROM busybox\nRUN --security=insecure true\n", "security.insecure"),
                        (b"FROM busybox\nCOPY --chown=nobody-here a /a\n", "no such user")):
        status, body = build_api(bd, {"Dockerfile": text, "a": b"a"})
        assert status == 200 and words in stream_error(body), (text, body)
    _no_containers(bd)
    docker(bd, "rmi", f"unpack{g}:1")


def test_bind_mount_source_content_is_in_the_cache_key(bd: Daemon, tmp_path: Any) -> None:
    ctx = str(tmp_path)
    _write(ctx, "Dockerfile", "FROM busybox\nRUN --mount=type=bind,source=in,target=/in cat /in/v > /v\n")
    os.makedirs(os.path.join(ctx, "in"))
    _write(ctx, "in/v", "one\n")
    tag = f"bindkey{uid()}:1"
    ok(bd, "build", "-t", tag, ctx)
    assert ok(bd, "build", "-t", tag, ctx).count("Using cache") == 1
    _write(ctx, "in/v", "two\n")
    assert "Using cache" not in ok(bd, "build", "-t", tag, ctx)
    assert ok(bd, "run", "--rm", tag, "cat", "/v") == "two\n"
    docker(bd, "rmi", tag)
