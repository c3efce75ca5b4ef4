"""The peers: dockerd (Debian's docker.io, through the docker CLI) and podman (through its own
CLI, no service), each on its own fresh tmpfs, socket, configuration and (dockerd) bridge.

Started as HOST-FACTS describes: dockerd with no firewall rules, no masquerading and either no
bridge or a private one the bench makes; podman with runc, cgroupfs and ulimits within this host's
hard limits. Nothing of the host's own docker or podman set-up is read or touched, except what
podman cannot be told to leave (runc's state root /run/runc and c/image's blob-info cache).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from .. import host
from .base import CAP_API, Client, Engine, Skip, clean_env, docker_client
from .dockyard import docker_cli_version


def missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


class DockerdEngine(Engine):
    name = "dockerd"
    nets = ("none", "host", "bridge")
    caps = Engine.caps | {CAP_API}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.config.setdefault("graph", "overlay2")
        self.config.setdefault("exec", "runc")
        self.bridge = ""

    @staticmethod
    def unavailable() -> str | None:
        absent = missing("dockerd", "containerd", "docker")
        return f"{', '.join(absent)} not installed (apt-get install docker.io)" if absent else None

    def launch(self) -> None:
        net_args = ["--bridge=none"]
        if self.config.get("bridge"):
            self.bridge = host.unique_name("dkb")
            net = host.free_subnet()
            for argv in (["ip", "link", "add", self.bridge, "type", "bridge"],
                         ["ip", "addr", "add", f"{net.network_address + 1}/24", "dev", self.bridge],
                         ["ip", "link", "set", self.bridge, "up"]):
                host.run(argv)
            net_args = ["--bridge", self.bridge, "--ip-forward=false"]
        self.spawn(["dockerd", "--data-root", os.path.join(self.root, "data"),
                    "--exec-root", os.path.join(self.root, "exec"),
                    "--pidfile", os.path.join(self.root, "pid"), "-H", "unix://" + self.sock,
                    "--iptables=false", "--ip-masq=false", *net_args,
                    "--storage-driver", self.config["graph"]],
                   env=clean_env(), start_new_session=True)
        self.client = docker_client(self.sock, self.root)
        self.wait_ready()

    def owns(self, comm: str, argv: list[str]) -> bool:
        return (bool(self.root) and self.root in " ".join(argv)
                and (comm in ("dockerd", "containerd") or comm.startswith("containerd-shim")))

    def stop(self) -> None:
        super().stop()
        if self.bridge:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            self.bridge = ""

    def versions(self) -> dict[str, str | None]:
        return {"dockerd": host.tool_version(["dockerd", "--version"]),
                "containerd": host.tool_version(["containerd", "--version"]),
                "runc": host.tool_version(["runc", "--version"]),
                "docker-cli": docker_cli_version()}


class PodmanClient(Client):
    name = "podman CLI"
    run_opts = ("--pull", "never")
    rm_opts = ("-t", "0")
    pull_opts = ("--tls-verify=false",)
    build_opts = ("--layers",)


class PodmanEngine(Engine):
    """podman through its own CLI: no daemon, one conmon per container."""

    name = "podman"
    nets = ("none", "host")

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.config.setdefault("graph", "overlay")
        self.config.setdefault("exec", "runc")

    @staticmethod
    def unavailable() -> str | None:
        absent = missing("podman", "conmon", "runc")
        return f"{', '.join(absent)} not installed (apt-get install podman runc)" if absent else None

    def launch(self) -> None:
        r = self.root
        conf, storage, registries = (os.path.join(r, n) for n in
                                     ("containers.conf", "storage.conf", "registries.conf"))
        # This host: runc (crun refuses hybrid cgroups), cgroupfs (no systemd), and default ulimits
        # no higher than root's hard limits (CAP_SYS_RESOURCE is missing). See HOST-FACTS.md.
        with open(conf, "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_config_dir = "{r}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{r}/events.log"
tmp_dir = "{r}/tmp"
volume_path = "{r}/volumes"
""")
        with open(storage, "w") as f:
            f.write(f'[storage]\ndriver = "{self.config["graph"]}"\ngraphroot = "{r}/root"\n'
                    f'runroot = "{r}/runroot"\n')
        with open(registries, "w") as f:
            f.write("unqualified-search-registries = []\n")  # no short name resolves anywhere
        env = clean_env()
        env.update(CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage,
                   CONTAINERS_REGISTRIES_CONF=registries)
        self.client = PodmanClient(["podman", "--root", f"{r}/root", "--runroot", f"{r}/runroot",
                                    "--storage-driver", self.config["graph"]], env)
        r = self.client("version", check=False)
        if r.returncode != 0:
            raise Skip(f"podman does not run here: {r.stderr.decode().strip()[-300:]}")

    def load_image(self, tar: str) -> None:
        self.client("import", tar, "busybox:latest")

    def remove_all(self) -> None:
        self.client("rm", "-a", "-f", *self.client.rm_opts, check=False, timeout=600)

    def owns(self, comm: str, argv: list[str]) -> bool:
        return bool(self.root) and comm in ("conmon", "podman") and self.root in " ".join(argv)

    def stop(self) -> None:
        if self.client is not None and self.root:
            self.remove_all()
            # what rm could not end (conmons and their containers), by pid
            pids = self.engine_pids()
            host.kill_pids([c for p in pids for c in host.children(p)] + pids)
            if self.client("ps", "-aq", check=False).stdout.strip():
                self.remove_all()
        self.client = None
        super().stop()

    def versions(self) -> dict[str, str | None]:
        return {"podman": host.tool_version(["podman", "--version"]),
                "conmon": host.tool_version(["conmon", "--version"]),
                "runc": host.tool_version(["runc", "--version"])}
