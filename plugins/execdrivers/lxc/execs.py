"""Exec processes of lxc containers, the container's environment, and its stats.

An exec runs :mod:`.attach` (liblxc's ``attach_wait``) as a child of the daemon, its stdio being
pipes or a pseudo-terminal the driver reads; its output is framed as on a container attach.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import struct
import sys
import termios
import tty as tty_mode
from typing import Any

from dockyard.hookspecs.errors import ExecError, InvalidParameter, NotFound
from dockyard.hookspecs.execdriver import AttachStreams
from dockyard.hookspecs.host import cgroupfiles, streams
from dockyard.hookspecs.host.process import ProcessError, resolve_user_in

from .execcheck import check_executable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READ = 65536


def environment(env: list[str] | None, home: str, tty: bool, extra: list[str] | None = None
                ) -> list[str]:
    """``K=V`` lines: ``extra`` over ``env``, with ``PATH``, ``HOME`` (and ``TERM`` on a TTY)
    added when missing, as dockerd does."""
    merged: dict[str, str] = {}
    for kv in [*(env or ()), *(extra or ())]:
        k, _, v = kv.partition("=")
        merged[k] = v
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("HOME", home)
    if tty:
        merged.setdefault("TERM", "xterm")
    return [f"{k}={v}" for k, v in merged.items()]


class Exec:
    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.proc, self.master = proc, master
        self.code: int | None = None


class Execs:
    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.running: dict[str, Exec] = {}

    def _request(self, cid: str, st: dict[str, Any], process: dict[str, Any], tty: bool
                 ) -> dict[str, Any]:
        with open(os.path.join(self.driver.cdir(cid), "spec.json")) as f:
            spec = json.load(f)
        base = spec.get("process") or {}
        user = process.get("user") or {}
        if not user.get("username"):
            user = base.get("user") or {}
        root = f"/proc/{int(st['pid'])}/root"
        uid, gid, _groups, home = resolve_user_in(root, user)
        env = environment(base.get("env"), home, tty, process.get("env"))
        args = list(process.get("args") or [])
        cwd = process.get("cwd") or base.get("cwd") or "/"
        bad = check_executable(root, args[0], env, cwd)
        if bad is not None:
            raise ExecError(bad[1], bad[0])
        return {"args": args, "env": env, "uid": uid, "gid": gid, "cwd": cwd, "tty": tty,
                "netns": f"/proc/{int(st.get('starter') or 0)}/ns/net"}

    async def start(self, cid: str, st: dict[str, Any], eid: str, process: dict[str, Any], *, tty: bool,
                    stdin: bool, detach: bool) -> tuple[int, AttachStreams | None]:
        if process.get("privileged"):
            raise InvalidParameter("the lxc exec driver does not run privileged execs "
                                   "(liblxc's attach keeps the container's capabilities)")
        try:
            req = self._request(cid, st, process, tty)
        except (ValueError, ProcessError) as e:
            raise ExecError(str(e), 126) from None
        argv = [sys.executable, "-m", "dockyard.plugins.execdrivers.lxc.attach",
                self.driver.cdir(cid), json.dumps(req)]
        master = None
        if tty:
            master, slave = os.openpty()
            tty_mode.setraw(slave)  # the container's own terminal (liblxc's) translates
            proc = await asyncio.create_subprocess_exec(*argv, stdin=slave, stdout=slave,
                                                        stderr=slave, start_new_session=True)
            os.close(slave)
        else:
            pipe = asyncio.subprocess.PIPE
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=pipe if stdin and not detach else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL if detach else pipe,
                stderr=asyncio.subprocess.DEVNULL if detach else pipe)
        ex = Exec(proc, master)
        self.running[eid] = ex
        if detach:
            if master is not None:
                asyncio.get_running_loop().create_task(_drain_tty(master))
            return proc.pid, None
        reader = asyncio.StreamReader()
        if master is not None:
            asyncio.get_running_loop().create_task(_pump_tty(master, reader))
            writer = await _tty_writer(master) if stdin else None
        else:
            asyncio.get_running_loop().create_task(_pump_pipes(proc, reader))
            writer = proc.stdin if stdin else None
        return proc.pid, AttachStreams(reader, writer)

    async def wait(self, eid: str) -> int:
        ex = self.running.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        if ex.code is None:
            ex.code = await ex.proc.wait()
        return ex.code

    def resize(self, eid: str, height: int, width: int) -> None:
        ex = self.running.get(eid)
        if ex is not None and ex.master is not None:
            fcntl.ioctl(ex.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def forget(self, eid: str) -> None:
        ex = self.running.pop(eid, None)
        if ex is not None and ex.master is not None:
            try:
                os.close(ex.master)
            except OSError:
                pass
            ex.master = None


async def _pump_pipes(proc: asyncio.subprocess.Process, reader: asyncio.StreamReader) -> None:
    async def one(src: asyncio.StreamReader | None, stream: int) -> None:
        while src is not None:
            data = await src.read(READ)
            if not data:
                return
            reader.feed_data(streams.frame(stream, data))
    await asyncio.gather(one(proc.stdout, streams.STDOUT), one(proc.stderr, streams.STDERR))
    reader.feed_eof()


async def _pump_tty(master: int, reader: asyncio.StreamReader) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    os.set_blocking(master, False)

    def readable() -> None:
        try:
            data = os.read(master, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            reader.feed_data(data)
            return
        loop.remove_reader(master)
        done.set_result(None)
    loop.add_reader(master, readable)
    await done
    reader.feed_eof()


async def _drain_tty(master: int) -> None:
    await _pump_tty(master, asyncio.StreamReader())


async def _tty_writer(master: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(master), "wb", buffering=0))
    return asyncio.StreamWriter(transport, protocol, None, loop)


#: the cgroup items :func:`stats` reads (v1)
STAT_ITEMS = ("cpuacct.stat", "cpuacct.usage", "cpu.stat", "memory.usage_in_bytes",
              "memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.stat",
              "pids.current", "pids.max")


def _int(text: str) -> int:
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return 0


def stats(items: dict[str, str]) -> dict[str, Any]:
    """The raw stats of a running container from its cgroup items (:data:`STAT_ITEMS`)."""
    cpu = cgroupfiles.flat_keyed(items["cpuacct.stat"])
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    throttling = cgroupfiles.flat_keyed(items["cpu.stat"])
    pids_max = items["pids.max"].strip()
    return {
        "cpu": {"usage_ns": _int(items["cpuacct.usage"]),
                "user_ns": cpu.get("user", 0) * tick, "system_ns": cpu.get("system", 0) * tick,
                "throttling": {"periods": throttling.get("nr_periods", 0),
                               "throttled_periods": throttling.get("nr_throttled", 0),
                               "throttled_time": throttling.get("throttled_time", 0)}},
        "memory": {"usage": _int(items["memory.usage_in_bytes"]),
                   "limit": _int(items["memory.limit_in_bytes"]),
                   "max_usage": _int(items["memory.max_usage_in_bytes"]),
                   "stats": cgroupfiles.flat_keyed(items["memory.stat"])},
        "pids": {"current": _int(items["pids.current"]),
                 "limit": 0 if pids_max in ("", "max") else _int(pids_max)},
        "online_cpus": os.cpu_count() or 1,
        "system_ns": _system_ns(),
    }


def _system_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
