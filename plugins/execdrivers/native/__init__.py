"""The native exec driver: namespaces, cgroups and pivot_root from Python, no runc.

One supervisor process per driver root (the toolkit's ``dockyard.hookspecs.host.supervisor``)
forks every container, owns its stdio, log and exit status, and outlives the daemon; what runs
in the container before ``execve`` is :mod:`.init` (its launcher, :mod:`.launcher`).

A spec without a ``"mounts"`` key gets :func:`default_mounts` (Docker's proc, /dev tmpfs with the
standard nodes, devpts, shm, mqueue, read-only sysfs); a daemon adding its own bind mounts should
start from ``default_mounts()`` and append.
"""
from dockyard.hookspecs.host.supervisor.launcher import default_mounts
from dockyard.plugins.execdrivers.native.driver import NativeDriver

__all__ = ["NativeDriver", "default_mounts"]
