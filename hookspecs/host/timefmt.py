"""Times as the Docker API and Docker's log files write them: RFC 3339 in UTC, nanosecond digits.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`): an exec driver writes these in the
``time`` of json-file log lines; the daemon in ``Created``, ``StartedAt``, event and health
times. Always nine fraction digits (``2024-05-01T12:00:00.123456789Z``), which every RFC 3339
reader takes.
"""

from __future__ import annotations

import time

__all__ = ["rfc3339", "rfc3339nano"]


def rfc3339nano(ns: int) -> str:
    """Unix time ``ns`` (nanoseconds, e.g. ``time.time_ns()``) as RFC 3339."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def rfc3339(seconds: float | None = None) -> str:
    """Unix time ``seconds`` (a float, as ``time.time()`` gives; now when ``None``) as RFC 3339.
    A float holds microseconds faithfully, so the last three digits are zeros."""
    if seconds is None:
        return rfc3339nano(time.time_ns())
    return rfc3339nano(round(seconds * 1_000_000) * 1000)
