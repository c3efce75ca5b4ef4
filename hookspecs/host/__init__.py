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
* :mod:`.devices` / :mod:`.devicebpf` — device cgroup rules, device nodes, the cgroup v2 program.
* :mod:`.refcount` — :class:`RefCounter` for a graph driver's get/put.
* :mod:`.streams` — Docker's multiplexed stream frames.
* :mod:`.timefmt` — RFC 3339 times as Docker writes them.
* :mod:`.units` — sizes and durations as Docker reads and prints them (``go-units``).

The names of :mod:`.mounts`, :mod:`.ns`, :mod:`.caps`, :mod:`.refcount`, :mod:`.streams`,
:mod:`.timefmt` and :mod:`.units` are also importable from this package directly. The toolkit
is versioned with the ``dockyard`` distribution (semantic versioning; see ``docs/toolkit.md``
for the promise).
Nothing here imports the rest of dockyard but :mod:`dockyard.hookspecs`.
"""

from . import (
    caps,
    devicebpf,
    devices,
    libc,
    mounts,
    ns,
    refcount,
    seccomp,
    seccompbpf,
    streams,
    timefmt,
    units,
)
from .caps import *  # noqa: F403
from .mounts import *  # noqa: F403
from .ns import *  # noqa: F403
from .refcount import RefCounter
from .streams import *  # noqa: F403
from .timefmt import *  # noqa: F403
from .units import *  # noqa: F403

# fmt: off
__all__ = [
    "caps", "devicebpf", "devices", "libc", "mounts", "ns", "refcount", "seccomp", "seccompbpf",
    "streams", "timefmt", "units", "RefCounter",
]
# fmt: on
__all__ += caps.__all__ + mounts.__all__ + ns.__all__ + streams.__all__ + timefmt.__all__
__all__ += units.__all__
