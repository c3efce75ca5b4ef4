"""The lxc exec driver (liblxc through python3-lxc) against the exec-driver conformance suite."""
from __future__ import annotations

from dockyard.hookspecs.conformance.execdriver import execdriver_suite
from dockyard.plugins.execdrivers.lxc import LxcDriver

TestLxcConformance = execdriver_suite(LxcDriver)


def test_without_the_binding_the_driver_is_not_supported_naming_the_package(tmp_path) -> None:
    """With liblxc's binding not importable (hidden here), the driver says which package
    brings it, and makes nothing."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['lxc'] = None\n"
            "from dockyard.hookspecs.errors import DriverNotSupported\n"
            "from dockyard.plugins.execdrivers.lxc import LxcDriver\n"
            "try:\n    LxcDriver(sys.argv[1], {})\n"
            "except DriverNotSupported as e:\n    print(e.reason)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lxc")],
                         capture_output=True, text=True, check=True).stdout
    assert "python3-lxc" in out
    assert not (tmp_path / "lxc").exists()


def test_docker_profile_in_liblxc_seccomp_format() -> None:
    """Docker's default profile, resolved, in liblxc's format 2: the default action first, one
    line per call whose action differs, argument conditions with the mask last."""
    from dockyard.hookspecs.host import seccomp
    from dockyard.plugins.execdrivers.lxc.config import seccomp_v2

    text = seccomp_v2(seccomp.default_profile(["CAP_CHOWN"]))
    lines = text.splitlines()
    assert lines[:3] == ["2", "allowlist errno 1", "[all]"]
    assert "read allow" in lines and "clone3 errno 38" in lines
    assert not any(line.startswith(("mount ", "unshare ")) for line in lines)
    clone = [line for line in lines if line.startswith("clone ")]
    assert clone and all("SCMP_CMP_MASKED_EQ" in line for line in clone), clone


def test_a_container_whose_monitor_died_is_reported_and_its_processes_killed(tmp_path) -> None:
    """The monitor SIGKILLed under a running container: the driver reports the container
    exited (saying why), and deleting it kills what is left of it."""
    import asyncio
    import os
    import signal
    import time

    import pytest

    from dockyard.hookspecs.conformance.execdriver import PATH, build_busybox_rootfs

    if os.geteuid() != 0:
        pytest.skip("containers need root")
    rootfs = str(tmp_path / "rootfs")
    build_busybox_rootfs(rootfs)

    async def main() -> None:
        d = LxcDriver(str(tmp_path / "exec"), {})
        cid = "orphan" + os.urandom(4).hex()
        spec = {"process": {"args": ["sleep", "100"], "env": [PATH], "cwd": "/",
                            "user": {"uid": 0, "gid": 0}},
                "root": {"path": rootfs}, "hostname": "o",
                "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "network", "uts")]}}
        await d.create(cid, spec, log_path=str(tmp_path / "log"))
        pid = await d.start(cid)
        with open(os.path.join(d.cdir(cid), "monitor.pid")) as f:
            monitor = int(f.read())
        os.kill(monitor, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{monitor}") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        st = await d.state(cid)
        assert st.status == "exited" and st.exit is not None
        assert "monitor is gone" in st.exit.error
        os.kill(pid, 0)  # still running, with nobody holding its output
        await d.delete(cid)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not os.path.exists(f"/proc/{pid}")
        await d.close()

    asyncio.run(main())


def test_without_a_uts_namespace_the_host_name_is_left_alone(tmp_path) -> None:
    """A spec sharing the host's uts namespace (``--uts host``) gives liblxc no name to set:
    ``lxc.uts.name`` there would rename the host."""
    import asyncio
    import os
    import socket

    import pytest

    from dockyard.hookspecs.conformance.execdriver import PATH, build_busybox_rootfs, demux
    from dockyard.hookspecs.host import ns

    if os.geteuid() != 0:
        pytest.skip("containers need root")
    rootfs = str(tmp_path / "rootfs")
    build_busybox_rootfs(rootfs)
    before = socket.gethostname()

    async def main() -> bytes:
        d = LxcDriver(str(tmp_path / "exec"), {})
        cid = "uts" + os.urandom(4).hex()
        spec = {"process": {"args": ["hostname"], "env": [PATH], "cwd": "/",
                            "user": {"uid": 0, "gid": 0}},
                "root": {"path": rootfs}, "hostname": "not-the-host",
                "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "network")]}}
        await d.create(cid, spec, log_path=str(tmp_path / "log"))
        att = await d.attach(cid)
        await d.start(cid)
        await asyncio.wait_for(d.wait(cid), 30)
        out, _ = demux(await asyncio.wait_for(att.reader.read(), 30))
        await d.delete(cid)
        await d.close()
        return out

    try:
        out = asyncio.run(main())
    finally:
        after = socket.gethostname()
        if after != before:
            ns.sethostname(before)
    assert after == before
    assert out == before.encode() + b"\n"
