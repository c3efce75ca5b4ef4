"""Volumes and mounts: -v binds, named and anonymous volumes, --mount, --tmpfs, copy-up, rm -v."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import Daemon

DOCKER = shutil.which("docker")


def cli_ok(d: Daemon, *args: str, input: bytes | None = None) -> bytes:
    r = d.cli(*args, input=input)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_bind_mounts(daemon: Daemon, tmp_path) -> None:
    host = tmp_path / "share"
    host.mkdir()
    (host / "from-host").write_text("hello\n")
    out = cli_ok(daemon, "run", "--rm", "-v", f"{host}:/mnt", "busybox", "sh", "-c",
                 "cat /mnt/from-host; echo back > /mnt/from-box")
    assert out == b"hello\n"
    assert (host / "from-box").read_text() == "back\n"
    r = daemon.cli("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "sh", "-c", "echo x > /mnt/no")
    assert r.returncode != 0 and not (host / "no").exists()
    # -v creates a missing host path, --mount refuses it
    cli_ok(daemon, "run", "--rm", "-v", f"{tmp_path}/made:/m", "busybox", "true")
    assert (tmp_path / "made").is_dir()
    r = daemon.cli("run", "--rm", "--mount", f"type=bind,source={tmp_path}/absent,target=/m", "busybox", "true")
    assert r.returncode != 0 and b"does not exist" in r.stderr
    out = cli_ok(daemon, "run", "--rm", "--mount", f"type=bind,source={host},target=/m,readonly",
                 "busybox", "cat", "/m/from-host")
    assert out == b"hello\n"


def test_named_volume_persists_and_copy_up(daemon: Daemon) -> None:
    cli_ok(daemon, "volume", "create", "--label", "k=v", "data")
    cli_ok(daemon, "run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert cli_ok(daemon, "run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f") == b"kept\n"
    # a new volume mounted over image content starts as a copy of it (Docker's copy-up)
    out = cli_ok(daemon, "run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c", "cat /etc/hostname")
    assert out  # the container's own hostname file is bind-mounted over it
    assert cli_ok(daemon, "run", "--rm", "-v", "etcvol:/x", "busybox", "cat", "/x/passwd").startswith(b"root:")
    assert b"data" in cli_ok(daemon, "volume", "ls", "-q").split()
    assert b'"k": "v"' in cli_ok(daemon, "volume", "inspect", "data")
    # in use: refused; unused: removed
    cli_ok(daemon, "create", "--name", "holder", "-v", "data:/data", "busybox", "true")
    r = daemon.cli("volume", "rm", "data")
    assert r.returncode != 0 and b"in use" in r.stderr
    cli_ok(daemon, "rm", "holder")
    cli_ok(daemon, "volume", "rm", "data", "etcvol")
    assert cli_ok(daemon, "volume", "ls", "-q") == b""


def test_anonymous_volumes_tmpfs_and_rm_v(daemon: Daemon) -> None:
    cli_ok(daemon, "run", "--name", "anon", "-v", "/scratch", "--tmpfs", "/fast:size=1m",
           "busybox", "sh", "-c", "echo a > /scratch/x; grep ' /fast ' /proc/mounts | cut -d' ' -f3")
    out = cli_ok(daemon, "logs", "anon")
    assert out == b"tmpfs\n"
    vols = cli_ok(daemon, "volume", "ls", "-q").split()
    assert len(vols) == 1
    mounts = cli_ok(daemon, "inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Destination}};{{end}}", "anon")
    assert mounts.strip() == b"tmpfs /fast;volume /scratch;"
    cli_ok(daemon, "rm", "-v", "anon")
    assert cli_ok(daemon, "volume", "ls", "-q") == b""
    # --rm takes its anonymous volumes with it; prune removes anonymous leftovers
    cli_ok(daemon, "run", "--rm", "-v", "/tmpvol", "busybox", "true")
    assert cli_ok(daemon, "volume", "ls", "-q") == b""
    cli_ok(daemon, "run", "--name", "left", "-v", "/leftover", "busybox", "true")
    cli_ok(daemon, "rm", "left")
    assert len(cli_ok(daemon, "volume", "ls", "-q").split()) == 1
    assert b"Deleted Volumes" in cli_ok(daemon, "volume", "prune", "-f")
    assert cli_ok(daemon, "volume", "ls", "-q") == b""


def test_bad_mounts_are_400(daemon: Daemon) -> None:
    for body in ({"HostConfig": {"Binds": ["/a:relative"]}}, {"HostConfig": {"Binds": ["/a:/"]}},
                 {"HostConfig": {"Binds": ["/a:/b:bogus"]}},
                 {"HostConfig": {"Mounts": [{"Type": "weird", "Target": "/x"}]}},
                 {"HostConfig": {"Binds": ["bad name!:/x"]}}):
        status, err = daemon.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], **body})
        assert status == 400, (body, err)


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_volumes(daemon: Daemon) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=daemon.host, DOCKER_CONFIG=os.path.join(daemon.root, "docker-config"))

    def docker(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], capture_output=True, env=env, timeout=60)

    assert docker("volume", "create", "dv").returncode == 0
    r = docker("run", "--rm", "-v", "dv:/d", "busybox", "sh", "-c", "echo via-docker > /d/f")
    assert r.returncode == 0, r.stderr
    r = docker("run", "--rm", "--mount", "type=volume,source=dv,target=/d", "busybox", "cat", "/d/f")
    assert r.stdout == b"via-docker\n", r.stderr
    r = docker("volume", "ls", "--format", "{{.Name}}")
    assert r.stdout.split() == [b"dv"]
    assert docker("volume", "rm", "dv").returncode == 0


def test_volumes_from(daemon: Daemon) -> None:
    """--volumes-from name[:ro]: the other container's volumes at the same places."""
    cli_ok(daemon, "run", "--name", "src", "-v", "/data", "busybox", "sh", "-c", "echo hi > /data/f")
    assert cli_ok(daemon, "run", "--rm", "--volumes-from", "src", "busybox", "cat", "/data/f") == b"hi\n"
    r = daemon.cli("run", "--rm", "--volumes-from", "src:ro", "busybox", "sh", "-c", "echo x > /data/g")
    assert r.returncode != 0 and b"Read-only" in r.stderr
    r = daemon.cli("run", "--rm", "--volumes-from", "nosuch", "busybox", "true")
    assert r.returncode != 0 and b"No such container" in r.stderr
    cli_ok(daemon, "rm", "-v", "src")
