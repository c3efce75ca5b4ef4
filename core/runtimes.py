"""The daemon's exec drivers: every installed one that runs on this host, by name.

Docker calls them runtimes: ``docker run --runtime NAME`` (``HostConfig.Runtime``) picks one per
container among them, ``exec-driver`` (daemon.json, ``--exec-driver``) or dockerd's
``default-runtime`` names the default (a driver, or an entry of ``runtimes``), and
dockerd's ``runtimes`` map (``{"name": {"path": "/usr/bin/crun", "runtimeArgs": []}}``) adds
runtimes served by an installed driver that declares ``runtime_paths`` (an OCI-runtime driver),
one instance per entry. A container records the driver that ran it; every call about it goes to
that driver.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable

from dockyard.hookspecs.errors import DriverNotSupported, InvalidParameter

log = logging.getLogger(__name__)

#: the private key of a container record naming the exec driver that holds it
RECORD_KEY = "_runtime"


class Runtimes:
    """Exec drivers by name; ``default`` is the one a container gets without ``--runtime``."""

    record_key = RECORD_KEY

    def __init__(self, registry: Any, config: Any, exec_root: str, remapping: bool) -> None:
        self.remapping = remapping
        self.drivers: dict[str, Any] = {}
        #: installed drivers that cannot run here (or not with userns-remap) -> why
        self.unsupported: dict[str, str] = {}
        opts = config.exec_opts()

        def make(name: str, extra: dict[str, Any] | None = None) -> Any:
            return registry.create(name, os.path.join(exec_root, name), {**opts, **(extra or {})})

        wanted = config.get("default-runtime") or config["exec-driver"] or ""
        configured = config.get("runtimes") or {}
        self.default_name = wanted
        if wanted not in configured:  # a driver by name, or the installed one of highest priority
            drv = registry.select(wanted or None, make)
            if remapping and not getattr(drv, "user_namespaces", False):
                raise DriverNotSupported(f"userns-remap: the {drv.name} exec driver does not "
                                         f"run containers in user namespaces")
            self.drivers[drv.name] = drv
            self.default_name = drv.name
        for name in registry.names():
            if name not in self.drivers:
                self._add(name, functools.partial(make, name))
        for name, why in registry.load_errors().items():
            self.unsupported.setdefault(name, why)
        self._add_configured(registry, configured, exec_root, opts)
        if self.default_name not in self.drivers:
            raise DriverNotSupported(f"default runtime {self.default_name}: "
                                     f"{self.unsupported.get(self.default_name, 'not available')}")
        self.default = self.drivers[self.default_name]

    def _add(self, name: str, factory: Callable[[], Any]) -> None:
        try:
            drv = factory()
        except DriverNotSupported as exc:
            log.info("exec driver %s skipped: %s", name, exc.reason)
            self.unsupported[name] = exc.reason
            return
        if self.remapping and not getattr(drv, "user_namespaces", False):
            self.unsupported[name] = "does not run containers in user namespaces (userns-remap)"
            return
        self.drivers[name] = drv

    def _add_configured(self, registry: Any, runtimes: dict[str, Any], exec_root: str,
                        opts: dict[str, str]) -> None:
        """dockerd's ``runtimes`` map: each entry is served by the installed driver class that
        takes runtime paths."""
        if not runtimes:
            return
        classes = [registry.get_class(n) for n in registry.names()
                   if getattr(registry.get_class(n), "runtime_paths", False)]
        if not classes:
            raise InvalidParameter("runtimes: no installed exec driver runs OCI runtimes by path")
        for name, entry in runtimes.items():
            if name in self.drivers or name in registry.names():
                raise InvalidParameter(f"runtimes: runtime name {name!r} is reserved")
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or \
                    not isinstance(entry.get("runtimeArgs", []), list):
                raise InvalidParameter(f"runtimes: {name!r} needs a \"path\" string and "
                                       "optionally a \"runtimeArgs\" list")
            extra = {"path": entry["path"], "runtimeArgs": list(entry.get("runtimeArgs") or []),
                     "name": name}
            cls = classes[0]
            self._add(name, functools.partial(cls, os.path.join(exec_root, name),
                                              {**opts, **extra}))

    # -- choosing -------------------------------------------------------------------------------
    def choose(self, runtime: str) -> str:
        """The driver name for a create's ``HostConfig.Runtime`` (empty: the default), or a 400
        naming the valid choices."""
        if not runtime:
            return self.default_name
        if runtime in self.drivers:
            return runtime
        valid = ", ".join(sorted(self.drivers))
        why = self.unsupported.get(runtime)
        if why is not None:
            raise InvalidParameter(f"runtime {runtime!r} is not available on this host: {why} "
                                   f"(valid runtimes: {valid})")
        raise InvalidParameter(f"unknown or invalid runtime name: {runtime} (valid runtimes: "
                               f"{valid})")

    def of(self, c: dict[str, Any] | None) -> Any:
        """The driver holding container record ``c`` (records from before runtimes, and
        unknown containers: the default)."""
        if c is None:
            return self.default
        name = c.get(RECORD_KEY) or self.default_name
        drv = self.drivers.get(name)
        if drv is None:
            raise InvalidParameter(f"container {c['Id'][:12]} runs on the {name} runtime, which is "
                                   f"not available: {self.unsupported.get(name, 'not installed')}")
        return drv

    def names(self) -> list[str]:
        return sorted(self.drivers)

    def all(self) -> list[Any]:
        return [self.drivers[n] for n in self.names()]

    def info(self) -> dict[str, Any]:
        """``info``'s ``Runtimes``: each with its path and, under ``status``, its version."""
        out = {}
        for name, drv in sorted(self.drivers.items()):
            entry: dict[str, Any] = {"path": getattr(drv, "runtime_path", "") or name}
            args = getattr(drv, "runtime_args", None)
            if args:
                entry["runtimeArgs"] = list(args)
            entry["status"] = {"version": drv.version() or "", "driver": type(drv).name}
            out[name] = entry
        return out

    async def restore(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every driver's ``restore()``: the containers they hold by id, and their drivers."""
        held: dict[str, Any] = {}
        owner: dict[str, Any] = {}
        for drv in self.all():
            for p in await drv.restore():
                held[p.id], owner[p.id] = p, drv
        return held, owner

    async def close(self) -> None:
        for drv in self.all():
            await drv.close()
