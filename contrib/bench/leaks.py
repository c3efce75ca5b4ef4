#!/usr/bin/env python3
"""Leak check: N container lifecycles against a private dockyardd, host resources before/after.

Run as root from the repository: ``.venv/bin/python contrib/bench/leaks.py [-n 1000]``. Needs
docker-py (``pip install -e '.[test]'``). The daemon gets a fresh root under /tmp, a bridge and
a 10.x subnet of its own; busybox is built from Debian's busybox-static.

Each lifecycle, through docker-py (the Docker API, as a real client sends it):
``run --rm`` on the default bridge network (``true``), then ``run -d`` (bridge, ``sleep``),
``exec true`` in it, ``stop -t 1`` and ``rm``. After a warm-up (``--warmup`` lifecycles, so
lazy imports and caches settle) and every ``--every`` lifecycles it records:

* mounts under the daemon's roots, network namespace files, veths on its bridge, nft rules in
  its tables, cgroups left in every hierarchy for the containers it ran,
* open fds of dockyardd and of the exec driver's supervisor,
* RSS of dockyardd and of the supervisor.

``--diagnose`` runs dockyardd with ``PYTHONTRACEMALLOC`` and sends it SIGUSR1 at every reading:
its log then shows the object types and source lines that grew in between (see
``dockyard.core.daemon.diagnostics``); the log is kept and its path printed.

and prints a table, then before/after and the growth per 1,000 lifecycles. A benchmark, not a
test: ``tests/test_leaks.py`` is the small regression test (counts only).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))

from conftest import (Daemon, _kill_pidfile_tree, _unmount_under, network_args,  # noqa: E402
                      remove_network_leftovers)


def _pid_of_supervisor(d: Daemon) -> int:
    for dirpath, _dirs, files in os.walk(d.exec_root):
        if "supervisor.pid" in files:
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(dirpath, "supervisor.pid")) as f:
                    return int(f.read().strip())
    return 0


def _status(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


def _nft_rules(bridge: str) -> int:
    n = 0
    for family in ("ip", "bridge"):
        out = subprocess.run(["nft", "-a", "list", "table", family, "dockyard_" + bridge],
                             capture_output=True, text=True).stdout
        n += sum(1 for line in out.splitlines() if "# handle" in line and not line.strip().startswith(("table", "chain", "set", "map")))
    return n


def _veths(bridge: str) -> int:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                         text=True).stdout
    return len(out.splitlines())


def _cgroups(ids: set[str]) -> int:
    n = 0
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", hierarchy, "dockyard")
        with contextlib.suppress(OSError):
            n += sum(1 for name in os.listdir(base) if name in ids)
    return n


def _mounts(d: Daemon) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].startswith(d.root + "/"))


def measure(d: Daemon, ids: set[str], diagnose: bool = False) -> dict[str, int]:
    assert d.proc is not None
    if diagnose:
        import signal
        d.proc.send_signal(signal.SIGUSR1)
        time.sleep(5)  # the dump takes a snapshot of the whole heap
    sup = _pid_of_supervisor(d)
    netns = os.path.join(d.exec_root, "netns")
    return {
        "mounts": _mounts(d), "netns": len(os.listdir(netns)) if os.path.isdir(netns) else 0,
        "veths": _veths(d.bridge_name), "nft rules": _nft_rules(d.bridge_name),
        "cgroups": _cgroups(ids), "daemon fds": _fds(d.proc.pid), "supervisor fds": _fds(sup),
        "daemon RSS kB": _status(d.proc.pid, "VmRSS"), "supervisor RSS kB": _status(sup, "VmRSS"),
    }


def lifecycle(client: Any, ids: set[str]) -> None:
    out = client.containers.run("busybox", ["true"], remove=True)
    assert out == b"", out
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    ids.add(c.id)
    code, _ = c.exec_run(["true"])
    assert code == 0
    c.stop(timeout=1)
    c.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="lifecycles to run [1000]")
    ap.add_argument("--warmup", type=int, default=50, help="lifecycles before the first reading [50]")
    ap.add_argument("--every", type=int, default=100, help="a reading every N lifecycles [100]")
    ap.add_argument("--json", help="also write the readings to this file")
    ap.add_argument("--diagnose", type=int, default=0, metavar="FRAMES",
                    help="PYTHONTRACEMALLOC=FRAMES for dockyardd, and a SIGUSR1 dump at every reading")
    args = ap.parse_args()
    import docker

    from dockyard.core.busybox import main as make_busybox

    root = tempfile.mkdtemp(prefix="dky-leaks-", dir="/tmp")
    bridge, net = network_args()
    d = Daemon(root, net)
    d.bridge_name = bridge
    readings: list[tuple[int, dict[str, int]]] = []
    if args.diagnose:
        os.environ["PYTHONTRACEMALLOC"] = str(args.diagnose)
    try:
        d.start()
        tar = os.path.join(root, "busybox.tar")
        make_busybox([tar])
        d.import_busybox(tar)
        client = docker.DockerClient(base_url=d.host, version="1.45", timeout=120)
        ids: set[str] = set()
        for _ in range(args.warmup):
            lifecycle(client, ids)
        readings.append((0, measure(d, ids, bool(args.diagnose))))
        t0 = time.monotonic()
        for i in range(1, args.n + 1):
            lifecycle(client, ids)
            if i % args.every == 0 or i == args.n:
                readings.append((i, measure(d, ids, bool(args.diagnose))))
                print(f"{i:6d} {time.monotonic() - t0:7.0f}s " + "  ".join(
                    f"{k}={v}" for k, v in readings[-1][1].items()), flush=True)
        first, last = readings[0][1], readings[-1][1]
        print(f"\nafter {args.warmup} warm-up lifecycles -> after {args.n} more:")
        for k in first:
            growth = (last[k] - first[k]) * 1000 / max(args.n, 1)
            print(f"  {k:18s} {first[k]:8d} -> {last[k]:8d}   ({growth:+.1f} per 1,000)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(readings, f, indent=1)
    finally:
        with contextlib.suppress(Exception):
            d.remove_all_containers()
        d.stop()
        for pid in [_pid_of_supervisor(d)]:
            for _ in range(100):
                if not pid or not os.path.exists(f"/proc/{pid}"):
                    break
                time.sleep(0.05)
        _kill_pidfile_tree(d.exec_root)
        _unmount_under(root)
        remove_network_leftovers(d)
        if args.diagnose:
            kept = os.path.join("/tmp", os.path.basename(root) + ".log")
            shutil.copy(d.log_path, kept)
            print("dockyardd's log, with the dumps:", kept)
        if os.environ.get("KEEP"):
            print("kept", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
