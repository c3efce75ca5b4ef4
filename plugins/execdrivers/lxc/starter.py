"""The starter: the process liblxc runs a container from, in the foreground.

Forked by the container's monitor (:mod:`.monitor`) with the container's stdio as its own, it
joins the namespaces the spec gives by path (the network driver's netns...), then calls
liblxc's ``start(daemonize=False)``: liblxc sets the container up, execs its process, waits for
it, and returns. The starter is liblxc's monitor for the container's whole life; it writes the
container's wait status to ``exit.json`` and exits.

liblxc keeps the wait status of the container's init in ``struct lxc_container.error_num``,
which its Python binding does not expose. The binding's object holds the ``struct
lxc_container *`` right after the Python object header; ``error_num`` follows ``name``,
``configfile``, ``pidfile``, two lock pointers, ``numthreads``, ``lxc_conf`` and
``error_string`` in liblxc's public ``lxccontainer.h`` (unchanged since liblxc 1.0). The layout
is checked (the ``name`` field must read back as the container's name) before it is trusted.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import termios
from typing import Any, NoReturn

from dockyard.hookspecs.host import ns

#: ``struct lxc_container`` offsets on a 64-bit ABI
_NAME_OFFSET = 0
_ERROR_NUM_OFFSET = 64
#: OCI namespace type → CLONE_* flag, for the ones joined by path
_JOIN = {"network": ns.CLONE_NEWNET, "ipc": ns.CLONE_NEWIPC, "uts": ns.CLONE_NEWUTS,
         "pid": ns.CLONE_NEWPID, "cgroup": ns.CLONE_NEWCGROUP, "mount": ns.CLONE_NEWNS}


def error_num(container: Any, name: str) -> int | None:
    """liblxc's ``error_num`` of ``container`` (a ``_lxc.Container``), None when the layout
    does not check out."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    ptr = ctypes.c_void_p.from_address(id(container) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    if not ptr:
        return None
    if ctypes.c_char_p.from_address(ptr + _NAME_OFFSET).value != name.encode():
        return None
    return ctypes.c_int.from_address(ptr + _ERROR_NUM_OFFSET).value


def exit_code(status: int) -> int:
    """A wait status as Docker's exit code (128 + signal for a killed process). liblxc
    reports an init killed by signal N as ``N << 8 | 0x7f`` (the shape of a stop status)."""
    if status & 0xFF == 0x7F:
        return 128 + (status >> 8 & 0x7F)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128


def _join(joins: dict[str, str]) -> None:
    for kind, path in joins.items():
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ns.setns(fd, _JOIN[kind])
        finally:
            os.close(fd)


def _stdio(fds: list[int], tty: bool) -> None:
    """The container's stdio as 0, 1, 2, and nothing else open: the monitor holds every other
    container's pipes, which must reach their end of file when those containers end."""
    os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    if tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run(cdir: str, name: str, args: list[str], joins: dict[str, str], fds: list[int],
        tty: bool) -> NoReturn:
    """In the forked starter: never returns."""
    result: dict[str, Any] = {"started": False}
    try:
        for sig in range(1, signal.NSIG):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        _stdio(fds, tty)
        _join(joins)
        import lxc  # noqa: PLC0415 - checked by the driver; only the starter needs liblxc here

        c = lxc.Container(name, os.path.dirname(cdir))
        result["started"] = bool(c.start(daemonize=False, close_fds=True, cmd=tuple(args)))
        status = error_num(c, name)
        result["status"] = status
        result["exit_code"] = exit_code(status) if status is not None else 128
    except BaseException as e:  # noqa: BLE001 - reported to the monitor, then _exit
        result["error"] = f"{type(e).__name__}: {e}"
    try:
        with open(os.path.join(cdir, "exit.json.tmp"), "w") as f:
            json.dump(result, f)
        os.replace(os.path.join(cdir, "exit.json.tmp"), os.path.join(cdir, "exit.json"))
    finally:
        os._exit(0)
