"""What real clients' own suites found (docker-py 7.2 ``tests/integration``, docker-compose 1.29
acceptance tests), checked through docker-py and the docker CLI: fields in another case, CPU
real-time budgets, exec detach keys from the client's config file, string commands, log driver
errors, restart's FinishedAt and the healthcheck dockerd echoes."""
from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any, Iterator

import docker
import pytest

from conftest import Daemon, running_daemon

CPU = "/sys/fs/cgroup/cpu"
#: cgroup v1 with CONFIG_RT_GROUP_SCHED: containers can have a real-time CPU budget
REALTIME = os.path.exists(f"{CPU}/cpu.rt_runtime_us")


def api_client(d: Daemon, version: str = "1.41") -> docker.APIClient:
    return docker.APIClient(base_url=d.host, version=version, timeout=60)


@pytest.fixture
def api(shared_daemon: Daemon) -> Iterator[docker.APIClient]:
    c = api_client(shared_daemon)
    yield c
    c.close()


@contextlib.contextmanager
def cgroup_parent() -> Iterator[str]:
    """A cgroup parent of the test's own, removed (in every hierarchy) at the end."""
    name = "dkytest-" + os.urandom(4).hex()
    try:
        yield name
    finally:
        for entry in os.listdir("/sys/fs/cgroup"):
            path = os.path.join("/sys/fs/cgroup", entry, name)
            if os.path.isdir(path):
                for sub in os.listdir(path):  # container cgroups left by a failed run
                    if os.path.isdir(os.path.join(path, sub)):
                        with contextlib.suppress(OSError):
                            os.rmdir(os.path.join(path, sub))
                with contextlib.suppress(OSError):
                    os.rmdir(path)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# -- 1. keys in any case ------------------------------------------------------------------------
@pytest.mark.skipif(not REALTIME, reason="no cgroup v1 cpu.rt_runtime_us on this host")
def test_cpu_realtime_options_are_applied(busybox_tar: str) -> None:
    """docker-py sends ``CPURealtimePeriod``/``CPURealtimeRuntime`` (Go matches keys in any
    case): dockerd keeps them, inspect shows ``CpuRealtime*``, and the container's cgroup gets
    them; its parents get the daemon's ``cpu-rt-runtime`` budget (dockerd's option)."""
    with cgroup_parent() as parent, running_daemon(busybox_tar, ["--cpu-rt-runtime", "20000"]) as d:
        api = api_client(d)
        hc = api.create_host_config(cpu_rt_period=100000, cpu_rt_runtime=1000, cgroup_parent=parent)
        assert hc["CPURealtimePeriod"] == 100000  # docker-py's spelling
        ctr = api.create_container("busybox", "sleep 300", host_config=hc)
        host = api.inspect_container(ctr)["HostConfig"]
        assert (host["CpuRealtimePeriod"], host["CpuRealtimeRuntime"]) == (100000, 1000)
        api.start(ctr)
        assert read(f"{CPU}/{parent}/cpu.rt_runtime_us") == "20000"
        assert read(f"{CPU}/{parent}/{ctr['Id']}/cpu.rt_period_us") == "100000"
        assert read(f"{CPU}/{parent}/{ctr['Id']}/cpu.rt_runtime_us") == "1000"
        # docker update changes them on the running container (docker-py has no argument)
        assert d.api.post(f"/containers/{ctr['Id']}/update", {"CpuRealtimeRuntime": 2000})[0] == 200
        assert read(f"{CPU}/{parent}/{ctr['Id']}/cpu.rt_runtime_us") == "2000"
        api.remove_container(ctr, force=True)


@pytest.mark.skipif(not REALTIME, reason="no cgroup v1 cpu.rt_runtime_us on this host")
def test_cpu_realtime_without_a_parent_budget_fails_at_start(shared_daemon: Daemon,
                                                             api: docker.APIClient) -> None:
    """As dockerd without --cpu-rt-runtime: the kernel refuses a budget the parent cannot
    give; start says why, and the runtime cannot exceed the period at create."""
    with cgroup_parent() as parent:
        ctr = api.create_container("busybox", "true", host_config=api.create_host_config(
            cpu_rt_period=100000, cpu_rt_runtime=1000, cgroup_parent=parent))
        try:
            with pytest.raises(docker.errors.APIError) as exc:
                api.start(ctr)
            assert exc.value.status_code == 400 and "cpu-rt-runtime" in exc.value.explanation
        finally:
            api.remove_container(ctr, force=True)
    with pytest.raises(docker.errors.APIError) as exc:
        api.create_container("busybox", "true", host_config=api.create_host_config(
            cpu_rt_period=1000, cpu_rt_runtime=5000))
    assert exc.value.status_code == 400
    assert "CpuRealtimeRuntime (5000) cannot be higher than HostConfig.CpuRealtimePeriod" in \
        exc.value.explanation


@pytest.mark.skipif(REALTIME, reason="this host has cgroup v1 real-time budgets")
def test_cpu_realtime_options_are_refused_where_the_kernel_has_none(api: docker.APIClient) -> None:
    with pytest.raises(docker.errors.APIError) as exc:
        api.create_container("busybox", "true", host_config=api.create_host_config(
            cpu_rt_period=100000, cpu_rt_runtime=1000))
    assert exc.value.status_code == 400 and "HostConfig.CpuRealtime" in exc.value.explanation


def test_exec_detach_keys_from_the_client_config(shared_daemon: Daemon) -> None:
    """docker-py sends ``detachKeys`` (from ~/.docker/config.json) in the exec's body; typing
    them on the exec's TTY ends the session and leaves the container running."""
    api = api_client(shared_daemon)
    api._general_configs["detachKeys"] = "ctrl-p"
    ctr = api.create_container("busybox", "cat", detach=True, stdin_open=True)
    try:
        api.start(ctr)
        eid = api.exec_create(ctr, "cat", stdin=True, tty=True, stdout=True)
        sock = api.exec_start(eid, tty=True, socket=True)
        raw = sock._sock
        raw.sendall(b"\x10")
        raw.settimeout(30)
        deadline = time.monotonic() + 30
        data = b"x"
        while data and time.monotonic() < deadline:
            data = raw.recv(4096)  # the session ends: EOF (after any echo)
        assert data == b""
        raw.close()
        assert api.inspect_container(ctr)["State"]["Running"] is True
    finally:
        api.remove_container(ctr, force=True)
        api.close()


# -- 5. a StrSlice given as a string --------------------------------------------------------------
def test_string_cmd_and_entrypoint_are_one_argument_each(api: docker.APIClient) -> None:
    """moby's strslice.StrSlice: ``"Cmd": "hello world"`` is ``["hello world"]``, not
    ``sh -c`` (docker-py itself always splits, so the body is sent as JSON by hand)."""
    body = {"Image": "busybox", "Entrypoint": "/bin/echo", "Cmd": "hello   world"}
    res = api._post_json(api._url("/containers/create"), data=body)
    ctr = api._result(res, json=True)
    try:
        info = api.inspect_container(ctr)
        assert info["Config"]["Entrypoint"] == ["/bin/echo"]
        assert info["Config"]["Cmd"] == ["hello   world"]
        assert (info["Path"], info["Args"]) == ("/bin/echo", ["hello   world"])
        api.start(ctr)
        assert api.wait(ctr, timeout=60)["StatusCode"] == 0
        assert api.logs(ctr) == b"hello   world\n"
    finally:
        api.remove_container(ctr, force=True)


# -- 6. log driver errors in dockerd's words ------------------------------------------------------
def test_unknown_log_driver_in_dockerds_words(api: docker.APIClient) -> None:
    hc = api.create_host_config(log_config=docker.types.LogConfig(type="asdf", config={}))
    with pytest.raises(docker.errors.APIError) as exc:
        api.create_container("busybox", ["true"], host_config=hc)
    assert exc.value.status_code == 400
    assert exc.value.explanation == "logger: no log driver named 'asdf' is registered"


# -- 4. what docker-compose's acceptance tests compare ---------------------------------------------
def test_restart_keeps_finished_at_of_the_stop(api: docker.APIClient) -> None:
    """``docker-compose restart``: FinishedAt is the stop's time after the restart (dockerd
    sets it on every exit and keeps it when the container starts again)."""
    ctr = api.create_container("busybox", ["sleep", "300"])
    try:
        api.start(ctr)
        first = api.inspect_container(ctr)["State"]
        assert first["FinishedAt"] == "0001-01-01T00:00:00Z"
        api.restart(ctr, timeout=1)
        state = api.inspect_container(ctr)["State"]
        assert state["Running"] is True
        assert first["StartedAt"] < state["FinishedAt"] <= state["StartedAt"]
    finally:
        api.remove_container(ctr, force=True)


def test_disabled_healthcheck_is_echoed_as_given(api: docker.APIClient) -> None:
    """compose's ``healthcheck: {disable: true}``: dockerd shows exactly ``{"Test": ["NONE"]}``
    (Go's omitempty drops the zero durations)."""
    ctr = api.create_container("busybox", ["true"], healthcheck={"test": ["NONE"]})
    try:
        assert api.inspect_container(ctr)["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    finally:
        api.remove_container(ctr, force=True)
    ctr = api.create_container("busybox", ["sleep", "1"], healthcheck={
        "test": ["CMD", "true"], "interval": 2_000_000_000, "retries": 0})
    try:
        assert api.inspect_container(ctr)["Config"]["Healthcheck"] == \
            {"Test": ["CMD", "true"], "Interval": 2_000_000_000}
    finally:
        api.remove_container(ctr, force=True)


# -- attach ?logs=1: the log is replayed, as dockerd's containerAttach ------------------------------
def raw_attach(d: Daemon, cid: str, query: str, send: bytes = b"") -> tuple[bytes, bytes]:
    """``POST /containers/{cid}/attach?{query}`` over the daemon's socket, read to its end:
    (the answer's head, what follows it). A raw read, so that no byte is lost: docker-py reads
    the head through a buffered file and the stream from the socket under it, and so loses
    what arrives with the head (with dockerd as well)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(d.sock)
        s.sendall(f"POST /v1.41/containers/{cid}/attach?{query} HTTP/1.1\r\nHost: d\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        if send:
            s.sendall(send)
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (stream, payload) frames of a multiplexed attach stream."""
    out, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4:i + 8], "big")
        out.append((data[i], data[i + 8:i + 8 + size]))
        i += 8 + size
    return out


def test_attach_logs_without_stream_replays_the_log(shared_daemon: Daemon,
                                                    api: docker.APIClient) -> None:
    """``attach?logs=1`` without ``stream`` after the container exited: its log, each stream
    only when asked for, then the end (docker-py's ``test_attach_no_stream``)."""
    d = shared_daemon
    ctr = api.create_container("busybox", ["sh", "-c", "echo hello; echo oops >&2"])
    cid = ctr["Id"]
    try:
        api.start(ctr)
        assert api.wait(ctr)["StatusCode"] == 0
        head, body = raw_attach(d, cid, "logs=1&stdout=1&stderr=1&stream=0")
        assert head.startswith(b"HTTP/1.1 101")
        assert sorted(frames(body)) == [(1, b"hello\n"), (2, b"oops\n")]
        assert frames(raw_attach(d, cid, "logs=1&stdout=1&stream=0")[1]) == [(1, b"hello\n")]
        assert frames(raw_attach(d, cid, "logs=1&stderr=1&stream=0")[1]) == [(2, b"oops\n")]
    finally:
        api.remove_container(ctr, force=True)


def test_attach_without_logs_waits_for_the_next_run(api: docker.APIClient) -> None:
    """``logs=0&stream=1`` to a stopped container replays nothing and waits for its next start
    (dockerpty's ``run`` relies on it)."""
    ctr = api.create_container("busybox", ["echo", "hello"])
    try:
        api.start(ctr)
        assert api.wait(ctr)["StatusCode"] == 0
        sock = api.attach_socket(ctr, {"stdout": 1, "stream": 1, "logs": 0})
        api.start(ctr)
        raw = getattr(sock, "_sock", sock)
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
        assert frames(data) == [(1, b"hello\n")]
        assert api.wait(ctr)["StatusCode"] == 0
    finally:
        api.remove_container(ctr, force=True)


def test_attach_logs_and_stream_of_a_running_container(shared_daemon: Daemon,
                                                       api: docker.APIClient) -> None:
    """``logs=1&stream=1``: what the container printed before the attach, then what it prints
    after (on a TTY raw, without frames)."""
    ctr = api.create_container("busybox", ["sh", "-c", "echo before; read x; echo after $x"],
                               stdin_open=True, tty=True)
    try:
        api.start(ctr)
        for _ in range(600):  # its first line is in the log
            if b"before" in api.logs(ctr):
                break
            time.sleep(0.1)
        _, got = raw_attach(shared_daemon, ctr["Id"], "logs=1&stdin=1&stdout=1&stream=1",
                            send=b"now\n")
        assert got.startswith(b"before\r\n") and got.endswith(b"after now\r\n"), got
        assert api.wait(ctr)["StatusCode"] == 0
    finally:
        api.remove_container(ctr, force=True)


def test_network_ipam_options_are_null_when_none_were_given(api: docker.APIClient) -> None:
    """dockerd shows ``IPAM.Options`` as null (a nil map) unless options were given
    (docker-py's ``test_create_network_with_ipam_config``)."""
    name = "dkyipam" + os.urandom(3).hex()
    net = api.create_network(name)
    try:
        assert api.inspect_network(net["Id"])["IPAM"]["Options"] is None
    finally:
        api.remove_network(net["Id"])
    net = api.create_network(name, ipam=docker.types.IPAMConfig(options={"foo": "bar"}))
    try:
        assert api.inspect_network(net["Id"])["IPAM"]["Options"] == {"foo": "bar"}
    finally:
        api.remove_network(net["Id"])
