"""Per-container cgroups for the native driver: v1 hierarchies (hybrid hosts) or the v2 tree.

Small on purpose: create ``<parent>/<cid>`` where the controllers live, apply the memory / pids /
cpu limits and the device rules of ``linux.resources``, list and kill the processes, freeze and
thaw, remove. Runs inside the supervisor (synchronous: a handful of small file writes).

Devices (``linux.resources.devices``, see ``dockyard.hookspecs.host.devices``): on v1 the container's
``devices`` cgroup gets ``devices.deny a`` then its allow entries; on v2 an eBPF program made
from the same rules is attached to its directory. A hybrid host (v1 controllers plus a cgroup2
mount at ``unified``) gets both: the container also has a directory in the cgroup2 tree, and
the kernel asks both (each must allow).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from typing import Iterable

from dockyard.hookspecs.host import cgroupfiles, devicebpf
from dockyard.hookspecs.host.devices import DeviceRules
from dockyard.hookspecs.errors import InvalidParameter

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("pids", "memory", "cpu", "cpuacct", "freezer", "cpuset", "blkio", "devices")
#: the cgroup2 mount of a hybrid host (systemd's name), beside the v1 hierarchies
HYBRID_UNIFIED = "unified"
#: loaded device programs kept for reuse (one per distinct rule set: usually Docker's default)
BPF_CACHE_SIZE = 16


def _write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _rt_refused(d: str, name: str, value: int, e: OSError) -> InvalidParameter:
    return InvalidParameter(
        f"{d}/{name}: the kernel refused {value}: {e.strerror} (a cgroup's real-time runtime "
        f"must fit in its parent's: give the daemon a budget with cpu-rt-runtime, as dockerd's "
        f"--cpu-rt-runtime)"
    )


def _write_rt(d: str, name: str, value: int) -> None:
    try:
        _write(f"{d}/{name}", value)
    except OSError as e:
        raise _rt_refused(d, name, value, e) from None


def _set_rt(d: str, period: int, runtime: int) -> None:
    """A cgroup's real-time period and runtime, in an order the kernel accepts (each write is
    checked against the other value): as runc, a period refused first is written again after
    the runtime."""
    retry = 0
    if period:
        try:
            _write(f"{d}/cpu.rt_period_us", period)
        except OSError as e:
            if e.errno != errno.EINVAL or not runtime:
                raise _rt_refused(d, "cpu.rt_period_us", period, e) from None
            retry = period
    if runtime:
        _write_rt(d, "cpu.rt_runtime_us", runtime)
    if retry:
        _write_rt(d, "cpu.rt_period_us", retry)


def _enable_controllers(cgroup: str, want: Iterable[str]) -> None:
    """``want`` enabled for ``cgroup``'s children (cgroup v2); a refusal is logged, not raised."""
    try:
        _write(os.path.join(cgroup, "cgroup.subtree_control"), " ".join("+" + c for c in want))
    except OSError as e:
        log.info("cgroup v2: cannot enable controllers in %s: %s", cgroup, e)


class Cgroups:
    """The cgroup layout of this host, found once."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root = (root or CGROUP_ROOT).rstrip("/") or "/"
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
            unified = os.path.join(root, HYBRID_UNIFIED)
            if os.path.exists(os.path.join(unified, "cgroup.controllers")):
                self.hierarchies["unified"] = os.path.realpath(unified)
        #: rule-set key -> fd of its loaded eBPF device program
        self._programs: dict[str, int] = {}
        self._bpf_warned = False
        self._support: cgroupfiles.Support | None = None

    @property
    def available(self) -> bool:
        return bool(self.hierarchies)

    def unsupported(self, res: dict) -> list[str]:
        """The OCI resources of ``res`` this host's cgroups cannot apply (the probe of
        :func:`dockyard.hookspecs.host.cgroupfiles.host_support` on this tree; the real-time
        budget: :attr:`realtime`)."""
        if self._support is None:
            self._support = cgroupfiles.host_support(self.root)
        out = cgroupfiles.unsupported(res, self._support)
        cpu = res.get("cpu") or {}
        return out + [
            f"cpu.{key}"
            for key in ("realtimePeriod", "realtimeRuntime")
            if cpu.get(key) and not self.realtime
        ]

    @property
    def realtime(self) -> bool:
        """Whether containers can get a real-time CPU budget: cgroup v1's ``cpu.rt_*`` files
        (a kernel with CONFIG_RT_GROUP_SCHED); cgroup v2 has none."""
        base = self.hierarchies.get("cpu")
        return not self.v2 and bool(base) and os.path.exists(f"{base}/cpu.rt_runtime_us")

    def set_rt_parents(self, rel: str, period: int, runtime: int) -> None:
        """The daemon's ``cpu-rt-period``/``cpu-rt-runtime`` (0: leave as is) into every ancestor
        of cgroup ``rel`` below the cpu hierarchy's root, top down (dockerd's
        ``initCPURtController``): a child's real-time budget must fit in its parent's."""
        base = self.hierarchies.get("cpu")
        if base is None or not (period or runtime):
            return
        path = base
        for part in os.path.dirname(rel.strip("/")).split("/"):
            if not part:
                continue
            path = os.path.join(path, part)
            os.makedirs(path, exist_ok=True)
            for name, value in (("cpu.rt_period_us", period), ("cpu.rt_runtime_us", runtime)):
                if value:
                    _write_rt(path, name, value)

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
                if not ctrls:  # a cgroup2 mount without controllers (a hybrid host's unified)
                    continue
                want = [c for c in ("cpu", "memory", "pids", "cpuset", "io") if c in ctrls]
                cur = base
                for part in parent.split("/"):
                    _enable_controllers(cur, want)
                    cur = os.path.join(cur, part)
                _enable_controllers(path, want)

    def create(self, rel: str, resources: dict | None) -> list[str]:
        """Create cgroup ``rel`` (``dockyard/<cid>``) everywhere; return its directories."""
        rel = rel.strip("/")
        parent = os.path.dirname(rel)
        if parent:
            self._prepare_parent(parent)
        dirs: list[str] = []
        try:
            for base in self.hierarchies.values():
                path = os.path.join(base, rel)
                try:
                    os.mkdir(path)
                except FileExistsError:
                    pass
                dirs.append(path)
            self.apply(dirs, resources or {})
        except BaseException:
            self.remove(dirs)  # nothing is left of a cgroup that could not be set up
            raise
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
        """Apply ``linux.resources`` (memory, pids, cpu, blockIO; devices when given), through
        the one translation of :mod:`dockyard.hookspecs.host.cgroupfiles`."""
        if res.get("devices") is not None:
            self.apply_devices(dirs, res["devices"])
        try:
            for path, value in self._writes(dirs, res):
                _write(path, value)
            cpu = res.get("cpu") or {}
            if (cpu.get("realtimePeriod") or cpu.get("realtimeRuntime")) and not self.v2:
                # in runc's order (a period refused first is written again after the runtime)
                _set_rt(
                    self._dir(dirs, "cpu") or "",
                    cpu.get("realtimePeriod") or 0,
                    cpu.get("realtimeRuntime") or 0,
                )
        except cgroupfiles.Untranslatable as e:
            raise InvalidParameter(f"cannot apply resource limits: {e}") from None
        except OSError as e:
            raise InvalidParameter(f"cannot apply resource limits: {e}") from None

    def _writes(self, dirs: list[str], res: dict) -> list[tuple[str, str]]:
        """(path, value) of each write, in order; a write whose controller is not mounted here
        is an error (the daemon discarded, with dockerd's warning, what the host lacks)."""
        if self.v2:
            d = self._dir(dirs, "unified")
            if d is None:
                return []
            bfq = os.path.exists(f"{d}/io.bfq.weight")
            return [(f"{d}/{w.file}", w.value) for w in cgroupfiles.v2_writes(res, bfq=bfq)]
        mem = self._dir(dirs, "memory")
        current = None
        if mem and os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            current = int(_read(f"{mem}/memory.memsw.limit_in_bytes"))
        blkio = self._dir(dirs, "blkio")
        bfq = bool(blkio) and os.path.exists(f"{blkio}/blkio.bfq.weight")
        out = []
        for w in cgroupfiles.v1_writes(res, current_memsw=current, bfq=bfq):
            d = self._dir(dirs, w.controller)
            if d is None:
                raise OSError(f"no {w.controller} cgroup on this host for {w.file}")
            out.append((f"{d}/{w.file}", w.value))
        return out

    def view_mounts(self, mounts: list[dict], dirs: list[str]) -> list[dict]:
        """``mounts`` with each ``type: cgroup`` entry (Docker's ``/sys/fs/cgroup``) made into
        what the container sees of its own cgroups, as runc does: on v2 its directory of the
        cgroup2 tree; on v1 a tmpfs with, per hierarchy, the container's own directory (read-only
        unless the entry says ``rw``); the tmpfs turns read-only once they are in (init's
        ``remountReadonly``). No cgroups here: the entry is left out (an empty directory)."""
        out: list[dict] = []
        for m in mounts:
            if m.get("type") != "cgroup":
                out.append(m)
                continue
            if not dirs:
                continue
            dest = m["destination"].rstrip("/") or "/"
            ro = "rw" not in (m.get("options") or ())
            flags = ["nosuid", "noexec", "nodev"] + (["ro"] if ro else [])
            if self.v2:
                out.append(
                    {
                        "destination": dest,
                        "type": "bind",
                        "source": dirs[0],
                        "options": ["bind", *flags],
                    }
                )
                continue
            out.append(
                {
                    "destination": dest,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "noexec", "nodev", "mode=755", "size=64k"],
                    "remountReadonly": ro,
                }
            )
            for name, d in self._view_names(dirs):
                out.append(
                    {
                        "destination": f"{dest}/{name}",
                        "type": "bind",
                        "source": d,
                        "options": ["bind", *flags],
                    }
                )
        return out

    def _view_names(self, dirs: list[str]) -> list[tuple[str, str]]:
        """(name under /sys/fs/cgroup, container's directory) per hierarchy: the host's name of
        each mount (``cpu,cpuacct``) and each controller name that leads to it (``cpu``)."""
        out = []
        for base in self.hierarchies.values():
            d = next((x for x in dirs if x.startswith(base + "/")), None)
            if d is None:
                continue
            names = {os.path.basename(base)}
            names.update(
                c for c in V1_CONTROLLERS if os.path.realpath(os.path.join(self.root, c)) == base
            )
            out += [(name, d) for name in sorted(names)]
        return out

    def apply_devices(self, dirs: list[str], rules: list) -> None:
        """The device rules, before any process joins: the v1 ``devices`` cgroup is written
        (reset, then one exception per write), the v2 directory gets the eBPF program."""
        try:
            state = DeviceRules(rules)
        except InvalidParameter as e:
            raise InvalidParameter(f"device rules: {e}") from None
        d = None if self.v2 else self._dir(dirs, "devices")
        if d is not None:
            try:
                for name, line in state.v1_writes():
                    _write(f"{d}/{name}", line)
            except OSError as e:
                raise InvalidParameter(f"cannot apply the device rules to {d}: {e}") from None
        unified = self._dir(dirs, "unified")
        if unified is None or state.allows_all:
            return
        try:
            devicebpf.attach(self._program(state), unified)
        except OSError as e:
            if d is None:  # the only device cgroup this container has: no start without it
                raise InvalidParameter(f"cannot apply the device rules: {e}") from None
            if not self._bpf_warned:
                log.warning(
                    "cgroup2 device program not attached (the v1 devices cgroup "
                    "applies the rules): %s",
                    e,
                )
                self._bpf_warned = True

    def _program(self, state: DeviceRules) -> int:
        key = repr((state.default_allow, state.sorted_exceptions()))
        fd = self._programs.get(key)
        if fd is None:
            fd = devicebpf.load(devicebpf.program(state))
            if len(self._programs) >= BPF_CACHE_SIZE:
                os.close(self._programs.pop(next(iter(self._programs))))  # attached: kept
            self._programs[key] = fd
        return fd

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
        """Signal every process of the cgroup; SIGKILL on v2 is one write of ``cgroup.kill``
        (kernel 5.14+: no fork escapes it). Returns how many were signalled (v2 kill: the
        processes there were)."""
        n = 0
        if self.v2 and sig == signal.SIGKILL:
            d = self._dir(dirs, "unified")
            if d is not None and os.path.exists(f"{d}/cgroup.kill"):
                n = len(self.pids(dirs))
                try:
                    _write(f"{d}/cgroup.kill", "1")
                    return n
                except FileNotFoundError:
                    return 0
        for pid in self.pids(dirs):
            try:
                os.kill(pid, sig)
                n += 1
            except ProcessLookupError:
                pass
        return n

    def populated(self, dirs: list[str]) -> bool:
        """Does the container's cgroup still hold a process? v2: ``populated`` of
        ``cgroup.events`` (the subtree, as the kernel counts it: no rmdir is tried before it
        says 0); v1: ``cgroup.procs``."""
        if self.v2:
            d = self._dir(dirs, "unified")
            try:
                return (
                    bool(d)
                    and cgroupfiles.events(_read(f"{d}/cgroup.events")).get("populated", 0) == 1
                )
            except FileNotFoundError:
                return False
        return bool(self.pids(dirs))

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

    def oom_killed(self, dirs: list[str], exit_code: int | None = None) -> bool:
        """Did the OOM killer act in this cgroup? ``oom_kill`` of memory.oom_control (v1, kernel
        4.13+) or memory.events (v2); on older v1 kernels, a SIGKILL exit (137) with the limit
        hit (memory.failcnt > 0) counts."""
        d = self._dir(dirs, "memory")
        try:
            if self.v2:
                text = _read(f"{d}/memory.events") if d else ""
            else:
                text = _read(f"{d}/memory.oom_control") if d else ""
        except OSError:
            return False
        kills = cgroupfiles.oom_kills(text)
        if kills:
            return True
        seen = kills is not None
        if not seen and not self.v2 and d and exit_code == 137:
            try:
                return int(_read(f"{d}/memory.failcnt").strip() or 0) > 0
            except (OSError, ValueError):
                return False
        return False

    def stats(self, dirs: list[str]) -> dict:
        """The counters of ``docker stats`` (see :mod:`.cgstats`)."""
        from dockyard.hookspecs.host.supervisor import cgstats

        return cgstats.stats(self, dirs)

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
