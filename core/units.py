"""Deprecated: moved to the driver toolkit, :mod:`dockyard.hookspecs.host.units`.

A thin re-export kept while branches written against the old path are merged; remove once
nothing imports ``dockyard.core.units``.
"""
from dockyard.hookspecs.host.units import *  # noqa: F403
