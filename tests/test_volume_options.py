"""The local volume driver's options (``type``/``device``/``o``), as dockerd's: a tmpfs with a
size, a bind of a host directory, an ext4 image on a loop device the test attaches; mounted when
the first container using the volume starts, unmounted when the last one stops (also across a
daemon restart); bad options refused at create, a failed mount a clear error at start; compose
``driver_opts``; ``--mount volume-opt=``."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from typing import Iterator

import pytest

from conftest import Daemon, running_daemon
from test_docker_cli import DOCKER, docker
from test_network import ok

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def data_dir(d: Daemon, name: str) -> str:
    return json.loads(ok(docker(d, "volume", "inspect", name)))[0]["Mountpoint"]


@pytest.fixture(scope="module")
def vd(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as d:
        yield d


def test_tmpfs_volume_with_a_size_is_mounted_while_used(vd: Daemon) -> None:
    name = "tv" + os.urandom(3).hex()
    ok(docker(vd, "volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs",
              "-o", "o=size=10m,uid=1000", name))
    c1, c2 = "t1" + name, "t2" + name
    try:
        shown = json.loads(ok(docker(vd, "volume", "inspect", name)))[0]
        assert shown["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"}
        path = shown["Mountpoint"]
        assert not mounted(path)  # mounted at first use
        out = ok(docker(vd, "run", "--rm", "-v", f"{name}:/data", "busybox", "sh", "-c",
                        "df -k /data | tail -1; stat -c %u /data"))
        size, uid = out.split()[1], out.split()[-1]
        assert size == "10240" and uid == "1000"
        assert not mounted(path)  # unmounted at last
        # two users: the first to stop leaves it mounted, the last unmounts it
        ok(docker(vd, "run", "-d", "--name", c1, "-v", f"{name}:/data", "busybox", "sh", "-c",
                  "echo shared > /data/f; sleep 300"))
        ok(docker(vd, "run", "-d", "--name", c2, "--mount", f"type=volume,src={name},dst=/d",
                  "busybox", "sleep", "300"))
        assert mounted(path)
        assert ok(docker(vd, "exec", c2, "cat", "/d/f")) == "shared\n"
        ok(docker(vd, "rm", "-f", c1))
        assert mounted(path) and ok(docker(vd, "exec", c2, "cat", "/d/f")) == "shared\n"
        ok(docker(vd, "stop", "-t", "1", c2))
        assert not mounted(path)
        # a volume in use is not removed; an unused one is, with nothing left mounted
        r = docker(vd, "volume", "rm", name)
        assert r.returncode != 0 and b"in use" in r.stderr
        ok(docker(vd, "rm", c2))
        ok(docker(vd, "volume", "rm", name))
        assert not os.path.exists(path)
    finally:
        docker(vd, "rm", "-f", c1, c2)
        docker(vd, "volume", "rm", "-f", name)


def test_bind_volume_of_a_host_directory(vd: Daemon, tmp_path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host").write_text("hi\n")
    name = "bv" + os.urandom(3).hex()
    ok(docker(vd, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={host}", name))
    out = ok(docker(vd, "run", "--rm", "-v", f"{name}:/m", "busybox", "sh", "-c",
                    "cat /m/from-host; echo back > /m/from-box"))
    assert out == "hi\n" and (host / "from-box").read_text() == "back\n"
    # read-only bind (o=bind,ro)
    ro = "ro" + name
    ok(docker(vd, "volume", "create", "-o", "type=none", "-o", "o=bind,ro", "-o", f"device={host}", ro))
    r = docker(vd, "run", "--rm", "-v", f"{ro}:/m", "busybox", "sh", "-c", "echo x > /m/no")
    assert r.returncode != 0 and not (host / "no").exists()
    # removing the volume never removes the host's files
    ok(docker(vd, "volume", "rm", name, ro))
    assert (host / "from-host").read_text() == "hi\n" and (host / "from-box").exists()


@contextlib.contextmanager
def loop_ext4(tmp_path) -> Iterator[str]:
    """An ext4 image on a loop device (detached afterwards)."""
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None,
                    reason="needs e2fsprogs and losetup")
def test_ext4_image_on_a_loop_device(vd: Daemon, tmp_path) -> None:
    name = "ev" + os.urandom(3).hex()
    with loop_ext4(tmp_path) as dev:
        ok(docker(vd, "volume", "create", "-o", "type=ext4", "-o", f"device={dev}", "-o", "o=noatime", name))
        try:
            out = ok(docker(vd, "run", "--rm", "-v", f"{name}:/disk", "busybox", "sh", "-c",
                            "grep ' /disk ' /proc/mounts; echo kept > /disk/f"))
            assert out.split()[:3] == [dev, "/disk", "ext4"] and "noatime" in out
            assert not mounted(data_dir(vd, name))
            # the data lives on the device: mounted again by the next user
            assert ok(docker(vd, "run", "--rm", "-v", f"{name}:/disk", "busybox", "cat", "/disk/f")) == "kept\n"
        finally:
            docker(vd, "volume", "rm", "-f", name)


def test_bad_options_are_refused_and_a_failed_mount_is_a_start_error(vd: Daemon, tmp_path) -> None:
    for args, words in ((["-o", "foo=bar"], b'invalid option: \\"foo\\"'),
                        (["-o", "type=tmpfs"], b'missing required option: \\"device\\"'),
                        (["-o", "o=size=1m", "-o", "type=tmpfs"], b"missing required option"),
                        (["-o", "size=10m"], b"quota size requested but no quota support")):
        r = docker(vd, "volume", "create", *args, "bad" + os.urandom(3).hex())
        assert r.returncode != 0 and words in r.stderr.replace(b'"', b'\\"').replace(b'\\\\"', b'\\"'), \
            (args, r.stderr)
    name = "fv" + os.urandom(3).hex()
    ok(docker(vd, "volume", "create", "-o", "type=ext4", "-o", f"device={tmp_path}/no-such-device", name))
    try:
        # a later create of the same name with other options is refused, not silently a new volume
        r = docker(vd, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", name)
        assert r.returncode != 0 and b"already exists with other options" in r.stderr
        cid = ok(docker(vd, "create", "-v", f"{name}:/x", "busybox", "true")).strip()
        r = docker(vd, "start", cid)
        assert r.returncode != 0 and b"failed to mount local volume" in r.stderr, r.stderr
        assert ok(docker(vd, "inspect", "-f", "{{.State.Running}}", cid)).strip() == "false"
        assert not mounted(data_dir(vd, name))
        ok(docker(vd, "rm", cid))
    finally:
        docker(vd, "volume", "rm", "-f", name)


def test_mount_volume_opt_creates_a_volume_with_options(vd: Daemon) -> None:
    name = "mo" + os.urandom(3).hex()
    out = ok(docker(vd, "run", "--rm", "--mount",
                    f"type=volume,src={name},dst=/v,volume-driver=local,volume-opt=type=tmpfs,"
                    f"volume-opt=device=tmpfs,\"volume-opt=o=size=2m\"",
                    "busybox", "sh", "-c", "df -k /v | tail -1"))
    try:
        assert out.split()[1] == "2048"
        assert json.loads(ok(docker(vd, "volume", "inspect", name)))[0]["Options"]["o"] == "size=2m"
    finally:
        docker(vd, "volume", "rm", "-f", name)


def test_mounts_survive_a_daemon_restart(busybox_tar: str) -> None:
    """Live restore: a running container keeps its mounted volume and the count; its stop
    after the restart unmounts it."""
    with running_daemon(busybox_tar) as d:
        ok(docker(d, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "rv"))
        ok(docker(d, "run", "-d", "--name", "keeper", "-v", "rv:/data", "busybox", "sh", "-c",
                  "echo alive > /data/f; sleep 300"))
        path = data_dir(d, "rv")
        assert mounted(path)
        d.stop()
        d.start()
        assert mounted(path)
        assert ok(docker(d, "exec", "keeper", "cat", "/data/f")) == "alive\n"
        ok(docker(d, "stop", "-t", "1", "keeper"))
        assert not mounted(path)


COMPOSE_FILE = """\
version: "3.8"
services:
  app:
    image: busybox:latest
    command: sleep 300
    init: true
    volumes: [cache:/cache]
volumes:
  cache:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs, o: "size=3m"}
"""


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_driver_opts(vd: Daemon, tmp_path) -> None:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**os.environ, "DOCKER_HOST": vd.host, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
    project = "vo" + os.urandom(3).hex()

    def compose(*args: str) -> str:
        r = subprocess.run(["docker-compose", "--ansi", "never", "-p", project, *args], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout
    try:
        compose("up", "-d")
        out = ok(docker(vd, "exec", f"{project}_app_1", "sh", "-c", "df -k /cache | tail -1"))
        assert out.split()[1] == "3072", out
        vol = json.loads(ok(docker(vd, "volume", "inspect", f"{project}_cache")))[0]
        assert vol["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=3m"}
    finally:
        compose("down", "-v")
