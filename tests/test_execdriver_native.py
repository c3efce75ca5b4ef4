"""The native exec driver, against the real kernel: namespaces, cgroups, a busybox rootfs.

Every test runs real containers through a fresh supervisor on its own temporary root and leaves
nothing behind: no container, no supervisor process, no cgroup directory.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
import time
import uuid

import pytest

from dockyard.hookspecs.errors import Conflict, ExecError, NotFound
from dockyard.hookspecs.execdriver import ExitStatus
from dockyard.hookspecs.host import streams

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native driver needs root")

from dockyard.plugins.execdrivers.native import NativeDriver  # noqa: E402

ALL_NS = ("pid", "network", "mount", "ipc", "uts")
CGROUP_DIRS = ("pids", "memory", "cpu", "cpuacct", "freezer", "cpuset", "blkio")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    from dockyard.core.busybox import build_rootfs_dir

    path = str(tmp_path_factory.mktemp("native") / "rootfs")
    build_rootfs_dir(path)
    return path


class Env:
    """One driver root, its rootfs, and the ids a test used (for the cleanup checks)."""

    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs
        self.dir = tempfile.mkdtemp(prefix="dy-native-")  # short: unix socket paths are limited
        self.root = os.path.join(self.dir, "native")
        self.ids: list[str] = []
        self.drivers: list[NativeDriver] = []

    def driver(self) -> NativeDriver:
        d = NativeDriver(self.root)
        self.drivers.append(d)
        return d

    def cid(self) -> str:
        cid = "t" + uuid.uuid4().hex[:16]
        self.ids.append(cid)
        return cid

    def log(self, cid: str) -> str:
        return os.path.join(self.dir, cid + ".log")

    def spec(self, args: list[str], *, ns=ALL_NS, user: str | None = None, cwd: str = "/",
             env: list[str] | None = None, resources: dict | None = None) -> dict:
        spec = {
            "process": {"args": args, "cwd": cwd,
                        "env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                        "user": {"uid": 0, "gid": 0}},
            "root": {"path": self.rootfs, "readonly": False},
            "hostname": "box",
            "linux": {"namespaces": [{"type": t} for t in ns]},
        }
        if user is not None:
            spec["process"]["user"]["username"] = user
        if resources:
            spec["linux"]["resources"] = resources
        return spec

    async def run(self, d: NativeDriver, args: list[str], **kw) -> tuple[ExitStatus, bytes, bytes]:
        """create + attach + start + wait; return (exit, stdout, stderr) as the attach saw them."""
        tty = kw.pop("tty", False)
        cid = self.cid()
        await d.create(cid, self.spec(args, **kw), log_path=self.log(cid), tty=tty)
        att = await d.attach(cid)
        await d.start(cid)
        status = await d.wait(cid)
        data = await asyncio.wait_for(att.reader.read(), 10)
        att.close()
        await d.delete(cid)
        if tty:
            return status, data, b""
        return (status, *demux(data))


def demux(data: bytes) -> tuple[bytes, bytes]:
    out = streams.demux(data)
    return out.get(1, b""), out.get(2, b"")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def env(rootfs):
    e = Env(rootfs)
    yield e

    async def cleanup():
        d = NativeDriver(e.root)
        try:
            for st in await d.restore():
                await d.delete(st.id)
        finally:
            await d.close()
        return d

    pidfile = os.path.join(e.root, "supervisor.pid")
    try:
        with open(pidfile) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        pid = 0
    if pid:
        last = asyncio.run(cleanup())
        for d in e.drivers + [last]:
            if d.spawned is not None:
                d.spawned.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid), "the supervisor did not exit once idle"
        assert not os.path.exists(os.path.join(e.root, "supervisor.sock"))
    for cid in e.ids:
        for ctrl in CGROUP_DIRS:
            assert not os.path.exists(f"/sys/fs/cgroup/{ctrl}/dockyard/{cid}"), (ctrl, cid)
        assert not os.path.exists(os.path.join(e.root, cid))
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert e.dir not in mounts and e.rootfs not in mounts
    shutil.rmtree(e.dir, ignore_errors=True)


# -- output, logs, attach -------------------------------------------------------------------------
def test_echo_reaches_log_and_attached_reader(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["sh", "-c", "echo hello; echo oops >&2; printf partial"]),
                       log_path=env.log(cid))
        att = await d.attach(cid)  # before start: must see the first byte
        pid = await d.start(cid)
        assert pid > 0
        status = await d.wait(cid)
        assert status.exit_code == 0 and not status.oom_killed
        out, err = demux(await asyncio.wait_for(att.reader.read(), 10))
        assert out == b"hello\npartial" and err == b"oops\n"
        with open(env.log(cid)) as f:
            lines = [json.loads(line) for line in f]
        by_stream = {}
        for entry in lines:
            assert set(entry) == {"log", "stream", "time"} and TIME_RE.match(entry["time"])
            by_stream.setdefault(entry["stream"], []).append(entry["log"])
        assert by_stream == {"stdout": ["hello\n", "partial"], "stderr": ["oops\n"]}
        st = await d.state(cid)
        assert st.status == "exited" and st.exit.exit_code == 0
        await d.delete(cid)
        await d.delete(cid)  # idempotent
        with pytest.raises(NotFound):
            await d.state(cid)
        await d.close()

    asyncio.run(main())


def test_stdout_only_attach_and_late_attach(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["sh", "-c", "echo a; echo b >&2"]), log_path=env.log(cid))
        only_out = await d.attach(cid, stdout=True, stderr=False)
        await d.start(cid)
        await d.wait(cid)
        out, err = demux(await only_out.reader.read())
        assert (out, err) == (b"a\n", b"")
        late = await d.attach(cid)  # after exit: nothing, at once
        assert await asyncio.wait_for(late.reader.read(), 5) == b""
        late.close()
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


# -- namespaces -----------------------------------------------------------------------------------
def test_pid_namespace_makes_pid_1(env):
    async def main():
        d = env.driver()
        status, out, _ = await env.run(d, ["sh", "-c", "echo $$"])
        assert status.exit_code == 0 and out == b"1\n"
        await d.close()

    asyncio.run(main())


def test_hostname_network_and_mounts(env):
    async def main():
        d = env.driver()
        script = ("hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1; ip link show lo; "
                  "ls /dev; readlink /dev/ptmx; mount | cut -d' ' -f3,5 | sort")
        status, out, err = await env.run(d, ["sh", "-c", script])
        assert status.exit_code == 0, err
        text = out.decode()
        lines = text.splitlines()
        assert lines[0] == "box"
        assert lines[1].strip() == "lo" and lines[2].startswith("1: lo:")  # only lo
        assert "UP" in lines[2].split(">")[0]
        for node in ("null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
                     "stderr", "ptmx", "pts", "shm", "mqueue"):
            assert node + "\n" in text
        assert "pts/ptmx\n" in text
        for mnt in ("/proc proc", "/dev tmpfs", "/dev/pts devpts", "/dev/shm tmpfs",
                    "/dev/mqueue mqueue", "/sys sysfs"):
            assert mnt in text
        await d.close()

    asyncio.run(main())


def test_exit_code(env):
    async def main():
        d = env.driver()
        status, _, _ = await env.run(d, ["sh", "-c", "exit 3"])
        assert status.exit_code == 3
        await d.close()

    asyncio.run(main())


def test_missing_and_unexecutable(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["nosuch"]), log_path=env.log(cid))
        with pytest.raises(ExecError) as ei:
            await d.start(cid)
        assert ei.value.exit_code == 127
        assert str(ei.value) == 'exec: "nosuch": executable file not found in $PATH'
        status = await d.wait(cid)
        assert status.exit_code == 127
        assert (await d.state(cid)).status == "exited"
        with pytest.raises(Conflict):
            await d.kill(cid, signal.SIGKILL)
        await d.delete(cid)

        cid = env.cid()
        await d.create(cid, env.spec(["/etc/passwd"]), log_path=env.log(cid))
        with pytest.raises(ExecError) as ei:
            await d.start(cid)
        assert ei.value.exit_code == 126 and "permission denied" in str(ei.value)
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


# -- signals --------------------------------------------------------------------------------------
def test_kill_sigterm_and_sigkill(env):
    async def main():
        d = env.driver()
        # SIGTERM: pid 1 of a pid namespace ignores it without a handler (as under Docker), so
        # this one shares the host's pid namespace
        term = env.cid()
        await d.create(term, env.spec(["sleep", "100"], ns=("network", "mount", "ipc", "uts")),
                       log_path=env.log(term))
        await d.start(term)
        assert (await d.state(term)).status == "running"
        await d.kill(term, signal.SIGTERM)
        assert (await d.wait(term)).exit_code == 143

        kill = env.cid()
        await d.create(kill, env.spec(["sleep", "100"]), log_path=env.log(kill))
        pid = await d.start(kill)
        assert pid in await d.pids(kill)
        await d.kill(kill, signal.SIGKILL)
        assert (await d.wait(kill)).exit_code == 137
        await d.delete(term)
        await d.delete(kill)
        await d.close()

    asyncio.run(main())


def test_delete_kills_a_running_container(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["sh", "-c", "sleep 100 & sleep 100"]), log_path=env.log(cid))
        pid = await d.start(cid)
        waiter = asyncio.ensure_future(d.wait(cid))
        await d.delete(cid)
        assert (await waiter).exit_code == 137
        assert not _alive(pid)
        await d.close()

    asyncio.run(main())


# -- users, working directory, environment --------------------------------------------------------
def test_users(env):
    async def main():
        d = env.driver()
        status, out, _ = await env.run(d, ["id", "-u"], user="nobody")
        assert out == b"65534\n"
        status, out, _ = await env.run(d, ["sh", "-c", "id -u; id -g"], user="1000:1000")
        assert out == b"1000\n1000\n"
        status, out, _ = await env.run(d, ["sh", "-c", "id -u; id -g; echo $HOME"],
                                       user="www-data:staff")
        assert out == b"33\n50\n/var/www\n"
        cid = env.cid()
        await d.create(cid, env.spec(["id"], user="nosuchuser"), log_path=env.log(cid))
        with pytest.raises(ExecError) as ei:
            await d.start(cid)
        assert str(ei.value) == "unable to find user nosuchuser: no matching entries in passwd file"
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


def test_workdir_is_created_and_env_passed(env):
    async def main():
        d = env.driver()
        status, out, _ = await env.run(d, ["sh", "-c", "pwd; echo $FOO"], cwd="/srv/app/x",
                                       env=["PATH=/bin", "FOO=bar baz"])
        assert status.exit_code == 0 and out == b"/srv/app/x\nbar baz\n"
        await d.close()
        shutil.rmtree(os.path.join(env.rootfs, "srv"))

    asyncio.run(main())


# -- tty and stdin --------------------------------------------------------------------------------
def test_tty(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["sh", "-c", "test -t 0 && test -t 1 && tty && stty size"]),
                       log_path=env.log(cid), tty=True)
        await d.resize(cid, 30, 100)  # before start: applied once the console exists
        att = await d.attach(cid)
        await d.start(cid)
        status = await d.wait(cid)
        raw = await asyncio.wait_for(att.reader.read(), 10)
        assert status.exit_code == 0, raw
        assert raw.replace(b"\r\n", b"\n") == b"/dev/pts/0\n30 100\n"  # raw bytes, no frames
        with open(env.log(cid)) as f:
            assert [json.loads(line)["stream"] for line in f] == ["stdout", "stdout"]
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


def test_stdin_reaches_cat_and_stdin_once_closes_it(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["cat"]), log_path=env.log(cid), open_stdin=True,
                       stdin_once=True)
        att = await d.attach(cid, stdin=True)
        assert att.writer is not None
        att.writer.write(b"before start\n")  # buffered until the process exists
        await d.start(cid)
        att.writer.write(b"hello\n")
        await att.writer.drain()
        att.writer.write_eof()
        status = await asyncio.wait_for(d.wait(cid), 10)
        out, _ = demux(await asyncio.wait_for(att.reader.read(), 10))
        assert status.exit_code == 0 and out == b"before start\nhello\n"
        att.close()
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


def test_no_stdin_means_dev_null(env):
    async def main():
        d = env.driver()
        status, out, _ = await env.run(d, ["sh", "-c", "cat; echo done"])
        assert status.exit_code == 0 and out == b"done\n"
        await d.close()

    asyncio.run(main())


# -- waits, restore, cgroups ----------------------------------------------------------------------
def test_many_waiters_and_wait_after_exit(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["sh", "-c", "read x; exit 7"]), log_path=env.log(cid),
                       open_stdin=True, stdin_once=True)
        await d.start(cid)
        waiters = [asyncio.ensure_future(d.wait(cid)) for _ in range(50)]
        other = NativeDriver(env.root)  # a second client on the same supervisor waits too
        waiters.append(asyncio.ensure_future(other.wait(cid)))
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiters)
        att = await d.attach(cid, stdin=True)
        att.writer.write(b"go\n")
        att.writer.write_eof()
        results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        assert {r.exit_code for r in results} == {7}
        t0 = time.monotonic()
        assert (await d.wait(cid)).exit_code == 7  # exited: at once
        assert time.monotonic() - t0 < 0.5
        att.close()
        await other.close()
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


def test_restore_after_daemon_restart(env):
    async def main():
        d1 = env.driver()
        cid = env.cid()
        await d1.create(cid, env.spec(["sh", "-c", "echo up; sleep 100"]), log_path=env.log(cid))
        pid = await d1.start(cid)
        sup = d1.supervisor_pid
        # the shell has run its echo before the kill below (a loaded machine may not have yet)
        for _ in range(600):
            if os.path.exists(env.log(cid)) and os.path.getsize(env.log(cid)):
                break
            await asyncio.sleep(0.1)
        await d1.close()  # the daemon goes away; the container must not

        d2 = env.driver()  # a "restarted daemon"
        states = await d2.restore()
        assert d2.supervisor_pid == sup
        assert [(s.id, s.status, s.pid) for s in states] == [(cid, "running", pid)]
        await d2.kill(cid, signal.SIGKILL)
        status = await d2.wait(cid)
        assert status.exit_code == 137
        with open(env.log(cid)) as f:
            assert json.loads(f.readline())["log"] == "up\n"
        await d2.delete(cid)
        assert await d2.restore() == []
        await d2.close()
        d1.spawned.wait(timeout=10)  # idle and alone: the supervisor leaves by itself
        assert not os.path.exists(os.path.join(env.root, "supervisor.sock"))

    asyncio.run(main())


def test_cgroup_limits_pids_and_pause(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        res = {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}}
        await d.create(cid, env.spec(["sleep", "100"], resources=res), log_path=env.log(cid))
        pid = await d.start(cid)
        cg = "/sys/fs/cgroup"
        if os.path.exists(f"{cg}/memory/dockyard/{cid}"):
            assert int(open(f"{cg}/memory/dockyard/{cid}/memory.limit_in_bytes").read()) == 64 << 20
            assert open(f"{cg}/pids/dockyard/{cid}/pids.max").read().strip() == "20"
        assert await d.pids(cid) == [pid]
        if os.path.exists(f"{cg}/freezer/dockyard/{cid}"):
            await d.pause(cid)
            assert (await d.state(cid)).status == "paused"
            await d.resume(cid)
            assert (await d.state(cid)).status == "running"
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


def test_restart_appends_to_the_log(env):
    async def main():
        d = env.driver()
        cid = env.cid()
        await d.create(cid, env.spec(["echo", "one"]), log_path=env.log(cid))
        await d.start(cid)
        await d.wait(cid)
        await d.create(cid, env.spec(["echo", "two"]), log_path=env.log(cid))
        assert (await d.state(cid)).status == "created"
        await d.start(cid)
        assert (await d.wait(cid)).exit_code == 0
        with open(env.log(cid)) as f:
            assert [json.loads(line)["log"] for line in f] == ["one\n", "two\n"]
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


DAEMON_SCRIPT = r"""
import asyncio, os, signal, sys
from dockyard.plugins.execdrivers.native import NativeDriver

async def main(root, cid, rootfs, log):
    d = NativeDriver(root)
    await d.restore()
    spec = {"process": {"args": ["sh", "-c", "echo alive; sleep 100"], "cwd": "/",
                        "env": ["PATH=/bin"]},
            "root": {"path": rootfs}, "hostname": "box",
            "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")]}}
    await d.create(cid, spec, log_path=log)
    print(await d.start(cid), d.supervisor_pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the daemon dies without a word

asyncio.run(main(*sys.argv[1:]))
"""


def test_containers_survive_a_killed_daemon(env):
    import subprocess
    import sys

    cid = env.cid()
    proc = subprocess.run([sys.executable, "-c", DAEMON_SCRIPT, env.root, cid, env.rootfs,
                           env.log(cid)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid, sup = map(int, proc.stdout.split())

    async def main():
        d = env.driver()
        states = await d.restore()
        assert d.supervisor_pid == sup
        assert [(s.id, s.status, s.pid) for s in states] == [(cid, "running", pid)]
        att = await d.attach(cid)
        await d.kill(cid, signal.SIGKILL)
        assert (await d.wait(cid)).exit_code == 137
        assert await asyncio.wait_for(att.reader.read(), 10) == b""  # output came before attach
        with open(env.log(cid)) as f:
            assert json.loads(f.readline())["log"] == "alive\n"
        await d.delete(cid)
        await d.close()

    asyncio.run(main())


# -- the shared exec-driver conformance suite, run against this driver -----------------------------
from dockyard.hookspecs.conformance.execdriver import execdriver_suite  # noqa: E402

TestNativeConformance = execdriver_suite(NativeDriver)
