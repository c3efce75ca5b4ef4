"""Sizes and durations as Docker reads and prints them (a port of Docker's ``go-units``).

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`) — a driver reads size options
(``dm.basesize=10G``) with :func:`ram_in_bytes` — and what the daemon and the CLI print with.
Import-light: the CLI loads it.
"""

from __future__ import annotations

import re

__all__ = ["human_duration", "ram_in_bytes", "human_size", "bytes_size"]


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_RAM = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.I)
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``, binary multiples (what dockerd uses for ``--memory``,
    ``max-size``, ``--shm-size``): ``32m`` -> 33554432, ``10GiB``, ``4096``. ValueError with
    go-units' words (``invalid size: '10x'``) for anything else."""
    m = _RAM.match(str(text).strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _BINARY[m.group(2).lower()])


def _scaled(size: float, base: int, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    size = float(size)
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(size: float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision``, decimal units: ``1.23MB``."""
    value, unit = _scaled(size, 1000, ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"))
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``, binary units: ``1.5GiB``."""
    value, unit = _scaled(size, 1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"))
    return f"{value:.4g}{unit}"
