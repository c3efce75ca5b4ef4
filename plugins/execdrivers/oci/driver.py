"""The OCI-runtime exec driver: runc, crun, or any runtime of the daemon's ``runtimes`` map.

One class, registered twice (``runc`` and ``crun`` entry points, each with its binary) and
instantiated once per entry of dockerd's ``runtimes`` map (``{"name": {"path": ...,
"runtimeArgs": [...]}}``). Containers run under dockyard's supervisor (one per driver root), so
they outlive the daemon like the native driver's: the runtime makes the processes
(:mod:`.launch`), the supervisor owns their stdio, log and exit status.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

from dockyard.hookspecs.errors import DriverNotSupported
from dockyard.hookspecs.host.supervisor.client import SupervisedDriver

LAUNCHER = "dockyard.plugins.execdrivers.oci.launch:OciLauncher"
UNIFIED = "/sys/fs/cgroup/unified"


def _hybrid_cgroups() -> bool:
    """A v1 host with a cgroup2 mount at ``unified`` (which crun 1.8 refuses)."""
    return os.path.isdir("/sys/fs/cgroup/memory") and os.path.ismount(UNIFIED)


class OciDriver(SupervisedDriver):
    """Containers through an OCI runtime's ``create/start/exec/kill/pause/resume/update/
    delete``. Options: ``path`` (the binary; default: the class's on ``PATH``), ``runtimeArgs``
    (given before every command), ``name`` (the runtime's name in the daemon's ``runtimes``)."""

    name = "oci"
    priority = 20
    #: user namespaces: the runtime maps the IDs; the launcher makes the rootfs reachable to
    #: the remapped root (:mod:`.launch`) and the bundle's mounts work there (:mod:`.bundle`)
    user_namespaces = True
    runtime_paths = True
    bindings = ()  # the runtime compiles seccomp profiles itself
    launcher = LAUNCHER
    #: the binary looked up on PATH, and the Debian package that has it
    binary = ""
    package = ""

    def __init__(self, root: str, options: dict[str, Any] | None = None) -> None:
        opts = dict(options or {})
        if opts.get("name"):
            self.name = str(opts.pop("name"))  # type: ignore[misc]
        path = opts.pop("path", "") or (shutil.which(self.binary, path="/usr/local/sbin:"
                                                     "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                                        if self.binary else "")
        if not path or not os.access(path, os.X_OK):
            what = path or self.binary or "the runtime"
            hint = f" (apt-get install {self.package})" if self.package else ""
            raise DriverNotSupported(f"{self.name}: {what} not found or not executable{hint}")
        self.runtime_path = path
        self.runtime_args = [str(a) for a in opts.pop("runtimeArgs", None) or ()]
        super().__init__(root, opts)
        self.flavor = "crun" if "crun" in os.path.basename(path) else "runc"
        self._version: str | None = None

    def launcher_options(self) -> dict[str, Any]:
        return {"path": self.runtime_path, "runtimeArgs": self.runtime_args,
                "state_root": os.path.join(self.root, "state"), "flavor": self.flavor,
                "private_cgroupfs": self.flavor == "crun" and _hybrid_cgroups(),
                "name": self.name, "user_namespaces": self.user_namespaces}

    def version(self) -> str:
        if self._version is None:
            try:
                out = subprocess.run([self.runtime_path, "--version"], capture_output=True,
                                     text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            m = re.search(r"version\s+(\S+)", out)
            self._version = m.group(1) if m else ""
        return self._version

    def status(self) -> list[tuple[str, str]]:
        return [("Runtime", self.runtime_path), ("Version", self.version()),
                *super().status()]


class RuncDriver(OciDriver):
    name = "runc"
    binary = "runc"
    package = "runc"


class CrunDriver(OciDriver):
    name = "crun"
    binary = "crun"
    package = "crun"
