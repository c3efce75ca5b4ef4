"""The contract between dockyard's core and its plugins.

Drivers subclass one of the four base classes; extension plugins implement the pluggy hooks in
:mod:`dockyard.hookspecs.spec` with :data:`hookimpl`. Nothing here imports the rest of dockyard.
"""
from .errors import (Conflict, DockyardError, DriverNotFound, DriverNotSupported, ExecError, Forbidden,
                     InvalidParameter, NotFound, NotModified, Unauthorized,
                     Unavailable)
from .execdriver import AttachStreams, ExecDriver, ExitStatus, ProcessState
from .graphdriver import GraphDriver
from .naivediff import NaiveDiff
from .netdriver import Endpoint, NetDriver, PassiveNetDriver
from .registry import RegistryBackend
from .spec import hookimpl, hookspec

#: entry-point group of each driver kind, keyed by the kind's name
DRIVER_GROUPS = {
    "graph": "dockyard.graphdrivers",
    "exec": "dockyard.execdrivers",
    "network": "dockyard.netdrivers",
    "registry": "dockyard.registries",
}
#: the pluggy entry-point group of extension plugins
PLUGIN_GROUP = "dockyard.plugins"

__all__ = [
    "AttachStreams", "Conflict", "DRIVER_GROUPS", "DockyardError", "DriverNotFound",
    "DriverNotSupported", "Endpoint", "ExecDriver", "ExecError", "ExitStatus", "Forbidden", "GraphDriver",
    "InvalidParameter", "NaiveDiff", "NetDriver", "NotFound", "NotModified",
    "PLUGIN_GROUP", "PassiveNetDriver", "ProcessState", "RegistryBackend", "Unauthorized", "Unavailable",
    "hookimpl", "hookspec",
]
