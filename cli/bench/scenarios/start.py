"""The start path, as the former ``contrib/bench/start.py`` measured it: ``run --rm true``,
``exec true``, starting many idle containers (sequential and with parallel clients), and many
concurrent runs.

Every engine is driven through its own CLI with ``--network`` of the subject (the docker CLI for
dockyardd and dockerd, podman's for podman; one more dockyard subject through dockyard's own CLI
in ``run``), each call a fresh client process timed from spawn to exit as ``hyperfine -N`` does.
"""
from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from .. import host
from ..subjects.base import CAP_RUN, Subject
from .base import Metric, Scenario

WARMUP = 3


def start_many(subject: Subject, n: int, clients: int) -> tuple[float, list[str]]:
    """Start ``n`` idle containers (``run -d ... sleep``) from ``clients`` parallel clients;
    return the wall time per container (seconds) and their ids."""
    def one(_: int) -> str:
        return subject.run_detached(["sleep", "100000"])

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(one, range(n)))
    return (time.perf_counter() - t0) / n, ids


class RunRm(Scenario):
    """``run --rm --network NET busybox true`` through each engine's own CLI (the docker CLI for
    dockyardd and dockerd, podman's for podman, and dockyard's own CLI against the same
    dockyardd), and ``runc run`` / ``crun run`` / ``lxc-execute`` alone on the same rootfs, the
    floor of a start. Each call is a fresh client process timed from spawn to exit, as
    ``hyperfine -N`` does, after 3 warm-up runs."""

    name = "run"
    title = "run --rm busybox true"
    needs = frozenset({CAP_RUN})
    needs_reason = "cannot run a container"
    metrics = (Metric("run-rm-true", "run --rm busybox true", "ms"),)
    runs_full, runs_quick = 30, 5

    def prepare(self, ctx: Any, subject: Subject) -> None:
        for _ in range(WARMUP):
            host.timed(subject.run_argv(["true"]), subject.env)

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        return {"run-rm-true": host.timed(subject.run_argv(["true"]), subject.env) * 1000}


class Exec(Scenario):
    """``exec C true`` in a running idle container, through each engine's CLI, after 3 warm-up
    runs."""

    name = "exec"
    title = "exec true in a running container"
    metrics = (Metric("exec-true", "exec C true", "ms"),)
    runs_full, runs_quick = 30, 5

    def __init__(self) -> None:
        self.containers: dict[str, str] = {}

    def prepare(self, ctx: Any, subject: Subject) -> None:
        cid = self.containers[subject.id] = subject.run_detached(["sleep", "100000"])
        for _ in range(WARMUP):
            host.timed(subject.client.argv("exec", cid, "true"), subject.env)

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        argv = subject.client.argv("exec", self.containers[subject.id], "true")
        return {"exec-true": host.timed(argv, subject.env) * 1000}

    def finish(self, ctx: Any, subject: Subject) -> None:
        cid = self.containers.pop(subject.id, None)
        if cid:
            subject.remove(cid)


class Starts(Scenario):
    """Start many idle containers (``run -d ... sleep``) from one client, then from parallel
    clients; the wall time divided by the number of containers. The containers are removed
    (not timed) after each half."""

    name = "starts"
    title = "start many idle containers, sequential and from parallel clients"
    metrics = (Metric("start-sequential",
                      "start {containers} idle containers, 1 client (per container)", "ms"),
               Metric("start-parallel",
                      "start {containers} idle containers, {clients} clients (per container)", "ms"))
    full = {"containers": 100, "clients": 10}
    quick = {"containers": 20}
    runs_full, runs_quick = 3, 1

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        n, out = ctx.params["containers"], {}
        for key, clients in (("start-sequential", 1), ("start-parallel", ctx.params["clients"])):
            try:
                per, _ids = start_many(subject, n, clients)
            finally:
                subject.engine.remove_all()
            out[key] = per * 1000
        return out


class ConcurrentRuns(Scenario):
    """Many ``run --rm true`` at once, one client process each; the wall time until the last
    one returns."""

    name = "concurrent"
    title = "concurrent run --rm true, one client each"
    metrics = (Metric("concurrent-runs", "{runs} concurrent run --rm true (wall time)", "s"),)
    full = {"runs": 50}
    quick = {"runs": 20}
    runs_full, runs_quick = 3, 1

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        n = ctx.params["runs"]
        argv = subject.run_argv(["true"])
        t0 = time.perf_counter()
        try:
            with concurrent.futures.ThreadPoolExecutor(n) as pool:
                list(pool.map(lambda _: host.timed(argv, subject.env), range(n)))
        finally:
            subject.engine.remove_all()  # what a failed run left
        return {"concurrent-runs": time.perf_counter() - t0}
