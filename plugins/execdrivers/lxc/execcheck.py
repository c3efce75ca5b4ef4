"""Whether a container's program can be run, checked before liblxc starts it.

liblxc reports a failed ``exec`` of the container's process only in its log; Docker answers
``exec: "x": executable file not found in $PATH`` (127) or ``permission denied`` (126) at start.
A child chrooted into the container's root file system (``process.call_chrooted``) looks the
program up the way ``execvp`` does, with the container's ``PATH``.
"""
from __future__ import annotations

import os

from dockyard.hookspecs.host.process import DEFAULT_PATH, call_chrooted


def _lookup(arg0: str, path: str, cwd: str) -> tuple[int, str] | None:
    """In the chroot: None if ``arg0`` runs, else Docker's (code, message)."""
    if "/" in arg0:
        full = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not os.path.exists(full):
            return 127, f'exec: "{arg0}": stat {arg0}: no such file or directory'
        if os.path.isdir(full) or not os.access(full, os.X_OK):
            return 126, f'exec: "{arg0}": permission denied'
        return None
    denied = False
    for d in path.split(":"):
        full = os.path.join(d or ".", arg0)
        if os.path.isfile(full):
            if os.access(full, os.X_OK):
                return None
            denied = True
    if denied:
        return 126, f'exec: "{arg0}": permission denied'
    return 127, f'exec: "{arg0}": executable file not found in $PATH'


def _under(path: str, mounts: list[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def check_executable(rootfs: str, arg0: str, env: list[str], cwd: str,
                     mounts: list[str] | None = None) -> tuple[int, str] | None:
    """None if ``arg0`` can be run in ``rootfs``, else Docker's (exit code, message).
    ``mounts``: where the container will have mounts the root file system does not show; a
    program that may be in one is left for liblxc to find."""
    path = next((kv[5:] for kv in env if kv.startswith("PATH=")), DEFAULT_PATH)
    places = [arg0 if arg0.startswith("/") else os.path.join(cwd or "/", arg0)] if "/" in arg0 \
        else path.split(":")
    if mounts and any(_under(p, mounts) for p in places):
        return None
    got = call_chrooted(rootfs, _lookup, arg0, path, cwd or "/")
    return None if got is None else (int(got[0]), str(got[1]))
