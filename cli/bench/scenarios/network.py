"""Networks, as the former ``contrib/bench/network.py`` measured them.

* ``network``: for every network driver, the set-up cost per container through the API:
  create → start → wait → delete of ``true`` (the ``start`` call alone, and the whole cycle), for
  dockyardd and dockerd (podman has no API service here); and for dockyard's drivers in process,
  the sandbox alone: namespace file (when the driver wants a private one) + endpoint + join, and
  its teardown.
* ``throughput``: TCP from one container to another over the bridge: a sender and a receiver in
  the two containers' network namespaces (Python sockets in threads that joined them, so the
  figure is the veth/bridge path, not busybox's nc).

Every bridge, address and namespace is the bench's own (unique names, a free 10.x subnet, IPv4
forwarding left alone); traffic never leaves them.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any

from .. import host
from ..subjects.base import CAP_API, CAP_NETDRIVER, Subject
from .base import Metric, Scenario


def api_of(subject: Subject) -> Any:
    from dockyard.cli.client import Client
    return Client("unix://" + subject.engine.sock, timeout=300)


def cycle(api: Any, net: str) -> tuple[float, float]:
    """create → start → wait → delete of ``true``; (start, whole cycle) in seconds."""
    t0 = time.perf_counter()
    c = api.post_json("/containers/create", body={"Image": "busybox:latest", "Cmd": ["true"],
                                                  "HostConfig": {"NetworkMode": net}})
    t1 = time.perf_counter()
    api.request("POST", f"/containers/{c['Id']}/start").read()
    t2 = time.perf_counter()
    api.request("POST", f"/containers/{c['Id']}/wait").read()
    api.request("DELETE", f"/containers/{c['Id']}").read()
    return t2 - t1, time.perf_counter() - t0


class Sandbox:
    """One of dockyard's network drivers in process, on a private home (and bridge)."""

    def __init__(self, net: str) -> None:
        from dockyard.core.plugins import DriverRegistry
        self.top = tempfile.mkdtemp(prefix="dyb-sb-", dir=host.WORK_PARENT)
        self.subnet = host.free_subnet()
        self.driver = DriverRegistry("network").create(
            net, os.path.join(self.top, "home"),
            {"bridge": host.unique_name("dys"), "ip-forward": False})
        self.private = getattr(self.driver, "namespace", "private") == "private"
        self.nid = os.urandom(32).hex()
        self.driver.create_network(self.nid, {"Default": True, "Subnet": str(self.subnet),
                                              "Gateway": str(self.subnet.network_address + 1)})
        self.count = 0

    def cycle(self) -> tuple[float, float]:
        from dockyard.hookspecs.host import ns
        self.count += 1
        path = os.path.join(self.top, f"ns{self.count}")
        t0 = time.perf_counter()
        if self.private:
            ns.create_netns(path)
        ep = self.driver.create_endpoint(self.nid, os.urandom(32).hex(), {
            "Interface": "eth0", "Address": str(self.subnet.network_address + 1 + self.count),
            "PrefixLen": self.subnet.prefixlen, "Gateway": str(self.subnet.network_address + 1)})
        self.driver.join(ep, path)
        t1 = time.perf_counter()
        self.driver.leave(ep, path)
        self.driver.delete_endpoint(ep)
        if self.private:
            ns.remove_netns(path)
        return t1 - t0, time.perf_counter() - t1

    def close(self) -> None:
        try:
            self.driver.delete_network(self.nid)
            self.driver.close()
        finally:
            shutil.rmtree(self.top, ignore_errors=True)


class NetworkSetup(Scenario):
    """Per network driver: create → start → wait → delete of ``true`` through the Docker API
    (dockyardd and dockerd; podman has no API service here), the ``start`` call alone and the
    whole cycle; and, for dockyard's drivers called in process, the sandbox alone: namespace file
    (when the driver wants one) + endpoint + join, and its teardown."""

    name = "network"
    title = "network set-up per container, per network driver"
    needs = frozenset({CAP_API})
    needs_reason = "has no Docker API service in this bench (its CLI start is in `run`)"
    net_axis = True
    metrics = (Metric("net-start", "POST /containers/{id}/start", "ms"),
               Metric("net-cycle", "create + start + wait + delete", "ms"),
               Metric("sandbox-up", "sandbox set-up in process (netns + endpoint + join)", "ms"),
               Metric("sandbox-down", "sandbox teardown in process", "ms"))
    runs_full, runs_quick = 20, 5

    def __init__(self) -> None:
        self.apis: dict[str, Any] = {}
        self.sandboxes: dict[str, Sandbox] = {}

    def prepare(self, ctx: Any, subject: Subject) -> None:
        api = self.apis[subject.id] = api_of(subject)
        cycle(api, subject.net)  # warm-up
        if CAP_NETDRIVER in subject.caps:
            self.sandboxes[subject.id] = Sandbox(subject.net)

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        start, whole = cycle(self.apis[subject.id], subject.net)
        out = {"net-start": start * 1000, "net-cycle": whole * 1000}
        sandbox = self.sandboxes.get(subject.id)
        if sandbox is not None:
            up, down = sandbox.cycle()
            out.update({"sandbox-up": up * 1000, "sandbox-down": down * 1000})
        return out

    def finish(self, ctx: Any, subject: Subject) -> None:
        api = self.apis.pop(subject.id, None)
        if api is not None:
            api.close()
        sandbox = self.sandboxes.pop(subject.id, None)
        if sandbox is not None:
            sandbox.close()


class Throughput(Scenario):
    """One TCP stream from one container to another on the engine's bridge: a sender and a
    receiver in the two containers' network namespaces (Python sockets in threads that joined
    them: the figure is the veth and bridge path, not busybox's nc)."""

    name = "throughput"
    title = "container to container TCP throughput on the bridge"
    needs = frozenset({CAP_API})
    needs_reason = "has no bridge network in this bench"
    net_axis = True
    metrics = (Metric("bridge-throughput", "one TCP stream, container to container ({mbytes} MiB)", "MB/s",
                      better="higher"),)
    full = {"mbytes": 512}
    quick = {"mbytes": 128}
    runs_full, runs_quick = 3, 2

    def __init__(self) -> None:
        self.pairs: dict[str, list[dict[str, str]]] = {}

    def on_axis(self, subject: Subject, ctx: Any) -> bool:
        return subject.net == "bridge"

    def prepare(self, ctx: Any, subject: Subject) -> None:
        api = api_of(subject)
        try:
            pair = self.pairs[subject.id] = []
            for _ in range(2):
                cid = subject.run_detached(["sleep", "100000"])
                settings = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]
                pair.append({"id": cid, "ip": settings["IPAddress"], "ns": settings["SandboxKey"]})
        finally:
            api.close()

    def sample(self, ctx: Any, subject: Subject, index: int) -> dict[str, float]:
        a, b = self.pairs[subject.id]
        return {"bridge-throughput": stream(a, b, ctx.params["mbytes"])}

    def finish(self, ctx: Any, subject: Subject) -> None:
        pair = self.pairs.pop(subject.id, [])
        subject.remove(*(c["id"] for c in pair))


def stream(a: dict[str, str], b: dict[str, str], mbytes: int) -> float:
    """Send ``mbytes`` MiB from ``b``'s namespace to ``a``'s; MB/s."""
    from dockyard.hookspecs.host import ns
    srv = ns.in_netns(a["ns"], lambda: socket.create_server((a["ip"], 0)))
    port = srv.getsockname()[1]
    got = [0]

    def receive() -> None:
        conn, _ = srv.accept()
        with conn:
            while n := len(conn.recv(1 << 20)):
                got[0] += n

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    buf = b"\0" * (1 << 20)
    try:
        cli = ns.in_netns(b["ns"], lambda: socket.socket())
        t0 = time.perf_counter()
        with cli:
            cli.settimeout(120)
            cli.connect((a["ip"], port))
            for _ in range(mbytes):
                cli.sendall(buf)
        t.join(120)
        dt = time.perf_counter() - t0
    finally:
        srv.close()
    if got[0] != mbytes << 20:
        raise host.CommandFailed(f"received {got[0]} bytes of {mbytes << 20}")
    return (mbytes << 20) / dt / 1e6
