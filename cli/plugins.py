"""``dockyard plugins ls`` / ``info``: every driver and plugin, its package, version and state.

Asked of the daemon (``GET /dockyard/plugins``: what it found and uses); with no daemon to
ask (or ``--local``), computed here from the installed packages and the daemon's configuration
file, as a daemon started now would find them (nothing is then ``active``).
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .client import ConnectError

DEFAULT_FORMAT = "table {{.Kind}}\t{{.Name}}\t{{.Package}}\t{{.Version}}\t{{.State}}"
HEADERS = {"Kind": "KIND", "Name": "NAME", "Package": "PACKAGE", "Version": "VERSION",
           "State": "STATE"}


def _rows(opts: Any, local: bool, config_file: str | None) -> list[dict[str, Any]]:
    if not local:
        try:
            return opts.client.get_json("/dockyard/plugins")
        except ConnectError as e:
            print(f"{e}\n(listing what is installed here instead, as a daemon started now would "
                  "find it)", file=sys.stderr)
    from dockyard.core import inventory
    from .app import daemon_config
    return inventory.local(daemon_config(config_file))


def _state(row: dict[str, Any]) -> str:
    return f"{row['State']}: {row['Reason']}" if row.get("Reason") else row["State"]


@click.group(name="plugins", short_help="List drivers and plugins")
def plugins_group() -> None:
    """List dockyard's drivers (graph, exec, network, registry), its extension plugins and the
    Docker plugins it found, with their packages and states."""


_local = click.option("--local", is_flag=True,
                      help="Do not ask the daemon: list what is installed here")
_config = click.option("--config-file", metavar="PATH",
                       help="The daemon configuration read without a daemon (disabled-plugins, "
                            "docker-plugin-dirs) [default: $DOCKYARD_CONFIG_FILE, else "
                            "/etc/dockyard/daemon.json]")


@plugins_group.command(name="ls", short_help="List drivers and plugins")
@click.option("-k", "--kind", help="Only this kind (graph, exec, network, registry, plugin, docker)")
@click.option("--format", "fmt", help="Format the output using a Go template, or 'json'")
@click.option("-q", "--quiet", is_flag=True, help="Only display names")
@_local
@_config
@click.pass_obj
def plugins_ls(opts: Any, kind: str | None, fmt: str | None, quiet: bool, local: bool,
               config_file: str | None) -> None:
    """List every driver and plugin: kind, name, package, version and state (active,
    available, disabled, skipped: reason, broken: error)."""
    from .fmt import render_list
    rows = [r for r in _rows(opts, local, config_file) if not kind or r["Kind"] == kind]
    if quiet:
        fmt = "{{.Name}}"
    shown = [{**r, "Package": r.get("Package") or "-", "Version": r.get("Version") or "-",
              "State": _state(r)} for r in rows]
    render_list(fmt or DEFAULT_FORMAT, shown, HEADERS)


@plugins_group.command(name="info", short_help="Show one driver or plugin in detail")
@click.argument("name")
@click.option("-k", "--kind", help="The kind, when several of that name exist")
@_local
@_config
@click.pass_obj
def plugins_info(opts: Any, name: str, kind: str | None, local: bool,
                 config_file: str | None) -> None:
    """Everything known about driver or plugin NAME (JSON): kind, package, version, entry
    point, state and reason, and the hooks it implements (plugins) or the protocols it speaks
    (Docker plugins)."""
    rows = [r for r in _rows(opts, local, config_file)
            if r["Name"] == name and (not kind or r["Kind"] == kind)]
    if not rows:
        raise click.ClickException(f"Error: No such driver or plugin: {name}")
    print(json.dumps(rows, indent=4))
