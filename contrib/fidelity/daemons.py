"""The daemons a client suite runs against: dockyardd (this checkout's venv) and dockerd 20.10
(Debian's docker.io), each with a socket, data-root, exec-root and pidfile of its own under a
fresh directory, started inside the run's sandbox (see sandbox.py) with the sandbox's registry as
their Docker Hub mirror.

Both reuse the test suite's ``Daemon`` (tests/conftest.py): its start (wait for ``/_ping``), stop,
API client and container clean-up; only the command line differs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import urllib.parse
from typing import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

import conftest  # noqa: E402  (the test suite's daemon helpers)

from sandbox import Sandbox, kill_members, ns_inode  # noqa: E402


class UnderTest(conftest.Daemon):
    name = ""
    stop_timeout = 90.0

    def __init__(self, root: str, sandbox: Sandbox, registry_addr: str) -> None:
        super().__init__(root)
        self.sandbox = sandbox
        self.registry_addr = registry_addr
        self.log_path = os.path.join(root, f"{self.name}.log")
        self.mnt_ns: int | None = None  # the daemon's private mount namespace, once started

    def start(self, timeout: float = 120) -> None:
        super().start(timeout)
        self.mnt_ns = ns_inode(f"/proc/{self.proc.pid}/ns/mnt")

    def pull(self, short: str) -> None:
        """Pull ``short`` (``repo:tag``) through the daemon's own pull (from the mirror)."""
        repo, tag = short.rsplit(":", 1)
        query = urllib.parse.urlencode({"fromImage": repo, "tag": tag})
        status, body = self.api.post(f"/images/create?{query}", timeout=600)
        errors = [m for m in (body if isinstance(body, list) else [body])
                  if isinstance(m, dict) and m.get("error")]
        if status != 200 or errors:
            raise RuntimeError(f"{self.name}: pull {short} failed: {status} {errors or body!r}")

    def shutdown(self) -> None:
        """Remove every container, stop the daemon, end whatever of it is left."""
        with contextlib.suppress(OSError):
            self.remove_all_containers()
        self.stop(timeout=self.stop_timeout)
        self.end_helpers()

    def end_helpers(self) -> None:
        pass


class Dockyardd(UnderTest):
    name = "dockyardd"

    def argv(self) -> list[str]:
        return self.sandbox.daemon([*super().argv(), "--registry-mirror", f"http://{self.registry_addr}",
                                    "--insecure-registry", self.registry_addr])

    def end_helpers(self) -> None:
        # the supervisor leaves by itself once it holds no container; else end it (as conftest does)
        pids = []
        for dirpath, _dirs, files in os.walk(self.exec_root):
            for name in files:
                if name.endswith(".pid"):
                    with contextlib.suppress(OSError, ValueError), open(os.path.join(dirpath, name)) as f:
                        pids.append(int(f.read().strip()))
        for pid in pids:
            conftest._wait_gone(pid, 10)
        conftest._kill_pidfile_tree(self.exec_root)


class Dockerd(UnderTest):
    """dockerd with its default networking (docker0, iptables) — inside the sandbox, so that bridge
    and those rules are the sandbox's own — and the containerd it starts itself."""
    name = "dockerd"

    def __init__(self, root: str, sandbox: Sandbox, registry_addr: str,
                 experimental: bool = False) -> None:
        super().__init__(root, sandbox, registry_addr)
        self.experimental = experimental

    def argv(self) -> list[str]:
        argv = ["dockerd", "--config-file", os.path.join(self.root, "daemon.json"),
                "--data-root", self.data_root, "--exec-root", self.exec_root,
                "--pidfile", os.path.join(self.root, "dockerd.pid"), "-H", self.host,
                "--storage-driver", "overlay2",
                "--registry-mirror", f"http://{self.registry_addr}",
                "--insecure-registry", self.registry_addr]
        if self.experimental:
            argv.append("--experimental")
        return self.sandbox.daemon(argv)

DAEMONS = {"dockyardd": Dockyardd, "dockerd": Dockerd}


@contextlib.contextmanager
def running(kind: str, sandbox: Sandbox, registry_addr: str, keep_dir: str,
            **options: object) -> Iterator[UnderTest]:
    """A started daemon of ``kind`` under a fresh directory in /tmp (short: socket paths are
    limited); at the end its log is copied to ``keep_dir`` and the directory removed."""
    root = conftest.make_root()
    d = DAEMONS[kind](root, sandbox, registry_addr, **options)
    try:
        d.start()
        yield d
    finally:
        try:
            d.shutdown()
        finally:
            # whatever is left in the daemon's mount namespace: shims, containerd, containers
            left = kill_members("mnt", d.mnt_ns)
            if left:
                print(f"{kind}: ended {len(left)} leftover process(es) of the sandbox", file=sys.stderr)
            time.sleep(0.5)
            with contextlib.suppress(OSError):
                shutil.copy(d.log_path, os.path.join(keep_dir, f"{kind}.log"))
            conftest._unmount_under(root)
            shutil.rmtree(root, ignore_errors=True)
