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
