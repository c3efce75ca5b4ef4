"""Image builds from a Dockerfile, with a cold and a warm cache, through each engine's CLI: the
classic builder for dockyardd and dockerd (``DOCKER_BUILDKIT=0 docker build``, what both serve
as ``POST /build``), buildah for podman (``podman build --layers``).

The context: ``FROM busybox``, two RUN steps around a COPY of N small files, WORKDIR, ENV, CMD.
*cold*: ``build --no-cache`` (every step runs); *warm*: the same build again with the cache a
first build filled (every step is a cache hit). Built images are removed at the end.
RUN steps get ``--network none`` (both builders apply it).
"""
from __future__ import annotations

import os
from typing import Any

from .. import host
from ..subjects.base import CAP_IMAGES, Subject
from .base import Metric, Scenario

DOCKERFILE = """FROM busybox:latest
RUN mkdir -p /app && echo built > /app/stamp
COPY files/ /app/files/
RUN find /app -type f | wc -l > /app/count
WORKDIR /app
ENV MODE=bench
CMD ["sh"]
"""


def make_context(path: str, files: int, size: int) -> None:
    os.makedirs(os.path.join(path, "files"))
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    for i in range(files):
        with open(os.path.join(path, "files", f"f{i:04d}"), "wb") as f:
            f.write(os.urandom(size))


class Build(Scenario):
    """``build`` of a small Dockerfile (two RUN steps around a COPY of 100 files, WORKDIR, ENV,
    CMD) through each engine's CLI: the classic builder for dockyardd and dockerd
    (``DOCKER_BUILDKIT=0``), buildah for podman (``--layers``). Cold: ``--no-cache``; warm: the
    same build again, every step a cache hit."""

    name = "build"
    title = "build from a Dockerfile, cold and warm cache"
    needs = frozenset({CAP_IMAGES})
    needs_reason = "cannot build images"
    metrics = (Metric("build-cold", "build --no-cache", "s"),
               Metric("build-warm", "rebuild, every step cached", "s"))
    full = {"files": 100, "file_kb": 10}
    runs_full, runs_quick = 3, 1

    def __init__(self) -> None:
        self.context = ""

    def setup(self, ctx: Any, subjects: list[Subject]) -> None:
        self.context = os.path.join(ctx.work, "build-context")
        make_context(self.context, ctx.params["files"], ctx.params["file_kb"] * 1024)

    def argv(self, subject: Subject, tag: str, *opts: str) -> list[str]:
        return subject.client.argv("build", "--network", "none", *subject.client.build_opts,
                                   *opts, "-t", tag, self.context)

    def prepare(self, ctx: Any, subject: Subject) -> None:
        host.run(self.argv(subject, "dybench-build:warm"), env=subject.env)  # fills the cache

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        # the cold image stays until finish: dockyard's build cache then answers from the newest
        # chain, and removing it would make the warm build miss (dockerd finds the older chain)
        cold = host.timed(self.argv(subject, "dybench-build:cold", "--no-cache"), subject.env)
        warm = host.timed(self.argv(subject, "dybench-build:warm"), subject.env)
        return {"build-cold": cold, "build-warm": warm}

    def finish(self, ctx: Any, subject: Subject) -> None:
        subject.cli("rmi", "-f", "dybench-build:warm", "dybench-build:cold", check=False)
