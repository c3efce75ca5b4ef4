"""The ``none`` network driver: a private network namespace with loopback only.

The daemon creates the namespace (with ``lo`` up) before the container starts; there is nothing
to plumb.
"""
from __future__ import annotations

from dockyard.hookspecs.netdriver import PassiveNetDriver


class NoneDriver(PassiveNetDriver):
    name = "none"
    namespace = "private"

    def status(self) -> list[tuple[str, str]]:
        return [("Interfaces", "lo")]
