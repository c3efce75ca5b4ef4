"""Docker's ``--user`` and ``--group-add`` resolved against the container's own databases.

A forked child chroots into the container's root (or ``/proc/<pid>/root``) so that no symbolic
link of the image reaches the host's ``/etc/passwd``; it reads ``/etc/passwd`` and
``/etc/group`` there, as dockerd does (moby's ``user.GetExecUser``).
"""
from __future__ import annotations

import json
import os
from typing import Any


def _db(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip()
                    and not line.startswith("#")]
    except OSError:
        return []


def _find(db: list[list[str]], key: str, fields: int) -> list[str] | None:
    return next((e for e in db if len(e) >= fields and key in (e[0], e[2])), None)


def lookup(spec_user: dict[str, Any]) -> tuple[int, int, list[int], str]:
    """In the chroot: ``(uid, gid, groups, home)``; ValueError with Docker's words."""
    username = spec_user.get("username") or ""
    passwd, groups_db = _db("/etc/passwd"), _db("/etc/group")
    if not username:
        uid, gid = int(spec_user.get("uid", 0)), int(spec_user.get("gid", 0))
        ent = _find(passwd, str(uid), 6)
        return uid, gid, [gid], ent[5] if ent else "/"
    user, _, group = username.partition(":")
    ent = _find(passwd, user, 4)
    if ent is None and not user.isdigit():
        raise ValueError(f"unable to find user {user}: no matching entries in passwd file")
    uid, gid = (int(ent[2]), int(ent[3])) if ent else (int(user), 0)
    home = ent[5] if ent and len(ent) >= 6 and ent[5] else "/"
    if group:
        gent = _find(groups_db, group, 3)
        if gent is None and not group.isdigit():
            raise ValueError(f"unable to find group {group}: no matching entries in group file")
        gid = int(gent[2]) if gent else int(group)
    out = [gid]
    if ent and not group:
        out += [int(g[2]) for g in groups_db if len(g) >= 4 and ent[0] in g[3].split(",")]
    for name in spec_user.get("additionalGroups") or ():
        gent = _find(groups_db, str(name), 3)
        if gent is None and not str(name).isdigit():
            raise ValueError(f"unable to find group {name}: no matching entries in group file")
        out.append(int(gent[2]) if gent else int(name))
    return uid, gid, list(dict.fromkeys(out)), home


def resolve_in(root: str, spec_user: dict[str, Any]) -> tuple[int, int, list[int], str]:
    """:func:`lookup` run chrooted in ``root``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.chroot(root)
            os.chdir("/")
            try:
                out: Any = list(lookup(spec_user))
            except ValueError as e:
                out = {"error": str(e)}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    got = json.loads(data or b'{"error": "resolving the user failed"}')
    if isinstance(got, dict):
        raise ValueError(got["error"])
    return int(got[0]), int(got[1]), [int(g) for g in got[2]], str(got[3])
