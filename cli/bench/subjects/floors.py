"""The floors of a container start: a low-level runtime alone on the same busybox rootfs, with no
image store, no daemon and no client (``runc run``, ``crun run``, ``lxc-execute``). They only run
a command, so only the ``run`` scenario measures them.

* runc and crun get an OCI bundle: ``runc spec``'s ``config.json`` (new pid, network — ``lo``
  only —, ipc, uts and mount namespaces; no seccomp, no limits) with the command as ``args``, no
  terminal, root not read-only. One container id serves every run (``run`` deletes it at exit).
* crun 1.8 refuses this host's hybrid cgroups; it runs through ``nsenter`` in a mount namespace
  the bench made where ``/sys/fs/cgroup/unified`` is unmounted (``unshare --mount=FILE``): the
  figure includes that ``nsenter``, whose own cost is recorded as ``nsenter_true_ms``.
* lxc-execute gets a configuration with the same rootfs, an empty network
  (``lxc.net.0.type = empty``) and ``lxc.apparmor.profile = unconfined``.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from typing import Any

from .. import host
from .base import Skip, clean_env


class Floor:
    name = ""
    tools: tuple[str, ...] = ()
    apt = ""

    def __init__(self) -> None:
        self.fs: host.FreshFs | None = None
        self.root = ""
        self.cmd: list[str] = []
        self.env = clean_env()
        self.info: dict[str, Any] = {}

    def unavailable(self) -> str | None:
        absent = [t for t in self.tools if shutil.which(t) is None]
        return f"{', '.join(absent)} not installed (apt-get install {self.apt})" if absent else None

    def start(self, image_tar: str, cmd: list[str]) -> None:
        self.fs = host.FreshFs(prefix=f"dyb-{self.name[:4]}-").__enter__()
        self.root = self.fs.path
        self.cmd = list(cmd)
        try:
            rootfs = os.path.join(self.root, "bundle", "rootfs")
            os.makedirs(rootfs)
            host.run(["tar", "-xf", image_tar, "-C", rootfs])
            self.prepare(rootfs)
            self.check()
        except host.CommandFailed as e:
            self.stop()
            raise Skip(f"{self.name} does not run here: {e}") from None
        except BaseException:
            self.stop()
            raise

    def prepare(self, rootfs: str) -> None:
        raise NotImplementedError

    def check(self) -> None:
        host.run(self.run_argv(self.cmd), env=self.env, timeout=120)

    def run_argv(self, cmd: list[str]) -> list[str]:
        if cmd != self.cmd:
            raise Skip(f"{self.name} floor was prepared for {self.cmd}, not {cmd}")
        return self.argv()

    def argv(self) -> list[str]:
        raise NotImplementedError

    def stop(self) -> None:
        if self.fs is not None:
            self.fs.close()
            self.fs = None

    def versions(self) -> dict[str, str | None]:
        return {self.name: host.tool_version([self.tools[0], "--version"])}


class OciFloor(Floor):
    """runc or crun on an OCI bundle."""

    container_id = "dybench-floor"

    def prepare(self, rootfs: str) -> None:
        bundle = os.path.dirname(rootfs)
        host.run(["runc", "spec", "--bundle", bundle])
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["process"]["args"] = self.cmd
        config["process"]["terminal"] = False
        config["root"]["readonly"] = False
        namespaces = config["linux"].setdefault("namespaces", [])
        if not any(n["type"] == "network" for n in namespaces):
            namespaces.append({"type": "network"})  # a new one: lo only, as --network none
        with open(path, "w") as f:
            json.dump(config, f, indent=2)

    def runtime_argv(self, runtime: str) -> list[str]:
        return [runtime, "--root", os.path.join(self.root, "state"), "run",
                "--bundle", os.path.join(self.root, "bundle"), self.container_id]

    def stop(self) -> None:
        if self.root and os.path.isdir(os.path.join(self.root, "state")):
            subprocess.run([self.tools[0], "--root", os.path.join(self.root, "state"), "delete",
                            "-f", self.container_id], capture_output=True)
        super().stop()


class RuncFloor(OciFloor):
    name = "runc"
    tools = ("runc",)
    apt = "runc"

    def argv(self) -> list[str]:
        return self.runtime_argv("runc")


class CrunFloor(OciFloor):
    name = "crun"
    tools = ("crun", "runc", "nsenter", "unshare")
    apt = "crun runc"

    def prepare(self, rootfs: str) -> None:
        super().prepare(rootfs)
        self.mntns = os.path.join(self.root, "mntns")
        open(self.mntns, "w").close()
        cmd = ["umount", "/sys/fs/cgroup/unified"] if os.path.isdir("/sys/fs/cgroup/unified") \
            and os.path.ismount("/sys/fs/cgroup/unified") else ["true"]
        host.run(["unshare", f"--mount={self.mntns}", "--propagation", "private", *cmd])
        self.info["nsenter_true_ms"] = 1000 * statistics.median(
            host.timed(["nsenter", f"--mount={self.mntns}", "true"]) for _ in range(5))

    def argv(self) -> list[str]:
        return ["nsenter", f"--mount={self.mntns}", *self.runtime_argv("crun")]

    def stop(self) -> None:
        if self.root and os.path.isdir(os.path.join(self.root, "state")):
            subprocess.run(["nsenter", f"--mount={self.mntns}", "crun", "--root",
                            os.path.join(self.root, "state"), "delete", "-f", self.container_id],
                           capture_output=True)
        if self.root:
            subprocess.run(["umount", os.path.join(self.root, "mntns")], capture_output=True)
        Floor.stop(self)


class LxcFloor(Floor):
    name = "lxc-execute"
    tools = ("lxc-execute",)
    apt = "lxc"
    container_name = "dybench-floor"

    def prepare(self, rootfs: str) -> None:
        self.lxcpath = os.path.join(self.root, "lxc")
        os.makedirs(self.lxcpath)
        self.conf = os.path.join(self.root, "lxc.conf")
        with open(self.conf, "w") as f:
            f.write(f"lxc.rootfs.path = dir:{rootfs}\nlxc.apparmor.profile = unconfined\n"
                    "lxc.net.0.type = empty\nlxc.uts.name = dybench\n")
        # lxc leaves an empty "lxc.pivot" cgroup in every hierarchy: removed at the end if this
        # run made it
        self.pivots = [p for p in pivot_cgroups() if not os.path.isdir(p)]

    def argv(self) -> list[str]:
        return ["lxc-execute", "-n", self.container_name, "-P", self.lxcpath, "-f", self.conf,
                "--", *self.cmd]

    def stop(self) -> None:
        for p in getattr(self, "pivots", []):
            if os.path.isdir(p):
                try:
                    os.rmdir(p)
                except OSError:
                    pass  # not empty: someone else's lxc uses it now
        super().stop()

    def versions(self) -> dict[str, str | None]:
        return {"lxc": host.tool_version(["lxc-execute", "--version"])}


def pivot_cgroups() -> list[str]:
    base = "/sys/fs/cgroup"
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return [os.path.join(base, n, "lxc.pivot") for n in names
            if os.path.isdir(os.path.join(base, n)) and not os.path.islink(os.path.join(base, n))]


FLOORS: dict[str, type[Floor]] = {"runc": RuncFloor, "crun": CrunFloor, "lxc": LxcFloor}
