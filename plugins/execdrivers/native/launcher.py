"""The native driver's launcher: how the supervisor (``dockyard.hookspecs.host.supervisor``)
makes a container's process when no runtime does it."""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.host.supervisor.launcher import Launcher


class NativeLauncher(Launcher):
    """dockyard's own container init (:mod:`.init`): namespaces, mounts, pivot_root, caps and
    seccomp done by the forked child itself."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        from . import init  # the fork server imports it once, before any fork

        self.start_entry = init.child_main
        self.exec_entry = init.exec_main
