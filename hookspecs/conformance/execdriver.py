"""The exec-driver conformance suite.

Like the graph-driver suite: the suite owns the tests, a driver supplies only a factory
``factory(root) -> ExecDriver``. Every test gets a fresh driver root in a new temporary directory
and a busybox root file system made from the host's static busybox (Debian's ``busybox-static``;
the tests skip without one). A factory raising
:class:`~dockyard.hookspecs.errors.DriverNotSupported` skips the test with its reason. After each
test every container the driver still holds is deleted and the drivers are closed.

A third-party driver runs the whole suite with one line in one of its test modules::

    from dockyard.hookspecs.conformance.execdriver import execdriver_suite
    TestMyExecDriverConformance = execdriver_suite(MyExecDriver)

Every installed exec driver (entry-point group ``dockyard.execdrivers``)::

    from dockyard.hookspecs.conformance.execdriver import installed_execdriver_suite
    TestInstalledExecDrivers = installed_execdriver_suite()

The tests use plain ``asyncio.run`` (no pytest-asyncio) and need root.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from importlib.metadata import entry_points
from typing import Any, Callable

import pytest

from ..errors import (Conflict, DockyardError, DriverNotSupported, ExecError, InvalidParameter,
                      NotFound)
from ..execdriver import ExecDriver, ExitStatus
from ..host import streams
from .execdriver_devices import DeviceCases
from .execdriver_resources import ResourceCases

GROUP = "dockyard.execdrivers"
Factory = Callable[[str], ExecDriver]
#: the first host ID of the user namespace the suite maps (64 Ki IDs; not from /etc/subuid:
#: the driver's privileged helper may map any range)
USERNS_BASE = 5_200_000
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")

#: Docker's default capability set (CapEff 00000000a80425fb)
DOCKER_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="exec drivers need root")


def build_busybox_rootfs(dest: str) -> None:
    """A minimal runnable root file system: the host's static busybox, its applets, passwd."""
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(cand):
            busybox = cand
            break
    else:
        pytest.skip("no static busybox on this host (apt-get install busybox-static)")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
              "home"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    shutil.copy2(busybox, os.path.join(dest, "bin/busybox"))
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    for full in out.stdout.split():
        link = os.path.join(dest, full.lstrip("/"))
        if full.lstrip("/") != "bin/busybox" and not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink("/bin/busybox", link)
    with open(os.path.join(dest, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    with open(os.path.join(dest, "etc/group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


def demux(data: bytes) -> tuple[bytes, bytes]:
    """Split Docker's multiplexed attach stream into (stdout, stderr)."""
    out = streams.demux(data)
    assert set(out) <= {streams.STDOUT, streams.STDERR}, f"bad stream numbers {sorted(out)}"
    return out.get(streams.STDOUT, b""), out.get(streams.STDERR, b"")


class Env:
    """One test's world: a driver root, a rootfs, helpers to make specs and run containers."""

    def __init__(self, factory: Factory, rootfs: str) -> None:
        self.factory = factory
        self.rootfs = rootfs
        self.dir = tempfile.mkdtemp(prefix="dy-conf-")
        self.root = os.path.join(self.dir, "exec")
        self.drivers: list[ExecDriver] = []

    def driver(self) -> ExecDriver:
        try:
            d = self.factory(self.root)
        except DriverNotSupported as e:
            pytest.skip(f"driver not supported here: {e.reason}")
        self.drivers.append(d)
        return d

    @staticmethod
    def cid() -> str:
        return "c" + uuid.uuid4().hex[:20]

    def log(self, cid: str) -> str:
        return os.path.join(self.dir, cid + "-json.log")

    def log_text(self, cid: str) -> str:
        """What the container wrote so far, from its json-file log (both streams)."""
        try:
            with open(self.log(cid), encoding="utf-8") as f:
                return "".join(json.loads(line)["log"] for line in f if line.strip())
        except FileNotFoundError:
            return ""

    def spec(self, args: list[str], *, user: str | None = None,
             namespaces: tuple[str, ...] = ("pid", "network", "mount", "ipc", "uts"),
             resources: dict | None = None, secure: bool = False,
             linux: dict | None = None) -> dict:
        """A spec running ``args``; ``linux`` adds keys to its ``linux`` object."""
        spec: dict[str, Any] = {
            "process": {"args": args, "env": [PATH], "cwd": "/", "terminal": False,
                        "user": {"uid": 0, "gid": 0}},
            "root": {"path": self.rootfs, "readonly": False},
            "hostname": "conformance",
            "linux": {"namespaces": [{"type": t} for t in namespaces]},
        }
        if user is not None:
            spec["process"]["user"]["username"] = user
        if resources:
            spec["linux"]["resources"] = resources
        if secure:  # what the daemon gives every unprivileged container
            spec["process"]["capabilities"] = {k: list(DOCKER_CAPS) for k in (
                "bounding", "effective", "permitted")}
            spec["process"]["capabilities"].update(inheritable=[], ambient=[])
            spec["process"]["noNewPrivileges"] = True
            spec["linux"]["maskedPaths"] = ["/proc/keys", "/proc/timer_list", "/sys/firmware"]
            spec["linux"]["readonlyPaths"] = ["/proc/sys", "/proc/sysrq-trigger"]
            spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mount", "umount2", "unshare", "setns"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": 1}]}
        spec["linux"].update(linux or {})
        return spec

    async def run(self, d: ExecDriver, args: list[str], **kw: Any
                  ) -> tuple[ExitStatus, bytes, bytes]:
        cid = self.cid()
        await d.create(cid, self.spec(args, **kw), log_path=self.log(cid))
        att = await d.attach(cid)
        await d.start(cid)
        status = await asyncio.wait_for(d.wait(cid), 30)
        out, err = demux(await asyncio.wait_for(att.reader.read(), 30))
        att.close()
        await d.delete(cid)
        return status, out, err

    async def cleanup(self) -> None:
        for drv in reversed(self.drivers):
            try:
                for st in await drv.restore():
                    await drv.delete(st.id)
            except Exception:  # noqa: BLE001 - a closed driver may refuse; the next one tries
                pass
            await drv.close()


@needs_root
class ExecDriverSuite(DeviceCases, ResourceCases):
    """The tests (the device cases in :mod:`.execdriver_devices`). Subclass with an
    ``exec_driver_factory`` fixture (or use :func:`execdriver_suite`); the class is not
    collected itself (no ``Test`` prefix)."""

    @pytest.fixture
    def exec_driver_factory(self) -> Factory:
        raise NotImplementedError("subclass ExecDriverSuite with an exec_driver_factory fixture")

    @pytest.fixture(scope="class")
    @classmethod
    def busybox_rootfs(cls, tmp_path_factory: Any) -> str:
        path = str(tmp_path_factory.mktemp("execdriver-conformance") / "rootfs")
        build_busybox_rootfs(path)
        return path

    @pytest.fixture
    def env(self, exec_driver_factory: Factory, busybox_rootfs: str):
        e = Env(exec_driver_factory, busybox_rootfs)
        yield e
        asyncio.run(e.cleanup())
        shutil.rmtree(e.dir, ignore_errors=True)

    # -- output -----------------------------------------------------------------------------
    def test_output_reaches_log_and_attach(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["sh", "-c", "echo out; echo err >&2"]),
                           log_path=env.log(cid))
            att = await d.attach(cid)
            await d.start(cid)
            assert (await asyncio.wait_for(d.wait(cid), 30)).exit_code == 0
            out, err = demux(await asyncio.wait_for(att.reader.read(), 30))
            assert (out, err) == (b"out\n", b"err\n")
            with open(env.log(cid)) as f:
                entries = [json.loads(line) for line in f]
            assert sorted((e["stream"], e["log"]) for e in entries) == [
                ("stderr", "err\n"), ("stdout", "out\n")]
            assert all(TIME_RE.match(e["time"]) for e in entries)
            await d.delete(cid)

        asyncio.run(main())

    def test_exit_code(self, env: Env) -> None:
        async def main() -> None:
            status, _, _ = await env.run(env.driver(), ["sh", "-c", "exit 5"])
            assert status.exit_code == 5

        asyncio.run(main())

    def test_pid_1_and_hostname(self, env: Env) -> None:
        async def main() -> None:
            status, out, _ = await env.run(env.driver(), ["sh", "-c", "echo $$; hostname"])
            assert out == b"1\nconformance\n"

        asyncio.run(main())

    def test_missing_executable(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["nosuch-binary"]), log_path=env.log(cid))
            with pytest.raises(ExecError) as ei:
                await d.start(cid)
            assert ei.value.exit_code == 127
            assert 'exec: "nosuch-binary": executable file not found in $PATH' in str(ei.value)
            assert (await asyncio.wait_for(d.wait(cid), 30)).exit_code == 127
            await d.delete(cid)

        asyncio.run(main())

    def test_user(self, env: Env) -> None:
        async def main() -> None:
            _, out, _ = await env.run(env.driver(), ["id", "-u"], user="nobody")
            assert out == b"65534\n"

        asyncio.run(main())

    # -- lifecycle --------------------------------------------------------------------------
    def test_kill_wait_and_state(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["sleep", "100"]), log_path=env.log(cid))
            assert (await d.state(cid)).status == "created"
            pid = await d.start(cid)
            st = await d.state(cid)
            assert st.status == "running" and st.pid == pid
            waiters = [asyncio.ensure_future(d.wait(cid)) for _ in range(10)]
            await d.kill(cid, signal.SIGKILL)
            assert {w.exit_code for w in await asyncio.wait_for(asyncio.gather(*waiters), 30)} \
                == {137}
            t0 = time.monotonic()
            assert (await d.wait(cid)).exit_code == 137
            assert time.monotonic() - t0 < 1
            assert (await d.state(cid)).status == "exited"
            with pytest.raises(Conflict):
                await d.kill(cid, signal.SIGTERM)
            await d.delete(cid)
            await d.delete(cid)
            with pytest.raises(NotFound):
                await d.state(cid)
            with pytest.raises(NotFound):
                await d.attach(cid)

        asyncio.run(main())

    def test_stdin(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["cat"]), log_path=env.log(cid), open_stdin=True,
                           stdin_once=True)
            att = await d.attach(cid, stdin=True)
            assert att.writer is not None
            await d.start(cid)
            att.writer.write(b"ping\n")
            await att.writer.drain()
            att.writer.write_eof()
            assert (await asyncio.wait_for(d.wait(cid), 30)).exit_code == 0
            out, _ = demux(await asyncio.wait_for(att.reader.read(), 30))
            assert out == b"ping\n"
            att.close()
            await d.delete(cid)

        asyncio.run(main())

    def test_tty_gives_raw_stream(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["sh", "-c", "test -t 1 && echo isatty"]),
                           log_path=env.log(cid), tty=True)
            att = await d.attach(cid)
            await d.start(cid)
            assert (await asyncio.wait_for(d.wait(cid), 30)).exit_code == 0
            assert (await asyncio.wait_for(att.reader.read(), 30)).replace(b"\r", b"") \
                == b"isatty\n"
            await d.delete(cid)

        asyncio.run(main())

    def test_restore_from_a_new_driver_object(self, env: Env) -> None:
        async def main() -> None:
            d1 = env.driver()
            cid = env.cid()
            await d1.create(cid, env.spec(["sleep", "100"]), log_path=env.log(cid))
            pid = await d1.start(cid)
            await d1.close()
            d2 = env.driver()
            states = {s.id: s for s in await d2.restore()}
            assert states[cid].status == "running" and states[cid].pid == pid
            await d2.kill(cid, signal.SIGKILL)
            assert (await asyncio.wait_for(d2.wait(cid), 30)).exit_code == 137
            await d2.delete(cid)

        asyncio.run(main())


    # -- isolation --------------------------------------------------------------------------
    def test_isolation(self, env: Env) -> None:
        async def main() -> None:
            script = ("ls /proc | grep -c '^[0-9]'; ls /sys/class/net; "
                      "awk '$5 == \"/\"' /proc/self/mountinfo | wc -l; test -e /work && echo hostfs; true")
            status, out, _ = await env.run(env.driver(), ["sh", "-c", script])
            assert status.exit_code == 0
            lines = out.decode().split()
            assert lines[0] in ("1", "2", "3")  # sh, ls, grep at most
            assert lines[1:] == ["lo", "1"]

        asyncio.run(main())

    def test_security_defaults(self, env: Env) -> None:
        async def main() -> None:
            script = ("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
                      "mount -t tmpfs none /mnt 2>/dev/null && echo mounted; "
                      "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo wrote; "
                      "wc -c < /proc/keys")
            status, out, _ = await env.run(env.driver(), ["sh", "-c", script], secure=True)
            assert out.decode().split() == ["NoNewPrivs:", "1", "Seccomp:", "2",
                                            "CapEff:", "00000000a80425fb",
                                            "CapBnd:", "00000000a80425fb", "0"] or \
                out.decode().split() == ["CapEff:", "00000000a80425fb", "CapBnd:",
                                         "00000000a80425fb", "NoNewPrivs:", "1", "Seccomp:", "2",
                                         "0"], out

        asyncio.run(main())

    # -- limits -----------------------------------------------------------------------------
    def test_pids_limit(self, env: Env) -> None:
        async def main() -> None:
            script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; kill $(jobs -p) 2>/dev/null; true"
            _, out, err = await env.run(env.driver(), ["sh", "-c", script],
                                        resources={"pids": {"limit": 4}})
            assert b"fork" in out + err or b"Resource temporarily unavailable" in out + err

        asyncio.run(main())

    def test_unsupported_resources_are_named_not_dropped(self, env: Env) -> None:
        """A resource the driver says it cannot apply here fails the container; one it does
        not name runs (the daemon refuses the named ones at create)."""
        async def main() -> None:
            d = env.driver()
            res = {"blockIO": {"weight": 300}}
            named = d.unsupported_resources(res)
            assert isinstance(named, list) and all(isinstance(n, str) for n in named)
            assert d.unsupported_resources({}) == []
            if "blockIO.weight" in named:
                with pytest.raises(DockyardError):
                    await env.run(d, ["true"], resources=res)
            else:
                status, _, _ = await env.run(d, ["true"], resources=res)
                assert status.exit_code == 0

        asyncio.run(main())

    def test_oom_is_137_and_reported(self, env: Env) -> None:
        async def main() -> None:
            script = "x=$(head -c 209715200 /dev/zero | tr '\\0' a); echo survived"
            status, out, _ = await env.run(
                env.driver(), ["sh", "-c", script],
                resources={"memory": {"limit": 32 << 20, "swap": 32 << 20}})
            assert status.exit_code == 137 and status.oom_killed, (status, out)

        asyncio.run(main())

    # -- signals ----------------------------------------------------------------------------
    def test_trapped_sigterm_exit_code(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["sh", "-c", "trap 'exit 42' TERM; echo ready; "
                                                      "while true; do sleep 0.05; done"]),
                           log_path=env.log(cid))
            att = await d.attach(cid)
            await d.start(cid)
            assert (await asyncio.wait_for(att.reader.readexactly(8 + 6), 30))[8:] == b"ready\n"
            await d.kill(cid, signal.SIGTERM)
            assert (await asyncio.wait_for(d.wait(cid), 30)).exit_code == 42
            att.close()
            await d.delete(cid)

        asyncio.run(main())

    # -- exec -------------------------------------------------------------------------------
    def test_exec(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["sleep", "100"], secure=True), log_path=env.log(cid))
            await d.start(cid)
            try:
                pid, st = await d.exec(cid, "x" + cid, {
                    "args": ["sh", "-c", "hostname; echo $E; id -u; ls /proc | grep -c '^[0-9]'; "
                                         "grep CapEff /proc/self/status; exit 3"],
                    "env": ["E=v"], "user": {"username": "nobody"}})
            except NotImplementedError:
                pytest.skip("the driver has no exec")
            out, err = demux(await asyncio.wait_for(st.reader.read(), 30))
            assert await asyncio.wait_for(d.exec_wait("x" + cid), 30) == 3
            lines = out.decode().split()
            assert lines[:3] == ["conformance", "v", "65534"], (out, err)
            assert lines[3] in ("3", "4", "5") and lines[4:] == ["CapEff:", "0000000000000000"]
            _, st = await d.exec(cid, "t" + cid, {"args": ["tty"]}, tty=True)
            assert (await asyncio.wait_for(st.reader.read(), 30)).startswith(b"/dev/pts/")
            assert await d.exec_wait("t" + cid) == 0
            with pytest.raises(ExecError) as ei:
                await d.exec(cid, "n" + cid, {"args": ["nosuch"]})
            assert ei.value.exit_code == 127
            with open(env.log(cid)) as f:
                assert f.read() == ""  # exec output is not the container's log
            await d.kill(cid, signal.SIGKILL)
            await asyncio.wait_for(d.wait(cid), 30)
            with pytest.raises(Conflict):
                await d.exec(cid, "z" + cid, {"args": ["true"]})
            await d.delete(cid)

        asyncio.run(main())

    # -- user namespaces --------------------------------------------------------------------
    def test_user_namespace(self, env: Env) -> None:
        """A new user namespace with 64 Ki IDs from ``USERNS_BASE``: root inside, an unprivileged
        ID outside, for the container and for an exec; a driver that declares no support
        refuses the spec."""
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            spec = env.spec(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                         "grep CapEff /proc/self/status; exec sleep 100"],
                            secure=True, namespaces=("pid", "network", "mount", "ipc", "uts",
                                                     "user"))
            maps = [{"containerID": 0, "hostID": USERNS_BASE, "size": 65536}]
            spec["linux"].update(uidMappings=maps, gidMappings=maps)
            if not type(d).user_namespaces:
                with pytest.raises(InvalidParameter):
                    await d.create(cid, spec, log_path=env.log(cid))
                pytest.skip(f"{type(d).name} declares no user-namespace support")
            await d.create(cid, spec, log_path=env.log(cid))
            pid = await d.start(cid)
            want = f"0 {USERNS_BASE} 65536 0 {USERNS_BASE} 65536 0 CapEff: 00000000a80425fb"
            got = ""
            deadline = time.monotonic() + 30
            while "CapEff" not in got and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                got = env.log_text(cid)
            assert " ".join(got.split()) == want
            with open(f"/proc/{pid}/status") as f:
                ids = {k: v.split() for k, v in (line.split(":", 1) for line in f)}
            assert ids["Uid"][0] == ids["Gid"][0] == str(USERNS_BASE)
            try:
                _, st = await d.exec(cid, "u" + cid, {"args": ["sh", "-c", "id -u; cat /proc/self/uid_map"],
                                                      "user": {"username": "nobody"}})
            except NotImplementedError:
                pass
            else:
                out, _ = demux(await asyncio.wait_for(st.reader.read(), 30))
                assert out.decode().split() == ["65534", "0", str(USERNS_BASE), "65536"]
                assert await asyncio.wait_for(d.exec_wait("u" + cid), 30) == 0
            await d.kill(cid, signal.SIGKILL)
            await asyncio.wait_for(d.wait(cid), 30)
            await d.delete(cid)

        asyncio.run(main())

    # -- pause ------------------------------------------------------------------------------
    def test_pause_resume_and_stats(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            cid = env.cid()
            await d.create(cid, env.spec(["sh", "-c", "while true; do echo t; sleep 0.02; done"],
                                         resources={"pids": {"limit": 20}}),
                           log_path=env.log(cid))
            await d.start(cid)
            try:
                await d.pause(cid)
            except NotImplementedError:
                pytest.skip("the driver cannot pause")
            assert (await d.state(cid)).status == "paused"
            await asyncio.sleep(0.1)
            size = os.path.getsize(env.log(cid))
            await asyncio.sleep(0.3)
            assert os.path.getsize(env.log(cid)) == size
            await d.resume(cid)
            assert (await d.state(cid)).status == "running"
            try:
                stats = await d.stats(cid)
            except NotImplementedError:
                stats = None
            if stats is not None:
                assert stats["cpu"]["usage_ns"] > 0 and stats["pids"]["limit"] == 20
                assert stats["memory"]["usage"] > 0
            assert set(await d.pids(cid)) >= {(await d.state(cid)).pid}
            await d.delete(cid)

        asyncio.run(main())


def execdriver_suite(factory: Factory | type, name: str | None = None) -> type:
    """A test class running the whole suite against ``factory(root)`` (a driver class or any
    callable). Assign it to a ``Test*`` name in a test module."""
    cls_name = name or f"ExecDriverConformance_{getattr(factory, 'name', '') or getattr(factory, '__name__', 'driver')}"

    @pytest.fixture
    def exec_driver_factory(self: Any) -> Factory:
        if isinstance(factory, type):
            return lambda root: factory(root, {})  # type: ignore[call-arg]
        return factory  # type: ignore[return-value]

    return type(cls_name, (ExecDriverSuite,), {"exec_driver_factory": exec_driver_factory})


def installed_execdrivers() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def installed_execdriver_suite() -> type:
    """A test class running the suite once per installed exec driver (parametrized by name)."""
    eps = installed_execdrivers()

    @pytest.fixture(params=sorted(eps))
    def exec_driver_factory(self: Any, request: Any) -> Factory:
        cls = eps[request.param].load()
        return lambda root: cls(root, {})

    return type("InstalledExecDrivers", (ExecDriverSuite,),
                {"exec_driver_factory": exec_driver_factory})
