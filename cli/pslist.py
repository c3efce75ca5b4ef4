"""``dockyard ps`` (``container ls``) without click: its options as data, its rows and its listing.

The most-run listing command is served by the entry point (:mod:`dockyard.cli.main`) without
importing click when its command line is plain; the click command (:mod:`dockyard.cli.ps`) is
built from the same :data:`OPTIONS`, so the two cannot drift apart.
"""
from __future__ import annotations

import json
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs a few ms on every dockyard run
if TYPE_CHECKING:
    from typing import Any


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


#: ps's options in the order ``--help`` lists them: (declarations, parameter, kind, default,
#: help); kind is ``flag``, ``str``, ``int`` or ``multiple`` (:mod:`dockyard.cli.fastargs`)
OPTIONS: tuple[tuple[tuple[str, ...], str, str, Any, str], ...] = (
    (("-a", "--all"), "all_", "flag", False, "Show all containers (default shows just running)"),
    (("-q", "--quiet"), "quiet", "flag", False, "Only display container IDs"),
    (("--no-trunc",), "no_trunc", "flag", False, "Don't truncate output"),
    (("--format",), "fmt", "str", None, "Format output using a custom template"),
    (("-n", "--last"), "last", "int", -1, "Show n last created containers (includes all states)"),
    (("-l", "--latest"), "latest", "flag", False,
     "Show the latest created container (includes all states)"),
    (("-s", "--size"), "size", "flag", False, "Display total file sizes"),
    (("-f", "--filter"), "filters", "multiple", (), "Filter output based on conditions provided"),
)


def list_containers(client: Any, all_: bool, quiet: bool, no_trunc: bool, fmt: str | None,
                    last: int, latest: bool, size: bool, filters: tuple[str, ...]) -> None:
    """List containers (the parameters are :data:`OPTIONS`')."""
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
    data = client.get_json("/containers/json", params) or []
    rows = [ContainerRow(c, not no_trunc) for c in data]
    if quiet and not fmt:
        sys.stdout.write("".join(r.ID + "\n" for r in rows))
        return
    if not fmt:
        fmt = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t"
               + ("{{.Names}}\t{{.Size}}" if size else "{{.Names}}"))
    from .fmt import render_list
    render_list(fmt, rows, PS_HEADERS)
