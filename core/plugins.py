"""Finding drivers (stevedore, one of N by name) and extension plugins (pluggy, one to many).

Nothing is discovered at import time: :func:`make_plugin_manager` and :class:`DriverRegistry`
are factories the daemon and the CLI call once.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable

import pluggy
from stevedore import ExtensionManager

from dockyard.hookspecs import DRIVER_GROUPS, PLUGIN_GROUP, spec
from dockyard.hookspecs.errors import DriverNotFound, DriverNotSupported, InvalidParameter

log = logging.getLogger(__name__)


def make_plugin_manager(disabled: Iterable[str] = (), required: Iterable[str] = (),
                        load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh pluggy manager with dockyard's hookspecs and the installed ``dockyard.plugins``."""
    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(spec)
    for name in disabled:
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(PLUGIN_GROUP)
    missing = [name for name in required if pm.get_plugin(name) is None]
    if missing:
        raise InvalidParameter(
            "required plugin(s) not installed: " + ", ".join(missing)
            + "; installed plugins: " + (", ".join(n for n, _ in pm.list_name_plugin()) or "(none)"))
    return pm


def info_contributions(pm: pluggy.PluginManager) -> dict[str, Any]:
    """What the plugins add to ``GET /info`` (``dockyard_info``), keyed by plugin name; a plugin
    that raises is logged and left out, so one broken plugin cannot break ``info``."""
    out: dict[str, Any] = {}
    for impl in pm.hook.dockyard_info.get_hookimpls():
        try:
            value = impl.function()
        except Exception:  # noqa: BLE001 - a plugin's bug, reported, never the daemon's answer
            log.exception("plugin %s: dockyard_info failed", impl.plugin_name)
            continue
        if value is not None:
            out[impl.plugin_name] = value
    return out


class DriverRegistry:
    """The installed drivers of one kind, by entry-point name, loaded on demand by stevedore."""

    def __init__(self, kind: str) -> None:
        if kind not in DRIVER_GROUPS:
            raise ValueError(f"unknown driver kind {kind!r}")
        self.kind = kind
        self.group = DRIVER_GROUPS[kind]
        self._errors: dict[str, str] = {}
        self._mgr = ExtensionManager(self.group, invoke_on_load=False,
                                     on_load_failure_callback=self._load_failed)

    def _load_failed(self, manager: Any, entrypoint: Any, exc: BaseException) -> None:
        self._errors[entrypoint.name] = f"{type(exc).__name__}: {exc}"
        log.warning("%s driver %r failed to load: %s", self.kind, entrypoint.name, exc)

    def names(self) -> list[str]:
        return sorted(self._mgr.names())

    def load_errors(self) -> dict[str, str]:
        return dict(self._errors)

    def get_class(self, name: str) -> type:
        if name not in self._mgr.names():
            raise DriverNotFound(self.kind, name, self.names())
        return self._mgr[name].plugin

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Instantiate driver ``name``; DriverNotFound / DriverNotSupported propagate."""
        return self.get_class(name)(*args, **kwargs)

    def by_priority(self) -> list[str]:
        """Installed driver names, highest ``priority`` class attribute first (ties by name)."""
        return sorted(self.names(), key=lambda n: (-int(getattr(self.get_class(n), "priority", 0)), n))

    def select(self, explicit: str | None, factory: Callable[[str], Any],
               prior: str | None = None) -> Any:
        """Choose a driver the way moby does: the explicit one (errors propagate), else the one
        ``prior`` already used, else the installed ones by their declared ``priority`` — the
        first whose constructor does not raise DriverNotSupported. Core holds no list of names:
        a driver published on PyPI ranks itself."""
        if explicit:
            self.get_class(explicit)
            return factory(explicit)
        if prior and prior in self.names():
            return factory(prior)
        order = self.by_priority()
        reasons = []
        for name in order:
            try:
                return factory(name)
            except DriverNotSupported as exc:
                log.info("%s driver %s skipped: %s", self.kind, name, exc.reason)
                reasons.append(f"{name}: {exc.reason}")
        raise DriverNotSupported(f"no usable {self.kind} driver ({'; '.join(reasons) or 'none installed'})")


def prior_graph_driver(data_root: str, names: list[str]) -> str | None:
    """The graph driver whose directory in ``data_root`` already holds layers, if exactly one."""
    used = [n for n in names if os.path.isdir(os.path.join(data_root, n))
            and any(os.scandir(os.path.join(data_root, n)))]
    if len(used) > 1:
        raise InvalidParameter(
            f"{data_root} holds data of several storage drivers ({', '.join(used)}); "
            "choose one with --storage-driver")
    return used[0] if used else None
