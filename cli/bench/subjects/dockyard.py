"""dockyardd as a benchmark engine: one daemon per (graph driver, exec driver), on its own fresh
file system, socket and default bridge (a unique name and subnet, IPv4 forwarding left alone)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from .. import host
from .base import (CAP_API, CAP_CONTAINERS, CAP_GRAPH, CAP_IMAGES, CAP_NETDRIVER, CAP_RUN, Client,
                   Engine, Skip, clean_env, docker_client)


def registry_names(kind: str) -> list[str]:
    """Installed drivers of ``kind`` (``graph``, ``exec``, ``network``), by the daemon's
    registry, in the order of its preference (their declared ``priority``)."""
    from dockyard.core.plugins import DriverRegistry
    return DriverRegistry(kind).by_priority()


def driver_class(kind: str, name: str) -> type:
    from dockyard.core.plugins import DriverRegistry
    return DriverRegistry(kind).get_class(name)


class DockyardEngine(Engine):
    name = "dockyard"
    nets = ("none", "host", "bridge")
    caps = frozenset({CAP_RUN, CAP_CONTAINERS, CAP_IMAGES, CAP_API, CAP_GRAPH, CAP_NETDRIVER})

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        graph = config.get("graph")
        self.fstype = getattr(driver_class("graph", graph), "required_fs", None) if graph else None
        self.bridge = ""

    def launch(self) -> None:
        dockyardd = host.venv_tool("dockyardd")
        if dockyardd is None:
            raise Skip("dockyardd not found next to this interpreter nor on PATH")
        cfg = os.path.join(self.root, "daemon.json")
        with open(cfg, "w") as f:
            f.write("{}")
        self.bridge = host.unique_name("dyb")
        net = host.free_subnet()
        argv = [dockyardd, "--config-file", cfg, "--data-root", os.path.join(self.root, "data"),
                "--exec-root", os.path.join(self.root, "exec"), "-H", "unix://" + self.sock,
                "--log-level", "warn", "--bridge", self.bridge,
                "--bip", f"{net.network_address + 1}/{net.prefixlen}", "--ip-forward", "false"]
        if self.config.get("graph"):
            argv += ["--storage-driver", self.config["graph"]]
        if self.config.get("exec"):
            argv += ["--exec-driver", self.config["exec"]]
        self.spawn(argv, env=clean_env())
        # the docker CLI, as for dockerd, so that both are driven by the same client
        self.client = docker_client(self.sock, self.root) if shutil.which("docker") \
            else dockyard_client(self.sock)
        self.wait_ready()
        info = self.api_info()
        self.config["graph"], self.config["exec"] = info["Driver"], info["ExecutionDriver"]

    def api_info(self) -> dict[str, Any]:
        from dockyard.cli.client import Client as ApiClient
        api = ApiClient("unix://" + self.sock, timeout=60)
        try:
            return api.get_json("/info")
        finally:
            api.close()

    def owns(self, comm: str, argv: list[str]) -> bool:
        joined = " ".join(argv)
        return bool(self.root) and self.root in joined and ("dockyardd" in joined
                                                            or "supervisor" in joined
                                                            or "execdrivers.lxc.monitor" in joined)

    def stop(self) -> None:
        super().stop()
        self.remove_bridge()

    def remove_bridge(self) -> None:
        """A clean stop removes the default bridge and its nftables tables; after a crash they
        are removed here (they have this run's unique name)."""
        if not self.bridge:
            return
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for family in ("ip", "bridge"):
            subprocess.run(["nft", "delete", "table", family, "dockyard_" + self.bridge],
                           capture_output=True)
        self.bridge = ""

    def versions(self) -> dict[str, str | None]:
        from importlib.metadata import version
        return {"dockyard": version("dockyard"), "dockyard-source": source_revision(),
                "docker-cli": docker_cli_version()}


def dockyard_client(sock: str) -> Client:
    """dockyard's own CLI (Python) against ``sock``."""
    env = clean_env()
    env["DOCKYARD_HOST"] = "unix://" + sock
    c = Client([host.venv_tool("dockyard") or "dockyard"], env)
    c.name = "dockyard CLI"
    return c


def source_revision() -> str | None:
    """The git commit of the checkout dockyard runs from (``-dirty`` with changes), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--abbrev=12"],
                       capture_output=True, text=True)
    return r.stdout.strip() or None if r.returncode == 0 else None


def docker_cli_version() -> str | None:
    r = host.tool_version(["docker", "version", "--format", "{{json .Client.Version}}"])
    return json.loads(r) if r and r.startswith('"') else r
