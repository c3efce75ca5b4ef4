"""The registry-backend conformance suite over the storing backends: the OCI layout and the
registry server's filesystem store (on disk), and the distribution client against Debian's
docker-registry on a loopback port."""
from __future__ import annotations

from typing import Iterator

import pytest

from dockyard.hookspecs.conformance.registry import registry_suite
from dockyard.plugins.registries.distribution import DistributionBackend
from dockyard.plugins.registries.filesystem import FilesystemBackend
from dockyard.plugins.registries.ocilayout import OciLayoutBackend

from test_registry import docker_registry

TestOciLayout = registry_suite(lambda home: OciLayoutBackend(home, {}))
TestFilesystem = registry_suite(lambda home: FilesystemBackend(home, {}))

_registry: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _live_registry() -> Iterator[None]:
    with docker_registry() as host:
        _registry.append(host)
        yield
        _registry.clear()


TestDistribution = registry_suite(lambda home: DistributionBackend(_registry[0], {}), repo="conf/app")
TestDistributionChunked = registry_suite(
    lambda home: DistributionBackend(_registry[0], {"chunk_size": 4096}), repo="conf/chunked")


def test_every_backend_declares_a_transport() -> None:
    from dockyard.core.plugins import DriverRegistry
    reg = DriverRegistry("registry")
    assert set(reg.names()) >= {"distribution", "oci-layout", "docker-archive", "filesystem"}
    transports = [reg.get_class(n).transport for n in reg.names()]
    assert all(transports) and len(set(transports)) == len(transports)
