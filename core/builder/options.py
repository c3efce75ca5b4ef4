"""The build options of ``POST /build``: every query parameter the Docker API defines is
applied or refused with a 400 naming it, and an unknown one is refused too.

Secrets (``RUN --mount=type=secret``) travel in the ``X-Dockyard-Build-Secrets`` header: the
base64url of a JSON object mapping each secret's id to the base64 of its value (what
``dockyard build --secret id=ID,src=FILE|env=VAR`` sends). The classic API has no field for
them (BuildKit passes them over its session); a header keeps them out of URLs and logs.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any, Callable, Mapping

from dockyard.hookspecs.errors import InvalidParameter

from ..schema import loads
from .commit import host_arch

SECRETS_HEADER = "X-Dockyard-Build-Secrets"
OUTPUT_ATTRS = ("type", "name")


@dataclasses.dataclass
class Options:
    tags: list[str] = dataclasses.field(default_factory=list)
    dockerfile: str = "Dockerfile"
    buildargs: dict[str, str | None] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    nocache: bool = False
    rm: bool = True
    forcerm: bool = False
    quiet: bool = False
    pull: bool = False
    remote: str = ""
    target: str = ""
    platform: str = ""
    network_mode: str = ""
    extra_hosts: list[str] = dataclasses.field(default_factory=list)
    shm_size: int = 0
    memory: int = 0
    memswap: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = ""
    ulimits: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    cache_from: list[str] = dataclasses.field(default_factory=list)
    build_id: str = ""
    secrets: dict[str, bytes] = dataclasses.field(default_factory=dict)
    auth: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _bool(v: str) -> bool:
    return v.lower() in ("1", "true", "yes", "on")


def _int(name: str, minimum: int | None = None) -> Callable[[str], int]:
    def conv(v: str) -> int:
        try:
            n = int(v) if v else 0
        except ValueError:
            raise InvalidParameter(f"invalid value for {name}: {v!r} is not an integer") from None
        if minimum is not None and n < minimum:
            raise InvalidParameter(f"invalid value for {name}: {n} (at least {minimum})")
        return n
    return conv


def _json_map(name: str, nullable: bool) -> Callable[[str], dict[str, Any]]:
    def conv(v: str) -> dict[str, Any]:
        data = loads(v, name) if v else {}
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(
                isinstance(x, str) or (nullable and x is None) for x in data.values()):
            raise InvalidParameter(f"error reading {name}: a JSON object of strings is expected")
        return data
    return conv


def _json_strings(name: str) -> Callable[[str], list[str]]:
    def conv(v: str) -> list[str]:
        data = loads(v, name) if v else []
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise InvalidParameter(f"error reading {name}: a JSON array of strings is expected")
        return data
    return conv


def _ulimits(v: str) -> list[dict[str, Any]]:
    data = loads(v, "ulimits") if v else []
    if data is None:
        return []
    if not isinstance(data, list):
        raise InvalidParameter("error reading ulimit settings: a JSON array is expected")
    out = []
    for u in data:
        if not isinstance(u, dict) or not isinstance(u.get("Name"), str) or \
                not all(isinstance(u.get(k), int) for k in ("Soft", "Hard")):
            raise InvalidParameter(f"error reading ulimit settings: {u!r} (Name, Soft, Hard)")
        if u["Soft"] > u["Hard"]:
            raise InvalidParameter(f"ulimit {u['Name']}: soft limit {u['Soft']} is above the hard "
                                   f"limit {u['Hard']}")
        out.append({"Name": u["Name"], "Soft": u["Soft"], "Hard": u["Hard"]})
    return out


def check_platform(value: str, what: str = "platform") -> None:
    """Refuse a platform this host cannot run (``os[/arch[/variant]]``)."""
    parts = value.lower().split("/")
    os_, arch = ("linux", parts[0]) if len(parts) == 1 and parts[0] != "linux" else \
        (parts[0], parts[1] if len(parts) > 1 else host_arch())
    if os_ != "linux" or arch != host_arch() or len(parts) > 3:
        raise InvalidParameter(f"{what} {value!r} is not supported by this daemon: it runs "
                               f"linux/{host_arch()} containers only")


def _refuse(name: str, why: str) -> Callable[[str], None]:
    def conv(v: str) -> None:
        if v and v.lower() not in ("0", "false", "default"):
            raise InvalidParameter(f"{name}: {why}")
    return conv


def _isolation(v: str) -> None:
    if v not in ("", "default"):
        raise InvalidParameter(f'Unsupported isolation: "{v}"')


def _version(v: str) -> None:
    if v not in ("", "1"):
        raise InvalidParameter(f"builder version {v!r} is not supported: this daemon serves the "
                               "classic build API (version 1), which builds the same Dockerfiles")


def _outputs(v: str) -> list[str]:
    """``outputs``: only the image (``moby``) exporter, ``name=`` adding tags."""
    data = loads(v, "outputs") if v else []
    names: list[str] = []
    for o in data or []:
        if not isinstance(o, dict) or o.get("Type") not in ("moby", "image"):
            raise InvalidParameter(f"outputs: only the image exporter (Type moby) is supported, got {o!r}")
        attrs = o.get("Attrs") or {}
        bad = sorted(k for k in attrs if k not in OUTPUT_ATTRS)
        if bad or attrs.get("type", "image") not in ("image", "moby"):
            raise InvalidParameter(f"outputs: attribute(s) {', '.join(bad) or 'type'} not supported "
                                   f"(supported: {', '.join(OUTPUT_ATTRS)})")
        names += [n.strip() for n in str(attrs.get("name", "")).split(",") if n.strip()]
    return names


def _network_mode(v: str) -> str:
    if v.startswith("container:"):
        raise InvalidParameter("networkmode: container:<name> is not supported for builds")
    return "" if v in ("", "default") else v


# parameter -> (Options field or None, converter)
PARAMS: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "dockerfile": ("dockerfile", lambda v: v or "Dockerfile"),
    "q": ("quiet", _bool), "nocache": ("nocache", _bool), "forcerm": ("forcerm", _bool),
    "pull": ("pull", _bool), "remote": ("remote", str), "target": ("target", str),
    "buildargs": ("buildargs", _json_map("build args", nullable=True)),
    "labels": ("labels", _json_map("labels", nullable=False)),
    "cachefrom": ("cache_from", _json_strings("cachefrom")),
    "networkmode": ("network_mode", _network_mode),
    "shmsize": ("shm_size", _int("shmsize", 0)), "memory": ("memory", _int("memory", 0)),
    "memswap": ("memswap", _int("memswap", -1)), "cpushares": ("cpu_shares", _int("cpushares", 0)),
    "cpuquota": ("cpu_quota", _int("cpuquota", 0)), "cpuperiod": ("cpu_period", _int("cpuperiod", 0)),
    "cpusetcpus": ("cpuset_cpus", str), "cpusetmems": ("cpuset_mems", str),
    "cgroupparent": ("cgroup_parent", str), "ulimits": ("ulimits", _ulimits),
    "buildid": ("build_id", str),
    "platform": (None, lambda v: check_platform(v) if v else None),
    "isolation": (None, _isolation),
    "squash": (None, _refuse("squash", "squash is only supported with experimental mode")),
    "session": (None, _refuse("session", "BuildKit sessions are not supported by the classic "
                              "build API; secrets go in the X-Dockyard-Build-Secrets header")),
    "version": (None, _version),
}


def from_query(query: Mapping[str, str], getall: Callable[[str], list[str]],
               headers: Mapping[str, str]) -> Options:
    """The options of one ``POST /build`` request (InvalidParameter naming a bad one)."""
    unknown = sorted(k for k in query if k not in PARAMS and k not in ("t", "extrahosts", "rm",
                                                                       "outputs", "securityopt"))
    if unknown:
        raise InvalidParameter(f"unknown build option(s): {', '.join(unknown)}")
    opts = Options()
    for name, (field, conv) in PARAMS.items():
        if name in query:
            value = conv(query[name])
            if field is not None:
                setattr(opts, field, value)
    if getall("securityopt"):
        raise InvalidParameter("securityopt: The daemon on this platform does not support setting "
                               "security options on build")
    opts.rm = _bool(query["rm"]) if query.get("rm") else True
    opts.tags = list(getall("t")) + _outputs(query.get("outputs", ""))
    opts.extra_hosts = [h for v in getall("extrahosts") for h in v.split(",") if h]
    opts.secrets = secrets_header(headers.get(SECRETS_HEADER, ""))
    opts.auth = registry_config(headers.get("X-Registry-Config", ""))
    return opts


def secrets_header(raw: str) -> dict[str, bytes]:
    if not raw.strip():
        return {}
    try:
        data = loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), SECRETS_HEADER)
        if not isinstance(data, dict):
            raise ValueError
        return {str(k): base64.b64decode(v, validate=True) for k, v in data.items()}
    except (InvalidParameter, ValueError, TypeError, binascii.Error):
        raise InvalidParameter(f"invalid {SECRETS_HEADER} header: base64url of a JSON object "
                               "mapping secret ids to base64 values is expected") from None


def registry_config(raw: str) -> dict[str, dict[str, Any]]:
    """``X-Registry-Config``: credentials per registry (decode errors ignored, as dockerd)."""
    if not raw.strip():
        return {}
    try:
        data = loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), "X-Registry-Config")
    except (InvalidParameter, ValueError, binascii.Error):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}
