"""docker-py (a real client no one here wrote) drives dockyardd unchanged."""
from __future__ import annotations

import docker
import pytest

from conftest import Daemon


@pytest.fixture
def client(shared_daemon: Daemon):
    c = docker.DockerClient(base_url=shared_daemon.host, version="auto", timeout=60)
    yield c
    c.close()


def test_version_auto(client) -> None:
    assert client.version()["ApiVersion"] == "1.45"
    assert client.ping() is True


def test_run_remove_returns_output(client) -> None:
    assert client.containers.run("busybox", "echo hi from docker-py", remove=True) == b"hi from docker-py\n"


def test_run_failure_raises_container_error(client) -> None:
    with pytest.raises(docker.errors.ContainerError) as exc:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 4"], remove=True)
    assert exc.value.exit_status == 4


def test_detached_lifecycle(client) -> None:
    ct = client.containers.run("busybox", ["sh", "-c", "echo ready; sleep 300"], detach=True)
    try:
        ct.reload()
        assert ct.status == "running" and ct.attrs["State"]["Pid"] > 0
        ct.stop(timeout=1)
        assert ct.wait()["StatusCode"] == 137
        assert ct.logs() == b"ready\n"
    finally:
        ct.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(ct.id)


def test_images_and_not_found(client) -> None:
    assert any("busybox:latest" in i.tags for i in client.images.list())
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuchimage:latest")


def test_exec_run_never_loses_output(client) -> None:
    """docker-py reads the 101's headers through a buffered file, then the raw socket: output
    sent in the same read as the headers would vanish. The exec starts only after them, as in
    dockerd (before, about one exec_run in six came back empty or cut)."""
    ct = client.containers.run("busybox", "sleep 300", detach=True)
    try:
        for i in range(60):
            r = ct.exec_run(["sh", "-c", "echo out-$0; echo err-$0 >&2", str(i)])
            assert r.exit_code == 0 and b"out-%d" % i in r.output and b"err-%d" % i in r.output, (i, r)
        r = ct.exec_run(["nosuchcommand"])
        assert r.exit_code == 127 and b"executable file not found" in r.output
    finally:
        ct.remove(force=True)
