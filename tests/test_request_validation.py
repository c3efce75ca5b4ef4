"""Request bodies at the edge, against a real daemon: types checked before anything acts
(issue 10: ``"Privileged": "false"`` made a privileged container), Content-Type, size limit,
read timeout."""
from __future__ import annotations

import json
import socket
import time
from typing import Iterable, Iterator

import pytest

from conftest import Daemon, running_daemon


@pytest.fixture(scope="module")
def d(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as daemon:
        yield daemon


def _count(d: Daemon) -> int:
    return len(d.api.get("/containers/json?all=1")[1])


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _exchange(path: str, head: bytes, chunks: Iterable[bytes], timeout: float = 60) -> bytes:
    """Send a request as raw bytes (the server may answer and stop reading before the body
    is all sent) and return everything the server wrote back until it closed."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    try:
        try:
            s.sendall(head)
            for chunk in chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while data := s.recv(65536):
                out += data
                if b"\r\n\r\n" in out and b'"message"' in out:
                    break
        except ConnectionResetError:
            pass
        return out
    finally:
        s.close()


def test_privileged_as_a_string_is_refused_and_nothing_is_created(d: Daemon) -> None:
    before = _count(d)
    status, err = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                    "HostConfig": {"Privileged": "false"}})
    assert status == 400
    assert err["message"].startswith("HostConfig.Privileged:") and "boolean" in err["message"]
    assert _count(d) == before
    # the real thing still works, and false is false
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                     "HostConfig": {"Privileged": False}})
    assert status == 201, body
    assert d.api.get(f"/containers/{body['Id']}/json")[1]["HostConfig"]["Privileged"] is False
    d.api.delete(f"/containers/{body['Id']}")


@pytest.mark.parametrize("path, body, field", [
    ("/containers/create", {"Image": "busybox", "HostConfig": {"Memory": 2 ** 70}}, "HostConfig.Memory"),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"PidsLimit": 2 ** 63}}, "HostConfig.PidsLimit"),
    ("/containers/create", {"Image": "busybox", "HostConfig": {"Memory": -5}}, "HostConfig.Memory"),
    ("/networks/create", {"Name": "x", "Internal": "true"}, "Internal"),
    ("/volumes/create", {"Name": "x", "Labels": {"a": ["b"]}}, "Labels[...]"),
])
def test_out_of_range_and_wrong_types_are_a_400_naming_the_field(
        d: Daemon, path: str, body: dict, field: str) -> None:
    status, err = d.api.post(path, body)
    assert status == 400 and err["message"].startswith(field + ":"), err


def test_deep_nesting_is_a_400(d: Daemon) -> None:
    for raw in (b'{"Image": "busybox", "x": ' + b"[" * 200000 + b"]" * 200000 + b"}",
                b"[" * 200000):
        status, err = d.api.post("/containers/create", raw=raw,
                                 headers={"Content-Type": "application/json"})
        assert status == 400, err
    # the same in a query parameter (filters are JSON too)
    status, err = d.api.get("/containers/json?filters=" + "%5B" * 2000)
    assert status == 400 and "too deeply nested" in err["message"]
    assert d.api.get("/_ping")[0] == 200


def test_a_body_over_the_limit_is_a_413_and_memory_stays_put(d: Daemon) -> None:
    assert d.proc is not None
    rss = _rss_kib(d.proc.pid)
    size = 100 << 20
    block = b"x" * (1 << 20)
    # with a Content-Length: refused before it is read
    head = (f"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    out = _exchange(d.sock, head, (block for _ in range(100)))
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert b"at most 8388608 bytes" in out
    # chunked, no length given: refused once past the limit
    head = (b"POST /volumes/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % len(block) + block + b"\r\n"
    out = _exchange(d.sock, head, (chunk for _ in range(100)))
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert d.api.get("/_ping")[0] == 200
    grown = _rss_kib(d.proc.pid) - rss
    assert grown < 64 * 1024, f"the daemon grew by {grown} KiB"


@pytest.mark.parametrize("ctype", ["text/plain", "text/plain;charset=UTF-8",
                                   "application/x-www-form-urlencoded", None])
def test_a_json_body_of_another_content_type_is_refused(d: Daemon, ctype: str | None) -> None:
    before = _count(d)
    raw = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    status, err = d.api.post("/containers/create", raw=raw,
                             headers={"Content-Type": ctype} if ctype else {})
    assert status == 400 and "Content-Type" in err["message"] and "application/json" in err["message"]
    assert _count(d) == before


def test_json_with_parameters_and_posts_without_a_body_are_fine(d: Daemon) -> None:
    raw = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    status, body = d.api.post("/containers/create", raw=raw,
                              headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 201, body
    # no body and no Content-Type (as the docker CLI sends start, or a bodiless volume create)
    assert d.api.post(f"/containers/{body['Id']}/start")[0] == 204
    status, vol = d.api.post("/volumes/create")
    assert status == 201, vol
    d.api.delete(f"/containers/{body['Id']}?force=1")
    d.api.delete(f"/volumes/{vol['Name']}")


def test_unsupported_fields_are_refused_when_set(d: Daemon) -> None:
    status, err = d.api.post("/containers/create", {"Image": "busybox",
                                                    "HostConfig": {"KernelMemory": 1 << 26}})
    assert status == 400 and err["message"].startswith("HostConfig.KernelMemory: not supported")
    # what the docker CLI sends for them when not given passes
    status, body = d.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["true"],
        "HostConfig": {"MemoryReservation": 0, "MemorySwappiness": -1, "BlkioWeightDevice": [],
                       "DeviceRequests": None, "Isolation": "", "OomKillDisable": False}})
    assert status == 201, body
    d.api.delete(f"/containers/{body['Id']}")


def test_volume_nocopy_mount_is_applied(d: Daemon) -> None:
    status, body = d.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["true"],
        "HostConfig": {"Mounts": [{"Type": "volume", "Target": "/etc",
                                   "VolumeOptions": {"NoCopy": True}}]}})
    assert status == 201, body
    c = d.api.get(f"/containers/{body['Id']}/json")[1]
    assert c["Mounts"][0]["Mode"] == "nocopy"
    d.api.delete(f"/containers/{body['Id']}?v=1")


@pytest.fixture(scope="module")
def impatient() -> Iterator[Daemon]:
    """A daemon that gives up on a silent client after 2 seconds."""
    with running_daemon(None, ["--api-read-timeout", "2"]) as daemon:
        yield daemon


def test_a_silent_client_is_disconnected(impatient: Daemon) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(impatient.sock)
    t = time.monotonic()
    try:
        assert s.recv(100) == b""  # closed by the daemon, not by our timeout
    finally:
        s.close()
    assert time.monotonic() - t < 60


def test_a_stalled_body_is_a_408(impatient: Daemon) -> None:
    head = (b"POST /volumes/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"Name\": ")
    out = _exchange(impatient.sock, head, ())
    assert out.startswith(b"HTTP/1.1 408"), out[:200]
    assert impatient.api.get("/volumes")[1]["Volumes"] == []


def test_long_streams_outlive_the_read_timeout(impatient: Daemon) -> None:
    """events (and logs -f, attach...) are written by the daemon: a client that only reads
    is not silent in the sense of the timeout."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(impatient.sock)
    try:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
        time.sleep(5)  # more than twice the timeout
        status, net = impatient.api.post("/networks/create", {"Name": "after-the-wait"})
        assert status == 201, net
        got = b""
        while b"after-the-wait" not in got:
            data = s.recv(65536)
            assert data, "the events stream was closed"
            got += data
    finally:
        s.close()
    assert impatient.api.delete("/networks/after-the-wait")[0] == 204
