"""``dockyard volume``: named and anonymous volumes (Docker's ``local`` driver)."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import complete
from .client import DaemonError
from .cmdutil import _call, _each, _err, _p, _print_pruned


@click.group(name="volume", short_help="Manage volumes")
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command(name="create", short_help="Create a volume")
@click.argument("name", required=False)
@click.option("-d", "--driver", default="local", help="Specify volume driver name")
@click.option("-l", "--label", "labels", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", "opts_", multiple=True, help="Set driver specific options")
@click.pass_obj
def volume_create(opts: Any, name: str | None, driver: str, labels: tuple[str, ...],
                  opts_: tuple[str, ...]) -> None:
    body = {"Name": name or "", "Driver": driver,
            "Labels": dict(lbl.partition("=")[::2] for lbl in labels),
            "DriverOpts": dict(o.partition("=")[::2] for o in opts_)}
    try:
        print(opts.client.post_json("/volumes/create", body=body)["Name"])
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)


@volume_group.command(name="ls", short_help="List volumes")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@click.pass_obj
def volume_ls(opts: Any, quiet: bool, filters: tuple[str, ...]) -> None:
    from .fmt import filter_args
    flt = filter_args(filters)
    res = opts.client.get_json("/volumes", {"filters": json.dumps(flt)} if flt else None) or {}
    vols = res.get("Volumes") or []
    if quiet:
        for v in vols:
            print(v["Name"])
        return
    print(f"{'DRIVER':<15} VOLUME NAME")
    for v in vols:
        print(f"{v['Driver']:<15} {v['Name']}")


@volume_group.command(name="inspect", short_help="Display detailed information on one or more volumes")
@click.argument("names", nargs=-1, required=True, shell_complete=complete.volumes)
@click.pass_obj
def volume_inspect(opts: Any, names: tuple[str, ...]) -> None:
    out, failed = [], False
    for n in names:
        try:
            out.append(opts.client.get_json(f"/volumes/{_p(n)}"))
        except DaemonError as e:
            _err(e.message)
            failed = True
    print(json.dumps(out, indent=4))
    if failed:
        sys.exit(1)


@volume_group.command(name="rm", short_help="Remove one or more volumes")
@click.argument("names", nargs=-1, required=True, shell_complete=complete.volumes)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@click.pass_obj
def volume_rm(opts: Any, names: tuple[str, ...], force: bool) -> None:
    _each(names, lambda n: _call(opts.client, "DELETE", f"/volumes/{_p(n)}",
                                 {"force": 1 if force else None}))


@volume_group.command(name="prune", short_help="Remove unused local volumes")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def volume_prune(opts: Any, all_: bool, force: bool) -> None:
    if not force and not click.confirm("WARNING! This will remove anonymous local volumes not used "
                                       "by at least one container.\nAre you sure you want to continue?"):
        return
    res = opts.client.post_json("/volumes/prune", {"filters": json.dumps({"all": {"true": True}})}
                                if all_ else None) or {}
    _print_pruned("Volumes", res.get("VolumesDeleted") or [], res.get("SpaceReclaimed"))
