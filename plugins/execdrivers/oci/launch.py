"""OCI runtimes (runc, crun) under dockyard's supervisor.

The supervisor keeps doing what it does for every container — stdio, the json-file log, the exit
status, the cgroups it makes and limits, attach and exec streams — and this launcher makes the
processes with the runtime's own commands:

* start: the bundle's ``config.json`` is written, ``RUNTIME create --pid-file P
  [--console-socket S] ID`` runs with the container's stdio as its own (the runtime passes them
  through), then ``RUNTIME start ID``. The runtime exits; the container's process, orphaned, is
  reparented to the supervisor (a child subreaper), which reaps it;
* exec: ``RUNTIME exec --detach --pid-file P --process F [--tty --console-socket S] ID``;
* kill, pause, resume, update (``--resources``), delete: the runtime's commands, run as the
  supervisor's children.

The runtime keeps its state under ``<driver root>/state`` (``--root``), its messages in the
bundle's ``runtime.log`` (JSON lines), from which a failed start's reason is read and turned
into Docker's words and exit code (127: not found, 126: not executable).

crun 1.8 refuses a hybrid cgroup host: it runs in a mount namespace of its own without the
cgroup2 mount at ``/sys/fs/cgroup/unified`` (option ``private_cgroupfs``), so it sees v1 only.

In a new user namespace the runtime sets the root file system up as the container's root, a
host ID that may not pass the directories above it (a daemon's data-root, a test's private
temporary directory): ``create`` runs in a mount namespace of its own in which the rootfs is
bound at ``ROOTFS_AT``, a path every ID can pass, and the bundle names that path. The mount
lives only in that namespace (and the container's copy of it), so any number of containers
use the same path at once and nothing is left on the host but the empty directory.

A container in a new user namespace that joins a network namespace the host's user namespace
owns (the network driver's) cannot write that namespace's sysctls from inside: the launcher
writes them itself from within the namespace, as the host's root, before ``create``. And runc
1.1's ``exec`` joins the user namespace before the others, and from there may not join such a
network namespace: for runc the bundle names none, ``create`` and ``exec`` run inside it and
their processes inherit it.
"""
from __future__ import annotations

import errno
import gc
import json
import os
import re
import select
import socket
import subprocess
from typing import Any, NoReturn

from dockyard.hookspecs.errors import DockyardError, InvalidParameter
from dockyard.hookspecs.host import mounts, ns
from dockyard.hookspecs.host.process import ProcessError, go_error, reset_signals
from dockyard.hookspecs.host.supervisor import launcher as base
from dockyard.hookspecs.host.supervisor.cgroups import Cgroups
from dockyard.hookspecs.host.supervisor.protocol import report_console, report_error, report_pid

from . import bundle

UNIFIED = "/sys/fs/cgroup/unified"
ROOTFS_AT = "/run/dockyard-oci/rootfs"
CONSOLE_TIMEOUT = 30.0


class LaunchError(Exception):
    def __init__(self, message: str, code: int = 128) -> None:
        super().__init__(message)
        self.code = code


# -- running the runtime ------------------------------------------------------------------------
def argv(opts: dict[str, Any], *args: str, log: str | None = None) -> list[str]:
    """``RUNTIME [runtimeArgs] --root STATE [--log F --log-format json] args...``."""
    out = [opts["path"], *opts.get("runtimeArgs", ()), "--root", opts["state_root"]]
    if log:
        out += ([f"--log=file:{log}", "--log-format=json"] if opts.get("flavor") == "crun"
                else ["--log", log, "--log-format", "json"])
    return out + list(args)


def private_cgroupfs() -> None:
    """In this process (a child about to exec crun): a mount namespace of its own, without the
    hybrid host's cgroup2 mount."""
    private_view(True, None)


def private_view(no_unified: bool, rootfs: str | None) -> None:
    """In this process (a child about to exec the runtime): a mount namespace of its own,
    without the hybrid host's cgroup2 mount if ``no_unified``, with ``rootfs`` bound at
    ``ROOTFS_AT`` if given."""
    ns.unshare(ns.CLONE_NEWNS)
    mounts.mount(None, "/", None, mounts.MS_REC | mounts.MS_SLAVE)
    if no_unified:
        try:
            mounts.umount2(UNIFIED, mounts.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
    if rootfs is not None:
        mounts.mount(rootfs, ROOTFS_AT, None, mounts.MS_BIND | mounts.MS_REC)


def _last_error(log: str, output: bytes = b"") -> str:
    """The runtime's last error message: from its JSON log, else its output."""
    msg = ""
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal") and entry.get("msg"):
                    msg = entry["msg"]
    except OSError:
        pass
    if not msg:
        lines = output.decode("utf-8", "replace").strip().splitlines()
        msg = lines[-1] if lines else ""
    return msg.strip()


_RUNC_EXEC = re.compile(r'exec: "([^"]*)": (.*)$')
_CRUN_NOT_FOUND = re.compile(r"executable file `([^`]*)` not found in \$PATH")


def exec_error(text: str, arg0: str) -> tuple[int, str]:
    """Docker's exit code and words for a runtime's failure to start a process."""
    m = _RUNC_EXEC.search(text)
    if m:
        rest = m.group(2)
        low = rest.lower()
        code = 127 if "not found" in low or "no such file" in low else \
            126 if "permission denied" in low else 128
        return code, f'exec: "{m.group(1)}": {rest}'
    m = _CRUN_NOT_FOUND.search(text)
    if m:
        return 127, f'exec: "{m.group(1)}": executable file not found in $PATH'
    low = text.lower()
    if "permission denied" in low and ("exec" in low or "open executable" in low):
        return 126, f'exec: "{arg0}": permission denied'
    if "no such file or directory" in low and "exec" in low:
        return 127, f'exec: "{arg0}": stat {arg0}: no such file or directory'
    return 128, text


def _not_started(log: str, arg0: str) -> LaunchError:
    """Why the runtime did not start ``arg0``, from its log, in Docker's words and code."""
    code, message = exec_error(_last_error(log), arg0)
    return LaunchError(message, code)


# -- the intermediate (a forked child of the supervisor) ----------------------------------------
def _preexec(opts: dict[str, Any], rootfs: str | None = None) -> Any:
    """What runs in the runtime's process before it execs: crun's mount namespace, or one
    where ``rootfs`` is at ``ROOTFS_AT``."""
    if rootfs is not None:
        return lambda: private_view(bool(opts.get("private_cgroupfs")), rootfs)
    return private_cgroupfs if opts.get("private_cgroupfs") else None


def outer_netns(spec: dict[str, Any]) -> str | None:
    """The network namespace a container in a new user namespace joins (its user namespace
    does not own it: see the module's text), else None."""
    nss = (spec.get("linux") or {}).get("namespaces") or ()
    if not any(n.get("type") == "user" and not n.get("path") for n in nss):
        return None
    return next((str(n["path"]) for n in nss if n.get("type") == "network" and n.get("path")),
                None)


def _enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(fd, ns.CLONE_NEWNET)
    finally:
        os.close(fd)


def _start_in_netns(conf: dict[str, Any], path: str, inherit: bool) -> None:
    """This process (the intermediate) into ``path``; the bundle's network sysctls written
    here; with ``inherit`` (runc), the bundle without the network namespace: the container
    inherits it from the runtime."""
    _enter_netns(path)
    lin = conf["linux"]
    if inherit:
        lin["namespaces"] = [n for n in lin["namespaces"] if n.get("type") != "network"]
    sysctls = lin.get("sysctl") or {}
    for key in [k for k in sysctls if k.startswith("net.")]:
        value = sysctls.pop(key)
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(str(value))
        except OSError as e:
            raise LaunchError(f"setting sysctl {key}={value}: {go_error(e)}") from None


def _child_setup(cfg: dict[str, Any]) -> None:
    gc.disable()
    reset_signals()
    os.setsid()
    for target, fd in enumerate(cfg["stdio"]):
        if fd is None:
            fd = os.open("/dev/null", os.O_RDWR)
        if fd != target:
            os.dup2(fd, target)


def _listen(path: str) -> socket.socket:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    return sock


def _receive_console(sock: socket.socket, proc: subprocess.Popen) -> int | None:
    """The pseudo-terminal master the runtime sends to ``--console-socket`` while ``proc``
    runs (None if it ended without sending one)."""
    waited = 0.0
    while proc.poll() is None and waited < CONSOLE_TIMEOUT:
        ready, _, _ = select.select([sock], [], [], 0.05)
        waited += 0.05
        if not ready:
            continue
        conn, _ = sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        return fds[0] if fds else None
    return None


def _run_with_console(opts: dict[str, Any], args: list[str], log: str, console: str | None,
                      chan: socket.socket, rootfs: str | None = None) -> int:
    """Run a runtime command that may send a console (``T`` to the supervisor); its exit code.
    ``rootfs``: bound at ``ROOTFS_AT`` in the command's own mount namespace."""
    sock = _listen(console) if console else None
    try:
        proc = subprocess.Popen(argv(opts, *args, log=log), close_fds=True,
                                preexec_fn=_preexec(opts, rootfs))
        if sock is not None:
            master = _receive_console(sock, proc)
            if master is not None:
                report_console(chan, master)
                os.close(master)
        return proc.wait()
    finally:
        if sock is not None:
            sock.close()
            os.unlink(console)  # type: ignore[arg-type]


def _read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


def _fresh(path: str) -> str:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return path


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _own_device_rules(cfg: dict[str, Any]) -> None:
    """The container's device rules exactly (runtimes append defaults of their own, such as
    /dev/zero and /dev/full read-write): written over the runtime's between create and start,
    the same way the native driver writes them (v1 rules, and the cgroup2 eBPF program)."""
    rules = ((cfg["spec"].get("linux") or {}).get("resources") or {}).get("devices")
    if rules is not None and cfg["cgroup_procs"]:
        Cgroups().apply_devices([os.path.dirname(p) for p in cfg["cgroup_procs"]], rules)


def _entry(work: Any, cfg: dict[str, Any], chan: socket.socket, code: int,
           what: str) -> NoReturn:
    """Run ``work(cfg, chan, bundle_dir)`` in the intermediate; report its failure with Docker's
    code (``code`` when it has none), then exit."""
    try:
        _child_setup(cfg)
        bdir = os.path.join(cfg["dir"], "bundle")
        os.makedirs(bdir, exist_ok=True)
        os.chdir(bdir)  # console sockets go by a relative path: unix socket paths are short
        work(cfg, chan, bdir)
        code = 0
    except LaunchError as e:
        code = e.code
        report_error(chan, code, str(e))
    except (ValueError, ProcessError) as e:  # the spec's user or limits
        report_error(chan, code, str(e))
    except BaseException as e:  # noqa: BLE001 - everything must be reported, then _exit
        report_error(chan, code, f"{cfg['options'].get('name')}{what}: {e}")
    os._exit(code)


def _start(cfg: dict[str, Any], chan: socket.socket, bdir: str) -> None:
    opts, cid = cfg["options"], cfg["id"]
    conf = bundle.config(cfg["spec"], terminal=bool(cfg["tty"]), cgroups_path=cfg["cgroups_path"],
                         default_mounts=cfg["mounts"])
    rootfs = None
    if "user" in bundle.new_namespaces(conf):
        rootfs, conf["root"]["path"] = conf["root"]["path"], ROOTFS_AT
        os.makedirs(ROOTFS_AT, mode=0o755, exist_ok=True)
    netns = outer_netns(conf)
    if netns is not None:
        _start_in_netns(conf, netns, inherit=opts.get("flavor") == "runc")
    _write_json(os.path.join(bdir, "config.json"), conf)
    if os.path.exists(os.path.join(opts["state_root"], cid)):  # a restart: the old run
        subprocess.run(argv(opts, "delete", "--force", cid), capture_output=True,
                       preexec_fn=_preexec(opts))
    log = _fresh(os.path.join(bdir, "runtime.log"))
    pidfile = _fresh(os.path.join(bdir, "pid"))
    console = "console.sock" if cfg["tty"] else None
    args = ["create", "--bundle", bdir, "--pid-file", pidfile,
            *(["--console-socket", console] if console else []), cid]
    if _run_with_console(opts, args, log, console, chan, rootfs) != 0:
        raise _not_started(log, conf["process"]["args"][0])
    pid = _read_pid(pidfile)
    report_pid(chan, pid)
    _own_device_rules(cfg)
    started = subprocess.run(argv(opts, "start", cid, log=log), capture_output=True,
                             preexec_fn=_preexec(opts))
    if started.returncode != 0:
        os.kill(pid, 9)
        raise LaunchError(f"{opts.get('name')} start: {_last_error(log, started.stderr)}")


def start_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    """The container's start: write the bundle, ``create``, report the pid, ``start``."""
    _entry(_start, cfg, chan, 128, "")


def _exec(cfg: dict[str, Any], chan: socket.socket, bdir: str) -> None:
    opts, eid = cfg["options"], cfg["exec_id"]
    proc = bundle.process(cfg["spec"].get("process") or {}, f"/proc/{cfg['target_pid']}/root",
                          terminal=bool(cfg["tty"]), extra=cfg["process"])
    if opts.get("flavor") == "runc" and outer_netns(cfg["spec"]) is not None:
        _enter_netns(f"/proc/{cfg['target_pid']}/ns/net")
    pfile = os.path.join(bdir, f"exec-{eid}.json")
    _write_json(pfile, proc)
    log = _fresh(os.path.join(bdir, f"exec-{eid}.log"))
    pidfile = _fresh(os.path.join(bdir, f"exec-{eid}.pid"))
    console = f"exec-{eid[:12]}.sock" if cfg["tty"] else None
    args = ["exec", "--detach", "--pid-file", pidfile, "--process", pfile,
            *(["--tty", "--console-socket", console] if console else []), cfg["id"]]
    try:
        if _run_with_console(opts, args, log, console, chan) != 0:
            raise _not_started(log, proc["args"][0])
        report_pid(chan, _read_pid(pidfile))
    finally:
        for path in (pfile, log, pidfile):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def exec_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    """An exec: its ``process.json``, then ``exec --detach``; report the process's pid."""
    _entry(_exec, cfg, chan, 126, " exec")


# -- the supervisor's side ----------------------------------------------------------------------
class OciLauncher(base.Launcher):
    """Options: ``path``, ``runtimeArgs``, ``state_root``, ``flavor`` (``runc``/``crun``: how
    the runtime takes ``--log``), ``private_cgroupfs``, ``name``."""

    applies_resources = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        os.makedirs(self.options["state_root"], mode=0o700, exist_ok=True)
        self.start_entry = start_main
        self.exec_entry = exec_main

    def check(self, spec: dict[str, Any]) -> None:
        lin = spec.get("linux") or {}
        if not self.options.get("user_namespaces") and any(
                ns.get("type") == "user" and not ns.get("path") for ns in lin.get("namespaces") or ()):
            raise InvalidParameter(f"the {self.options.get('name')} exec driver does not run "
                                   "containers in user namespaces")

    def _setup(self) -> Any:
        return private_cgroupfs if self.options.get("private_cgroupfs") else None

    async def _run(self, sup: Any, *args: str, quiet: tuple[str, ...] = ()) -> None:
        code, out = await base.run(sup, argv(self.options, *args), setup=self._setup())
        if code != 0:
            text = _last_error("", out)
            if any(q in text for q in quiet):
                return
            raise DockyardError(f"{self.options.get('name')} {args[0]}: {text}")

    def _known(self, cid: str) -> bool:
        return os.path.exists(os.path.join(self.options["state_root"], cid))

    async def kill(self, sup: Any, c: Any, signal: int) -> None:
        await self._run(sup, "kill", c.id, str(int(signal)),
                        quiet=("not running", "process already finished", "does not exist",
                               "No such process"))

    async def pause(self, sup: Any, c: Any) -> None:
        await self._run(sup, "pause", c.id)

    async def resume(self, sup: Any, c: Any) -> None:
        await self._run(sup, "resume", c.id)

    async def update(self, sup: Any, c: Any, resources: dict[str, Any]) -> None:
        if c.status not in ("running", "paused") or not self._known(c.id):
            return  # kept in the spec by the supervisor: the next start's bundle has it
        path = os.path.join(c.dir, "bundle", "resources.json")
        _write_json(path, resources)
        await self._run(sup, "update", "--resources", path, c.id)

    async def delete(self, sup: Any, c: Any) -> None:
        if self._known(c.id):
            await self._run(sup, "delete", "--force", c.id, quiet=("does not exist",))

    def recover(self, sup: Any, cid: str) -> None:
        if self._known(cid):
            subprocess.run(argv(self.options, "delete", "--force", cid), capture_output=True,
                           preexec_fn=self._setup())
