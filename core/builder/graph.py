"""The build graph: which stages a target needs, and a scheduler that builds independent
stages at the same time.

A stage depends on the stage it is based on (``FROM stage``) and on those it copies or mounts
from (``COPY --from``, ``RUN --mount=...,from=``). Only the target and what it needs are built
(BuildKit's rule; dockerd's legacy builder builds every stage up to the target). Stages whose
dependencies are built start at once, at most ``limit`` at a time (by default a bound derived
from the CPU count, :func:`default_limit`; the daemon's ``max-build-parallelism`` sets it).
"""
from __future__ import annotations

import asyncio
import os
from typing import Awaitable, Callable, TypeVar

from .errors import BuildError

T = TypeVar("T")


def needed(deps: dict[int, set[int]], target: int) -> list[int]:
    """The stages ``target`` needs, itself included, in index order."""
    seen: set[int] = set()
    todo = [target]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(deps.get(i, ()))
    return sorted(seen)


def check_acyclic(deps: dict[int, set[int]]) -> None:
    """A stage may only depend on stages before it: anything else is a cycle or a forward
    reference (BuildKit refuses both)."""
    for i, ds in deps.items():
        for d in ds:
            if d >= i:
                raise BuildError(f"stage {i} depends on stage {d}, which is not defined before it "
                                 "(circular dependency)")


def default_limit(cpus: int | None = None) -> int:
    """How many stages build at once by default: ninja's rule for jobs (the CPU count plus
    two; 3 on two CPUs, 2 on one), since build steps spend much of their time waiting on I/O
    (downloads, package managers) rather than on a CPU."""
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    return 2 if n <= 1 else 3 if n == 2 else n + 2


async def run(order: list[int], deps: dict[int, set[int]],
              build: Callable[[int], Awaitable[T]], limit: int | None = None) -> dict[int, T]:
    """Build every stage of ``order`` once its dependencies are built, at most ``limit`` at a
    time. The first failure cancels the stages still building (their clean-up runs) and is
    raised."""
    sem = asyncio.Semaphore(limit or default_limit())
    tasks: dict[int, asyncio.Task[T]] = {}

    async def one(i: int) -> T:
        for d in sorted(deps.get(i, ())):
            if d in tasks:
                await tasks[d]
        async with sem:
            return await build(i)

    for i in order:
        tasks[i] = asyncio.ensure_future(one(i))
    try:
        await asyncio.wait(list(tasks.values()), return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await _cancel_all(tasks)
        raise
    failed = [t for t in tasks.values() if t.done() and not t.cancelled() and t.exception()]
    if failed:
        await _cancel_all(tasks)
        # the first stage (in Dockerfile order) that failed on its own
        first = min((i for i, t in tasks.items() if t in failed), default=None)
        raise tasks[first].exception()  # type: ignore[index,misc]
    return {i: t.result() for i, t in tasks.items()}


async def _cancel_all(tasks: dict[int, asyncio.Task[T]]) -> None:
    for t in tasks.values():
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
