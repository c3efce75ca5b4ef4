"""Per-container cgroups for the native driver: v1 hierarchies (hybrid hosts) or the v2 tree.

Small on purpose: create ``<parent>/<cid>`` where the controllers live, apply the memory / pids /
cpu limits of ``linux.resources``, list and kill the processes, freeze and thaw, remove. Runs
inside the supervisor (synchronous: a handful of small file writes).
"""
from __future__ import annotations

import errno
import logging
import os
import signal

from dockyard.hookspecs.errors import InvalidParameter

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("pids", "memory", "cpu", "cpuacct", "freezer", "cpuset")


def _write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


class Cgroups:
    """The cgroup layout of this host, found once."""

    def __init__(self, root: str = CGROUP_ROOT) -> None:
        self.root = root
        self.v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
        #: controller name -> hierarchy mount point (v1); several names may share one mount
        self.hierarchies: dict[str, str] = {}
        if self.v2:
            self.hierarchies["unified"] = root
        else:
            seen: set[str] = set()
            for ctrl in V1_CONTROLLERS:
                path = os.path.join(root, ctrl)
                if not os.path.exists(os.path.join(path, "cgroup.procs")):
                    continue
                real = os.path.realpath(path)
                if real in seen:
                    continue
                seen.add(real)
                self.hierarchies[ctrl] = real

    @property
    def available(self) -> bool:
        return bool(self.hierarchies)

    def _prepare_parent(self, parent: str) -> None:
        """Create the shared parent (e.g. ``dockyard``) in each hierarchy, set up once."""
        for ctrl, base in self.hierarchies.items():
            path = os.path.join(base, parent)
            if os.path.isdir(path):
                continue
            os.makedirs(path, exist_ok=True)
            if ctrl == "cpuset":
                # a v1 cpuset starts with no cpus/mems: copy them down, let children inherit
                cur = base
                for part in parent.split("/"):
                    nxt = os.path.join(cur, part)
                    for key in ("cpuset.cpus", "cpuset.mems"):
                        if not _read(os.path.join(nxt, key)).strip():
                            _write(os.path.join(nxt, key), _read(os.path.join(cur, key)).strip())
                    cur = nxt
                _write(os.path.join(path, "cgroup.clone_children"), "1")
            if self.v2:
                ctrls = _read(os.path.join(base, "cgroup.controllers")).split()
                want = [c for c in ("cpu", "memory", "pids", "cpuset", "io") if c in ctrls]
                cur = base
                for part in parent.split("/"):
                    try:
                        _write(os.path.join(cur, "cgroup.subtree_control"),
                               " ".join("+" + c for c in want))
                    except OSError as e:
                        log.info("cgroup v2: cannot enable controllers in %s: %s", cur, e)
                    cur = os.path.join(cur, part)
                try:
                    _write(os.path.join(path, "cgroup.subtree_control"),
                           " ".join("+" + c for c in want))
                except OSError as e:
                    log.info("cgroup v2: cannot enable controllers in %s: %s", path, e)

    def create(self, rel: str, resources: dict | None) -> list[str]:
        """Create cgroup ``rel`` (``dockyard/<cid>``) everywhere; return its directories."""
        rel = rel.strip("/")
        parent = os.path.dirname(rel)
        if parent:
            self._prepare_parent(parent)
        dirs = []
        for base in self.hierarchies.values():
            path = os.path.join(base, rel)
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            dirs.append(path)
        self.apply(dirs, resources or {})
        return dirs

    def _dir(self, dirs: list[str], ctrl: str) -> str | None:
        base = self.hierarchies.get("unified" if self.v2 else ctrl)
        if base is None:
            return None
        for d in dirs:
            if d.startswith(base + "/"):
                return d
        return None

    def apply(self, dirs: list[str], res: dict) -> None:
        """Apply ``linux.resources`` (memory, pids, cpu)."""
        try:
            mem = res.get("memory") or {}
            pids = res.get("pids") or {}
            cpu = res.get("cpu") or {}
            if self.v2:
                d = self._dir(dirs, "unified")
                if d is None:
                    return
                if mem.get("limit") is not None:
                    _write(f"{d}/memory.max", "max" if mem["limit"] < 0 else mem["limit"])
                    if mem.get("swap") is not None and os.path.exists(f"{d}/memory.swap.max"):
                        swap = mem["swap"]
                        _write(f"{d}/memory.swap.max",
                               "max" if swap < 0 else max(swap - mem["limit"], 0))
                if pids.get("limit") is not None:
                    lim = pids["limit"]
                    _write(f"{d}/pids.max", "max" if lim <= 0 else lim)
                if cpu.get("shares"):
                    weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
                    _write(f"{d}/cpu.weight", max(1, min(weight, 10000)))
                if cpu.get("quota"):
                    _write(f"{d}/cpu.max", f"{cpu['quota']} {cpu.get('period') or 100000}")
                return
            d = self._dir(dirs, "memory")
            if d and mem.get("limit") is not None:
                _write(f"{d}/memory.limit_in_bytes", mem["limit"])
                if mem.get("swap") is not None and os.path.exists(f"{d}/memory.memsw.limit_in_bytes"):
                    _write(f"{d}/memory.memsw.limit_in_bytes", mem["swap"])
            d = self._dir(dirs, "pids")
            if d and pids.get("limit") is not None:
                lim = pids["limit"]
                _write(f"{d}/pids.max", "max" if lim <= 0 else lim)
            d = self._dir(dirs, "cpu")
            if d:
                if cpu.get("shares"):
                    _write(f"{d}/cpu.shares", cpu["shares"])
                if cpu.get("period"):
                    _write(f"{d}/cpu.cfs_period_us", cpu["period"])
                if cpu.get("quota"):
                    _write(f"{d}/cpu.cfs_quota_us", cpu["quota"])
            d = self._dir(dirs, "cpuset")
            if d:
                if cpu.get("cpus"):
                    _write(f"{d}/cpuset.cpus", cpu["cpus"])
                if cpu.get("mems"):
                    _write(f"{d}/cpuset.mems", cpu["mems"])
        except OSError as e:
            raise InvalidParameter(f"cannot apply resource limits: {e}") from None

    @staticmethod
    def procs_files(dirs: list[str]) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in dirs]

    def pids(self, dirs: list[str]) -> list[int]:
        d = self._dir(dirs, "pids") or (dirs[0] if dirs else None)
        if d is None:
            return []
        try:
            return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def kill_all(self, dirs: list[str], sig: int = signal.SIGKILL) -> int:
        n = 0
        for pid in self.pids(dirs):
            try:
                os.kill(pid, sig)
                n += 1
            except ProcessLookupError:
                pass
        return n

    def freeze(self, dirs: list[str], frozen: bool) -> bool:
        """Freeze or thaw; return True once the cgroup reached the state."""
        if self.v2:
            d = self._dir(dirs, "unified")
            if d is None:
                raise InvalidParameter("no cgroup freezer on this host")
            _write(f"{d}/cgroup.freeze", "1" if frozen else "0")
            try:
                events = _read(f"{d}/cgroup.events")
            except OSError:
                return True
            return ("frozen 1" in events) == frozen
        d = self._dir(dirs, "freezer")
        if d is None:
            raise InvalidParameter("no cgroup freezer on this host")
        _write(f"{d}/freezer.state", "FROZEN" if frozen else "THAWED")
        return _read(f"{d}/freezer.state").strip() == ("FROZEN" if frozen else "THAWED")

    def oom_killed(self, dirs: list[str]) -> bool:
        d = self._dir(dirs, "memory")
        try:
            if self.v2:
                text = _read(f"{d}/memory.events") if d else ""
            else:
                text = _read(f"{d}/memory.oom_control") if d else ""
        except OSError:
            return False
        for line in text.splitlines():
            key, _, val = line.partition(" ")
            if key == "oom_kill" and val.strip() not in ("", "0"):
                return True
        return False

    @staticmethod
    def remove(dirs: list[str]) -> list[str]:
        """rmdir each directory; return those still busy (processes not yet gone)."""
        busy = []
        for d in dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != errno.EBUSY:
                    log.warning("cannot remove cgroup %s: %s", d, e)
                busy.append(d)
        return busy
