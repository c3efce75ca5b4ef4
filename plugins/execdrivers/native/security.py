"""Deprecated: moved to the driver toolkit, :mod:`dockyard.hookspecs.host` (capabilities in
``caps``, the seccomp compiler in ``seccompbpf``).

A thin re-export kept while branches written against the old path are merged; remove once
nothing imports ``dockyard.plugins.execdrivers.native.security``.
"""
from dockyard.hookspecs.host.caps import *  # noqa: F403
from dockyard.hookspecs.host.seccompbpf import *  # noqa: F403
