"""System routes: ``/_ping``, ``/version``, ``/info``, ``/events``."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import time
from typing import Any

from aiohttp import web

from dockyard.hookspecs.host.timefmt import rfc3339

from ... import plugins, resources
from ...filtersets import event_matcher
from .. import params
from ..app import API_VERSION, MIN_API_VERSION, VERSION, route
from ..clients import race


def _daemon(request: web.Request):  # noqa: ANN202
    return request.app["daemon"]


async def ping(request: web.Request) -> web.Response:
    headers = {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
               "Pragma": "no-cache", "Swarm": "inactive"}
    if request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8",
                                                 "Content-Length": "0"})
    return web.Response(text="OK", headers=headers)


def _kernel() -> str:
    return platform.release()


async def version(request: web.Request) -> web.Response:
    d = _daemon(request)
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
               "GoVersion": "python" + platform.python_version(), "Os": "linux",
               "Arch": _arch(), "KernelVersion": _kernel(), "BuildTime": "", "Experimental": "false"}
    components = [{"Name": "Engine", "Version": VERSION, "Details": details}]
    for kind, drv in (("graph driver", d.graph), *(("exec driver", e) for e in d.runtimes.all())):
        version = getattr(drv, "version", lambda: "")() or VERSION
        components.append({"Name": f"{drv.name} ({kind})", "Version": version,
                           "Details": dict(drv.status()) or {"Driver": drv.name}})
    body = {"Platform": {"Name": f"dockyard {VERSION}"}, "Components": components,
            "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": _arch(),
            "KernelVersion": _kernel(), "BuildTime": ""}
    return web.json_response(body)


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _meminfo() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def info(request: web.Request) -> web.Response:
    d = _daemon(request)
    cs = d.containers.all()
    running = sum(1 for c in cs if c["State"]["Running"] and not c["State"]["Paused"])
    paused = sum(1 for c in cs if c["State"]["Paused"])
    cgv2 = not os.path.isdir("/sys/fs/cgroup/memory") and os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    extra = plugins.info_contributions(d.pm)
    sup = resources.support()  # what the cgroups can limit, as the create checks use it
    body = {
        "ID": d.state.get_meta("daemon-id") or "", "Containers": len(cs),
        "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(cs) - running - paused, "Images": len(d.images.all()),
        "Driver": d.graph.name, "DriverStatus": [list(x) for x in d.graph.status()],
        "Plugins": {"Volume": ["local", *d.docker_plugins.activated("VolumeDriver")], "Network": sorted(d.netdrivers), "Authorization": d.authz.names or None,
                    "Log": ["json-file"]},
        "MemoryLimit": sup.memory, "SwapLimit": sup.swap, "KernelMemory": False,
        "KernelMemoryTCP": False, "CpuCfsPeriod": sup.cpu_cfs, "CpuCfsQuota": sup.cpu_cfs,
        "CPUShares": sup.cpu_shares, "CPUSet": sup.cpuset, "PidsLimit": sup.pids,
        "IPv4Forwarding": True, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": d.config["log-level"] == "debug", "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": sup.oom_kill_disable, "NGoroutines": len(asyncio.all_tasks()),
        "SystemTime": rfc3339(),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if cgv2 else "1",
        "NEventsListener": len(d._event_subscribers), "KernelVersion": _kernel(),
        "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": _registry_config(d.config),
        "NCPU": os.cpu_count() or 1, "MemTotal": _meminfo(), "DockerRootDir": d.data_root,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(),
        "Labels": d.config["labels"], "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": d.runtimes.info(),
        "DefaultRuntime": d.execdriver.name, "ExecutionDriver": d.execdriver.name,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "", "SecurityOptions": _security_options(d),
        "Warnings": d.warnings or None,
        "DockyardDrivers": d.info_extra(),
        "DockyardExecDriverStatus": [list(x) for x in d.execdriver.status()],
        "DockyardPlugins": [name for name, _ in d.pm.list_name_plugin()],
        "DockyardExtra": extra,
    }
    return web.json_response(body)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /events``: with ``since`` or ``until``, the buffered events of that window first;
    without ``until``, then live events until the client goes."""
    d = _daemon(request)
    since = params.timestamp(request, "since")
    until = params.timestamp(request, "until")
    matches = event_matcher(params.filters(request))  # a bad filter: 400 before the stream
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    q: asyncio.Queue = asyncio.Queue()
    if since is not None or until is not None:
        lo, hi = since or 0.0, until if until is not None else float("inf")
        for ev in d._events:
            if lo <= ev["timeNano"] / 1e9 <= hi:
                q.put_nowait(ev)
    d._event_subscribers.add(q)
    try:
        while True:
            if q.empty():
                timeout = None if until is None else until - time.time()
                if timeout is not None and timeout <= 0:
                    break
                try:
                    ev = await race(request, asyncio.wait_for(q.get(), timeout))
                except asyncio.TimeoutError:
                    break
            else:
                ev = q.get_nowait()
            if until is not None and ev["timeNano"] / 1e9 > until:
                continue
            if since is not None and ev["timeNano"] / 1e9 < since:
                continue
            if matches(ev):
                await resp.write(json.dumps(ev).encode() + b"\n")
    finally:
        d._event_subscribers.discard(q)
    return resp


async def df(request: web.Request) -> web.Response:
    """``docker system df``: images, containers, volumes and their sizes (``type`` selects,
    from API 1.42 on)."""
    from ...usage import disk_usage
    d = _daemon(request)
    types = [] if params.api_below(request, "1.42") else request.query.getall("type", [])
    return web.json_response(await asyncio.to_thread(disk_usage, d, types))


async def options(request: web.Request) -> web.Response:
    """``OPTIONS`` on any path: 200, as dockerd (CORS preflight)."""
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    app.router.add_route("OPTIONS", "/{anyroute:.*}", options)
    route(app, "GET", "/_ping", ping)
    route(app, "HEAD", "/_ping", ping)
    route(app, "GET", "/version", version)
    route(app, "GET", "/info", info)
    route(app, "GET", "/events", events)
    route(app, "GET", "/system/df", df)


def _registry_config(cfg: Any) -> dict[str, Any]:
    """dockerd's ``RegistryConfig``: the mirrors and insecure registries in force (they change
    on a SIGHUP reload); loopback is always insecure."""
    mirrors = list(cfg["registry-mirrors"])
    cidrs, index = ["127.0.0.0/8"], {"docker.io": {"Name": "docker.io", "Mirrors": mirrors,
                                                   "Secure": True, "Official": True}}
    for entry in cfg["insecure-registries"]:
        entry = entry.split("://", 1)[-1].rstrip("/")
        if "/" in entry:
            cidrs.append(entry)
        else:
            index[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    return {"AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": mirrors}


def _security_options(d: Any) -> list[str]:
    """As dockerd lists them: the seccomp profile, user-namespace remapping, cgroup namespaces."""
    out = [] if any(b.module == "seccomp" for b in d.missing_bindings) else ["name=seccomp,profile=builtin"]
    if not d.id_map.is_identity:
        out.append("name=userns")
    out.append("name=cgroupns")
    return out
