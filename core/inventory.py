"""Every driver and plugin dockyard can find, its package and version, and its state — what
``dockyard plugins ls`` and ``info`` show (``GET /dockyard/plugins``, or computed in the CLI
when no daemon runs).

States: ``active`` (in use by the daemon), ``available`` (installed, loads, not in use),
``skipped`` (the driver refused this host: DriverNotSupported, with its reason), ``broken``
(its entry point fails to import, with the error), ``disabled`` (named by ``disabled-plugins``).
Kinds: the four driver kinds, ``plugin`` (pluggy extension plugins, group
``dockyard.plugins``) and ``docker`` (Docker's out-of-process plugins: volume plugins...).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from dockyard.hookspecs import DRIVER_GROUPS, PLUGIN_GROUP


def entry_points(group: str) -> dict[str, dict[str, str]]:
    """Entry-point name -> its ``EntryPoint`` (``module:attr``), ``Package`` and ``Version`` (the
    distribution that declares it)."""
    from importlib.metadata import entry_points as eps

    out = {}
    for ep in eps(group=group):
        dist = getattr(ep, "dist", None)
        out[ep.name] = {"EntryPoint": ep.value, "Package": dist.name if dist else "",
                        "Version": dist.version if dist else ""}
    return out


def _row(kind: str, name: str, state: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    return {"Kind": kind, "Name": name, "State": state, "Reason": reason, **extra}


def drivers(registries: Mapping[str, Any], active: Mapping[str, Iterable[str]] = {},
            skipped: Mapping[str, Mapping[str, str]] = {}) -> list[dict[str, Any]]:
    """The drivers of each kind: ``active`` names the ones in use, ``skipped`` the ones a
    selection passed over (with why); the others are available or broken."""
    out = []
    for kind, reg in registries.items():
        meta = entry_points(DRIVER_GROUPS[kind])
        errors = reg.load_errors()
        used = set(active.get(kind, ()))
        passed = skipped.get(kind, {})
        for name in sorted(set(reg.names()) | set(errors)):
            if name in errors:
                state, reason = "broken", errors[name]
            elif name in used:
                state, reason = "active", ""
            elif name in passed:
                state, reason = "skipped", passed[name]
            else:
                state, reason = "available", ""
            out.append(_row(kind, name, state, reason, **meta.get(name, {})))
    return out


def extension_plugins(pm: Any, loaded_means: str = "active") -> list[dict[str, Any]]:
    """The pluggy plugins installed in ``dockyard.plugins``: ``loaded_means`` for those the
    manager ``pm`` loaded, ``disabled`` for the blocked ones; each with the hooks it implements."""
    meta = entry_points(PLUGIN_GROUP)
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda x: x[0]):
        if plugin is None:  # blocked (disabled-plugins): listed only when installed
            if name in meta:
                out.append(_row("plugin", name, "disabled", "named by disabled-plugins",
                                **meta[name]))
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        out.append(_row("plugin", name, loaded_means, "", Hooks=hooks, **meta.get(name, {})))
    return out


def docker_plugins(dirs: Any) -> list[dict[str, Any]]:
    """Docker's out-of-process plugins announced in the plugin directories (``PluginDirs``):
    ``active`` once activated (what they implement is known), else ``available``."""
    out = []
    for p in dirs.describe():
        state = "active" if p["Implements"] is not None else "available"
        out.append(_row("docker", p["Name"], state, "", Package="", Version="",
                        EntryPoint=p["Addr"], Source=p["Source"], Implements=p["Implements"]))
    return out


def of_daemon(d: Any) -> list[dict[str, Any]]:
    """What the running daemon ``d`` found and uses."""
    active = {"graph": [d.graph.name], "exec": [d.execdriver.name], "network": list(d.netdrivers)}
    skipped = {"graph": d.registries["graph"].skipped, "exec": d.registries["exec"].skipped,
               "network": d.netdriver_errors}
    return (drivers(d.registries, active, skipped) + extension_plugins(d.pm)
            + docker_plugins(d.docker_plugins))


def local(config: Any) -> list[dict[str, Any]]:
    """What a daemon started now with ``config`` would find (nothing is active: none runs)."""
    from .dockerplugins import PluginDirs
    from .plugins import DriverRegistry, make_plugin_manager

    registries = {kind: DriverRegistry(kind) for kind in DRIVER_GROUPS}
    pm = make_plugin_manager(config["disabled-plugins"])
    return (drivers(registries) + extension_plugins(pm, loaded_means="available")
            + docker_plugins(PluginDirs(config["docker-plugin-dirs"])))
