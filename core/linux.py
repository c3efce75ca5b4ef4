"""Deprecated: moved to the driver toolkit, :mod:`dockyard.hookspecs.host` (``mounts`` and ``ns``).

A thin re-export kept while branches written against the old path are merged; new code imports
``from dockyard.hookspecs import host``. Remove once nothing imports ``dockyard.core.linux``.
"""
from dockyard.hookspecs.host.mounts import *  # noqa: F403
from dockyard.hookspecs.host.ns import *  # noqa: F403
