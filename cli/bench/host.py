"""The host side of a benchmark run: fresh file systems, processes, memory readings, the timer,
the machine's description. Everything here is shared by subjects and scenarios."""
from __future__ import annotations

import contextlib
import ipaddress
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

#: where the bench makes its work directories: short paths (unix socket paths are limited to
#: 108 bytes), never inside the user's data-root
WORK_PARENT = "/tmp"


class CommandFailed(RuntimeError):
    """A command a scenario times or prepares with failed; the message has its stderr."""


def venv_tool(name: str) -> str | None:
    """``name`` next to this interpreter (the venv's ``dockyardd``/``dockyard``), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else shutil.which(name)


def last_lines(data: bytes, n: int = 1) -> str:
    """The last ``n`` non-empty lines of a command's output: where its error is."""
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-n:])[-600:]


def run(argv: list[str], env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 600, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` to its end; with ``check``, a non-zero exit is :class:`CommandFailed`."""
    r = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise CommandFailed(f"{' '.join(argv[:6])} exited {r.returncode}: {last_lines(r.stderr)}")
    return r


def timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> float:
    """Seconds from spawning ``argv`` to its exit (what ``hyperfine -N`` measures: no shell;
    Python's spawn costs about what hyperfine's does, see :func:`timer_floor`)."""
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=timeout)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise CommandFailed(f"{' '.join(argv[:8])} exited {r.returncode}: {last_lines(r.stderr)}")
    return dt


def timer_floor(runs: int = 20) -> float:
    """Median seconds :func:`timed` reports for ``true``: the timer's own cost."""
    true = shutil.which("true") or "/bin/true"
    return statistics.median(timed([true]) for _ in range(runs))


def measure(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- file systems ---------------------------------------------------------------------------------

def unmount_under(root: str) -> None:
    """Lazily unmount everything at or below ``root``, deepest first."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    for p in sorted((p for p in points if p == root or p.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


class FreshFs:
    """A file system made for one subject and removed after it: a tmpfs, or (for a graph driver
    that needs one, e.g. btrfs) a loop-mounted file system whose image lies in /dev/shm when it
    has room. ``path`` is the mounted root."""

    def __init__(self, fstype: str | None = None, size: int = 8 << 30, prefix: str = "dyb-") -> None:
        self.fstype, self.size, self.prefix = fstype, size, prefix
        self.path = ""
        self._loop: Any = None
        self._top = ""

    def __enter__(self) -> "FreshFs":
        if self.fstype in (None, "tmpfs"):
            self._top = tempfile.mkdtemp(prefix=self.prefix, dir=WORK_PARENT)
            run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", self._top])
            self.path = self._top
            return self
        from dockyard.hookspecs.conformance.loopfs import LoopFilesystem
        self._loop = LoopFilesystem(self.fstype, self.size, dir=shm_backing(self.size))
        self.path = self._loop.open().path
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._loop is not None:
            unmount_under(self.path + "/")  # what the engine left mounted inside
            self._loop.close()
            self._loop = None
        elif self._top:
            unmount_under(self._top)
            shutil.rmtree(self._top, ignore_errors=True)
            self._top = ""


def shm_backing(size: int) -> str | None:
    """``/dev/shm`` when it has ``size`` bytes free: the root file system of these machines slows
    file creation for minutes after a large delete, which would colour loop-backed figures."""
    with contextlib.suppress(OSError):
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > size:
            return "/dev/shm"
    return None


# -- processes and memory ---------------------------------------------------------------------------

def processes() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, comm, argv) of every process that is still there while being read."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open(f"/proc/{name}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        yield int(name), comm, argv


def stop_process(proc: "subprocess.Popen[bytes] | None", timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]
    return []


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def pss_kib(pids: list[int]) -> int:
    """Sum of the proportional set size of ``pids`` (KiB)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def settled_available(readings: int = 5, pause: float = 0.2) -> int:
    """MemAvailable (KiB), the median of a few readings a moment apart."""
    values = []
    for _ in range(readings):
        values.append(mem_available_kib())
        time.sleep(pause)
    return int(statistics.median(values))


# -- loopback and addresses -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise CommandFailed(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no route of the host (runs of others never collide)."""
    from dockyard.hookspecs.conformance.subnets import free_subnet as free
    return free()


def unique_name(prefix: str) -> str:
    """An interface-safe unique name (≤ 15 bytes)."""
    return prefix + os.urandom(4).hex()


# -- the machine --------------------------------------------------------------------------------------

def tool_version(argv: list[str]) -> str | None:
    """First line of ``argv`` (a ``--version`` call), or None when the tool is absent."""
    if shutil.which(argv[0]) is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        line = (r.stdout or r.stderr).strip().splitlines()
        return line[0] if line else None
    return None


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = ""
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    with open("/proc/meminfo") as f:
        mem_total = int(f.readline().split()[1])
    return {"hostname": socket.gethostname(), "os": os_name, "kernel": platform.release(),
            "arch": platform.machine(), "cpu_model": cpu, "cpus": os.cpu_count(),
            "mem_total_kib": mem_total, "python": platform.python_version(),
            "cgroup": cgroup_mode()}


def cgroup_mode() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    return "v1 hybrid" if os.path.isdir("/sys/fs/cgroup/unified") else "v1"
