"""SIGHUP: re-read ``daemon.json`` and apply the keys that can change while the daemon runs.

As dockerd (``daemon/reload.go``): the file is read again with the command-line flags on top (a
key given both ways is the same error as at start-up), checked as at start-up, and only then
applied — a bad file changes nothing and the daemon keeps serving. Reloadable: ``debug``,
``log-level``, ``labels``, ``insecure-registries``, ``registry-mirrors``. Containers are not
touched. A changed key that only takes effect at start-up is named in a warning rather than
dropped silently. A ``daemon reload`` event carries the new values, as dockerd's does.
"""
from __future__ import annotations

import json
import logging
import socket
from typing import Any

from dockyard.hookspecs.errors import DockyardError

from ..config import Config

log = logging.getLogger("dockyard.daemon")

RELOADABLE = ("debug", "log-level", "labels", "insecure-registries", "registry-mirrors")


def logging_level(cfg: Config) -> str:
    """The ``logging`` level name for the configured ``log-level`` (``debug`` forces debug)."""
    level = cfg["log-level"]
    return {"warn": "WARNING", "fatal": "CRITICAL"}.get(level, level.upper())


def reload(daemon: Any) -> dict[str, str]:
    """Re-read the configuration of ``daemon`` and apply what is reloadable. Returns the event
    attributes (the reloadable values now in force); raises DockyardError, changing nothing,
    when the file or a flag conflict is invalid."""
    old: Config = daemon.config
    new = old.reread()
    needs_restart = sorted(k for k in new.values
                           if k not in RELOADABLE and new.values[k] != old.values[k])
    for key in RELOADABLE:
        old.values[key] = new.values[key]
    old.source = new.source
    logging.getLogger().setLevel(logging_level(old))
    if needs_restart:
        log.warning("configuration changes that take effect only when dockyardd restarts: %s",
                    ", ".join(needs_restart))
    attrs = {"debug": str(old["log-level"] == "debug").lower(), "log-level": old["log-level"],
             "labels": json.dumps(old["labels"]),
             "insecure-registries": json.dumps(old["insecure-registries"]),
             "registry-mirrors": json.dumps(old["registry-mirrors"]),
             "name": socket.gethostname()}
    log.info("Reloaded configuration: %s", json.dumps({k: old[k] for k in RELOADABLE}))
    return attrs


def on_sighup(daemon: Any, systemd: Any) -> None:
    """The SIGHUP handler: reload, telling the service manager before and after."""
    systemd.reloading()
    try:
        attrs = reload(daemon)
    except DockyardError as exc:
        log.error("Error reloading configuration: %s", exc.message)
        systemd.ready(f"configuration NOT reloaded: {exc.message}")
        return
    daemon.event("daemon", "reload", daemon.state.get_meta("daemon-id") or "", attrs)
    systemd.ready("serving the Docker Engine API (configuration reloaded)")
