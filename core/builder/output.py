"""The build's output stream (``{"stream": ...}`` messages), as dockerd's legacy builder writes
it: ``Step N/M : INSTRUCTION``, `` ---> Running in ...``, `` ---> Using cache``, `` ---> <id>``.

When more than one stage is built, stages run at the same time and their lines would mix: each
line of a stage's step then starts with ``[<stage> N/M] `` (the stage's name, or ``stage-<i>``,
and the step's number in dockerd's numbering), and a step's output is written a whole line at a
time. With ``q`` (quiet) nothing is written; dockerd then sends what was held back only if the
build fails, and so does this.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

Emit = Callable[[dict[str, Any]], Awaitable[None]]
#: how much of a quiet build's output is kept for its error report
QUIET_KEEP = 1 << 20


class Output:
    def __init__(self, emit: Emit, quiet: bool = False) -> None:
        self._emit = emit
        self.quiet = quiet
        self.total = 0
        self.prefixed = False
        self._held: list[str] = []
        self._held_size = 0
        self._lock = asyncio.Lock()

    async def write(self, text: str) -> None:
        if not text:
            return
        if self.quiet:
            self._held.append(text)
            self._held_size += len(text)
            while self._held_size > QUIET_KEEP and len(self._held) > 1:
                self._held_size -= len(self._held.pop(0))
            return
        async with self._lock:
            await self._emit({"stream": text})

    async def message(self, msg: dict[str, Any]) -> None:
        """A message of another kind (pull progress, aux) as it is."""
        if self.quiet:
            return
        async with self._lock:
            await self._emit(msg)

    async def release_held(self) -> None:
        """A failed quiet build: what it held back, then (by the caller) the error."""
        if self.quiet and self._held:
            text, self._held = "".join(self._held), []
            async with self._lock:
                await self._emit({"stream": text})

    def step(self, label: str, number: int) -> "StepOutput":
        prefix = f"[{label} {number}/{self.total}] " if self.prefixed else ""
        return StepOutput(self, prefix)

    async def header(self, label: str, number: int, text: str) -> "StepOutput":
        """Write ``Step N/M : text``; return the step's output."""
        out = self.step(label, number)
        await out.line(f"Step {number}/{self.total} : {text}")
        return out


class StepOutput:
    """One step's lines (prefixed when stages run side by side); partial lines from a RUN
    step's process are held until their end arrives."""

    def __init__(self, out: Output, prefix: str) -> None:
        self.out, self.prefix = out, prefix
        self._partial = ""

    async def line(self, text: str) -> None:
        await self.out.write(self._prefixed(text.rstrip("\n") + "\n"))

    async def data(self, chunk: str) -> None:
        if not self.prefix:
            await self.out.write(chunk)
            return
        text = self._partial + chunk
        head, sep, self._partial = text.rpartition("\n")
        if sep:
            await self.out.write(self._prefixed(head + "\n"))

    async def flush(self) -> None:
        if self._partial:
            text, self._partial = self._partial, ""
            await self.out.write(self._prefixed(text + "\n"))

    def _prefixed(self, text: str) -> str:
        if not self.prefix:
            return text
        return "".join(self.prefix + ln for ln in text.splitlines(keepends=True))
