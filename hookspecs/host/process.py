"""A container process's identity and environment as dockerd makes them, for a driver's code
between ``fork`` and ``execve`` (or a runtime's ``process`` object): ``--user`` resolved against
the container's own ``/etc/passwd`` and ``/etc/group``, the environment merged, the signal
state a forked child of an asyncio program starts clean from."""

from __future__ import annotations

import json
import os
import signal
from typing import Any, Callable

__all__ = [
    "DEFAULT_PATH",
    "ProcessError",
    "call_chrooted",
    "go_error",
    "merge_env",
    "reset_signals",
    "resolve_user",
    "resolve_user_in",
]

#: the ``PATH`` a process gets when its environment has none (dockerd's)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessError(Exception):
    """The process cannot be made as its spec says (a ``--user`` or ``--group-add`` name the
    container's files do not have...): Docker's message, and ``code``, the exit code Docker
    reports for it."""

    def __init__(self, message: str, code: int = 128) -> None:
        super().__init__(message)
        self.code = code


def go_error(e: OSError) -> str:
    """``e`` as Go prints an errno (``no such file or directory``), the words of Docker's
    messages."""
    msg = os.strerror(e.errno) if e.errno else str(e)
    return msg[:1].lower() + msg[1:]


def merge_env(*lists: Any) -> dict[str, str]:
    """``K=V`` lists merged in order (an exec's after its container's); a bare ``NAME`` unsets
    it, as dockerd's ReplaceOrAppendEnvValues."""
    env: dict[str, str] = {}
    for kv in [kv for items in lists for kv in items or ()]:
        k, sep, v = kv.partition("=")
        if sep:
            env[k] = v
        else:
            env.pop(k, None)
    return env


def reset_signals() -> None:
    """The default disposition for the signals an asyncio program handles, no wakeup fd, an
    empty signal mask: for a forked child before it execs."""
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for sig in (
        signal.SIGCHLD,
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGPIPE,
        signal.SIGXFSZ,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [
                line.rstrip("\n").split(":")
                for line in f
                if line.strip() and not line.startswith("#")
            ]
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
            raise ProcessError(f"unable to find user {user}: no matching entries in passwd file")
        uid = int(user)
    groups_db = _read_db("/etc/group")
    if group:
        for ent in groups_db:
            if len(ent) >= 3 and (ent[0] == group or ent[2] == group):
                gid = int(ent[2])
                break
        else:
            if not group.isdigit():
                raise ProcessError(
                    f"unable to find group {group}: no matching entries in group file"
                )
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
            raise ProcessError(f"unable to find group {name}: no matching entries in group file")
    return out


def call_chrooted(root: str, fn: Callable[..., Any], *args: Any, failed: Any = None) -> Any:
    """``fn(*args)`` run in a forked child chrooted into ``root`` (a container's root directory
    or ``/proc/<pid>/root``), so that no symbolic link of the image reaches the host's files;
    its result (JSON-able) comes back. A :class:`ProcessError` it raises is raised here; a
    child that answers nothing gives ``failed``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.chroot(root)
            os.chdir("/")
            try:
                out: Any = {"ok": fn(*args)}
            except ProcessError as e:
                out = {"error": str(e), "code": e.code}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        return failed
    got = json.loads(data)
    if "error" in got:
        raise ProcessError(got["error"], got["code"])
    return got["ok"]


def resolve_user_in(root: str, spec_user: dict[str, Any]) -> tuple[int, int, list[int], str]:
    """:func:`resolve_user` read from the databases of the container whose root is ``root``,
    by :func:`call_chrooted`; ProcessError with Docker's words."""
    got = call_chrooted(root, resolve_user, spec_user)
    if got is None:
        raise ProcessError("resolving the user failed")
    uid, gid, groups, home = got
    return int(uid), int(gid), [int(g) for g in groups], str(home)
