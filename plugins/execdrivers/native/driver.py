"""The daemon side of the native exec driver: a supervised driver (the toolkit's
``dockyard.hookspecs.host.supervisor``) whose launcher is dockyard's own container init."""
from __future__ import annotations

from dockyard.hookspecs.host.seccompbpf import SECCOMP_BINDING
from dockyard.hookspecs.host.supervisor.client import SupervisedDriver


class NativeDriver(SupervisedDriver):
    """Runs containers with namespaces, cgroups and pivot_root through a long-lived supervisor."""

    name = "native"
    priority = 50
    user_namespaces = True
    bindings: tuple = (SECCOMP_BINDING,)
    launcher = "dockyard.plugins.execdrivers.native.launcher:NativeLauncher"
