"""Query parameters as the Docker API sends them, parsed one way for every route group."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import InvalidParameter

from ..schema import loads
from ..filters import Args, parse_time

TRUE = ("1", "true", "yes", "on")


def version_tuple(v: str) -> tuple[int, int]:
    """``"1.45"`` → ``(1, 45)``."""
    a, b = v.split(".")
    return int(a), int(b)


def api_below(request: web.Request, version: str) -> bool:
    """Whether the request speaks an API version older than ``version``."""
    return version_tuple(request["api_version"]) < version_tuple(version)


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


def filters(request: web.Request) -> Args:
    """The ``filters`` parameter (both of Docker's encodings), as :class:`Args`."""
    raw = request.query.get("filters")
    return Args.from_value(loads(raw, "filters") if raw else None)


def timestamp(request: web.Request, name: str) -> float | None:
    """A time parameter (``since``/``until``): unix seconds (fractions allowed, as the docker
    CLI sends ``1700000000.123456789``), RFC 3339 or a duration before now; ``None`` when
    absent."""
    v = request.query.get(name)
    if not v:
        return None
    try:
        return parse_time(v)
    except InvalidParameter:
        raise InvalidParameter(f"invalid value for '{name}': {v!r} is not a unix time, an RFC 3339 "
                               "time or a duration") from None


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
