"""Docker's ``filters``: one implementation for every endpoint that takes them.

Pure (no daemon, no I/O): the endpoints describe their objects as small views and this module
decides, as dockerd does. The references are moby's ``api/types/filters`` (``Args`` and its
match rules), ``api/types/time`` (``until`` as a duration or a timestamp), ``daemon/list.go``
(containers), ``daemon/images`` (images and image prune), ``daemon/network/filter.go``,
``volume/service`` and ``daemon/events/filter.go``. The per-endpoint rules live in
:mod:`dockyard.core.filtersets`; the generic machinery is here.
"""
from __future__ import annotations

import datetime
import json
import re
import time
from typing import Any, Iterable, Mapping

from dockyard.hookspecs.errors import InvalidParameter

TRUE, FALSE = ("1", "true"), ("0", "false")


def invalid(key: str, values: Iterable[str] | None = None) -> InvalidParameter:
    """dockerd's words: ``invalid filter 'key'`` or ``invalid filter 'key=[v1 v2]'``."""
    if values is None:
        return InvalidParameter(f"invalid filter '{key}'")
    return InvalidParameter(f"invalid filter '{key}=[{' '.join(values)}]'")


class Args:
    """A filter set, as moby's ``filters.Args``: each key holds a set of values."""

    def __init__(self, fields: Mapping[str, Iterable[str]] | None = None) -> None:
        self._fields: dict[str, dict[str, None]] = {}
        for key, values in (fields or {}).items():
            self._fields[key] = dict.fromkeys(values)

    @classmethod
    def from_json(cls, raw: str | None) -> "Args":
        """Parse the ``filters`` query parameter: ``{"key": {"value": true}}`` (what clients
        send since API 1.22) or the older ``{"key": ["value"]}``; both may mix keys. A value
        mapped to ``false`` is not a value (the key stays present)."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
        return cls.from_value(data)

    @classmethod
    def from_value(cls, data: Any) -> "Args":
        """:meth:`from_json` of an already decoded value."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidParameter("invalid filters: expected a JSON object of filter keys")
        out = cls()
        for key, values in data.items():
            if isinstance(values, dict):
                if not all(isinstance(on, bool) for on in values.values()):
                    raise InvalidParameter(f"invalid filter '{key}': values must map to true or false")
                out._fields[key] = dict.fromkeys(v for v, on in values.items() if on)
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                out._fields[key] = dict.fromkeys(values)
            else:
                raise InvalidParameter(f"invalid filter '{key}': expected a list of strings "
                                       "or an object of string to boolean")
        return out

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Args({ {k: list(v) for k, v in self._fields.items()} })"

    def keys(self) -> list[str]:
        return sorted(self._fields)

    def get(self, key: str) -> list[str]:
        """The values of ``key`` (sorted, so errors name the same one every time)."""
        return sorted(self._fields.get(key, ()))

    def contains(self, key: str) -> bool:
        return key in self._fields

    def add(self, key: str, value: str) -> None:
        self._fields.setdefault(key, {})[value] = None

    def validate(self, accepted: Iterable[str]) -> None:
        """400 ``invalid filter 'key'`` for the first key not in ``accepted``."""
        allowed = set(accepted)
        for key in self.keys():
            if key not in allowed:
                raise invalid(key)

    def exact_match(self, key: str, source: str) -> bool:
        """True when ``key`` is not filtered on, or ``source`` is one of its values."""
        values = self._fields.get(key)
        return not values or source in values

    def fuzzy_match(self, key: str, source: str) -> bool:
        """``exact_match``, or ``source`` starts with one of the values."""
        if self.exact_match(key, source):
            return True
        return any(source.startswith(v) for v in self._fields[key])

    def match(self, key: str, source: str) -> bool:
        """``exact_match``, or one of the values, as a regular expression, is found in
        ``source`` (unanchored, as Go's ``regexp.MatchString``; a bad expression matches
        nothing)."""
        if self.exact_match(key, source):
            return True
        for pattern in self._fields[key]:
            try:
                if re.search(pattern, source):
                    return True
            except re.error:
                continue
        return False

    def match_kv_list(self, key: str, labels: Mapping[str, str] | None) -> bool:
        """Every value of ``key`` (``name`` or ``name=value``) is among ``labels``; true when
        ``key`` has no values."""
        values = self._fields.get(key)
        if not values:
            return True
        if not labels:
            return False
        for want in values:
            name, sep, value = want.partition("=")
            if name not in labels or (sep and labels[name] != value):
                return False
        return True

    def get_bool(self, key: str, default: bool) -> bool:
        """A boolean filter (``1``/``true``/``0``/``false``); 400 when empty, not boolean or
        both true and false."""
        if key not in self._fields:
            return default
        values = self._fields[key]
        is_true = any(v in values for v in TRUE)
        is_false = any(v in values for v in FALSE)
        if is_true == is_false:
            raise invalid(key, self.get(key)) if values else invalid(key)
        return is_true

    def single(self, key: str) -> str | None:
        """The one value of ``key`` (None if absent); 400 when given more than once."""
        values = self.get(key)
        if len(values) > 1:
            raise InvalidParameter(f"more than one {key} filter specified")
        return values[0] if values else None


def labels_match(args: Args, labels: Mapping[str, str] | None) -> bool:
    """``label`` filters all hold and, when ``label!`` is given, not all of them hold (moby's
    ``matchLabels``: ``label!=a=1`` keeps objects labelled ``a=1``)."""
    if not args.match_kv_list("label", labels):
        return False
    if args.contains("label!") and args.match_kv_list("label!", labels):
        return False
    return True


# -- time: ``until`` as a duration (``24h``) or a timestamp ----------------------------------------
_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(\.\d+)?)?)?)?"
                   r"([zZ]|[+-]\d\d:\d\d)?")
_UNIX = re.compile(r"(\+?\d+)(?:\.(\d*))?")


def duration(value: str) -> float | None:
    """A Go duration (``24h``, ``1h30m``, ``-10m``, ``1.5s``) in seconds; None if it is not one."""
    if not _DURATION.fullmatch(value):
        return None
    total = sum(float(n) * _UNIT[u] for n, u in _DURATION_PART.findall(value))
    return -total if value.startswith("-") else total


def parse_time(value: str, now: float | None = None) -> float:
    """Unix seconds for what ``docker ... --filter until=`` takes (moby's ``timestamp.Parse``):
    a duration before ``now``; an RFC 3339 date or time, in the local zone when it names none;
    unix seconds with an optional fraction. InvalidParameter otherwise."""
    value = value.strip()
    if not value:
        raise InvalidParameter("failed to parse value as time or duration: value is empty")
    d = duration(value) if value != "0" else None
    if d is not None:
        return (time.time() if now is None else now) - d
    m = _DATE.fullmatch(value)
    if m:
        try:
            return _date_time(m)
        except ValueError:
            pass
    elif "-" not in value:  # dockerd: a dash means a date it could not parse
        u = _UNIX.fullmatch(value)
        if u:
            return int(u.group(1)) + float("0." + (u.group(2) or "0")[:9])
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')


def _date_time(m: re.Match[str]) -> float:
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    frac = float("0" + m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    tz = None
    if zone in ("z", "Z"):
        tz = datetime.timezone.utc
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    dt = datetime.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    return dt.timestamp() + frac  # a naive time is the local zone's, as dockerd's


def until(args: Args, now: float | None = None) -> float | None:
    """The prune ``until`` cut-off (one value at most), or None."""
    value = args.single("until")
    if value is None:
        return None
    try:
        return parse_time(value, now)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid value for 'until' filter: {exc.message}") from None


# -- globs: the image ``reference`` filter (Go's ``path.Match``) -------------------------------------
def glob(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` pattern as a regular expression: ``*`` and ``?`` never match ``/``,
    ``[a-z]``/``[^a-z]`` classes, ``\\`` escapes. 400 ``syntax error in pattern`` if malformed."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "\\":
            if i + 1 >= n:
                raise _bad_pattern()
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif ch == "[":
            cls, i = _glob_class(pattern, i + 1)
            out.append(cls)
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _bad_pattern() -> InvalidParameter:
    return InvalidParameter("syntax error in pattern")


def _glob_class(p: str, i: int) -> tuple[str, int]:
    negate = i < len(p) and p[i] == "^"
    i += negate
    alts: list[str] = []
    while True:
        if i < len(p) and p[i] == "]" and alts:
            i += 1
            break
        lo, i = _glob_char(p, i)
        hi = lo
        if p[i] == "-":
            hi, i = _glob_char(p, i + 1)
        alts.append(f"[{re.escape(lo)}-{re.escape(hi)}]" if lo <= hi else "(?!)")
    body = "|".join(alts)
    return (f"(?!{body})." if negate else f"(?:{body})"), i


def _glob_char(p: str, i: int) -> tuple[str, int]:
    if i >= len(p) or p[i] in "-]":
        raise _bad_pattern()
    if p[i] == "\\":
        i += 1
        if i >= len(p):
            raise _bad_pattern()
    if i + 1 >= len(p):
        raise _bad_pattern()  # the class is never closed
    return p[i], i + 1


# -- ports: ``publish``/``expose`` of ``docker ps`` ----------------------------------------------------
def port_set(key: str, value: str) -> set[str]:
    """``80``, ``80/udp``, ``8000-8080/tcp`` as a set of ``port/proto`` (tcp by default)."""
    if ":" in value:
        raise InvalidParameter(f"filter for '{key}' should not contain ':': {value}")
    ports, _, proto = value.partition("/")
    proto = proto.lower() or "tcp"
    start, sep, end = ports.partition("-")
    try:
        lo, hi = int(start), int(end) if sep else int(start)
        if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or hi < lo or not start.isdigit():
            raise ValueError
    except ValueError:
        raise InvalidParameter(f"error while looking up for {key} {value}: invalid port "
                               f"range {ports!r}") from None
    return {f"{p}/{proto}" for p in range(lo, hi + 1)}
