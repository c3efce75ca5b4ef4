"""Legacy links as dockerd (API 1.45) keeps them: ``--link name:alias`` on the default bridge sets
the link variables and the hosts entry, inspect shows ``/child:/parent/alias``, ``docker rm
--link`` removes one; driven through the docker CLI 28."""
from __future__ import annotations

import json
import os

import pytest

from conftest import Daemon
from test_docker_cli import DOCKER, docker
from test_network import ok

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]


def test_link_variables_hosts_and_removal(shared_daemon: Daemon) -> None:
    d = shared_daemon
    db, web = "db" + os.urandom(3).hex(), "web" + os.urandom(3).hex()
    ok(docker(d, "run", "-d", "--name", db, "-e", "SECRET=s3", "--expose", "5432", "--expose",
              "8000-8001", "--expose", "53/udp", "busybox", "sleep", "300"))
    try:
        ip = ok(docker(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", db)).strip()
        ok(docker(d, "run", "-d", "--name", web, "--link", f"{db}:my-db", "-e", "MY_DB_ENV_SECRET=mine",
                  "busybox", "sleep", "300"))
        env = dict(line.split("=", 1) for line in ok(docker(d, "exec", web, "env")).splitlines())
        assert env["MY_DB_PORT"] == f"tcp://{ip}:5432"  # TCP first, then by number
        assert env["MY_DB_PORT_5432_TCP"] == f"tcp://{ip}:5432"
        assert env["MY_DB_PORT_5432_TCP_ADDR"] == ip and env["MY_DB_PORT_5432_TCP_PORT"] == "5432"
        assert env["MY_DB_PORT_5432_TCP_PROTO"] == "tcp"
        assert env["MY_DB_PORT_53_UDP"] == f"udp://{ip}:53"
        assert env["MY_DB_PORT_8000_TCP_START"] == f"tcp://{ip}:8000"
        assert env["MY_DB_PORT_8000_TCP_PORT_END"] == "8001"
        assert env["MY_DB_NAME"] == f"/{web}/my-db"
        assert env["MY_DB_ENV_SECRET"] == "mine"  # the container's own variable wins
        assert "MY_DB_ENV_PATH" not in env
        assert ok(docker(d, "inspect", "-f", "{{json .HostConfig.Links}}", web)).strip() == \
            json.dumps([f"/{db}:/{web}/my-db"]).replace(" ", "")
        assert f"{ip}\tmy-db {db}" in ok(docker(d, "exec", web, "cat", "/etc/hosts"))
        # docker rm --link: the link goes (hosts entry too), the containers stay
        ok(docker(d, "rm", "--link", f"/{web}/my-db"))
        assert ok(docker(d, "inspect", "-f", "{{json .HostConfig.Links}}", web)).strip() == "null"
        assert "my-db" not in ok(docker(d, "exec", web, "cat", "/etc/hosts"))
        assert ok(docker(d, "inspect", "-f", "{{.State.Running}}", db)).strip() == "true"
        r = docker(d, "rm", "--link", f"/{web}/my-db")
        assert r.returncode != 0 and b"No such container" in r.stderr
        r = docker(d, "rm", "--link", db)
        assert r.returncode != 0 and b"cannot remove the default link name" in r.stderr
    finally:
        docker(d, "rm", "-f", web, db)


def test_link_to_a_stopped_container_fails_at_start(shared_daemon: Daemon) -> None:
    """... and ``dockyard rm --link`` removes the link, not a container."""
    d = shared_daemon
    db, web = "sdb" + os.urandom(3).hex(), "sweb" + os.urandom(3).hex()
    ok(docker(d, "create", "--name", db, "busybox", "sleep", "300"))
    try:
        ok(docker(d, "create", "--name", web, "--link", f"{db}:x", "busybox", "true"))
        r = docker(d, "start", web)
        assert r.returncode != 0 and b"Cannot link to a non running container" in r.stderr
        r = docker(d, "run", "--rm", "--network", "host", "--link", db, "busybox", "true")
        assert r.returncode != 0 and b"conflicting options" in r.stderr
        r = d.cli("rm", "--link", f"/{web}/x")
        assert r.returncode == 0, r.stderr
        assert ok(docker(d, "inspect", "-f", "{{json .HostConfig.Links}}", web)).strip() == "null"
        assert ok(docker(d, "inspect", "-f", "{{.Name}}", db)).strip() == f"/{db}"  # still there
    finally:
        docker(d, "rm", "-f", web, db)
