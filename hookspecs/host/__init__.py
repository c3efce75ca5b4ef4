"""The driver toolkit: the host work every driver repeats, as public API.

A driver — built in or third party — imports ``dockyard.hookspecs`` and nothing else of
dockyard; what it needs of the host is here (containerd's ``core/mount``, moby's ``moby/sys``)::

    from dockyard.hookspecs import host

    host.mount("overlay", target, "overlay", host.MS_NODEV, data)
    mounted = {mount_point for mount_point, _fstype, _source in host.mountinfo()}

Modules (each documented in ``docs/toolkit.md``; everything in a module's ``__all__`` is API):

* :mod:`.libc` — the one ctypes handle on the C library, errno-checked calls, syscall numbers.
* :mod:`.mounts` — ``mount``/``umount2``, ``MS_*``/``MNT_*``, option words, bind remounts,
  mountinfo, ``statfs`` file-system names, ``/proc/filesystems``, ``d_type`` support.
* :mod:`.ns` — ``CLONE_*``, ``unshare``/``setns``, namespace files, ``pivot_root``, host and
  domain names, ``prctl`` helpers, per-thread work, network namespaces as files.
* :mod:`.caps` — the capability table, Docker's default set, capset/bounding/ambient.
* :mod:`.seccomp` — Docker's seccomp profile format and default profile, resolved per container.
* :mod:`.seccompbpf` — a resolved profile compiled to BPF and installed.
* :mod:`.cgroupfiles` — OCI resources to cgroup v1/v2 files, cgroup event files, host probe.
* :mod:`.devices` / :mod:`.devicebpf` — device cgroup rules, device nodes, the cgroup v2 program.
* :mod:`.projquota` — XFS project quotas: a size limit on a directory tree.
* :mod:`.process` — a container process's user, environment and signal state, as dockerd
  makes them, for code between fork and exec.
* :mod:`.refcount` — :class:`RefCounter` for a graph driver's get/put.
* :mod:`.changes` — the ``docker diff`` walk of two trees.
* :mod:`.layertar` — writing a layer tar (PAX, OCI whiteouts, ID shifting), streamed.
* :mod:`.tarsafe` — reading tars safely: the one extractor (layers with whiteouts, build
  contexts, ``cp``), its bounds and cancellation, the strict reader.
* :mod:`.streams` — Docker's multiplexed stream frames.
* :mod:`.supervisor` — the supervisor that keeps containers running past the daemon: its
  protocol, the driver's client, stdio plumbing, the json-file log writer, launchers, cgroups.
* :mod:`.timefmt` — RFC 3339 times as Docker writes them.
* :mod:`.units` — sizes and durations as Docker reads and prints them (``go-units``).

The names of :mod:`.mounts`, :mod:`.ns`, :mod:`.caps`, :mod:`.refcount`, :mod:`.streams`,
:mod:`.timefmt` and :mod:`.units` are also importable from this package directly (each module
is imported on first use). The toolkit is versioned with the ``dockyard`` distribution
(semantic versioning; see ``docs/toolkit.md`` for the promise).
Nothing here imports the rest of dockyard but :mod:`dockyard.hookspecs`.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: the CLI imports the toolkit, and typing costs it a few ms
if TYPE_CHECKING:
    from typing import Any

#: every module of the toolkit
_MODULES = (
    "caps",
    "cgroupfiles",
    "changes",
    "devicebpf",
    "devices",
    "layertar",
    "libc",
    "mounts",
    "ns",
    "projquota",
    "process",
    "refcount",
    "seccomp",
    "seccompbpf",
    "streams",
    "supervisor",
    "tarsafe",
    "timefmt",
    "units",
)
#: the modules whose names this package re-exports
_FLAT = ("mounts", "ns", "caps", "refcount", "streams", "timefmt", "units")


def __getattr__(name: str) -> Any:
    """Modules and re-exported names, imported on first use (PEP 562), so that a program
    needing one module (the CLI needs ``streams`` and ``units``) loads only that one."""
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "__all__":
        names = [*_MODULES]
        for module in _FLAT:
            names += importlib.import_module(f".{module}", __name__).__all__
        return names
    for module in _FLAT:
        mod = importlib.import_module(f".{module}", __name__)
        if name in mod.__all__:
            value = getattr(mod, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # what the names are, for type checkers
    # fmt: off
    from . import (caps, cgroupfiles, changes, devicebpf, devices, layertar, libc, mounts, ns, process, refcount,
                   seccomp, seccompbpf, streams, supervisor, tarsafe, timefmt, units)
    # fmt: on
    from .caps import *
    from .mounts import *
    from .ns import *
    from .refcount import *
    from .streams import *
    from .timefmt import *
    from .units import *
