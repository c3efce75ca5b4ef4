"""Query parameters as the Docker API sends them, parsed one way for every route group."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ..schema import loads

TRUE = ("1", "true", "yes", "on")


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean parameter (``1``/``true``/``yes``/``on``, any case)."""
    v = request.query.get(name)
    if v is None:
        return default
    return v.lower() in TRUE


def integer(request: web.Request, name: str, default: int | None = None) -> int | None:
    """An integer parameter; InvalidParameter (400) naming it if it is not one."""
    v = request.query.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {v!r}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """The ``filters`` parameter: a JSON object of ``{key: [values]}`` or, as older clients send
    it, ``{key: {value: true}}``."""
    data = json_object(request, "filters")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            raise InvalidParameter(f"invalid filter {k!r}: expected a list of values")
    return out


def timestamp(request: web.Request, name: str) -> float | None:
    """A time parameter (``since``/``until``): unix seconds (fractions allowed, as the docker
    CLI sends ``1700000000.123456789``) or RFC 3339; ``None`` when absent."""
    v = request.query.get(name)
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        pass
    import datetime
    import re
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", v)
    if not m:
        raise InvalidParameter(f"invalid {name} value {v!r}: a unix time or an RFC 3339 time")
    dt = datetime.datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    return dt.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


def json_object(request: web.Request, name: str) -> dict[str, Any]:
    """A query parameter holding a JSON object (``filters``, ``buildargs``, ``labels``); ``{}``
    when absent; InvalidParameter when it is not JSON or not an object."""
    raw = request.query.get(name)
    if not raw:
        return {}
    data = loads(raw, name)
    if not isinstance(data, dict):
        raise InvalidParameter(f"{name} must be a JSON object")
    return data
