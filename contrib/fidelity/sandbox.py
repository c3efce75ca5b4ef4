"""A private network namespace for one client-suite run, and the loopback registry inside it.

Everything the run starts — the registry, the daemon under test, its containers, the client's
pytest — lives in one network namespace made for the run (``ip netns add dkyfid-<random>``,
loopback only). So nothing a test does can reach an outside name or address (there is no route),
and the daemons' bridges, firewall rules and published ports never meet the host's or another
engineer's. A daemon also gets a mount namespace of its own (a slave of the host's) with a sysfs
that describes the private network namespace and the host's cgroup mounts moved back under it;
``/`` is made rshared there (as on a systemd host: rshared binds need it; still a slave of the
host's, so nothing propagates back), and ``/run/containerd`` is covered by a tmpfs there so dockerd starts its own containerd (it would use
a system one whose socket it finds) and its shims' sockets stay private.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

# Run as ``sh -c DAEMON_WRAPPER sh ARGV...`` inside the fresh mount namespace, then exec ARGV.
DAEMON_WRAPPER = r"""
set -e
keep=$(mktemp -d /tmp/dkyfid-sys.XXXXXX)
mount --rbind /sys/fs/cgroup "$keep"
mount -t sysfs sysfs /sys
mount --move "$keep" /sys/fs/cgroup
rmdir "$keep"
mount --make-rshared /
if [ -d /run/containerd ]; then mount -t tmpfs -o mode=0711 tmpfs /run/containerd; fi
exec "$@"
"""


def ns_inode(path: str) -> int | None:
    """Inode of a namespace file (``/run/netns/X``, ``/proc/PID/ns/mnt``): the namespace's id."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def members(kind: str, ino: int | None) -> list[int]:
    """Processes in the ``kind`` namespace (``net``, ``mnt``) with inode ``ino``, and every
    descendant of theirs (containers, which have namespaces of their own). Never the caller's own
    namespace: that would be every process of the host."""
    if ino is None or ino == ns_inode(f"/proc/self/ns/{kind}"):
        return []
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                parents[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
            if ns_inode(f"/proc/{pid}/ns/{kind}") == ino:
                found.add(pid)
    grew = True
    while grew:
        kids = {p for p, pp in parents.items() if pp in found and p not in found}
        found |= kids
        grew = bool(kids)
    return sorted(found)


def kill_members(kind: str, ino: int | None, timeout: float = 10) -> list[int]:
    """SIGKILL ``members(kind, ino)``; wait until they are gone. Returns the pids found."""
    pids = members(kind, ino)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and members(kind, ino):
        time.sleep(0.1)
    return pids


class Sandbox:
    """``with Sandbox() as sb:`` a fresh network namespace; left, it kills what runs in it (and
    their descendants) and deletes it."""

    def __init__(self) -> None:
        self.name = "dkyfid-" + os.urandom(4).hex()
        self.path = f"/run/netns/{self.name}"

    def __enter__(self) -> "Sandbox":
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def net(self, argv: list[str]) -> list[str]:
        """``argv`` run in the sandbox's network namespace (nothing else changed)."""
        return ["nsenter", f"--net={self.path}", *argv]

    def daemon(self, argv: list[str]) -> list[str]:
        """``argv`` run as a daemon: the sandbox's network namespace plus a private mount namespace
        with a matching /sys (see the module's docstring). nsenter, unshare and sh all exec, so the
        pid of the process started is the daemon's."""
        return self.net(["unshare", "--mount", "--propagation", "slave", "/bin/sh", "-c",
                         DAEMON_WRAPPER, "sh", *argv])

    def kill_all(self) -> list[int]:
        """End every process of the sandbox (and their descendants)."""
        return kill_members("net", ns_inode(self.path))


REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
"""


class Registry:
    """Debian's ``docker-registry`` (distribution 2.8) on the sandbox's loopback."""

    def __init__(self, sandbox: Sandbox, workdir: str, port: int = 5000) -> None:
        self.sandbox = sandbox
        self.addr = f"127.0.0.1:{port}"
        self.url = f"http://{self.addr}"
        self.root = os.path.join(workdir, "registry")
        self.log_path = os.path.join(workdir, "registry.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Registry":
        os.makedirs(self.root, exist_ok=True)
        config = os.path.join(os.path.dirname(self.root), "registry.yml")
        with open(config, "w") as f:
            f.write(REGISTRY_CONFIG.format(root=self.root, addr=self.addr))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.sandbox.net(["docker-registry", "serve", config]),
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        probe = self.sandbox.net(["curl", "-fsS", "-o", "/dev/null", self.url + "/v2/"])
        while subprocess.run(probe, capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: see {self.log_path}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
