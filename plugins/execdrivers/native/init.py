"""What runs in the processes the supervisor forks for one container, between fork and execve.

``child_main`` runs in the supervisor's forked child (the *intermediate*): it leaves the
supervisor's session, joins the container's cgroups, sets up stdio, joins or creates the
namespaces, forks the container's first process (pid 1 of a new pid namespace), reports that
process's host pid and exits. ``_container_main`` runs in that grandchild: mounts, hostname,
``lo``, pivot_root, console, user, working directory, then ``execve``.

Both talk to the supervisor over one ``SOCK_SEQPACKET`` socket (close-on-exec), one message each
(written with ``dockyard.hookspecs.host.supervisor.protocol``'s ``report_*``):

* ``P<pid>``       the intermediate: the container process's host pid
* ``T`` + fd       the container process: the console master (SCM_RIGHTS), when ``tty``
* ``E<code> <msg>`` either: a failure before exec; the sender then exits with ``code``

A successful ``execve`` closes the socket, so end-of-file means "exec'd" unless an ``E`` came.
Nothing here may touch the supervisor's event loop or import anything after ``pivot_root``.
"""
from __future__ import annotations

import errno
import fcntl
import gc
import os
import resource
import signal
import socket
import stat
import struct
import termios
from typing import Any, Callable, NoReturn

from dockyard.hookspecs import host
from dockyard.hookspecs.host import seccompbpf
from dockyard.hookspecs.host.process import (
    DEFAULT_PATH, ProcessError, go_error, merge_env, reset_signals, resolve_user,
)
from dockyard.hookspecs.host.supervisor.protocol import report_console, report_error, report_pid
from dockyard.plugins.execdrivers.native import rootfs as rootsetup

def _exit_reporting(chan: socket.socket, code: int, what: str,
                    fn: Callable[[dict[str, Any], socket.socket], Any], cfg: dict[str, Any]
                    ) -> NoReturn:
    """``fn(cfg, chan)``, a forked child's work, then ``_exit(code)``; a failure is reported on
    ``chan`` first: a ProcessError with its words and code, anything else as ``what: error``."""
    try:
        fn(cfg, chan)
    except ProcessError as e:
        code = e.code
        report_error(chan, code, str(e))
    except BaseException as e:  # noqa: BLE001 - everything must be reported, then _exit
        report_error(chan, code, f"{what}: {e}")
    os._exit(code)


# -- the intermediate -----------------------------------------------------------------------------
def child_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    """Entry point of the supervisor's forked child. Never returns."""
    _exit_reporting(chan, 128, "container init", _child_body, cfg)


def _child_body(cfg: dict[str, Any], chan: socket.socket) -> None:
    gc.disable()  # a collection would touch (copy) every page of the supervisor's heap
    reset_signals()
    host.set_name("dockyard-init")
    os.setsid()
    # Joining a cgroup waits for an RCU grace period (milliseconds): unless the container
    # gets its own cgroup namespace (rooted where its creator is), move the container
    # process while it sets itself up, and let it exec only once that is done.
    early = any(ns["type"] == "cgroup" and not ns.get("path") for ns in cfg["namespaces"])
    if early:
        _join_cgroups(cfg["cgroup_procs"], 0)
    # stdio: the container's pipes (the console is opened later, inside the container)
    for target, fd in enumerate(cfg["stdio"]):
        if fd is not None:
            os.dup2(fd, target)
    # namespaces: join those with a path, create the others
    joined: set[str] = set()
    for ns in cfg["namespaces"]:
        if ns.get("path"):
            fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.setns(fd, host.NAMESPACE_FLAGS[ns["type"]])
            finally:
                os.close(fd)
            joined.add(ns["type"])
    if "network" in joined and any(ns["type"] == "user" and not ns.get("path")
                                   for ns in cfg["namespaces"]):
        # the network driver's namespace belongs to the host's user namespace: its net.*
        # sysctls are written now, as the host's root, not from inside the new one
        cfg["sysctls_done"] = _write_sysctls(cfg["spec"], lambda key: key.startswith("net."))
    flags = host.CLONE_NEWNS
    for ns in cfg["namespaces"]:
        if not ns.get("path"):
            flags |= host.NAMESPACE_FLAGS[ns["type"]]
    # a new user namespace is made in the same call as the others, so that it owns them
    # (mounting proc, mqueue, devpts needs that); its maps are written from outside it
    mapper = _fork_mapper(cfg, chan) if flags & host.CLONE_NEWUSER else None
    host.unshare(flags)
    if mapper is not None:
        _release_mapper(*mapper)
    # opened now: once the container pivots, this mount namespace no longer shows them
    cg_fds = [] if early else [os.open(p, os.O_WRONLY | os.O_CLOEXEC)
                               for p in cfg["cgroup_procs"]]
    _fork_gated(cfg, chan, cg_fds, _container_main)


def _fork_mapper(cfg: dict[str, Any], chan: socket.socket) -> tuple[int, int]:
    """Fork a helper that stays in the parent user namespace and, once this process has made
    its new one, writes its ``gid_map`` and ``uid_map`` (only a process outside a user
    namespace, with CAP_SETUID/CAP_SETGID there, may map more than its own ID)."""
    lin = cfg["spec"].get("linux") or {}
    maps = {"gid_map": _map_text(lin.get("gidMappings")), "uid_map": _map_text(lin.get("uidMappings"))}
    if not maps["uid_map"] or not maps["gid_map"]:
        raise ProcessError("a user namespace needs linux.uidMappings and linux.gidMappings")
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper
        code = 1
        try:
            os.close(w)
            if os.read(r, 1) == b"1":
                target = os.getppid()
                for name, text in maps.items():
                    path = f"/proc/{target}/{name}"
                    try:
                        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                        try:
                            os.write(fd, text)
                        finally:
                            os.close(fd)
                    except OSError as e:
                        report_error(chan, 128, f"container init: writing {path} ({text!r}): "
                                           f"{go_error(e)}")
                        raise
                code = 0
        finally:
            os._exit(code)
    os.close(r)
    return pid, w


def _release_mapper(pid: int, w: int) -> None:
    try:
        os.write(w, b"1")
    finally:
        os.close(w)
    _, status = os.waitpid(pid, 0)
    if status != 0:  # it has reported why
        os._exit(128)


def _map_text(items: Any) -> bytes:
    return "".join(f"{int(m['containerID'])} {int(m['hostID'])} {int(m['size'])}\n"
                   for m in items or ()).encode()


def _fork_gated(cfg: dict[str, Any], chan: socket.socket, cg_fds: list[int],
                main: Any) -> NoReturn:
    """Fork the process that becomes the container's (or exec's) program, put it in its
    cgroups through ``cg_fds`` while it sets itself up, then open its gate (it execs only after
    that), report its host pid to the supervisor and leave: the supervisor, as subreaper,
    inherits it."""
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(gate_w)
        for fd in cg_fds:
            os.close(fd)
        cfg["gate"] = gate_r
        main(cfg, chan)  # never returns
    os.close(gate_r)
    try:
        for fd in cg_fds:
            os.write(fd, b"%d" % pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    os.write(gate_w, b"1")
    report_pid(chan, pid)
    os._exit(0)


def _join_cgroups(procs_files: list[str], pid: int) -> None:
    for procs in procs_files:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"%d" % pid)
        finally:
            os.close(fd)


# -- the container's first process ----------------------------------------------------------------
def _container_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    _exit_reporting(chan, 128, "container init", _setup_container, cfg)


def _lookup(arg0: str, env: list[str]) -> str:
    """Go's ``exec.LookPath`` with the container's ``PATH``; raise Docker's messages."""
    if "/" in arg0:
        try:
            st = os.stat(arg0)
        except OSError as e:
            raise ProcessError(f'exec: "{arg0}": stat {arg0}: {go_error(e)}',
                            127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126) from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise ProcessError(f'exec: "{arg0}": permission denied', 126)
        return arg0
    path = DEFAULT_PATH
    for kv in env:
        if kv.startswith("PATH="):
            path = kv[5:]
    for d in path.split(":"):
        cand = os.path.join(d or ".", arg0)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise ProcessError(f'exec: "{arg0}": executable file not found in $PATH', 127)


def _apply_rlimits(base: Any, rlimits: Any) -> None:
    """The supervisor's own (raised) limits, then the spec's: never above the current hard limit
    (root here may lack CAP_SYS_RESOURCE)."""
    for kind, soft, hard in base or ():
        resource.setrlimit(kind, (soft, hard))
    for rl in rlimits or ():
        kind = getattr(resource, rl["type"], None)
        if kind is None:
            raise ProcessError(f"unknown rlimit {rl['type']}")
        hard_now = resource.getrlimit(kind)[1]
        hard = rl["hard"] if hard_now == resource.RLIM_INFINITY or rl["hard"] <= hard_now \
            else hard_now
        resource.setrlimit(kind, (min(rl["soft"], hard), hard))


def _drop_privileges(proc: dict[str, Any], lin: dict[str, Any], uid: int, gid: int,
                     groups: list[int], bpf: bytes | None = None) -> bytes | None:
    """Bounding set, no_new_privs, user and groups, then the remaining capability sets. The
    seccomp program (``bpf``: compiled and cached by the supervisor before the fork; compiled
    here if it did not) is loaded by the caller just before ``execve`` when no_new_privs allows
    an unprivileged load, else here while still privileged."""
    caps = proc.get("capabilities")
    if caps is not None:
        host.drop_bounding(caps.get("bounding") or [])
    flt = None
    if lin.get("seccomp"):
        flt = bpf if bpf is not None else seccompbpf.compile_bpf(lin["seccomp"])
    if proc.get("noNewPrivileges"):
        host.set_no_new_privs()
    elif flt is not None:
        seccompbpf.load_seccomp(flt)
        flt = None
    # root of the current user namespace first: in a new one this process is still the host's
    # root, which the kernel does not count as "root" there, so going straight to a non-root
    # uid would keep every capability; from the namespace's root, it drops them all
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    host.apply_capabilities(caps, uid)
    return flt


def _setup_container(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    spec = cfg["spec"]
    _setup_view(cfg, spec)
    os.setsid()
    if cfg["tty"]:
        _open_console(chan, (spec.get("process") or {}).get("consoleSize") or {}, True)
    if (spec.get("root") or {}).get("readonly"):
        host.remount_bind("/", host.MS_RDONLY)
    _exec_container_process(cfg, spec)


def _setup_view(cfg: dict[str, Any], spec: dict[str, Any]) -> None:
    """The container's file system view, host and domain names, ``lo``; pivoted into."""
    new_ns = {ns["type"] for ns in cfg["namespaces"] if not ns.get("path")}
    root_prop = rootsetup.enter(spec)
    mounts = cfg["mounts"]
    sources = rootsetup.open_sources(mounts)
    if "user" in new_ns:
        # the root of the new user namespace from here on: file systems mounted in it (the
        # tmpfs /dev, devpts...) only take files from IDs mapped into it, and mount points it
        # creates belong to the container's root, not to an ID it cannot see
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for i, m in enumerate(mounts):
        rootsetup.mount_one(".", m, sources.pop(i, None))
    rootsetup.remount_readonly([rootsetup.secure_join(".", m["destination"]) for m in mounts
                                if m.get("remountReadonly")])
    rootsetup.make_devices(spec, mounts, "user" in new_ns)
    if "uts" in new_ns:
        rootsetup.set_uts_names(spec)
    if "network" in new_ns:
        host.set_link_up("lo")
    rootsetup.pivot(root_prop)
    lin = spec.get("linux") or {}
    done = set(cfg.get("sysctls_done") or ())
    _write_sysctls(spec, lambda key: key not in done)  # before /proc/sys turns read-only
    rootsetup.mask_paths(lin.get("maskedPaths") or [], lin.get("readonlyPaths") or [])


def _write_sysctls(spec: dict[str, Any], wanted: Any) -> list[str]:
    """Write the spec's sysctls whose key ``wanted`` accepts (through this process's
    ``/proc/sys``: the net.* ones of the network namespace it is in); the keys written."""
    written = []
    for key, value in ((spec.get("linux") or {}).get("sysctl") or {}).items():
        if not wanted(key):
            continue
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise ProcessError(f"setting sysctl {key}={value}: {go_error(e)}") from None
        written.append(key)
    return written


def _open_console(chan: socket.socket, size: dict[str, Any], dev_console: bool) -> None:
    """A pseudo-terminal for the process to be: its master to the supervisor, its slave the
    controlling terminal and fds 0-2 (and bound on /dev/console for a container's init),
    sized before the process runs (``consoleSize``)."""
    master, slave = os.openpty()
    if size.get("height") and size.get("width"):
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(size["height"]), int(size["width"]), 0, 0))
    report_console(chan, master)
    os.close(master)
    if dev_console:
        try:
            console = os.ttyname(slave)
            rootsetup.ensure_file("/dev/console")
            host.mount(console, "/dev/console", None, host.MS_BIND)
        except OSError:
            pass
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)


def _exec_container_process(cfg: dict[str, Any], spec: dict[str, Any]) -> NoReturn:
    """The user, environment, working directory, limits and privileges of the container's
    process, then ``execve``."""
    proc = spec.get("process") or {}
    lin = spec.get("linux") or {}
    uid, gid, groups, home = resolve_user(proc.get("user") or {})
    env = list(proc.get("env") or [])
    if not any(kv.startswith("HOME=") for kv in env):
        env.append("HOME=" + home)
    if not any(kv.startswith("PATH=") for kv in env):
        env.append("PATH=" + DEFAULT_PATH)
    cwd = proc.get("cwd") or "/"
    try:
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
    except OSError as e:
        raise ProcessError(f"chdir to cwd (\"{cwd}\") set in config.json failed: {go_error(e)}") from e
    _apply_rlimits(cfg.get("base_rlimits"), proc.get("rlimits"))
    if proc.get("oomScoreAdj") is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(int(proc["oomScoreAdj"])))
        except OSError as e:
            raise ProcessError(f"setting oom_score_adj {proc['oomScoreAdj']}: {go_error(e)}") from None
    args = list(proc.get("args") or [])
    if not args:
        raise ProcessError("no command specified")
    path = _lookup(args[0], env)
    os.umask(0o022)
    cfg["filter"] = _drop_privileges(proc, lin, uid, gid, groups, cfg.get("seccomp_bpf"))
    if os.read(cfg["gate"], 1) != b"1":  # the intermediate failed (and reported why)
        os._exit(128)
    if cfg.get("filter") is not None:
        seccompbpf.load_seccomp(cfg["filter"])
    try:
        os.execve(path, args, dict(kv.split("=", 1) for kv in env if "=" in kv))
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else \
            126 if e.errno in (errno.EACCES, errno.EISDIR, errno.EPERM) else 128
        raise ProcessError(f'exec: "{args[0]}": {go_error(e)}', code) from None


# -- exec: a new process in a running container ------------------------------------------------
#: setns order: every namespace is opened before any join; the mount namespace after the others
#: and the user namespace last: the host's root may join the ones owned by the container's user
#: namespace, and the network namespace (owned by the host's), only while still outside it
EXEC_NS_ORDER = ("cgroup", "ipc", "uts", "network", "pid", "mount", "user")


def exec_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    """The supervisor's forked child for an exec: join the container's cgroups and every
    namespace it has of its own (``/proc/<pid>/ns/*``), fork the process (so that it is inside
    the pid namespace), report its host pid, exit."""
    _exit_reporting(chan, 128, "exec", _exec_body, cfg)


def _exec_body(cfg: dict[str, Any], chan: socket.socket) -> None:
    gc.disable()
    reset_signals()
    host.set_name("dockyard-exec")
    os.setsid()
    # the cgroups are joined by writing the process's pid while it sets itself up (each
    # cgroup.procs write waits for an RCU grace period); it execs only once that is done
    cg_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in cfg["cgroup_procs"]]
    for target, fd in enumerate(cfg["stdio"]):
        if fd is not None:
            os.dup2(fd, target)
    target_pid = cfg["target_pid"]
    joins = []
    for typ in EXEC_NS_ORDER:
        name = host.NAMESPACE_FILES[typ]
        try:
            theirs = os.stat(f"/proc/{target_pid}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            joins.append((os.open(f"/proc/{target_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC),
                          host.NAMESPACE_FLAGS[typ]))
    for fd, flag in joins:
        host.setns(fd, flag)
        os.close(fd)
    _fork_gated(cfg, chan, cg_fds, _exec_process_main)


def _exec_process_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    _exit_reporting(chan, 126, "exec", _exec_process_body, cfg)


def _exec_process_body(cfg: dict[str, Any], chan: socket.socket) -> None:
    spec = cfg["spec"]
    proc = cfg["process"]
    base = spec.get("process") or {}
    lin = spec.get("linux") or {}
    os.setsid()
    if cfg["tty"]:
        _open_console(chan, {}, False)
    user = proc.get("user") or {"username": (base.get("user") or {}).get("username", "")}
    uid, gid, groups, home = resolve_user(user)
    env = merge_env(base.get("env"), proc.get("env"))
    env.setdefault("HOME", home)
    env.setdefault("PATH", DEFAULT_PATH)
    if cfg["tty"]:
        env.setdefault("TERM", "xterm")
    env_list = [f"{k}={v}" for k, v in env.items()]
    cwd = proc.get("cwd") or base.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ProcessError(f"chdir to cwd (\"{cwd}\") set in config.json failed: {go_error(e)}") from e
    _apply_rlimits(cfg.get("base_rlimits"), base.get("rlimits"))
    args = list(proc.get("args") or [])
    if not args:
        raise ProcessError("no command specified")
    path = _lookup(args[0], env_list)
    os.umask(0o022)
    privileged = dict(base)
    if proc.get("privileged"):
        privileged = dict(base, capabilities=None, noNewPrivileges=False)
        lin = dict(lin, seccomp=None)
    flt = _drop_privileges(privileged, lin, uid, gid, groups,
                           None if proc.get("privileged") else cfg.get("seccomp_bpf"))
    if os.read(cfg["gate"], 1) != b"1":  # the intermediate failed (and reported why)
        os._exit(126)
    if flt is not None:
        seccompbpf.load_seccomp(flt)
    try:
        os.execve(path, args, env)
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        raise ProcessError(f'exec: "{args[0]}": {go_error(e)}', code) from None
