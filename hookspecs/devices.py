"""Deprecated: moved to the driver toolkit, :mod:`dockyard.hookspecs.host.devices`.

Kept while branches written against the old path are merged: this name is the same module
object. Remove once nothing imports ``dockyard.hookspecs.devices``.
"""
import sys

from .host import devices as _moved

sys.modules[__name__] = _moved
