"""``dockyard ps`` (``container ls``): a module of its own, so the most-run listing command
imports only click, the client and the formatter — not the run/create machinery."""
from __future__ import annotations

import json
import sys
from typing import Any

import click


def ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


class ContainerRow:
    """docker's ps formatting context (placeholders as attributes, ``.Label`` as a method)."""

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        from .fmt import ago, stringify_ports, to_epoch
        self._c = c
        self._trunc = trunc
        cid = c.get("Id", "")
        self.ID = cid[:12] if trunc else cid
        image = c.get("Image", "")
        if trunc and image.startswith("sha256:"):
            image = image[7:19]
        self.Image = image
        cmd = c.get("Command", "")
        self.Command = json.dumps(ellipsis(cmd, 20) if trunc else cmd, ensure_ascii=False)
        created = to_epoch(c.get("Created"))
        import time
        self.CreatedAt = time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created)) if created else ""
        self.RunningFor = ago(c.get("Created"))
        self.Ports = stringify_ports(c.get("Ports"))
        self.State = c.get("State", "")
        self.Status = c.get("Status") or self.State
        sz = c.get("SizeRw")
        if sz is not None:
            from .fmt import human_size
            self.Size = f"{human_size(sz)} (virtual {human_size(c.get('SizeRootFs') or 0)})"
        else:
            self.Size = "0B"
        names = [n.lstrip("/") for n in c.get("Names") or []]
        if trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        self.Names = ",".join(names)
        labels = c.get("Labels") or {}
        self.Labels = ",".join(f"{k}={v}" for k, v in labels.items())
        self.Mounts = ",".join((m.get("Name") or m.get("Source", "")) for m in c.get("Mounts") or [])
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
        self.Networks = ",".join(sorted(nets))
        self.LocalVolumes = str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Label(self, name: str) -> str:
        return (self._c.get("Labels") or {}).get(name, "")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
              "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}


@click.command(short_help="List containers")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--format", "fmt", help="Format output using a custom template")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.pass_obj
def ps(opts: Any, all_: bool, quiet: bool, no_trunc: bool, fmt: str | None, last: int, latest: bool,
       size: bool, filters: tuple[str, ...]) -> None:
    """List containers."""
    from .fmt import filter_args
    params: dict[str, Any] = {}
    if latest:
        last = 1
    if all_ or last > 0:
        params["all"] = 1
    if last > 0:
        params["limit"] = last
    if size or (fmt and ".Size" in fmt):
        params["size"] = 1
    if filters:
        params["filters"] = json.dumps(filter_args(filters))
    data = opts.client.get_json("/containers/json", params) or []
    rows = [ContainerRow(c, not no_trunc) for c in data]
    if quiet and not fmt:
        sys.stdout.write("".join(r.ID + "\n" for r in rows))
        return
    if not fmt:
        fmt = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t"
               + ("{{.Names}}\t{{.Size}}" if size else "{{.Names}}"))
    from .fmt import render_list
    render_list(fmt, rows, PS_HEADERS)


