"""``dockyard version``'s view, without click: the client's facts and the text ``version``
prints. The click command (:mod:`dockyard.cli.system`) and the fast path of a bare ``dockyard
version`` (:mod:`dockyard.cli.fast`) both print through here."""
from __future__ import annotations

import os
import sys
from .client import API_VERSION

TYPE_CHECKING = False  # not typing's: importing typing costs a few ms on every dockyard run
if TYPE_CHECKING:
    from typing import Any

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


def python_version() -> str:
    return "%d.%d.%d" % sys.version_info[:3]


def client_facts() -> dict[str, Any]:
    """The ``Client`` half of ``version`` (``--format`` sees it as ``.Client``)."""
    machine = os.uname().machine
    return {"Platform": {"Name": "dockyard"}, "Version": client_version(),
            "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
            "GoVersion": "python" + python_version(), "GitCommit": "",
            "Os": sys.platform, "Arch": _ARCH.get(machine, machine), "BuildTime": "",
            "Context": "default"}


def _kv(lines: list[tuple[str, str]], indent: str) -> list[str]:
    width = max((len(k) for k, _ in lines), default=0) + 2
    return [f"{indent}{(k + ':').ljust(width)}{v}" for k, v in lines]


def render(client: dict[str, Any], server: dict[str, Any] | None) -> str:
    """The text of ``dockyard version``: the client, and the server's components if it answered."""
    arch = client["Arch"]
    lines = ["Client:"]
    lines += _kv([("Version", client["Version"]), ("API version", API_VERSION),
                  ("Python version", python_version()),
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
    return "\n".join(lines) + "\n"
