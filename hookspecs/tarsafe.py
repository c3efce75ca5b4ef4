"""Deprecated: moved to the driver toolkit, :mod:`dockyard.hookspecs.host.tarsafe`.

Kept while branches written against the old name are merged: this name is the same package
object (import its names from the package, never its submodules through this name). Remove
once nothing imports ``dockyard.hookspecs.tarsafe``.
"""
import sys

from .host import tarsafe as _moved

sys.modules[__name__] = _moved
