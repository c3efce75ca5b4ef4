"""The contract between dockyard's core and its plugins.

Drivers subclass one of the four base classes; extension plugins implement the pluggy hooks in
:mod:`dockyard.hookspecs.spec` with :data:`hookimpl`; the host work every driver repeats is the
driver toolkit, :mod:`dockyard.hookspecs.host` (``docs/toolkit.md``). Nothing here imports the
rest of dockyard.

The names below are loaded on first use (PEP 562): importing one module of the contract — the
CLI imports the toolkit's ``streams`` and ``units`` on every ``dockyard run`` — does not import
pluggy, asyncio and tarfile with it.
"""
from __future__ import annotations

import importlib
TYPE_CHECKING = False  # not typing's: the CLI imports the toolkit, and typing costs it a few ms
if TYPE_CHECKING:
    from typing import Any

#: entry-point group of each driver kind, keyed by the kind's name
DRIVER_GROUPS = {
    "graph": "dockyard.graphdrivers",
    "exec": "dockyard.execdrivers",
    "network": "dockyard.netdrivers",
    "registry": "dockyard.registries",
}
#: the pluggy entry-point group of extension plugins
PLUGIN_GROUP = "dockyard.plugins"

#: exported name -> the module of the contract that defines it
_EXPORTS = {
    **dict.fromkeys(("Conflict", "DockyardError", "DriverNotFound", "DriverNotSupported",
                     "ExecError", "Forbidden", "InvalidParameter", "NotFound", "NotModified",
                     "Unauthorized", "Unavailable"),
                    "errors"),
    **dict.fromkeys(("AttachStreams", "ExecDriver", "ExitStatus", "ProcessState"), "execdriver"),
    "GraphDriver": "graphdriver",
    "DirectoryLayers": "dirlayers",
    "NaiveDiff": "naivediff",
    **dict.fromkeys(("Endpoint", "NetDriver", "PassiveNetDriver"), "netdriver"),
    "RegistryBackend": "registry",
    **dict.fromkeys(("hookimpl", "hookspec"), "spec"),
    "RefCounter": "host",
}

__all__ = [
    "AttachStreams", "Conflict", "DRIVER_GROUPS", "DirectoryLayers", "DockyardError",
    "DriverNotFound", "DriverNotSupported", "Endpoint", "ExecDriver", "ExecError", "ExitStatus",
    "Forbidden", "GraphDriver", "InvalidParameter", "NaiveDiff", "NetDriver", "NotFound",
    "NotModified", "PLUGIN_GROUP", "PassiveNetDriver", "ProcessState", "RefCounter",
    "RegistryBackend", "Unauthorized", "Unavailable", "hookimpl", "hookspec", "host",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:  # a submodule (``host``, ``conformance``...) is imported by the import system
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # what the names are, for type checkers
    from . import host
    from .errors import (Conflict, DockyardError, DriverNotFound, DriverNotSupported, ExecError,
                         Forbidden, InvalidParameter, NotFound, NotModified, Unauthorized,
                         Unavailable)
    from .execdriver import AttachStreams, ExecDriver, ExitStatus, ProcessState
    from .dirlayers import DirectoryLayers
    from .graphdriver import GraphDriver
    from .host import RefCounter
    from .naivediff import NaiveDiff
    from .netdriver import Endpoint, NetDriver, PassiveNetDriver
    from .registry import RegistryBackend
    from .spec import hookimpl, hookspec
