"""The client suites the harness knows: where their tests are, which Hub images they use, what is
left out and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from seed import SeedImage


def _busybox(tag: str) -> SeedImage:
    return SeedImage("library/busybox", tag, ["sh"], {"stand-in-for": f"busybox:{tag}"})


def _alpine(tag: str) -> SeedImage:
    return SeedImage("library/alpine", tag, ["/bin/sh"], {"stand-in-for": f"alpine:{tag}"})


@dataclass
class Suite:
    name: str
    tests: list[str]                 # pytest paths, relative to the checkout
    images: list[SeedImage]          # pushed to the sandbox's registry (the daemons' Hub mirror)
    preload: list[str]               # pulled through each daemon before the tests
    deselect: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


DOCKER_PY = Suite(
    "docker-py",
    ["tests/integration"],
    [_busybox("latest"), _alpine("3.10"), _alpine("latest"),
     SeedImage("library/hello-world", "latest", ["/hello"], {"stand-in-for": "hello-world"},
               hello=True)],
    ["busybox:latest", "alpine:3.10", "alpine:latest"],
    # connects to 192.168.10.2, an address outside this machine
    deselect=["tests/integration/api_client_test.py::ConnectionTimeoutTest::test_timeout"],
)

# docker-compose 1.29.2: its acceptance tests run the installed ``docker-compose`` (Debian's, the
# same release), its integration tests drive the ``compose`` package against the daemon.
COMPOSE = Suite(
    "compose",
    ["tests/acceptance", "tests/integration"],
    [_busybox("latest"), _busybox("1.31.0-uclibc"), _busybox("1.27.2"), _alpine("3.10.1"),
     _alpine("latest")],
    ["busybox:latest", "busybox:1.31.0-uclibc", "busybox:1.27.2", "alpine:3.10.1"],
)

SUITES = {s.name: s for s in (DOCKER_PY, COMPOSE)}
