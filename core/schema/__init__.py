"""Request bodies checked once, at the edge: one typed description per JSON body.

:func:`decode` parses a body and checks it against its description in one pass of msgspec's C
decoder (types, ranges, enums), then refuses the fields this engine knows but does not implement
(:mod:`.unsupported`). Keys are matched as dockerd's Go decoder matches them: exactly, else in
any case, and unknown ones are ignored (:mod:`.anycase`: only such a body is parsed twice).
Services get plain dicts and lists whose values they can trust: a key is absent, ``null``, or of
its type.
A wrong field is an :class:`InvalidParameter` (400) naming its path::

    HostConfig.Privileged: expected a boolean, got a string

:func:`loads` is the one way to parse other JSON that arrives with a request (query parameters,
headers, a seccomp profile): malformed or too deeply nested input is a 400, never a
``RecursionError``.
"""
from __future__ import annotations

import re
from typing import Any

import msgspec

from dockyard.hookspecs.errors import InvalidParameter

from . import anycase, unsupported
from .bodies import (AuthConfig, ExecCreate, ExecStart, NetworkConnect, NetworkCreate,
                     NetworkDisconnect, VolumeCreate)
from .containers import CommitConfig, ContainerCreate, ContainerUpdate

__all__ = ["AuthConfig", "CommitConfig", "ContainerCreate", "ContainerUpdate", "ExecCreate",
           "ExecStart", "NetworkConnect", "NetworkCreate", "NetworkDisconnect", "VolumeCreate",
           "MAX_DEPTH", "decode", "loads"]

#: deepest nesting :func:`loads` accepts (the deepest real body, a seccomp profile, has 6)
MAX_DEPTH = 100
TOO_DEEP = f"request body too deeply nested (more than {MAX_DEPTH} levels)"

_decoders: dict[type, msgspec.json.Decoder] = {}
_ANY = msgspec.json.Decoder()
# a JSON \u0000 escape, not preceded by an escaped backslash
_NUL = re.compile(rb'(?<!\\)(?:\\\\)*\\u0000')


def decode(raw: bytes, body_type: type) -> dict[str, Any]:
    """``raw`` checked against ``body_type``, as plain data (absent fields have no key)."""
    dec = _decoders.get(body_type)
    if dec is None:
        dec = _decoders[body_type] = msgspec.json.Decoder(body_type)
    if b"\\u0000" in raw and _NUL.search(raw):
        raise InvalidParameter("invalid JSON: a string holds a NUL character (\\u0000)")
    try:
        try:
            value = dec.decode(raw)
        except msgspec.ValidationError as exc:
            if not anycase.is_unknown_key(exc):
                raise
            # a key in another case, or one no field has: parsed again, keys as Go matches them
            value = dec.decode(msgspec.json.encode(anycase.canonical(
                _ANY.decode(raw), anycase.type_info(body_type))))
    except msgspec.ValidationError as exc:
        raise InvalidParameter(describe(exc, body_type)) from None
    except msgspec.DecodeError as exc:
        raise InvalidParameter(f"invalid JSON: {_plain(str(exc))}") from None
    except RecursionError:
        raise InvalidParameter(TOO_DEEP) from None
    data = msgspec.to_builtins(value)
    unsupported.check(data, body_type)
    return data


def loads(raw: bytes | str, what: str = "request body") -> Any:
    """Any JSON value (for input that has no description); InvalidParameter naming ``what``
    if it is not JSON or nests deeper than :data:`MAX_DEPTH`."""
    try:
        value = _ANY.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidParameter(f"invalid JSON in {what}: {_plain(str(exc))}") from None
    except RecursionError:
        raise InvalidParameter(f"{what} too deeply nested (more than {MAX_DEPTH} levels)") from None
    if isinstance(value, (list, dict)) and _depth(value) > MAX_DEPTH:
        raise InvalidParameter(f"{what} too deeply nested (more than {MAX_DEPTH} levels)")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a decoded value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if d > MAX_DEPTH:
                return d
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, d + 1) for c in children if isinstance(c, (list, dict)))
    return deepest


def _plain(msg: str) -> str:
    return msg.replace("JSON is malformed: ", "").replace("Input data was truncated",
                                                          "unexpected end of input")


# -- error messages ----------------------------------------------------------------------------
_KINDS = {"bool": "a boolean", "int": "an integer", "str": "a string", "array": "an array",
          "object": "an object", "float": "a number", "null": "null"}
_WANT = re.compile(r"Expected `([^`]*)`(?:, got `([^`]*)`)?(.*)")
_ENUM = re.compile(r"Invalid enum value (.*)")
_STEP = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


def describe(exc: msgspec.ValidationError, body_type: type) -> str:
    """``HostConfig.Privileged: expected a boolean, got a string`` from msgspec's
    ``Expected `bool | null`, got `str` - at `$.HostConfig.Privileged```."""
    text, _, where = str(exc).partition(" - at `$")
    path = where.rstrip("`").lstrip(".") or "request body"
    m = _WANT.fullmatch(text)
    if m:
        kinds = [k for k in m.group(1).split(" | ") if k != "null"] or ["null"]
        want = " or ".join(_KINDS.get(k, k) for k in kinds)
        got = f", got {_KINDS.get(m.group(2), m.group(2))}" if m.group(2) else ""
        return f"{path}: expected {want}{m.group(3)}{got}"
    m = _ENUM.fullmatch(text)
    if m:
        choices = _choices(body_type, where.rstrip("`"))
        valid = f" (valid: {', '.join(repr(c) for c in choices)})" if choices else ""
        return f"{path}: invalid value {m.group(1)}{valid}"
    if text == "Number out of range":
        return f"{path}: number out of range"
    return f"{path}: {text[:1].lower()}{text[1:]}"


def _choices(body_type: type, where: str) -> tuple[Any, ...]:
    """The values a Literal field at ``where`` (msgspec's path) allows."""
    info: Any = msgspec.inspect.type_info(body_type)
    for name, index in _STEP.findall(where):
        info = _step(info, name, index)
        if info is None:
            return ()
    for member in getattr(info, "types", (info,)):
        if isinstance(member, msgspec.inspect.LiteralType):
            return member.values
    return ()


def _step(info: Any, name: str, index: str) -> Any:
    for member in getattr(info, "types", (info,)):
        if name and isinstance(member, msgspec.inspect.StructType):
            return next((f.type for f in member.fields if f.encode_name == name), None)
        if not name and isinstance(member, msgspec.inspect.ListType):
            return member.item_type
        if not name and isinstance(member, msgspec.inspect.DictType):
            return member.value_type
    return None
