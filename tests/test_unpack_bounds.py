"""Bombs and long unpacks against a real dockyardd: sparse and decompression bombs are refused
from their headers, unpacking stops when its client hangs up, and SIGTERM stops the daemon while
an archive is being unpacked. Bounds are generous (the machine is shared): outcomes are asserted,
not timings.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import threading
import time
from typing import Iterator

import pytest

from conftest import Daemon, running_daemon
from hostile.make_tars import END, header, member, pax_sparse_1x0

GIB = 1 << 30


def zeros_import_body(size: int) -> bytes:
    """A gzip stream (concatenated members, as pigz writes) of a tar holding one ``size``-byte
    file of zeros: a few MB that take the daemon many seconds to unpack."""
    chunk = 16 << 20
    assert size % chunk == 0
    zero_member = gzip.compress(bytes(chunk), 9, mtime=0)
    return gzip.compress(header(b"zeros", size=size), 9, mtime=0) + \
        zero_member * (size // chunk) + gzip.compress(END, 9, mtime=0)


def long_unpack_size() -> int:
    free = shutil.disk_usage("/tmp").free
    size = min(24 * GIB, (free - 2 * GIB) // 2) // (16 << 20) * (16 << 20)
    if size < 4 * GIB:
        pytest.skip(f"not enough free space in /tmp for a long unpack ({free} bytes)")
    return size


@pytest.fixture
def unbounded(tmp_path) -> Iterator[Daemon]:
    """A daemon whose ratio limit is off (only free space bounds unpacking), with a pidfile."""
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"max-unpack-ratio": 0}))
    pidfile = tmp_path / "dockyardd.pid"
    with running_daemon(None, ["--config-file", str(cfg), "--pidfile", str(pidfile)]) as d:
        d.pidfile = str(pidfile)  # type: ignore[attr-defined]
        yield d


def send_import(d: Daemon, body: bytes) -> socket.socket:
    """Send ``POST /images/create?fromSrc=-`` with ``body``; return the open socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    s.connect(d.sock)
    s.sendall(b"POST /images/create?fromSrc=-&repo=long&tag=1 HTTP/1.1\r\nHost: d\r\n"
              b"Content-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n" % len(body))
    s.sendall(body)
    return s


def wait_log(d: Daemon, words: str, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(d.log_path, encoding="utf-8", errors="replace") as f:
            if words in f.read():
                return True
        time.sleep(0.1)
    return False


def test_bombs_through_import_are_refused_from_their_headers(shared_daemon: Daemon) -> None:
    d = shared_daemon
    sparse = pax_sparse_1x0(b"sp", 1 << 40, [((1 << 40) - 512, b"e" * 512)]) + END
    gz = gzip.compress(header(b"zeros", size=16 * GIB) + bytes(64 << 20), 9, mtime=0)
    many = gzip.compress(b"".join(member(b"f%d" % i, b"") for i in range(10)) +
                         header(b"big", size=600 * GIB) + bytes(1 << 20), 9, mtime=0)
    # (the gzip bomb is refused by free space instead on a disk with less than 16 GiB free)
    for body, words in ((sparse, ("max-unpack-size",)), (gz, ("max-unpack-ratio", "free space")),
                        (many, ("max-unpack-size",))):
        # a generous bound: refused from the header, long before a timeout
        status, err = d.api.post("/images/create?fromSrc=-&repo=bomb&tag=1", raw=body,
                                 headers={"Content-Type": "application/x-tar"}, timeout=60)
        assert status == 400, err
        assert any(w in err["message"] for w in words), err
        assert d.api.get("/images/json", timeout=30)[0] == 200
    assert not any("bomb:1" in (i["RepoTags"] or []) for i in d.api.get("/images/json")[1])


def test_unpack_stops_when_the_client_goes(unbounded: Daemon) -> None:
    d = unbounded
    s = send_import(d, zeros_import_body(long_unpack_size()))
    try:
        assert wait_log(d, "layer tar: unpacking into"), d.logs()
    finally:
        s.close()
    assert wait_log(d, "its work stopped"), d.logs()
    status, images = d.api.get("/images/json", timeout=30)
    assert status == 200 and images == []
    tmp = os.path.join(d.data_root, "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []


def test_sigterm_during_a_large_unpack_stops_the_daemon(unbounded: Daemon) -> None:
    d = unbounded
    s = send_import(d, zeros_import_body(long_unpack_size()))
    try:
        assert wait_log(d, "layer tar: unpacking into"), d.logs()
        assert d.proc is not None and d.proc.poll() is None, "the unpack ended too soon"
        d.proc.send_signal(signal.SIGTERM)
        t = threading.Thread(target=d.proc.wait, daemon=True)
        t.start()
        t.join(10)  # generous: the daemon must be gone well within this
        assert d.proc.poll() is not None, "dockyardd still running 10 s after SIGTERM"
    finally:
        s.close()
    assert not os.path.exists(d.pidfile)  # type: ignore[attr-defined]
    assert not os.path.exists(d.sock)
