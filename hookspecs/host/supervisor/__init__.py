"""The supervisor: containers that outlive the daemon, for any exec driver.

One long-lived process per driver root (``python -m dockyard.hookspecs.host.supervisor``) forks
every container's process through a :class:`Launcher`, is their subreaper, owns their stdio, the
json-file log and the exit status, and serves attach and exec; the daemon talks to it through a
:class:`SupervisedDriver`. The native driver's launcher makes the processes itself; the OCI
driver's runs runc or crun.

Modules: :mod:`.protocol` (the socket protocol and the report channel, both ends), :mod:`.client`
(the driver), :mod:`.server` and :mod:`.ops` (the supervisor), :mod:`.processes` (a container's
run and an exec), :mod:`.stdio` (their shared stdio plumbing), :mod:`.jsonlog` (the log writer),
:mod:`.launcher` (the launcher base and runtime commands), :mod:`.cgroups` (per-container
cgroups) and :mod:`.cgstats` (their counters for ``docker stats``). The names below
are importable from this package (each module loaded on first use).
"""

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AttachClient",
    "Cgroups",
    "Container",
    "ConnectionLost",
    "Exec",
    "FdWriter",
    "JsonLog",
    "Launcher",
    "Stdio",
    "SupervisedAttach",
    "SupervisedDriver",
    "Supervisor",
    "cgroup_rel",
    "default_mounts",
    "protocol",
]

_HOMES = {
    "AttachClient": "stdio",
    "Cgroups": "cgroups",
    "Container": "processes",
    "ConnectionLost": "client",
    "Exec": "processes",
    "FdWriter": "stdio",
    "JsonLog": "jsonlog",
    "Launcher": "launcher",
    "Stdio": "stdio",
    "SupervisedAttach": "client",
    "SupervisedDriver": "client",
    "Supervisor": "server",
    "cgroup_rel": "launcher",
    "default_mounts": "launcher",
}


def __getattr__(name: str) -> Any:
    """Names imported from their module on first use (PEP 562): the daemon needs the client,
    the supervisor process the rest."""
    if name == "protocol":
        return importlib.import_module(".protocol", __name__)
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from . import protocol
    from .cgroups import Cgroups
    from .client import ConnectionLost, SupervisedAttach, SupervisedDriver
    from .jsonlog import JsonLog
    from .launcher import Launcher, cgroup_rel, default_mounts
    from .processes import Container, Exec
    from .server import Supervisor
    from .stdio import AttachClient, FdWriter, Stdio
