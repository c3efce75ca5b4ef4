"""Reference counts per id: the bookkeeping behind a graph driver's ``get``/``put``.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). A layer is mounted on its first
``get`` and unmounted on the ``put`` that balances the last one; ``remove`` must refuse a layer
that is still referenced. :class:`RefCounter` keeps the counts and runs the first/last actions
under one lock, so a concurrent ``get`` never sees a half-made mount and a concurrent ``put``
never unmounts what another caller just took. Pass the driver's own lock when other state (a
set of mounted ids, a busy marker) must change under the same lock.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, ContextManager, Iterator

from ..errors import Conflict

log = logging.getLogger(__name__)

__all__ = ["RefCounter"]


class RefCounter:
    """Thread-safe reference counts keyed by id.

    >>> refs = RefCounter()
    >>> refs.acquire("a", first=lambda: print("mount"))
    mount
    1
    >>> refs.acquire("a", first=lambda: print("mount"))
    2
    >>> refs.release("a", last=lambda: print("unmount"))
    1
    >>> refs.release("a", last=lambda: print("unmount"))
    unmount
    0
    """

    def __init__(self, lock: ContextManager[object] | None = None, name: str = "") -> None:
        #: the lock every count change holds (re-entrant by default, so ``first``/``last`` may
        #: call back into the driver)
        self.lock: ContextManager[object] = lock if lock is not None else threading.RLock()
        self.name = name
        self._counts: dict[str, int] = {}

    def acquire(self, id: str, first: Callable[[], object] | None = None) -> int:
        """Count one more reference to ``id`` and return the new count. ``first()`` runs, under
        the lock, when there was none; if it raises, nothing is counted."""
        with self.lock:
            n = self._counts.get(id, 0)
            if n == 0 and first is not None:
                first()
            self._counts[id] = n + 1
            return n + 1

    def release(self, id: str, last: Callable[[], object] | None = None) -> int:
        """Count one reference less to ``id`` and return how many are left. ``last()`` runs,
        under the lock, when none is left — also for a release without an acquire (after a
        restart, a mount adopted from the previous run is released that way); if it raises, the
        count is already zero."""
        with self.lock:
            n = self._counts.get(id, 0)
            if n > 1:
                self._counts[id] = n - 1
                return n - 1
            self._counts.pop(id, None)
            if n == 0:
                log.debug("%s: release of %s without acquire", self.name or "refcount", id)
            if last is not None:
                last()
            return 0

    def refuse_if_held(self, id: str, what: str, state: str = "in use") -> None:
        """Conflict (HTTP 409) ``<what> is <state> (N reference(s))`` when ``id`` has
        references: what ``remove`` of a layer still mounted or busy answers."""
        with self.lock:
            n = self._counts.get(id, 0)
        if n:
            raise Conflict(f"{what} is {state} ({n} reference(s))")

    def count(self, id: str) -> int:
        """How many references ``id`` has."""
        with self.lock:
            return self._counts.get(id, 0)

    def __contains__(self, id: object) -> bool:
        with self.lock:
            return id in self._counts

    def __iter__(self) -> Iterator[str]:
        """The ids with references (a snapshot)."""
        with self.lock:
            return iter(list(self._counts))

    def __len__(self) -> int:
        with self.lock:
            return len(self._counts)

    def clear(self) -> list[str]:
        """Forget every reference (a driver's ``cleanup``); the ids that had some."""
        with self.lock:
            ids = list(self._counts)
            self._counts.clear()
            return ids
