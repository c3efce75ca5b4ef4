"""What the commands share: a name in a URL path, the daemon's error as the docker CLI prints
it, a command applied to each of its arguments, and what a prune prints."""
from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

from .client import Client, DaemonError


def _p(name: str) -> str:
    return quote(name, safe="")


def _err(msg: str) -> None:
    print(f"Error response from daemon: {msg}", file=sys.stderr)


def _call(client: Client, method: str, path: str, params: dict[str, Any] | None = None) -> None:
    client.request(method, path, params).read()


def _each(names: tuple[str, ...], fn: Any, echo: bool = True) -> None:
    failed = False
    for n in names:
        try:
            out = fn(n)
        except DaemonError as e:
            _err(e.message)
            failed = True
            continue
        if echo:
            print(n if out is None else out)
    if failed:
        sys.exit(1)


def _print_pruned(kind: str, lines: list[str], space: int | None) -> None:
    """A prune's report as the docker CLI prints it: ``Deleted <kind>:`` and ``lines`` (if
    any), then the space reclaimed."""
    from .fmt import human_size
    if lines:
        print(f"Deleted {kind}:")
        print("\n".join(lines))
        print()
    print(f"Total reclaimed space: {human_size(space or 0)}")
