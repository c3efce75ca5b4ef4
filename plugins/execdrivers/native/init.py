"""What runs in the processes the supervisor forks for one container, between fork and execve.

``child_main`` runs in the supervisor's forked child (the *intermediate*): it leaves the
supervisor's session, joins the container's cgroups, sets up stdio, joins or creates the
namespaces, forks the container's first process (pid 1 of a new pid namespace), reports that
process's host pid and exits. ``_container_main`` runs in that grandchild: mounts, hostname,
``lo``, pivot_root, console, user, working directory, then ``execve``.

Both talk to the supervisor over one ``SOCK_SEQPACKET`` socket (close-on-exec), one message each:

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
from typing import Any, NoReturn

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host import devices, seccompbpf
from dockyard.plugins.execdrivers.native import rootfs as rootsetup
from dockyard.plugins.execdrivers.native.procenv import merge_env

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: the nodes of every container's /dev (runc's defaults): name, major, minor (character, 0666)
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
             ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))


class InitError(Exception):
    """A failure to report to the supervisor with Docker's exit code."""

    def __init__(self, message: str, code: int = 128) -> None:
        super().__init__(message)
        self.code = code


def default_mounts() -> list[dict[str, Any]]:
    """The mounts Docker gives every container (what the daemon puts in ``spec["mounts"]``)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]


# -- the intermediate -----------------------------------------------------------------------------
def _report(chan: socket.socket, code: int, message: str) -> None:
    try:
        chan.send(b"E%d %s" % (code, message.encode("utf-8", "replace")[:60000]))
    except OSError:
        pass


def _reset_signals() -> None:
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE,
                signal.SIGXFSZ, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def child_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    """Entry point of the supervisor's forked child. Never returns."""
    code = 128
    try:
        gc.disable()  # a collection would touch (copy) every page of the supervisor's heap
        _reset_signals()
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
    except InitError as e:
        code = e.code
        _report(chan, code, str(e))
    except BaseException as e:  # noqa: BLE001 - everything must be reported, then _exit
        _report(chan, code, f"container init: {e}")
    os._exit(code)


def _fork_mapper(cfg: dict[str, Any], chan: socket.socket) -> tuple[int, int]:
    """Fork a helper that stays in the parent user namespace and, once this process has made
    its new one, writes its ``gid_map`` and ``uid_map`` (only a process outside a user
    namespace, with CAP_SETUID/CAP_SETGID there, may map more than its own ID)."""
    lin = cfg["spec"].get("linux") or {}
    maps = {"gid_map": _map_text(lin.get("gidMappings")), "uid_map": _map_text(lin.get("uidMappings"))}
    if not maps["uid_map"] or not maps["gid_map"]:
        raise InitError("a user namespace needs linux.uidMappings and linux.gidMappings")
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
                        _report(chan, 128, f"container init: writing {path} ({text!r}): "
                                           f"{_go_err(e)}")
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
    chan.send(b"P%d" % pid)
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
    code = 128
    try:
        _setup_container(cfg, chan)
    except InitError as e:
        code = e.code
        _report(chan, code, str(e))
    except BaseException as e:  # noqa: BLE001
        _report(chan, code, f"container init: {e}")
    os._exit(code)


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with symlinks resolved as if ``root`` were ``/`` (never escapes it)."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cur = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), unsafe)
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        else:
            resolved.append(part)
    return os.path.join(root, *resolved)


def _ensure_file(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _populate_dev(dev: str) -> None:
    for name, target in DEV_LINKS:
        try:
            os.symlink(target, os.path.join(dev, name))
        except FileExistsError:
            pass


def _is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or "bind" in (m.get("options") or ()) \
        or "rbind" in (m.get("options") or ())


def _open_sources(mounts: list[dict[str, Any]]) -> dict[int, int]:
    """``O_PATH`` descriptors of the bind-mount sources, opened while this process is still the
    host's root: once it is the root of a user namespace, host directories it may not search
    (a data-root under a 0700 directory, ``-v /root/x:/x``) stay reachable through them."""
    fds: dict[int, int] = {}
    for i, m in enumerate(mounts):
        if _is_bind(m):
            try:
                fds[i] = os.open(m.get("source") or "", os.O_PATH | os.O_CLOEXEC)
            except OSError as e:
                raise InitError(f"error mounting \"{m.get('source')}\" to rootfs at "
                                f"\"{m['destination']}\": {_go_err(e)}") from None
    return fds


def _mount_one(rootfs: str, m: dict[str, Any], src_fd: int | None = None) -> None:
    dest = secure_join(rootfs, m["destination"])
    typ = m.get("type") or ""
    source = m.get("source") or typ or "none"
    flags, prop, data = host.parse_mount_options(m.get("options"))
    if flags & host.MS_BIND or typ == "bind":
        flags |= host.MS_BIND
        if src_fd is not None:
            is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
            source = f"/proc/self/fd/{src_fd}"
        else:
            is_dir = os.path.isdir(source)
        if is_dir:
            os.makedirs(dest, exist_ok=True)
        else:
            _ensure_file(dest)
        host.mount(source, dest, None, flags & (host.MS_BIND | host.MS_REC))
        extra = flags & ~(host.MS_BIND | host.MS_REC)
        if extra:
            host.remount_bind(dest, extra)
    else:
        os.makedirs(dest, exist_ok=True)
        try:
            host.mount(source, dest, typ, flags, data or None)
        except PermissionError:
            if typ != "sysfs":
                raise
            _bind_host_sys(dest)
        if typ == "tmpfs" and os.path.normpath(m["destination"]) == "/dev":
            _populate_dev(dest)
    if prop:
        host.mount(None, dest, None, prop)


def _bind_host_sys(dest: str) -> None:
    """sysfs of a network namespace this user namespace does not own (the network driver made
    it) cannot be mounted: bind the host's, read-only. The bind must be recursive (the host's
    submounts are locked to it), so each file system mounted under the host's /sys (cgroups,
    securityfs, debugfs...) is covered by an empty read-only tmpfs: a fresh sysfs shows those
    directories empty too."""
    subs = sorted({p for p, _, _ in host.mountinfo() if p.startswith("/sys/")})
    host.mount("/sys", dest, None, host.MS_BIND | host.MS_REC)
    host.remount_bind(dest, host.MS_RDONLY)
    covered: list[str] = []
    for path in subs:
        if any(path.startswith(c + "/") for c in covered):
            continue
        covered.append(path)
        try:
            host.mount("tmpfs", dest + path[4:], "tmpfs",
                        host.MS_RDONLY | host.MS_NOSUID | host.MS_NODEV | host.MS_NOEXEC,
                        "size=0,mode=755")
        except OSError:  # gone meanwhile, or not a directory: nothing to hide
            pass


def _make_devices(spec: dict[str, Any], mounts: list[dict[str, Any]], userns: bool) -> None:
    """The spec's ``linux.devices``, then the standard nodes, in the container's ``/dev``:
    made with mknod (a node of the container's own: chmod in it cannot reach the host's), or,
    in a user namespace where mknod is refused, the host's nodes bind-mounted. Nothing when
    ``/dev`` is a bind mount (the host's own /dev, as runc)."""
    if any(os.path.normpath(m["destination"]) == "/dev" and _is_bind(m) for m in mounts):
        return
    nodes = list((spec.get("linux") or {}).get("devices") or ())
    nodes += [{"path": "/dev/" + name, "type": "c", "major": major, "minor": minor,
               "fileMode": 0o666, "uid": 0, "gid": 0} for name, major, minor in DEV_NODES
              if not userns or os.path.exists("/dev/" + name)]
    bind = (lambda src, dst: host.mount(src, dst, None, host.MS_BIND)) if userns else None
    try:
        devices.create_nodes(".", nodes, secure_join, bind)
    except InvalidParameter as e:
        raise InitError(f"creating device nodes: {e}") from None
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise InitError(f"creating device nodes: {e.strerror or e}{where}") from None


def _mask_paths(masked: list[str], readonly: list[str]) -> None:
    for path in masked:
        try:
            if os.path.isdir(path):
                host.mount("tmpfs", path, "tmpfs", host.MS_RDONLY)
            elif os.path.exists(path):
                host.mount("/dev/null", path, None, host.MS_BIND)
        except FileNotFoundError:
            pass
    for path in readonly:
        try:
            if not os.path.exists(path):
                continue
            host.mount(path, path, None, host.MS_BIND | host.MS_REC)
            host.remount_bind(path, host.MS_RDONLY | host.MS_REC)
        except FileNotFoundError:
            pass


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f
                    if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def resolve_user(spec_user: dict[str, Any]) -> tuple[int, int, list[int], str]:
    """``(uid, gid, supplementary gids, home)`` from ``process.user``, the way Docker resolves
    ``--user`` against the container's own ``/etc/passwd`` and ``/etc/group``."""
    username = spec_user.get("username")
    extra = [int(g) for g in spec_user.get("additionalGids") or ()]
    if username is None or username == "":
        if "username" not in spec_user and ("uid" in spec_user or "gid" in spec_user):
            uid, gid = int(spec_user.get("uid", 0)), int(spec_user.get("gid", 0))
            home = "/"
            for ent in _read_db("/etc/passwd"):
                if len(ent) >= 6 and ent[2] == str(uid):
                    home = ent[5]
                    break
            return uid, gid, extra, home
        username = "0"
    user, _, group = username.partition(":")
    uid, gid, home, name = 0, 0, "/", None
    passwd = _read_db("/etc/passwd")
    for ent in passwd:
        if len(ent) >= 4 and (ent[0] == user or ent[2] == user):
            name, uid, gid = ent[0], int(ent[2]), int(ent[3])
            home = ent[5] if len(ent) >= 6 and ent[5] else "/"
            break
    else:
        if not user.isdigit():
            raise InitError(f"unable to find user {user}: no matching entries in passwd file")
        uid = int(user)
    groups_db = _read_db("/etc/group")
    if group:
        for ent in groups_db:
            if len(ent) >= 3 and (ent[0] == group or ent[2] == group):
                gid = int(ent[2])
                break
        else:
            if not group.isdigit():
                raise InitError(f"unable to find group {group}: no matching entries in group file")
            gid = int(group)
    groups: list[int] = [gid]
    if name is not None and not group:
        for ent in groups_db:
            if len(ent) >= 4 and name in ent[3].split(","):
                g = int(ent[2])
                if g not in groups:
                    groups.append(g)
    for g in extra + _group_ids(spec_user.get("additionalGroups"), groups_db):
        if g not in groups:
            groups.append(g)
    return uid, gid, groups, home


def _group_ids(names: Any, groups_db: list[list[str]]) -> list[int]:
    """``--group-add``: numbers as they are, names from the container's /etc/group."""
    out = []
    for name in names or ():
        name = str(name)
        if name.isdigit():
            out.append(int(name))
            continue
        for ent in groups_db:
            if len(ent) >= 3 and ent[0] == name:
                out.append(int(ent[2]))
                break
        else:
            raise InitError(f"unable to find group {name}: no matching entries in group file")
    return out


def _lookup(arg0: str, env: list[str]) -> str:
    """Go's ``exec.LookPath`` with the container's ``PATH``; raise Docker's messages."""
    if "/" in arg0:
        try:
            st = os.stat(arg0)
        except OSError as e:
            raise InitError(f'exec: "{arg0}": stat {arg0}: {_go_err(e)}',
                            127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126) from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise InitError(f'exec: "{arg0}": permission denied', 126)
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
    raise InitError(f'exec: "{arg0}": executable file not found in $PATH', 127)


def _go_err(e: OSError) -> str:
    msg = os.strerror(e.errno) if e.errno else str(e)
    return msg[:1].lower() + msg[1:]


def _apply_rlimits(base: Any, rlimits: Any) -> None:
    """The supervisor's own (raised) limits, then the spec's: never above the current hard limit
    (root here may lack CAP_SYS_RESOURCE)."""
    for kind, soft, hard in base or ():
        resource.setrlimit(kind, (soft, hard))
    for rl in rlimits or ():
        kind = getattr(resource, rl["type"], None)
        if kind is None:
            raise InitError(f"unknown rlimit {rl['type']}")
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
    proc = spec.get("process") or {}
    new_ns = {ns["type"] for ns in cfg["namespaces"] if not ns.get("path")}

    # -- the file system view ---------------------------------------------------------------
    root_prop = rootsetup.enter(spec)
    mounts = cfg["mounts"]
    sources = _open_sources(mounts)
    if "user" in new_ns:
        # the root of the new user namespace from here on: file systems mounted in it (the
        # tmpfs /dev, devpts...) only take files from IDs mapped into it, and mount points it
        # creates belong to the container's root, not to an ID it cannot see
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for i, m in enumerate(mounts):
        _mount_one(".", m, sources.pop(i, None))
    rootsetup.remount_readonly([secure_join(".", m["destination"]) for m in mounts
                                if m.get("remountReadonly")])
    _make_devices(spec, mounts, "user" in new_ns)
    if "uts" in new_ns:
        rootsetup.set_uts_names(spec)
    if "network" in new_ns:
        host.set_link_up("lo")
    rootsetup.pivot(root_prop)
    lin = spec.get("linux") or {}
    for key, value in (lin.get("sysctl") or {}).items():  # before /proc/sys turns read-only
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise InitError(f"setting sysctl {key}={value}: {_go_err(e)}") from None
    _mask_paths(lin.get("maskedPaths") or [], lin.get("readonlyPaths") or [])

    # -- the console ------------------------------------------------------------------------
    os.setsid()
    if cfg["tty"]:
        master, slave = os.openpty()
        size = (spec.get("process") or {}).get("consoleSize") or {}
        if size.get("height") and size.get("width"):  # before the process runs (ConsoleSize)
            fcntl.ioctl(slave, termios.TIOCSWINSZ,
                        struct.pack("HHHH", int(size["height"]), int(size["width"]), 0, 0))
        socket.send_fds(chan, [b"T"], [master])
        os.close(master)
        try:
            console = os.ttyname(slave)
            _ensure_file("/dev/console")
            host.mount(console, "/dev/console", None, host.MS_BIND)
        except OSError:
            pass
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(slave, target)
        os.close(slave)

    if (spec.get("root") or {}).get("readonly"):
        host.remount_bind("/", host.MS_RDONLY)

    # -- the process ------------------------------------------------------------------------
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
        raise InitError(f"chdir to cwd (\"{cwd}\") set in config.json failed: {_go_err(e)}") from e
    _apply_rlimits(cfg.get("base_rlimits"), proc.get("rlimits"))
    if proc.get("oomScoreAdj") is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(int(proc["oomScoreAdj"])))
        except OSError as e:
            raise InitError(f"setting oom_score_adj {proc['oomScoreAdj']}: {_go_err(e)}") from None
    args = list(proc.get("args") or [])
    if not args:
        raise InitError("no command specified")
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
        raise InitError(f'exec: "{args[0]}": {_go_err(e)}', code) from None


# -- exec: a new process in a running container ------------------------------------------------
#: setns order: every namespace is opened before any join; the mount namespace after the others
#: and the user namespace last: the host's root may join the ones owned by the container's user
#: namespace, and the network namespace (owned by the host's), only while still outside it
EXEC_NS_ORDER = ("cgroup", "ipc", "uts", "network", "pid", "mount", "user")


def exec_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    """The supervisor's forked child for an exec: join the container's cgroups and every
    namespace it has of its own (``/proc/<pid>/ns/*``), fork the process (so that it is inside
    the pid namespace), report its host pid, exit."""
    code = 128
    try:
        gc.disable()
        _reset_signals()
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
    except InitError as e:
        code = e.code
        _report(chan, code, str(e))
    except BaseException as e:  # noqa: BLE001
        _report(chan, code, f"exec: {e}")
    os._exit(code)


def _exec_process_main(cfg: dict[str, Any], chan: socket.socket) -> NoReturn:
    code = 126
    try:
        spec = cfg["spec"]
        proc = cfg["process"]
        base = spec.get("process") or {}
        lin = spec.get("linux") or {}
        os.setsid()
        if cfg["tty"]:
            master, slave = os.openpty()
            socket.send_fds(chan, [b"T"], [master])
            os.close(master)
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for target in (0, 1, 2):
                os.dup2(slave, target)
            os.close(slave)
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
            raise InitError(f"chdir to cwd (\"{cwd}\") set in config.json failed: {_go_err(e)}") from e
        _apply_rlimits(cfg.get("base_rlimits"), base.get("rlimits"))
        args = list(proc.get("args") or [])
        if not args:
            raise InitError("no command specified")
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
            raise InitError(f'exec: "{args[0]}": {_go_err(e)}', code) from None
    except InitError as e:
        code = e.code
        _report(chan, code, str(e))
    except BaseException as e:  # noqa: BLE001
        _report(chan, code, f"exec: {e}")
    os._exit(code)
