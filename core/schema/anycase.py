"""JSON keys matched to fields as Go's ``encoding/json`` matches them: an exact match first, then
one that differs only in case (``CPURealtimePeriod`` is ``CpuRealtimePeriod``, docker-py's exec
``detachKeys`` is ``DetachKeys``); keys that match no field are ignored.

msgspec matches keys exactly. So every description forbids unknown keys (:class:`GoStruct`),
which costs nothing on the common path — a body whose keys are all spelt as the fields — and
turns any other key into a ``ValidationError``; only then is the body parsed a second time,
its keys renamed to the fields they fold to (or dropped), and checked again. Go folds with
Unicode's simple case folding; against the ASCII field names of the API that is ``lower()``
plus two letters whose fold is an ASCII one: ``ſ`` (long s) and ``K`` (Kelvin sign).
"""
from __future__ import annotations

import functools
from typing import Any

import msgspec


class GoStruct(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every description decoded from a request: an unknown key (in any case) sends
    the body through :func:`canonical`."""


def fold(key: str) -> str:
    """``key`` case-folded as Go's ``foldName`` folds it, for comparing with an ASCII name."""
    return key.lower().replace("\u017f", "s")


def is_unknown_key(exc: msgspec.ValidationError) -> bool:
    return str(exc).startswith("Object contains unknown field")


@functools.cache
def type_info(body_type: type) -> Any:
    return msgspec.inspect.type_info(body_type)


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """(encode name -> field, folded name -> field) of a Struct; on a fold clash the first
    field wins, as in Go."""
    info: Any = type_info(cls)
    exact = {f.encode_name: f for f in info.fields}
    folded: dict[str, Any] = {}
    for f in info.fields:
        folded.setdefault(fold(f.encode_name), f)
    return exact, folded


def canonical(value: Any, info: Any) -> Any:
    """``value`` (decoded JSON) with every object key meant for a Struct field of ``info`` (a
    :mod:`msgspec.inspect` type) spelt as that field, and keys that match none dropped."""
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            if _fits(value, member):
                return canonical(value, member)
        return value
    if isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        if not info.forbid_unknown_fields:  # struct{}: whatever it holds is ignored
            return value
        exact, folded = _fields(info.cls)
        out = {}
        for key, item in value.items():
            field = exact.get(key) or folded.get(fold(key))
            if field is not None:  # a later key for the same field wins, as in Go
                out[field.encode_name] = canonical(item, field.type)
        return out
    if isinstance(info, msgspec.inspect.DictType) and isinstance(value, dict):
        return {key: canonical(item, info.value_type) for key, item in value.items()}
    if isinstance(info, msgspec.inspect.ListType) and isinstance(value, list):
        return [canonical(item, info.item_type) for item in value]
    return value


def _fits(value: Any, info: Any) -> bool:
    if isinstance(value, dict):
        return isinstance(info, (msgspec.inspect.StructType, msgspec.inspect.DictType))
    if isinstance(value, list):
        return isinstance(info, msgspec.inspect.ListType)
    return False
