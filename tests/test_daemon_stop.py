"""SIGTERM stops dockyardd within seconds whatever it is doing; a second SIGTERM at once.

The long operations are real: a pull whose layer a loopback registry (a small aiohttp server in
a thread, Distribution API paths) sends a few KB at a time — the daemon's worker threads are in
the middle of the download — and a build whose RUN step is ``sleep 100``. After each stop the
daemon restarts, lists no partial image and runs its images.
"""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
from typing import Iterator

import pytest
from aiohttp import web

from conftest import DOCKYARD, Daemon, running_daemon, serve_app

#: generous: the daemon's own deadline is 4 s
STOP_BOUND = 10.0


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class SlowRegistry:
    """Serves one image, ``slow/img:latest``, whose 8 MB layer trickles out 16 KB at a time."""

    def __init__(self) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            data = os.urandom(8 << 20)
            ti = tarfile.TarInfo("big")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        plain = buf.getvalue()
        self.layer = gzip.compress(plain, compresslevel=1, mtime=0)
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                                  "rootfs": {"type": "layers", "diff_ids": [_sha(plain)]}}).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(self.config), "digest": _sha(self.config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(self.layer), "digest": _sha(self.layer)}]}).encode()
        self.serving = threading.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "":
            return web.json_response({})
        if tail.endswith("/manifests/latest") or tail.endswith("/manifests/" + _sha(self.manifest)):
            headers = {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
                       "Docker-Content-Digest": _sha(self.manifest)}
            if request.method == "HEAD":
                return web.Response(headers={**headers, "Content-Length": str(len(self.manifest))})
            return web.Response(body=self.manifest, headers=headers)
        if tail.endswith(_sha(self.config)):
            return web.Response(body=self.config)
        if tail.endswith(_sha(self.layer)):
            resp = web.StreamResponse(headers={"Content-Length": str(len(self.layer))})
            await resp.prepare(request)
            self.serving.set()
            for i in range(0, len(self.layer), 16384):
                await resp.write(self.layer[i:i + 16384])
                await asyncio.sleep(0.2)
            return resp
        return web.Response(status=404)


@pytest.fixture
def slow_registry() -> Iterator[tuple[str, SlowRegistry]]:
    reg = SlowRegistry()
    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", reg.handle)
    with serve_app(app) as addr:
        yield addr, reg


def _terminate(d: Daemon, times: int = 1) -> float:
    """Send SIGTERM ``times`` times; return how long the process took to go."""
    assert d.proc is not None
    t0 = time.monotonic()
    for _ in range(times):
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
    try:
        d.proc.wait(STOP_BOUND)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        d.proc.wait()
        pytest.fail(f"dockyardd still running {STOP_BOUND} s after SIGTERM:\n{d.logs()}")
    took = time.monotonic() - t0
    print(f"stopped {took:.2f} s after SIGTERM")
    d.proc = None
    return took


def _images(d: Daemon) -> list[str]:
    status, imgs = d.api.get("/images/json?all=1")
    assert status == 200
    return sorted(i["Id"] for i in imgs)


def _check_restart(d: Daemon, before: list[str], pidfile: str) -> None:
    assert not os.path.exists(pidfile), "the pidfile outlived the daemon"
    assert not os.path.exists(d.sock), "the socket outlived the daemon"
    d.start()
    assert _images(d) == before, "a partial image is listed"
    out = d.cli("run", "--rm", "--network", "none", "busybox", "true")
    assert out.returncode == 0, out.stderr


def _start_with_pidfile(d: Daemon) -> str:
    pidfile = os.path.join(d.root, "dockyardd.pid")
    d.stop()
    d.extra_args += ["--pidfile", pidfile, "--insecure-registry", "127.0.0.1"]
    d.start()
    return pidfile


def _terminate_during_pull(busybox_tar: str, addr: str, reg: SlowRegistry, times: int) -> str:
    """SIGTERM (``times`` times) a daemon whose worker threads are downloading a layer;
    restart it; return its log of the stop."""
    with running_daemon(busybox_tar) as d:
        pidfile = _start_with_pidfile(d)
        before = _images(d)
        puller = subprocess.Popen([DOCKYARD, "-H", d.host, "pull", f"{addr}/slow/img:latest"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert reg.serving.wait(60), "the pull never reached the layer download"
            time.sleep(0.5)
            _terminate(d, times)
        finally:
            puller.kill()
            puller.wait()
        logs = d.logs()
        _check_restart(d, before, pidfile)
        return logs


def test_sigterm_during_a_pull_stops_within_seconds(busybox_tar: str, slow_registry) -> None:
    logs = _terminate_during_pull(busybox_tar, *slow_registry, times=1)
    assert "SIGTERM received: shutting down" in logs


def test_second_sigterm_exits_at_once(busybox_tar: str, slow_registry) -> None:
    logs = _terminate_during_pull(busybox_tar, *slow_registry, times=2)
    assert "received again: exiting now" in logs


def test_sigterm_during_a_build_stops_within_seconds(busybox_tar: str, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo started; sleep 100\n")
    with running_daemon(busybox_tar) as d:
        pidfile = _start_with_pidfile(d)
        before = _images(d)
        builder = subprocess.Popen([DOCKYARD, "-H", d.host, "build", "-t", "never:1", str(tmp_path)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert builder.stdout is not None
            for line in builder.stdout:
                if b"started" in line:
                    break
            else:
                pytest.fail("the build never started its RUN step")
            _terminate(d)
        finally:
            builder.kill()
            builder.wait()
        _check_restart(d, before, pidfile)
