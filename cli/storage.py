"""``dockyard storage migrate --to DRIVER``: move images and stopped containers to another
storage driver, verifying every layer (``POST /dockyard/storage/migrate`` on dockyardd)."""
from __future__ import annotations

import json
from typing import Any

import click


@click.group(short_help="Manage the daemon's storage")
def storage() -> None:
    """Manage the daemon's storage (graph driver)."""


@storage.command(short_help="Move all images and stopped containers to another storage driver")
@click.option("--to", "to", required=True, metavar="DRIVER", help="the storage driver to move to")
@click.option("--storage-opt", "opts", multiple=True, metavar="KEY=VALUE",
              help="storage option of the new driver (repeatable)")
@click.pass_obj
def migrate(opts_obj: Any, to: str, opts: tuple[str, ...]) -> None:
    """Move every image layer and stopped container's layer from the daemon's storage driver to
    DRIVER, checking each layer reads back identically, then switch the daemon to DRIVER.
    No container may be running."""
    resp = opts_obj.client.request("POST", "/dockyard/storage/migrate",
                                   {"to": to, "opt": list(opts) or None})
    for line in resp.iter_lines():
        if not line.strip():
            continue
        msg = json.loads(line)
        if "error" in msg:
            raise click.ClickException(msg["error"])
        parts = [msg.get("id"), msg.get("status"), msg.get("progress"), msg.get("digest")]
        click.echo(" ".join(p for p in parts if p))
