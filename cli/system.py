"""``dockyard version`` and ``dockyard info``."""
from __future__ import annotations

import os
import platform
import sys
from typing import Any

import click

from .client import API_VERSION, ConnectError, DaemonError

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def client_version() -> str:
    """The installed distribution's version, read cheaply from its dist-info directory name."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("dockyard-") and name.endswith(".dist-info"):
                return name[len("dockyard-"):-len(".dist-info")]
    try:
        from importlib.metadata import version
        return version("dockyard")
    except Exception:
        return "unknown"


def _kv(lines: list[tuple[str, str]], indent: str) -> list[str]:
    width = max((len(k) for k, _ in lines), default=0) + 2
    return [f"{indent}{(k + ':').ljust(width)}{v}" for k, v in lines]


@click.command(short_help="Show the dockyard version information")
@click.option("-f", "--format", "fmt", help="Format output using a Go template")
@click.pass_obj
def version(opts: Any, fmt: str | None) -> None:
    """Show the dockyard version information."""
    arch = _ARCH.get(platform.machine(), platform.machine())
    client = {"Platform": {"Name": "dockyard"}, "Version": client_version(),
              "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
              "GoVersion": "python" + platform.python_version(), "GitCommit": "",
              "Os": sys.platform, "Arch": arch, "BuildTime": "", "Context": "default"}
    server: Any = None
    err: Exception | None = None
    try:
        server = opts.client.get_json("/version")
    except (ConnectError, DaemonError) as e:
        err = e
    if fmt:
        from .fmt import render_one
        sys.stdout.write(render_one(fmt, {"Client": client, "Server": server}) + "\n")
    else:
        lines = ["Client:"]
        lines += _kv([("Version", client["Version"]), ("API version", API_VERSION),
                      ("Python version", platform.python_version()),
                      ("OS/Arch", f"{client['Os']}/{arch}"), ("Context", "default")], " ")
        if server is not None:
            lines.append("")
            pname = (server.get("Platform") or {}).get("Name") or ""
            lines.append("Server:" + (f" {pname}" if pname else ""))
            comps = server.get("Components") or [{
                "Name": "Engine", "Version": server.get("Version", ""),
                "Details": {k: server.get(k) for k in ("ApiVersion", "MinAPIVersion", "GitCommit",
                                                        "GoVersion", "Os", "Arch", "KernelVersion",
                                                        "BuildTime") if server.get(k)}}]
            for comp in comps:
                lines.append(f" {comp.get('Name', '')}:")
                details = dict(comp.get("Details") or {})
                kv = [("Version", comp.get("Version", ""))]
                if comp.get("Name") == "Engine":
                    api = details.pop("ApiVersion", server.get("ApiVersion", ""))
                    minv = details.pop("MinAPIVersion", server.get("MinAPIVersion"))
                    kv.append(("API version", f"{api} (minimum version {minv})" if minv else api))
                    for key, label in (("GoVersion", "Go version"), ("GitCommit", "Git commit"),
                                       ("BuildTime", "Built")):
                        if key in details:
                            kv.append((label, str(details.pop(key))))
                    os_, arch_ = details.pop("Os", server.get("Os")), details.pop("Arch", server.get("Arch"))
                    if os_ or arch_:
                        kv.append(("OS/Arch", f"{os_}/{arch_}"))
                    details.pop("KernelVersion", None)
                    if "Experimental" in details:
                        kv.append(("Experimental", str(details.pop("Experimental")).lower()))
                for k in sorted(details):
                    kv.append((k, str(details[k])))
                lines += _kv([(k, v) for k, v in kv if v not in ("", "None")], "  ")
        sys.stdout.write("\n".join(lines) + "\n")
    if err is not None:
        if isinstance(err, DaemonError):
            raise err
        print(str(err), file=sys.stderr)
        sys.exit(1)


def _drivers_section(info: dict[str, Any]) -> list[str]:
    out = []
    drivers = info.get("DockyardDrivers") or {}
    if drivers:
        out.append(" Dockyard Drivers:")
        for kind in sorted(drivers, key=lambda k: (["graph", "exec", "network", "registry"] + [k]).index(k)):
            d = drivers[kind] or {}
            active = d.get("active")
            installed = list(d.get("installed") or [])
            shown = [f"{n} (active)" if n == active else n for n in installed]
            if active and active not in installed:
                shown.insert(0, f"{active} (active)")
            out.append(f"  {kind}: {', '.join(shown) if shown else '(none)'}")
            for k, v in d.items():
                if k not in ("active", "installed") and v not in (None, "", [], {}):
                    out.append(f"   {k}: {v if not isinstance(v, (list, dict)) else _compact(v)}")
    return out


def _compact(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return ", ".join(f"{k}={x}" for k, x in v.items())


@click.command(short_help="Display system-wide information")
@click.option("-f", "--format", "fmt", help="Format output using a Go template")
@click.pass_obj
def info(opts: Any, fmt: str | None) -> None:
    """Display system-wide information."""
    data = opts.client.get_json("/info")
    if fmt:
        from .fmt import render_one
        sys.stdout.write(render_one(fmt, data) + "\n")
        return
    from .fmt import bytes_size
    g = data.get
    L = ["Client:", f" Version:    {client_version()}", " Context:    default",
         f" Debug Mode: {'true' if opts.log_level == 'debug' else 'false'}", "", "Server:"]
    L.append(f" Containers: {g('Containers', 0)}")
    L.append(f"  Running: {g('ContainersRunning', 0)}")
    L.append(f"  Paused: {g('ContainersPaused', 0)}")
    L.append(f"  Stopped: {g('ContainersStopped', 0)}")
    L.append(f" Images: {g('Images', 0)}")
    if g("ServerVersion"):
        L.append(f" Server Version: {g('ServerVersion')}")
    drivers = g("DockyardDrivers") or {}
    storage = g("Driver") or (drivers.get("graph") or {}).get("active") or ""
    L.append(f" Storage Driver: {storage}")
    for pair in g("DriverStatus") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            L.append(f"  {pair[0]}: {pair[1]}")
    execd = g("ExecutionDriver") or (drivers.get("exec") or {}).get("active")
    if execd:
        L.append(f" Execution Driver: {execd}")
    if g("LoggingDriver"):
        L.append(f" Logging Driver: {g('LoggingDriver')}")
    if g("CgroupDriver"):
        L.append(f" Cgroup Driver: {g('CgroupDriver')}")
    if g("CgroupVersion"):
        L.append(f" Cgroup Version: {g('CgroupVersion')}")
    if g("Runtimes"):  # as the docker CLI: names, then the default
        L += [f" Runtimes: {' '.join(sorted(g('Runtimes')))}", f" Default Runtime: {g('DefaultRuntime')}"]
    plugins = g("Plugins") or {}
    L.append(" Plugins:")
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            L.append(f"  {kind}: {' '.join(plugins[kind])}")
    for kind, v in plugins.items():
        if kind not in ("Volume", "Network", "Authorization", "Log") and v:
            L.append(f"  {kind}: {_compact(v) if isinstance(v, (list, dict)) else v}")
    L += _drivers_section(data)
    secopts = g("SecurityOptions") or []
    if secopts:  # as the docker CLI: "name=seccomp,profile=builtin" -> "seccomp" + "Profile: builtin"
        L.append(" Security Options:")
        for opt in secopts:
            fields = dict(kv.split("=", 1) for kv in opt.split(",") if "=" in kv)
            L.append(f"  {fields.pop('name', opt)}")
            L += [f"   {k.capitalize()}: {v}" for k, v in fields.items()]
    for key, label in (("KernelVersion", "Kernel Version"), ("OperatingSystem", "Operating System"),
                       ("OSType", "OSType"), ("Architecture", "Architecture"), ("NCPU", "CPUs")):
        if g(key) not in (None, ""):
            L.append(f" {label}: {g(key)}")
    if g("MemTotal"):
        L.append(f" Total Memory: {bytes_size(g('MemTotal'))}")
    for key, label in (("Name", "Name"), ("ID", "ID"), ("DockerRootDir", "Dockyard Root Dir")):
        if g(key):
            L.append(f" {label}: {g(key)}")
    L.append(f" Debug Mode: {str(bool(g('Debug'))).lower()}")
    if g("Experimental") is not None:
        L.append(f" Experimental: {str(bool(g('Experimental'))).lower()}")
    reg = g("RegistryConfig") or {}
    insecure = reg.get("InsecureRegistryCIDRs") or []
    insecure += [k for k, v in (reg.get("IndexConfigs") or {}).items() if not v.get("Secure", True)]
    if insecure:
        L.append(" Insecure Registries:")
        L += [f"  {x}" for x in insecure]
    if g("LiveRestoreEnabled") is not None:
        L.append(f" Live Restore Enabled: {str(bool(g('LiveRestoreEnabled'))).lower()}")
    sys.stdout.write("\n".join(L) + "\n")
    for w in g("Warnings") or []:
        print(w, file=sys.stderr)


# -- system df / events -------------------------------------------------------------------------
def _df_rows(data: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    """``(type, total, active, size, reclaimable)`` as ``docker system df`` counts them."""
    images = data.get("Images") or []
    active_images = [i for i in images if (i.get("Containers") or 0) > 0]
    img_size = data.get("LayersSize") or 0
    img_used = sum((i.get("Size") or 0) - max(i.get("SharedSize") or 0, 0) for i in active_images)
    ctrs = data.get("Containers") or []
    running = [c for c in ctrs if c.get("State") in ("running", "paused", "restarting")]
    c_size = sum(c.get("SizeRw") or 0 for c in ctrs)
    c_recl = sum(c.get("SizeRw") or 0 for c in ctrs if c not in running)
    vols = data.get("Volumes") or []
    used_vols = [v for v in vols if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0]
    v_size = sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in vols)
    v_recl = v_size - sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in used_vols)
    return [("Images", len(images), len(active_images), img_size, max(img_size - img_used, 0)),
            ("Containers", len(ctrs), len(running), c_size, c_recl),
            ("Local Volumes", len(vols), len(used_vols), v_size, v_recl),
            ("Build Cache", 0, 0, 0, 0)]


@click.command(short_help="Show docker disk usage")
@click.option("--format", "fmt", help="Format output using a Go template")
@click.pass_obj
def df(opts: Any, fmt: str | None) -> None:
    """Show dockyard disk usage: images, containers, local volumes."""
    from .fmt import human_size, render_list
    data = opts.client.get_json("/system/df")
    rows = []
    for typ, total, active, size, recl in _df_rows(data):
        pct = f" ({recl * 100 // size}%)" if size and typ != "Containers" else ""
        rows.append({"Type": typ, "TotalCount": total, "Active": active, "Size": human_size(size),
                     "Reclaimable": human_size(recl) + pct})
    render_list(fmt or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                rows, {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                       "Reclaimable": "RECLAIMABLE"})


def _when(value: str | None) -> str | None:
    """``--since``/``--until``: a duration before now (``10m``, ``1h30m``, ``0s``), unix
    seconds or an RFC 3339 time, sent as the daemon takes it."""
    import re
    import time
    if not value:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", value)
    if parts and "".join(n + u for n, u in parts) == value:
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        return f"{time.time() - sum(float(n) * scale[u] for n, u in parts):.9f}"
    return value


@click.command(short_help="Get real time events from the server")
@click.option("--since", help="Show all events created since timestamp")
@click.option("--until", help="Stream events until this timestamp")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", help="Format output using a Go template")
@click.pass_obj
def events(opts: Any, since: str | None, until: str | None, filters: tuple[str, ...],
           fmt: str | None) -> None:
    """Get real time events from the server."""
    import datetime
    import json
    from .fmt import render_one
    flt: dict[str, list[str]] = {}
    for f in filters:
        k, sep, v = f.partition("=")
        if not sep:
            raise click.BadParameter(f"bad format of filter (expected name=value): {f}")
        flt.setdefault(k, []).append(v)
    params = {k: v for k, v in (("since", _when(since)), ("until", _when(until))) if v}
    if flt:
        params["filters"] = json.dumps(flt)
    resp = opts.client.request("GET", "/events", params)
    try:
        for line in resp.iter_lines():
            if not line.strip():
                continue
            ev = json.loads(line)
            if fmt:
                print(render_one("{{json .}}" if fmt == "json" else fmt, ev), flush=True)
                continue
            ts = datetime.datetime.fromtimestamp(ev.get("timeNano", 0) / 1e9, datetime.timezone.utc)
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            detail = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
            print(f"{ts.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z {ev['Type']} {ev['Action']} "
                  f"{(ev.get('Actor') or {}).get('ID', '')}" + (f" ({detail})" if detail else ""),
                  flush=True)
    except KeyboardInterrupt:
        pass


@click.group(name="system", short_help="Manage dockyard")
def system_group() -> None:
    """Manage dockyard."""


system_group.add_command(df, "df")
system_group.add_command(events, "events")
system_group.add_command(info, "info")
