"""Memory per idle container, as the former ``contrib/bench/start.py`` measured it: start N idle
containers (10 parallel clients) and read the proportional set size of every process of the engine (daemon,
supervisor / containerd, shims; podman: its conmons) and the drop of the host's MemAvailable,
before and after, each divided by N. Rounds alternate between engines.

MemAvailable is system-wide: on a shared machine other work moves it far more than it moves
PSS, which is why both are reported, and why rounds alternate.
"""
from __future__ import annotations

import time
from typing import Any

from .. import host
from ..subjects.base import Subject
from .base import Metric, Scenario
from .start import start_many


class Memory(Scenario):
    """Start N idle containers (10 parallel clients); before and after, the proportional set
    size of every process of the engine (daemon, supervisor, containerd and shims; podman's
    conmons) and the host's MemAvailable, each difference divided by N. MemAvailable is
    system-wide: other work on a shared machine moves it, PSS much less."""

    name = "memory"
    title = "memory per idle container"
    metrics = (Metric("pss-per-container",
                      "engine PSS per idle container ({containers} containers)", "KiB"),
               Metric("memavailable-per-container",
                      "MemAvailable drop per idle container ({containers} containers)", "KiB"),
               Metric("engine-pss-total", "engine PSS with {containers} idle containers", "KiB"))
    full = {"containers": 100, "clients": 10}
    quick = {"containers": 20}
    runs_full, runs_quick = 3, 1

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        n = ctx.params["containers"]
        engine = subject.engine
        time.sleep(1)
        pss0, avail0 = host.pss_kib(engine.engine_pids()), host.settled_available()
        try:
            _, ids = start_many(subject, n, ctx.params["clients"])
            time.sleep(2)
            pids = engine.engine_pids()
            pss1, avail1 = host.pss_kib(pids), host.settled_available()
            running = len(subject.cli("ps", "-q").stdout.split())
        finally:
            engine.remove_all()
        if running != n:
            raise host.CommandFailed(f"{running} containers running, not {n}")
        return {"pss-per-container": (pss1 - pss0) / n,
                "memavailable-per-container": (avail0 - avail1) / n,
                "engine-pss-total": float(pss1)}
