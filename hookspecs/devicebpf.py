"""Deprecated: moved to the driver toolkit, :mod:`dockyard.hookspecs.host.devicebpf`.

Kept while branches written against the old path are merged: this name is the same module
object. Remove once nothing imports ``dockyard.hookspecs.devicebpf``.
"""
import sys

from .host import devicebpf as _moved

sys.modules[__name__] = _moved
