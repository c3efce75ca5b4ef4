"""Fields this engine knows but does not implement: refused with a 400 naming them when set.

dockerd applies every field of a body; a script written for it that sets
``HostConfig.MemoryReservation`` would, on an engine that dropped it, run without the limit it
asked for. So each description lists such fields in its ``unsupported`` class attribute, and a
body that gives one a value other than ``null``, a zero value (``0``, ``""``, ``false``,
``[]``, ``{}``) or a listed "not set" value (``MemorySwappiness: -1``) is refused. The paths
are collected once per body type, from the descriptions themselves.
"""
from __future__ import annotations

import functools
import json
from typing import Any

import msgspec

from dockyard.hookspecs.errors import InvalidParameter

from .containers import NULL_ONLY

_ZERO = (None, 0, "", False)
#: path steps: a field name, or ITEMS (each item of a list / value of a map)
ITEMS = None
Rule = tuple[tuple[str | None, ...], tuple[object, ...]]


@functools.cache
def rules(body_type: type) -> tuple[Rule, ...]:
    """Every unsupported field reachable from ``body_type``, as (path, "not set" values)."""
    out: list[Rule] = []
    _walk(msgspec.inspect.type_info(body_type), (), out)
    return tuple(out)


def _walk(info: Any, path: tuple[str | None, ...], out: list[Rule]) -> None:
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            _walk(member, path, out)
    elif isinstance(info, msgspec.inspect.StructType):
        extra = getattr(info.cls, "unsupported", {})
        for field in info.fields:
            here = path + (field.encode_name,)
            if field.name in extra:
                out.append((here, extra[field.name]))
            _walk(field.type, here, out)
    elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.DictType)):
        _walk(info.item_type if isinstance(info, msgspec.inspect.ListType) else info.value_type,
              path + (ITEMS,), out)


@functools.cache
def _tree(body_type: type) -> dict[str | None, Any]:
    """:func:`rules` as nested dicts, so that a body is walked once: step -> (not_set, subtree);
    ``not_set`` is None where the step only leads to deeper rules."""
    root: dict[str | None, Any] = {}
    for path, not_set in rules(body_type):
        node = root
        for i, step in enumerate(path):
            here = node.setdefault(step, [None, {}])
            if i == len(path) - 1:
                here[0] = not_set
            node = here[1]
    return root


def _find(data: Any, tree: dict[str | None, Any], shown: str) -> tuple[str, Any, Any] | None:
    """The first (path, value, its "not set" values) in ``data`` that sets an unsupported field of ``tree``."""
    for step, (not_set, sub) in tree.items():
        if step is ITEMS:
            items = enumerate(data) if isinstance(data, list) else \
                ((repr(k), v) for k, v in data.items()) if isinstance(data, dict) else ()
            for key, value in items:
                here = f"{shown}[{key}]"
                if not_set is not None and not is_unset(value, not_set):
                    return here, value, not_set
                if sub and value is not None and (hit := _find(value, sub, here)):
                    return hit
            continue
        if not isinstance(data, dict) or step not in data:
            continue
        value = data[step]
        here = f"{shown}.{step}" if shown else step
        if not_set is not None and not is_unset(value, not_set):
            return here, value, not_set
        if sub and value is not None and (hit := _find(value, sub, here)):
            return hit
    return None


def is_unset(value: Any, not_set: tuple[object, ...]) -> bool:
    if value is None:
        return True
    if not_set is NULL_ONLY:
        return False
    if value in _ZERO and not isinstance(value, (list, dict)):
        return True
    return value in ([], {}) or value in not_set


def check(data: dict[str, Any], body_type: type) -> None:
    """InvalidParameter naming the first unsupported field ``data`` (a checked body) sets."""
    hit = _find(data, _tree(body_type), "")
    if hit is None:
        return
    shown, value, not_set = hit
    text = json.dumps(value)
    if len(text) > 60:
        text = text[:57] + "..."
    allowed = "null" if not_set is NULL_ONLY else "its default"
    raise InvalidParameter(f"{shown}: not supported by this engine (got {text}; only {allowed} "
                           f"is accepted)")
