"""The client suites the harness knows: where their tests are, which Hub images they use, what is
left out and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from seed import SeedImage


# The busybox image's own users (compose execs as ``operator``), over dockyard's smaller list.
BUSYBOX_PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
BUSYBOX_GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
"""


def _busybox(tag: str) -> SeedImage:
    files = {"etc": (0o755, None), "etc/passwd": (0o644, BUSYBOX_PASSWD.encode()),
             "etc/group": (0o644, BUSYBOX_GROUP.encode())}
    return SeedImage("library/busybox", tag, ["sh"], {"stand-in-for": f"busybox:{tag}"}, files)


# What tests expect of alpine beyond busybox: its users (docker-py execs as ``postgres``) and
# directories (``/var/opt``).
ALPINE_PASSWD = """root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
mail:x:8:12:mail:/var/spool/mail:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
postgres:x:70:70::/var/lib/postgresql:/bin/sh
guest:x:405:100:guest:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
"""
ALPINE_GROUP = """root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
sys:x:3:root,bin,adm
adm:x:4:root,adm,daemon
tty:x:5:
disk:x:6:root,adm
lp:x:7:lp
mail:x:12:mail
wheel:x:10:root
postgres:x:70:
users:x:100:games
nogroup:x:65533:
nobody:x:65534:
"""


def _alpine(tag: str) -> SeedImage:
    files = {"etc": (0o755, None), "etc/passwd": (0o644, ALPINE_PASSWD.encode()),
             "etc/group": (0o644, ALPINE_GROUP.encode()),
             "etc/alpine-release": (0o644, f"{tag}\n".encode()),
             "var": (0o755, None), "var/opt": (0o755, None), "var/lib": (0o755, None),
             "var/lib/postgresql": (0o755, None)}
    return SeedImage("library/alpine", tag, ["/bin/sh"], {"stand-in-for": f"alpine:{tag}"}, files)


HELLO = (b"#!/bin/sh\necho\necho 'Hello from Docker!'\n"
         b"echo 'This message shows that your installation appears to be working correctly.'\n")


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
               {"hello": (0o755, HELLO)})],
    ["busybox:latest", "alpine:3.10", "alpine:latest"],
    # connects to 192.168.10.2, an address outside this machine
    deselect=["tests/integration/api_client_test.py::ConnectionTimeoutTest::test_timeout"],
)

# docker-compose 1.29.2's acceptance tests: they run the installed ``docker-compose`` (Debian's,
# the same release). Its tests/integration (the ``compose`` package driven directly) can be added
# with --tests.
COMPOSE = Suite(
    "compose",
    ["tests/acceptance"],
    [_busybox("latest"), _busybox("1.31.0-uclibc"), _busybox("1.27.2"), _alpine("3.10.1"),
     _alpine("3.12"), _alpine("edge"), _alpine("latest")],
    ["busybox:latest", "busybox:1.31.0-uclibc", "busybox:1.27.2", "alpine:3.10.1"],
)

SUITES = {s.name: s for s in (DOCKER_PY, COMPOSE)}
