"""Stopping ``dockyardd`` within seconds of SIGTERM, whatever it is doing.

The first SIGTERM (or SIGINT) starts a shutdown with a deadline (:data:`GRACE` seconds): start-up
is abandoned if it is still running, listeners close, request handlers get a second to finish
and are then cancelled, the daemon's own shutdown runs (its network and storage tear-down), then
the socket and pidfile are removed (only while they are still this daemon's). Work running in
threads (an unpack, a download) cannot be interrupted: it gets what is left of the deadline, and
if it is still busy the process exits without waiting for it. That is safe because every write
is atomic — a layer, blob or temporary file it leaves half-made is referenced by no record and
is removed by the next start-up's reconcile — and because containers belong to the exec driver's
supervisor, not to this process. A second SIGTERM exits at once.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger("dockyard.daemon")

#: seconds from the first SIGTERM to the process being gone
GRACE = 4.0
#: of which the request handlers may use this much before they are cancelled
HANDLER_GRACE = 1.0


class Pidfile:
    """``--pidfile``: written once the daemon serves; removed only while it holds our pid."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()

    def write(self) -> None:
        if not self.path:
            return
        from ..blobs import atomic_write
        atomic_write(self.path, f"{self.pid}\n".encode(), durable=False)

    def remove(self) -> None:
        if not self.path:
            return
        with contextlib.suppress(OSError, ValueError):
            with open(self.path) as f:
                if int(f.read().strip() or 0) != self.pid:
                    return
            os.unlink(self.path)


class Stopper:
    """Signal handling and the bounded shutdown of one daemon process."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.deadline: float | None = None
        #: quick, synchronous clean-ups that also run on a forced exit (socket, pidfile)
        self.on_exit: list[Callable[[], None]] = []
        self.executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="dockyard-worker")

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(self.executor)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal, sig)

    def _signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.requested.is_set():
            log.warning("%s received again: exiting now, without cleanup", name)
            self.force_exit(1)
        log.info("%s received: shutting down (send it again to exit at once)", name)
        self.deadline = time.monotonic() + GRACE
        self.requested.set()

    def remaining(self, reserve: float = 0.0) -> float:
        if self.deadline is None:
            self.deadline = time.monotonic() + GRACE
        return max(0.05, self.deadline - time.monotonic() - reserve)

    async def unless_stopped(self, work: Awaitable[Any]) -> bool:
        """Run ``work`` (start-up) unless a stop is requested first, which cancels it. Returns
        whether it completed."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.requested.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return True
        task.cancel()
        await asyncio.wait({task}, timeout=self.remaining(reserve=2.0))
        return False

    async def bounded(self, what: str, work: Awaitable[Any], reserve: float) -> None:
        """Await ``work`` until ``reserve`` seconds before the deadline; log, never raise."""
        try:
            await asyncio.wait_for(work, self.remaining(reserve))
        except asyncio.TimeoutError:
            log.warning("shutdown: %s did not finish in time; going on", what)
        except Exception:  # noqa: BLE001 - a failing tear-down must not keep the daemon up
            log.exception("shutdown: %s failed", what)

    def run_exit_hooks(self) -> None:
        for fn in self.on_exit:
            with contextlib.suppress(Exception):
                fn()
        self.on_exit.clear()

    async def finish(self) -> bool:
        """Cancel what is left of the event loop's tasks and wait for the worker threads until
        the deadline. Returns whether everything ended (else the caller must :meth:`force_exit`)."""
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for t in others:
            t.cancel()
        pending: set[Any] = set()
        if others:
            _done, pending = await asyncio.wait(others, timeout=self.remaining(reserve=0.5))
        self.executor.shutdown(wait=False, cancel_futures=True)
        busy = _wait_threads(time.monotonic() + self.remaining(reserve=0.2))
        if pending or busy:
            log.warning("exiting with %d task(s) and %d thread(s) still at work (%s); what they "
                        "leave half-made is removed at the next start", len(pending), len(busy),
                        ", ".join(sorted({t.name for t in busy})) or "-")
            return False
        return True

    def force_exit(self, code: int) -> None:
        self.run_exit_hooks()
        logging.shutdown()
        os._exit(code)


def _wait_threads(deadline: float) -> list[threading.Thread]:
    """Wait until only daemon threads are left, or the deadline; return the others."""
    while True:
        busy = [t for t in threading.enumerate()
                if t is not threading.main_thread() and not t.daemon and t.is_alive()]
        if not busy or time.monotonic() >= deadline:
            return busy
        busy[0].join(max(0.0, min(0.05, deadline - time.monotonic())))
