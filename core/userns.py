"""``userns-remap``: turn the daemon setting into an :class:`IDMap` from ``/etc/subuid`` and
``/etc/subgid``, as dockerd does.

Accepted forms: ``default`` (the ``dockremap`` user and group, created with subordinate ranges if
missing), ``user``, ``user:group``, ``uid``, ``uid:gid``. The ranges of the user (looked up by
name and by uid, in file order) become container IDs ``0..`` one after the other.
"""
from __future__ import annotations

import grp
import os
import pwd
import subprocess

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.idmap import IDMap, Range

from .blobs import atomic_write

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
DEFAULT_USER = "dockremap"
#: the size of a range made for ``default``, and where the search for a free one starts
RANGE_SIZE = 65536
FIRST_ID = 100000


def _read_ranges(path: str) -> list[tuple[str, int, int]]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split(":")
                try:
                    out.append((parts[0], int(parts[1]), int(parts[2])))
                except (IndexError, ValueError):
                    raise InvalidParameter(f"{path}:{n}: malformed line {line!r}") from None
    except FileNotFoundError:
        pass
    return out


def _ranges_for(path: str, names: tuple[str, ...]) -> tuple[Range, ...]:
    out: list[Range] = []
    next_id = 0
    for owner, start, size in _read_ranges(path):
        if owner in names and size > 0:
            out.append((next_id, start, size))
            next_id += size
    return tuple(out)


def _free_start(path: str) -> int:
    """The first ``RANGE_SIZE`` block at or above ``FIRST_ID`` that no entry of ``path`` uses."""
    taken = sorted((start, start + size) for _, start, size in _read_ranges(path))
    start = FIRST_ID
    for lo, hi in taken:
        if start + RANGE_SIZE <= lo:
            break
        start = max(start, hi)
    return start


def _append_range(path: str, name: str) -> None:
    try:
        with open(path, "rb") as f:
            old = f.read()
    except FileNotFoundError:
        old = b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    line = f"{name}:{_free_start(path)}:{RANGE_SIZE}\n".encode()
    atomic_write(path, old + line)
    os.chmod(path, 0o644)


def _ensure_default_user() -> None:
    """Create the ``dockremap`` system user and group and their subordinate ranges, as dockerd
    does for ``userns-remap: default``."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        try:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", DEFAULT_USER],
                           check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            err = getattr(e, "stderr", "") or str(e)
            raise InvalidParameter(f"userns-remap: cannot create user {DEFAULT_USER}: "
                                   f"{err.strip()}") from None
    for path in (SUBUID, SUBGID):
        if not _ranges_for(path, (DEFAULT_USER,)):
            _append_range(path, DEFAULT_USER)


def parse(setting: str, *, create_default: bool = True) -> tuple[IDMap, str, str]:
    """``(id map, user name, group name)`` for a ``userns-remap`` value; ``""`` gives the
    identity map. InvalidParameter names what is missing."""
    setting = (setting or "").strip()
    if not setting:
        return IDMap.identity(), "", ""
    if setting == "default":
        if create_default:
            _ensure_default_user()
        user, group = DEFAULT_USER, DEFAULT_USER
    else:
        user, _, group = setting.partition(":")
        if not user:
            raise InvalidParameter(f"userns-remap: invalid value {setting!r}: expected "
                                   f"default, user, user:group, uid or uid:gid")
    try:
        ent = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise InvalidParameter(f"userns-remap: no such user {user!r}") from None
    if group:
        try:
            gent = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        except KeyError:
            raise InvalidParameter(f"userns-remap: no such group {group!r}") from None
        gnames = (gent.gr_name, str(gent.gr_gid))
    else:
        # no group given: /etc/subgid entries under the user's name, as dockerd
        gnames = (ent.pw_name,)
    uids = _ranges_for(SUBUID, (ent.pw_name, str(ent.pw_uid)))
    if not uids:
        raise InvalidParameter(f"userns-remap: no subordinate uid ranges for user {ent.pw_name} "
                               f"in {SUBUID}")
    gids = _ranges_for(SUBGID, gnames)
    if not gids:
        raise InvalidParameter(f"userns-remap: no subordinate gid ranges for {gnames[0]} "
                               f"in {SUBGID}")
    return IDMap(uids, gids), ent.pw_name, gnames[0]


def remapped_root(data_root: str, id_map: IDMap) -> str:
    """Where a remapped daemon keeps its data: ``<data-root>/<uid>.<gid>`` of the containers'
    root, as dockerd (images stored shifted for one map are useless to another)."""
    uid, gid = id_map.root
    return os.path.join(data_root, f"{uid}.{gid}")


def resolve(data_root: str, setting: str) -> tuple[IDMap, str, str]:
    """``(id map, remap user, the data-root the daemon really keeps its state in)`` for the
    configured ``data-root`` and ``userns-remap``."""
    id_map, user, _ = parse(setting)
    return id_map, user, (data_root if id_map.is_identity else remapped_root(data_root, id_map))
