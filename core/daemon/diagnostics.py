"""SIGUSR1: what the daemon is doing and what it holds, in its log (dockerd dumps its goroutine
stacks on the same signal).

Each dump logs every thread's stack, the number of live objects of the 15 most common types and
how that changed since the previous dump, and — when the daemon runs with ``PYTHONTRACEMALLOC``
set — the 15 source lines whose allocations grew most since the previous dump. Two dumps taken
some thousand requests apart show where memory goes (``contrib/bench/leaks.py --diagnose``).
"""
from __future__ import annotations

import collections
import gc
import logging
import signal
import sys
import threading
import traceback
from typing import Any

log = logging.getLogger("dockyard.daemon.diagnostics")

TOP = 15


class Diagnostics:
    def __init__(self) -> None:
        self._types: collections.Counter[str] | None = None
        self._snapshot: Any = None

    def install(self, loop: Any) -> None:
        loop.add_signal_handler(signal.SIGUSR1, self.dump)

    def dump(self) -> None:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            stack = "".join(traceback.format_stack(frame))
            log.info("thread %s:\n%s", names.get(ident, ident), stack)
        gc.collect()
        types = collections.Counter(type(o).__name__ for o in gc.get_objects())
        before = self._types or collections.Counter()
        log.info("live objects: %d; most common: %s", sum(types.values()), ", ".join(
            f"{name} {n} ({n - before[name]:+d})" for name, n in types.most_common(TOP)))
        grown = sorted(types, key=lambda name: types[name] - before[name], reverse=True)[:TOP]
        log.info("grown most since the last dump: %s", ", ".join(
            f"{name} {types[name] - before[name]:+d}" for name in grown))
        self._types = types
        self._trace()

    def _trace(self) -> None:
        import tracemalloc
        if not tracemalloc.is_tracing():
            return
        snap = tracemalloc.take_snapshot().filter_traces((
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")))
        if self._snapshot is not None:
            for diff in snap.compare_to(self._snapshot, "lineno")[:TOP]:
                log.info("allocations grown: %s", diff)
        else:
            for stat in snap.statistics("lineno")[:TOP]:
                log.info("allocations: %s", stat)
        self._snapshot = snap
