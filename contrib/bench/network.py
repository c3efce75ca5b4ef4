#!/usr/bin/env python3
"""Network benchmark (not a test): per-container network set-up cost and bridge throughput.

    .venv/bin/python contrib/bench/network.py [--runs 20] [--mbytes 512] [--with-dockerd]

1. Start latency through the API (create → start → wait → delete of ``true``) for
   ``--network none``, ``host`` and ``bridge``, on a private dockyardd (its own bridge name and
   10.x subnet, IPv4 forwarding left alone); medians, and bridge/none as a ratio.
2. The sandbox alone, in process: namespace file + veth + addresses + route, then teardown, with
   the bridge driver on a private bridge (what ``start`` adds for ``bridge`` over ``none``).
3. Throughput container → container over the bridge: two running containers; a TCP sender in one
   container's namespace and a receiver in the other's (Python sockets in threads that joined the
   namespaces, so the figure is the veth/bridge path, not busybox's nc), ``--mbytes`` MiB.
4. With ``--with-dockerd`` (and dockerd installed): the same start latency through the docker CLI
   for dockerd (own bridge, ``--iptables=false``) and dockyardd in the same run.

All traffic stays on the bridges and namespaces this script creates; everything is removed.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

VENV_BIN = os.path.dirname(sys.executable)


class Api:
    def __init__(self, sock: str) -> None:
        self.sock = sock

    def req(self, method: str, path: str, body=None, raw: bytes | None = None, ctype: str = "application/json"):
        conn = http.client.HTTPConnection("localhost", timeout=120)
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        conn.sock = s
        data = json.dumps(body).encode() if body is not None else raw
        conn.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        try:
            return r.status, json.loads(payload) if payload.strip() else None
        except ValueError:
            return r.status, payload


def free_subnet() -> ipaddress.IPv4Network:
    out = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    taken = []
    for line in out.splitlines():
        for w in line.split()[:2]:
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(w, strict=False))
                break
    while True:
        n = ipaddress.ip_network(f"10.{random.randint(128, 250)}.{random.randint(0, 255)}.0/24")
        if not any(n.overlaps(t) for t in taken):
            return n


@contextlib.contextmanager
def dockyardd(root: str, tar: str):
    bridge = "dyb" + os.urandom(4).hex()
    net = free_subnet()
    sock = os.path.join(root, "d.sock")
    with open(os.path.join(root, "daemon.json"), "w") as f:
        f.write("{}")
    log = open(os.path.join(root, "d.log"), "ab")
    proc = subprocess.Popen([os.path.join(VENV_BIN, "dockyardd"), "--config-file", os.path.join(root, "daemon.json"),
                             "--data-root", os.path.join(root, "data"), "--exec-root", os.path.join(root, "exec"),
                             "-H", f"unix://{sock}", "--log-level", "warn", "--bridge", bridge,
                             "--bip", f"{net.network_address + 1}/24", "--ip-forward", "false"],
                            stdout=log, stderr=log)
    api = Api(sock)
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                if api.req("GET", "/_ping")[0] == 200:
                    break
            time.sleep(0.05)
        with open(tar, "rb") as f:
            st, _ = api.req("POST", "/images/create?fromSrc=-&repo=busybox&tag=latest&changes=CMD%20%5B%22sh%22%5D",
                            raw=f.read(), ctype="application/x-tar")
        assert st == 200
        yield api, sock, bridge
    finally:
        with contextlib.suppress(Exception):
            for c in api.req("GET", "/containers/json?all=1")[1] or []:
                api.req("DELETE", f"/containers/{c['Id']}?force=1")
        proc.terminate()
        proc.wait(30)
        log.close()


def run_once(api: Api, network: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    st, c = api.req("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                   "HostConfig": {"NetworkMode": network}})
    assert st == 201, c
    t1 = time.perf_counter()
    st, _ = api.req("POST", f"/containers/{c['Id']}/start")
    assert st == 204
    t2 = time.perf_counter()
    api.req("POST", f"/containers/{c['Id']}/wait")
    api.req("DELETE", f"/containers/{c['Id']}")
    t3 = time.perf_counter()
    return (t2 - t1) * 1000, (t3 - t0) * 1000


def bench_start(api: Api, runs: int) -> dict[str, tuple[float, float]]:
    res = {}
    for mode in ("none", "host", "bridge"):
        run_once(api, mode)  # warm-up
        starts, totals = zip(*(run_once(api, mode) for _ in range(runs)))
        res[mode] = (statistics.median(starts), statistics.median(totals))
    return res


def bench_sandbox(runs: int) -> tuple[float, float, float, float]:
    from dockyard.hookspecs.host import ns
    from dockyard.plugins.netdrivers.bridge import BridgeDriver

    top = tempfile.mkdtemp(prefix="dyb-sb-")
    net = free_subnet()
    drv = BridgeDriver(os.path.join(top, "home"), {"bridge": "dys" + os.urandom(4).hex(),
                                                    "ip-forward": False})
    nid = os.urandom(32).hex()
    drv.create_network(nid, {"Default": True, "Subnet": str(net), "Gateway": str(net.network_address + 1)})
    ups, downs, none_up, none_down = [], [], [], []
    try:
        for i in range(runs):
            path = os.path.join(top, f"ns{i}")
            t0 = time.perf_counter()
            ns.create_netns(path)
            t1 = time.perf_counter()
            ns.remove_netns(path)
            t2 = time.perf_counter()
            none_up.append((t1 - t0) * 1000)
            none_down.append((t2 - t1) * 1000)
            t0 = time.perf_counter()
            ns.create_netns(path)
            ep = drv.create_endpoint(nid, os.urandom(32).hex(), {"Address": str(net.network_address + 2 + i),
                                                                 "PrefixLen": 24})
            drv.join(ep, path)
            t1 = time.perf_counter()
            drv.leave(ep, path)
            drv.delete_endpoint(ep)
            ns.remove_netns(path)
            t2 = time.perf_counter()
            ups.append((t1 - t0) * 1000)
            downs.append((t2 - t1) * 1000)
    finally:
        drv.delete_network(nid)
        drv.close()
        shutil.rmtree(top, ignore_errors=True)
    return (statistics.median(none_up), statistics.median(none_down),
            statistics.median(ups), statistics.median(downs))


def bench_throughput(api: Api, mbytes: int) -> float:
    from dockyard.hookspecs.host import ns

    ids = []
    for _ in range(2):
        st, c = api.req("POST", "/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]})
        api.req("POST", f"/containers/{c['Id']}/start")
        ids.append(c["Id"])
    a = api.req("GET", f"/containers/{ids[0]}/json")[1]["NetworkSettings"]
    b = api.req("GET", f"/containers/{ids[1]}/json")[1]["NetworkSettings"]
    srv = ns.in_netns(a["SandboxKey"], lambda: socket.create_server((a["IPAddress"], 5001)))
    total = mbytes << 20
    got = [0]

    def receive() -> None:
        conn, _ = srv.accept()
        with conn:
            while True:
                n = len(conn.recv(1 << 20))
                if not n:
                    break
                got[0] += n

    t = threading.Thread(target=receive)
    t.start()
    cli = ns.in_netns(b["SandboxKey"], lambda: socket.socket())
    buf = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    with cli:
        cli.connect((a["IPAddress"], 5001))
        for _ in range(mbytes):
            cli.sendall(buf)
    t.join()
    dt = time.perf_counter() - t0
    srv.close()
    for cid in ids:
        api.req("DELETE", f"/containers/{cid}?force=1")
    assert got[0] == total
    return total / dt / 1e6


def docker_cli_start(host: str, image: str, network: str, runs: int) -> float:
    env = {**os.environ, "DOCKER_HOST": host}
    cmd = ["docker", "run", "--rm", "--network", network, image, "true"]
    subprocess.run(cmd, env=env, capture_output=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.returncode == 0, r.stderr
    return statistics.median(times)


@contextlib.contextmanager
def dockerd(root: str, tar: str):
    bridge = "dkb" + os.urandom(4).hex()
    net = free_subnet()
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"{net.network_address + 1}/24", "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    sock = os.path.join(root, "docker.sock")
    log = open(os.path.join(root, "dockerd.log"), "ab")
    proc = subprocess.Popen(["dockerd", "--data-root", os.path.join(root, "ddata"), "--exec-root", os.path.join(root, "dexec"),
                             "--pidfile", os.path.join(root, "d.pid"), "-H", f"unix://{sock}", "--iptables=false",
                             "--ip-masq=false", "--ip-forward=false", "--bridge", bridge, "--storage-driver", "vfs"],
                            stdout=log, stderr=log)
    host = f"unix://{sock}"
    try:
        for _ in range(600):
            if subprocess.run(["docker", "-H", host, "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run(["docker", "-H", host, "import", tar, "busybox:local"], check=True, capture_output=True)
        yield host
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        log.close()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        subprocess.run(["umount", "-R", os.path.join(root, "dexec")], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mbytes", type=int, default=512, help="MiB sent container to container (bounded)")
    ap.add_argument("--with-dockerd", action="store_true")
    a = ap.parse_args()
    from dockyard.core.busybox import main as make_tar

    root = tempfile.mkdtemp(prefix="dyb-", dir="/tmp")
    try:
        tar = os.path.join(root, "busybox.tar")
        make_tar([tar])
        with dockyardd(root, tar) as (api, sock, _bridge):
            res = bench_start(api, a.runs)
            print(f"API start latency, median of {a.runs} (ms): start / create+start+wait+delete")
            for mode, (s, t) in res.items():
                print(f"  {mode:7s} {s:7.1f} / {t:7.1f}")
            print(f"  bridge/none start ratio: {res['bridge'][0] / res['none'][0]:.2f}, "
                  f"bridge - none: {res['bridge'][0] - res['none'][0]:.1f} ms")
            nu, nd, bu, bd = bench_sandbox(a.runs)
            print(f"sandbox in process, median (ms): none: netns {nu:.2f} up / {nd:.2f} down; "
                  f"bridge: netns+veth+addr+route {bu:.2f} up / {bd:.2f} down")
            mbps = bench_throughput(api, a.mbytes)
            print(f"throughput container->container over the bridge ({a.mbytes} MiB, one TCP stream): "
                  f"{mbps:.0f} MB/s")
            if a.with_dockerd:
                if not shutil.which("dockerd"):
                    print("dockerd not installed: skipped")
                else:
                    ours = {m: docker_cli_start(f"unix://{sock}", "busybox", m, a.runs) for m in ("none", "bridge")}
                    with dockerd(root, tar) as host:
                        theirs = {m: docker_cli_start(host, "busybox:local", m, a.runs) for m in ("none", "bridge")}
                    print(f"docker CLI `run --rm NET true`, median of {a.runs} (ms):")
                    for m in ("none", "bridge"):
                        print(f"  {m:7s} dockyardd {ours[m]:7.1f}  dockerd {theirs[m]:7.1f}  "
                              f"ratio {theirs[m] / ours[m]:.2f}x")
                    print(f"  bridge cost (bridge - none): dockyardd {ours['bridge'] - ours['none']:.1f} ms, "
                          f"dockerd {theirs['bridge'] - theirs['none']:.1f} ms")
    finally:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for p in sorted((p for p in points if p.startswith(root + "/")), reverse=True):
            subprocess.run(["umount", "-l", p], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
