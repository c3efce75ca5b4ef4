"""Query parameters as the Docker API sends them, parsed one way for every route group."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

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
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}: {raw!r} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"{name} must be a JSON object")
    return data


def canonical_keys(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``body`` with its keys matched to ``fields`` as Go's JSON decoder matches struct fields:
    an exact name first, else the same name in any case (docker-py sends ``detachKeys``)."""
    by_lower = {f.lower(): f for f in fields}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in fields else by_lower.get(key.lower(), key)
        if name not in out or key == name:
            out[name] = value
    return out
