"""The ``GET /containers/json`` shape of a container record."""
from __future__ import annotations

import time
from typing import Any

from dockyard.hookspecs.host import units

from ..networks import NetworkService
from .config import parse_time


def summary(c: dict[str, Any], images: Any) -> dict[str, Any]:
    """The ``GET /containers/json`` shape of a container record."""
    st = c["State"]
    now = time.time()
    if st["Running"]:
        status = "Up " + units.human_duration(now - parse_time(st["StartedAt"]))
        if st["Paused"]:
            status += " (Paused)"
        elif st.get("Health"):
            hs = st["Health"].get("Status")
            status += " (health: starting)" if hs == "starting" else f" ({hs})"
    elif st["Status"] == "exited":
        status = f"Exited ({st['ExitCode']}) {units.human_duration(now - parse_time(st['FinishedAt']))} ago"
    else:
        status = st["Status"].capitalize()
    cmd = " ".join([c["Path"], *c["Args"]])
    image = c["Config"]["Image"]
    return {
        "Id": c["Id"], "Names": [c["Name"]], "Image": image, "ImageID": c["Image"],
        "Command": cmd, "Created": int(c["_created"]), "Ports": NetworkService.port_summary(c),
        "Labels": c["Config"].get("Labels") or {}, "State": st["Status"], "Status": status,
        "HostConfig": {"NetworkMode": c["HostConfig"].get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": c["NetworkSettings"].get("Networks", {})},
        "Mounts": c.get("Mounts", []),
    }
