"""docker-compose (Debian's 1.29, on docker-py) drives dockyardd unchanged: a two-service project
with a user network, a named volume and a loopback port, through its whole life."""
from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import Daemon, running_daemon

COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose not installed")

PROJECT_FILE = """\
version: "3.8"
services:
  web:
    image: busybox:latest
    init: true  # tini as pid 1 passes SIGTERM on: stop, recreate and down do not wait 10 s
    command: sh -c 'mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 80 -h /www'
    ports:
      - "127.0.0.1:{port}:80"
    volumes:
      - data:/data
    environment:
      GREETING: {greeting}
    networks: [front]
  client:
    image: busybox:latest
    init: true
    command: sh -c 'until wget -q -O - http://web/; do sleep 0.2; done; sleep 300'
    depends_on: [web]
    networks: [front]
volumes:
  data: {{}}
networks:
  front: {{}}
"""


@pytest.fixture(scope="module")
def cd(busybox_tar: str):
    with running_daemon(busybox_tar) as d:
        yield d


def compose(d: Daemon, project: str, *args: str, timeout: float = 120, cli: bool = False) -> str:
    """``cli``: ``run``/``exec`` go through the docker CLI, compose's default."""
    env = {**os.environ, "DOCKER_HOST": d.host, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
    if cli:
        del env["COMPOSE_INTERACTIVE_NO_CLI"]
    r = subprocess.run([COMPOSE, "--ansi", "never", *args], cwd=project, env=env,
                       capture_output=True, timeout=timeout, text=True)
    assert r.returncode == 0, (args, r.stdout, r.stderr, d.logs()[-2000:])
    return r.stdout + r.stderr


def compose_out(d: Daemon, project: str, *args: str) -> str:
    """Only what the command itself printed (its progress lines go to stderr)."""
    env = {**os.environ, "DOCKER_HOST": d.host, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
    r = subprocess.run([COMPOSE, "--ansi", "never", *args], cwd=project, env=env,
                       capture_output=True, timeout=120, text=True)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compose_project_lifecycle(cd: Daemon, tmp_path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    port = _free_port()
    (project / "docker-compose.yml").write_text(PROJECT_FILE.format(port=port, greeting="hi"))
    try:
        out = compose(cd, str(project), "up", "-d")
        assert "Creating shop_web_1" in out and "Creating shop_client_1" in out
        # the client reached the web service by name over the project network
        deadline_out = ""
        for _ in range(100):
            deadline_out = compose(cd, str(project), "logs", "--no-color", "client")
            if "hello-from-web" in deadline_out:
                break
            subprocess.run(["sleep", "0.1"])
        assert "hello-from-web" in deadline_out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.read() == b"hello-from-web\n"
        assert compose_out(cd, str(project), "exec", "-T", "web", "sh", "-c", "echo $GREETING") == "hi\n"
        # a second up changes nothing (network, volume and containers match the file)
        out = compose(cd, str(project), "up", "-d")
        assert "shop_web_1 is up-to-date" in out and "needs to be recreated" not in out
        # one-off run, scale, and a changed service recreated with its volume kept
        # compose's default `run` is the docker CLI's `start --attach`, which attaches before it
        # starts: the output is all there. (With COMPOSE_INTERACTIVE_NO_CLI, dockerpty attaches
        # only after the start, logs=0, and starts again if the container has stopped by then:
        # output made in between is lost; dockerd does not replay it either with logs=0.)
        assert compose(cd, str(project), "run", "--rm", "-T", "client", "echo", "ran-once",
                       cli=True).count("ran-once") == 1
        compose(cd, str(project), "exec", "-T", "web", "sh", "-c", "echo kept > /data/f")
        compose(cd, str(project), "up", "-d", "--scale", "client=2")
        ps = compose(cd, str(project), "ps")
        assert "shop_client_2" in ps and ps.count(" Up ") == 3, ps
        (project / "docker-compose.yml").write_text(PROJECT_FILE.format(port=port, greeting="hello"))
        out = compose(cd, str(project), "up", "-d", "--scale", "client=2")
        assert "Recreating shop_web_1" in out
        assert compose_out(cd, str(project), "exec", "-T", "web", "sh", "-c",
                           "echo $GREETING; cat /data/f").split() == ["hello", "kept"]
        compose(cd, str(project), "stop")
        compose(cd, str(project), "start")
        assert "httpd" in compose(cd, str(project), "top", "web")
    finally:
        compose(cd, str(project), "down", "-v", "--remove-orphans")
    # nothing of the project is left
    _, containers = cd.api.get("/containers/json?all=1")
    _, volumes = cd.api.get("/volumes")
    _, networks = cd.api.get("/networks")
    assert containers == [] and volumes["Volumes"] in ([], None)
    assert {n["Name"] for n in networks} == {"bridge", "host", "none"}


def test_compose_events_human_readable(cd: Daemon, tmp_path) -> None:
    """compose 1.29's ``events`` (compose's own test_events_human_readable): the project's
    container events only, each with a microsecond timestamp (from ``timeNano``), the action, the
    id and the attributes that are not compose's labels."""
    project = tmp_path / "evproj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        "services:\n  simple:\n    image: busybox:latest\n    command: top\n"
        "  another:\n    image: busybox:latest\n    command: top\n")
    env = {**os.environ, "DOCKER_HOST": cd.host, "COMPOSE_PROJECT_NAME": "evproj"}
    events = subprocess.Popen([COMPOSE, "events"], cwd=project, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        # compose's events is listening once the daemon counts it as a listener
        for _ in range(100):
            if cd.api.get("/info")[1]["NEventsListener"] > 0:
                break
            time.sleep(0.1)
        compose(cd, str(project), "up", "-d", "simple")
        cid = compose_out(cd, str(project), "ps", "-q").strip()
        time.sleep(1)
    finally:
        events.send_signal(signal.SIGINT)
        out, err = events.communicate(timeout=30)
        compose(cd, str(project), "down", "-t", "0")
    lines = out.rstrip().split("\n")
    assert len(lines) == 2, (out, err)
    for line, action in zip(lines, ("create", "start")):
        day, clock, rest = line.split(" ", 2)
        datetime.datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S.%f")
        assert rest == f"container {action} {cid} (image=busybox:latest, name=evproj_simple_1)"
