"""The native exec driver: namespaces, cgroups and pivot_root from Python, no runc.

One supervisor process per driver root forks every container, owns its stdio, log and exit status,
and outlives the daemon (see :mod:`.supervisor` for the protocol, :mod:`.init` for what runs in the
container before ``execve``).

A spec without a ``"mounts"`` key gets :func:`default_mounts` (Docker's proc, /dev tmpfs with the
standard nodes, devpts, shm, mqueue, read-only sysfs); a daemon adding its own bind mounts should
start from ``default_mounts()`` and append.
"""
from dockyard.plugins.execdrivers.native.driver import NativeDriver
from dockyard.plugins.execdrivers.native.init import default_mounts

__all__ = ["NativeDriver", "default_mounts"]
