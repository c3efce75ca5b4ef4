"""The ``host`` network driver: containers share the host's network namespace.

Nothing to plumb: the daemon gives such containers no network namespace of their own and copies
the host's ``/etc/resolv.conf`` and ``/etc/hosts`` entries into them.
"""
from __future__ import annotations

from dockyard.hookspecs.netdriver import PassiveNetDriver


class HostDriver(PassiveNetDriver):
    name = "host"
    namespace = "host"

    def status(self) -> list[tuple[str, str]]:
        return [("Namespace", "host")]
