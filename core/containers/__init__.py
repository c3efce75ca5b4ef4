"""Containers as a state machine: created → running ⇄ paused → exited → removed.

The record of each container lives in SQLite (the shape ``GET /containers/{id}/json`` shows, plus
private ``_`` keys); the exec driver runs its process; the graph driver holds its rootfs; the
network driver its endpoint. :class:`ContainerService` drives them in order and keeps the record
true. Its parts, one module each: the pure checks and merging of a create body (:mod:`.config`),
create (:mod:`.create`), running and exits (:mod:`.running`), the rest of the lifecycle
(:mod:`.lifecycle`), files (:mod:`.fsops`: cp, diff, commit, export), attach and logs
(:mod:`.logs`), processes and stats (:mod:`.monitor`).
"""
from __future__ import annotations

from .config import ZERO_TIME, parse_signal, parse_time
from .create import Create
from .fsops import FsOps
from .lifecycle import KILL_WAIT, Lifecycle
from .logs import Logs
from .monitor import Monitor
from .summary import summary

__all__ = ["ContainerService", "KILL_WAIT", "ZERO_TIME", "parse_signal", "parse_time", "summary"]


class ContainerService(Create, Lifecycle, Logs, FsOps, Monitor):
    """The container service: every part above, on one record cache and one runtime table
    (:class:`.base.ServiceBase`)."""
