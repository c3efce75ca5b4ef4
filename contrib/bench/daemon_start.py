"""How long dockyardd and dockerd take from exec to their first ``GET /_ping`` answered, in one run.

    sudo .venv/bin/python contrib/bench/daemon_start.py [--runs N] [--no-dockerd]

Each start is on a fresh data-root, exec-root and socket under a temporary directory (dockyardd:
a uniquely named default bridge, forwarding and firewall rules off; dockerd: ``--bridge=none``,
no iptables, no masquerading, its own containerd). The socket is polled every 2 ms with a raw
HTTP request. Starts alternate between the daemons; the medians are printed. The machine is
shared: compare the figures of one run.

dockyardd is measured twice: from cached bytecode (a private ``PYTHONPYCACHEPREFIX``, filled by
one start before the measured ones), as an installed package runs; and with the bytecode the
environment has (where ``PYTHONDONTWRITEBYTECODE`` is set and the tree was never compiled, every
module of the tree compiles at each start).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)


def pinged(sock: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def mounts_under(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == root or p.startswith(root + "/")]


def dockyardd(root: str, sock: str) -> tuple[list[str], str | None]:
    config = os.path.join(root, "daemon.json")
    with open(config, "w") as f:
        f.write("{}")
    bridge = "dks" + os.urandom(4).hex()
    return ([os.path.join(BIN, "dockyardd"), "--config-file", config, "-H", f"unix://{sock}",
             "--data-root", os.path.join(root, "data"), "--exec-root", os.path.join(root, "exec"),
             "--bridge", bridge, "--bip", f"10.{random.randint(128, 250)}.{random.randint(0, 255)}.1/24",
             "--ip-forward", "false", "--iptables", "false"], bridge)


def dockerd(root: str, sock: str) -> tuple[list[str], str | None]:
    return (["dockerd", "--data-root", os.path.join(root, "data"),
             "--exec-root", os.path.join(root, "exec"), "--pidfile", os.path.join(root, "pid"),
             "-H", f"unix://{sock}", "--config-file", os.path.join(root, "daemon.json"),
             "--iptables=false", "--ip-masq=false", "--bridge=none"], None)


def start_once(make: object, env: dict[str, str]) -> float:
    root = tempfile.mkdtemp(prefix="dky-dstart-", dir="/tmp")
    with open(os.path.join(root, "daemon.json"), "w") as f:
        f.write("{}")
    sock = os.path.join(root, "d.sock")
    argv, bridge = make(root, sock)  # type: ignore[operator]
    log = open(os.path.join(root, "log"), "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    try:
        while not pinged(sock):
            if proc.poll() is not None or time.perf_counter() - t0 > 60:
                raise SystemExit(f"{argv[0]} did not answer _ping; see {root}/log")
            time.sleep(0.002)
        took = time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if bridge:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for mp in sorted(mounts_under(root), reverse=True):  # what a killed daemon left
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-dockerd", action="store_true", help="measure dockyardd alone")
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="dky-dstart-pyc-", dir="/tmp")
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = cache
    start_once(dockyardd, cached)  # fills the cache
    subjects = {"dockyardd": (dockyardd, cached),
                "dockyardd, the environment's bytecode": (dockyardd, dict(os.environ))}
    if not args.no_dockerd and shutil.which("dockerd"):
        subjects["dockerd"] = (dockerd, dict(os.environ))
    times: dict[str, list[float]] = {name: [] for name in subjects}
    try:
        for _ in range(args.runs):
            for name, (make, env) in subjects.items():
                times[name].append(start_once(make, env))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for name, ts in times.items():
        print(f"{name:<38} to first _ping: median {statistics.median(ts) * 1000:6.0f} ms "
              f"(min {min(ts) * 1000:.0f}, max {max(ts) * 1000:.0f}, {len(ts)} starts)")


if __name__ == "__main__":
    main()
