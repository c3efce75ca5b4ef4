"""Containers outlive dockyardd: SIGKILL it with containers running, start it again."""
from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import Daemon
from test_api import demux

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _supervisor_pid(d: Daemon) -> int:
    """The supervisor of the native exec driver, the default here (each exec driver the daemon
    holds has its own, under its own directory of the exec root)."""
    with open(os.path.join(d.exec_root, "native", "supervisor.pid")) as f:
        return int(f.read())


def _log_lines(d: Daemon, cid: str) -> int:
    status, data = d.api.get(f"/containers/{cid}/logs?stdout=1")
    assert status == 200
    return demux(data).count(b"\n")


def _eventually(pred, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_sigkill_daemon_with_five_running_containers(daemon: Daemon) -> None:
    d = daemon
    ids = []
    for i in range(5):
        status, body = d.api.post("/containers/create", {
            "Image": "busybox",
            "Cmd": ["sh", "-c", f"trap 'exit {40 + i}' TERM; while true; do echo {i}; sleep 0.05; done"]})
        assert status == 201, body
        ids.append(body["Id"])
        assert d.api.post(f"/containers/{body['Id']}/start")[0] == 204
    before = {cid: _log_lines(d, cid) for cid in ids}
    sup = _supervisor_pid(d)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    d.start()
    assert _supervisor_pid(d) == sup  # the same supervisor, re-adopted
    for cid in ids:
        st = d.api.get(f"/containers/{cid}/json")[1]["State"]
        assert st["Running"] is True and st["Status"] == "running", st
    # logs keep growing
    assert _eventually(lambda: all(_log_lines(d, cid) > before[cid] + 2 for cid in ids))
    # exec and top work on a re-adopted container
    eid = d.api.post(f"/containers/{ids[0]}/exec", {"Cmd": ["true"]})[1]["Id"]
    assert d.api.post(f"/exec/{eid}/start", {"Detach": True})[0] == 200
    assert _eventually(lambda: d.api.get(f"/exec/{eid}/json")[1]["ExitCode"] == 0)
    # stop delivers SIGTERM (trapped: its code is what wait returns), wait works
    assert d.api.post(f"/containers/{ids[1]}/stop?t=10")[0] == 204
    assert d.api.post(f"/containers/{ids[1]}/wait")[1]["StatusCode"] == 41
    assert d.api.post(f"/containers/{ids[2]}/kill?signal=TERM")[0] == 204
    assert d.api.post(f"/containers/{ids[2]}/wait")[1]["StatusCode"] == 42
    for cid in ids:
        assert d.api.delete(f"/containers/{cid}?force=1")[0] == 204


def test_dead_supervisor_means_exited_containers(daemon: Daemon) -> None:
    d = daemon
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]})
    cid = body["Id"]
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    pid = d.api.get(f"/containers/{cid}/json")[1]["State"]["Pid"]
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    os.kill(_supervisor_pid(d), signal.SIGKILL)
    d.start()
    st = d.api.get(f"/containers/{cid}/json")[1]["State"]
    assert st["Running"] is False and st["Status"] == "exited", st
    assert st["ExitCode"] in (137, 255) and "supervisor" in st["Error"]
    # the orphaned process was killed and its cgroups removed
    assert _eventually(lambda: not os.path.exists(f"/proc/{pid}/stat") or
                       open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z")
    for ctrl in ("memory", "pids", "freezer"):
        assert not os.path.exists(f"/sys/fs/cgroup/{ctrl}/dockyard/{cid}")
    # it can be started again and removed
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    assert d.api.delete(f"/containers/{cid}?force=1")[0] == 204


def test_supervisor_killed_under_a_running_daemon(daemon: Daemon) -> None:
    d = daemon
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]})
    cid = body["Id"]
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    pid = d.api.get(f"/containers/{cid}/json")[1]["State"]["Pid"]
    os.kill(_supervisor_pid(d), signal.SIGKILL)
    assert _eventually(lambda: d.api.get(f"/containers/{cid}/json")[1]["State"]["Status"] == "exited")
    st = d.api.get(f"/containers/{cid}/json")[1]["State"]
    assert st["ExitCode"] in (137, 255) and "supervisor" in st["Error"], st
    assert _eventually(lambda: not os.path.exists(f"/proc/{pid}/stat") or
                       open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z")
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    assert d.api.delete(f"/containers/{cid}?force=1")[0] == 204
