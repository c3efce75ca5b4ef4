"""Generate the hostile request corpus: for every JSON endpoint, bodies no real client sends.

The bodies are made from the request descriptions themselves (``dockyard.core.schema``): every
field, at every depth, gets a value of every JSON type it does not take, out-of-range integers
(2**63, 2**70, -1 where unsigned), and valid-but-extreme values (the range's ends, a 64 KiB
string); then come bodies hostile to any endpoint: deep nesting, a body over the size limit,
NUL and non-UTF-8 bytes, broken JSON, wrong Content-Types. Nothing is committed but this
script: ``python tests/hostile/make_requests.py DIR`` writes the corpus out for other tools.

A case is ``Case(endpoint, body, content_type, expect)``: ``expect`` is ``"field:PATH"`` (a 400
naming PATH), ``"4xx"`` (refused with a client error), ``"413"``, or ``"any"`` (anything but a
5xx: the body is valid and the service decides).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Iterator

from msgspec import inspect as mi

from dockyard.core import schema
from dockyard.core.daemon.body import MAX_JSON_BODY


@dataclasses.dataclass
class Case:
    endpoint: str
    body: bytes
    content_type: str | None
    expect: str
    note: str

    def name(self) -> str:
        return f"{self.endpoint}: {self.note}"


#: endpoint class -> (description, a minimal valid body the generated field goes into)
ENDPOINTS: dict[str, tuple[type, dict[str, Any]]] = {
    "container-create": (schema.ContainerCreate, {"Image": "busybox", "Cmd": ["true"]}),
    "container-update": (schema.ContainerUpdate, {}),
    "commit": (schema.CommitConfig, {}),
    "exec-create": (schema.ExecCreate, {"Cmd": ["true"]}),
    "exec-start": (schema.ExecStart, {"Detach": True}),
    "network-create": (schema.NetworkCreate, {"Name": "hostile-net"}),
    "network-connect": (schema.NetworkConnect, {"Container": "no-such-container"}),
    "network-disconnect": (schema.NetworkDisconnect, {"Container": "no-such-container"}),
    "volume-create": (schema.VolumeCreate, {}),
    # never a valid login: /auth would contact the registry it names
    "auth": (schema.AuthConfig, {"serveraddress": "127.0.0.1:9"}),
}

#: one value of each JSON type
SAMPLES: dict[str, Any] = {"null": None, "bool": True, "int": 1, "float": 1.5, "str": "false",
                           "array": [], "object": {}}
BIG_STRING = "x" * 65536


def _kinds(info: Any) -> set[str]:
    """The JSON types a described value takes (besides null)."""
    out: set[str] = set()
    for t in getattr(info, "types", (info,)):
        out |= {mi.BoolType: {"bool"}, mi.IntType: {"int"}, mi.StrType: {"str"},
                mi.LiteralType: {"str"}, mi.ListType: {"array"}, mi.DictType: {"object"},
                mi.StructType: {"object"}, mi.NoneType: {"null"}}.get(type(t), set())
    return out


def _members(info: Any) -> list[Any]:
    return [t for t in getattr(info, "types", (info,)) if not isinstance(t, mi.NoneType)]


def fields(info: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, type) of every field of a description, nested ones included; a path step is a
    field name, 0 (a list's first item) or ``"k"`` (a map's value)."""
    for t in _members(info):
        if isinstance(t, mi.StructType):
            for f in t.fields:
                here = path + (f.encode_name,)
                yield here, f.type
                yield from fields(f.type, here)
        elif isinstance(t, mi.ListType):
            yield from fields(t.item_type, path + (0,))
        elif isinstance(t, mi.DictType):
            yield from fields(t.value_type, path + ("k",))


def shown(path: tuple[Any, ...]) -> str:
    """The path as the daemon names it: ``HostConfig.Mounts[0].Type``, ``Labels[...]``."""
    out = ""
    for step in path:
        if step == 0 and not isinstance(step, bool):
            out += "[0]"
        elif step == "k" and out:
            out += "[...]"
        else:
            out += ("." if out else "") + step
    return out


def place(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``value`` at ``path`` (made of dicts and one-item lists)."""
    body = json.loads(json.dumps(base))
    node: Any = body
    for i, step in enumerate(path):
        last = i == len(path) - 1
        nxt = value if last else ([] if path[i + 1] == 0 and not isinstance(path[i + 1], bool)
                                  else {})
        if isinstance(node, list):
            node.append(nxt)
        else:
            if not last and isinstance(node.get(step), (dict, list)):
                nxt = node[step]
            node[step] = nxt
        node = nxt
    return body


def _wrong_values(info: Any) -> Iterator[tuple[str, Any, str]]:
    """(note, value, expected path suffix) for values ``info`` refuses."""
    kinds = _kinds(info)
    for kind, sample in SAMPLES.items():
        if kind not in kinds and not (kind == "float" and "float" in kinds):
            yield f"{kind} value", sample, ""
    for t in _members(info):
        if isinstance(t, mi.IntType):
            lo = t.ge if t.ge is not None else -(1 << 63)
            hi = t.le if t.le is not None else (1 << 63) - 1
            yield "2**70", 1 << 70, ""
            yield "max+1", hi + 1, ""
            yield "min-1", lo - 1, ""
        elif isinstance(t, mi.LiteralType):
            yield "a value not in the enum", "bogus-value", ""
        elif isinstance(t, mi.ListType) and not isinstance(t.item_type, (mi.StructType,)):
            yield "a list of a wrong item", [{"x": 1}] if "object" not in _kinds(t.item_type) else [7], "[0]"
        elif isinstance(t, mi.DictType) and "object" not in _kinds(t.value_type):
            yield "a map of a wrong value", {"k": [1]}, "[...]"


def _valid_extremes(info: Any) -> Iterator[tuple[str, Any]]:
    for t in _members(info):
        if isinstance(t, mi.IntType):
            yield "the lowest allowed", t.ge if t.ge is not None else -(1 << 63)
            yield "the highest allowed", t.le if t.le is not None else (1 << 63) - 1
        elif isinstance(t, mi.StrType):
            yield "a 64 KiB string", BIG_STRING
            yield "a non-ASCII string", "\u2603 \U0001f40b"
        elif isinstance(t, mi.BoolType):
            yield "true", True


def field_cases(endpoint: str) -> Iterator[Case]:
    body_type, base = ENDPOINTS[endpoint]
    root = mi.type_info(body_type)
    for path, info in fields(root):
        name = shown(path)
        for note, value, suffix in _wrong_values(info):
            body = json.dumps(place(base, path, value)).encode()
            yield Case(endpoint, body, "application/json", f"field:{name}{suffix}",
                       f"{name} = {note}")
        if "str" in _kinds(info):  # bytes that are not UTF-8 where a string goes
            body = json.dumps(place(base, path, "@@")).encode().replace(b'"@@"', b'"\xff\xfe"')
            yield Case(endpoint, body, "application/json", "4xx", f"{name} = non-UTF-8 bytes")
        if endpoint == "auth":
            continue  # a valid body would try a login
        for note, value in _valid_extremes(info):
            body = json.dumps(place(base, path, value)).encode()
            yield Case(endpoint, body, "application/json", "any", f"{name} = {note}")


def generic_cases(endpoint: str) -> Iterator[Case]:
    """Bodies hostile to any JSON endpoint."""
    _, base = ENDPOINTS[endpoint]
    valid = json.dumps(base).encode()
    json_ct = "application/json"
    deep = 100_000
    yield Case(endpoint, b"[" * deep + b"]" * deep, json_ct, "4xx", "100000 nested arrays")
    yield Case(endpoint, b'{"a":' * deep + b"1" + b"}" * deep, json_ct, "4xx",
               "100000 nested objects")
    yield Case(endpoint, valid[:-1] + b', "Unknown": ' + b"[" * 5000 + b"]" * 5000 + b"}",
               json_ct, "4xx", "5000 nested arrays under an unknown key")
    big = b'{"Unknown": "' + b"x" * (MAX_JSON_BODY + 1) + b'"}'
    yield Case(endpoint, big, json_ct, "413", "a body over the size limit")
    yield Case(endpoint, valid[:-1] + b', "Labels": {"a": "x\\u0000y"}}', json_ct, "4xx",
               "a NUL in a string")
    yield Case(endpoint, b"\xff\xfe" + valid, json_ct, "4xx", "non-UTF-8 bytes")
    yield Case(endpoint, b'{"a": "\\ud800"}', json_ct, "4xx", "a lone surrogate escape")
    for note, raw in (("truncated JSON", valid[:-1]), ("trailing garbage", valid + b" {}"),
                      ("NaN", b'{"a": NaN}'), ("single quotes", b"{'a': 1}"),
                      ("a bare word", b"hello"), ("a BOM", b"\xef\xbb\xbf" + valid),
                      ("an array", b"[]"), ("a string", b'"x"'), ("a number", b"1e999"),
                      ("null", b"null"), ("two documents", valid + valid)):
        yield Case(endpoint, raw, json_ct, "4xx", note)
    for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                  "multipart/form-data; boundary=x", "application/jsonx", "json", "", None):
        yield Case(endpoint, valid, ctype, "4xx", f"Content-Type {ctype!r}")
    if endpoint == "auth":
        return  # a valid body would try a login
    yield Case(endpoint, valid, "application/json; charset=utf-8", "any",
               "Content-Type with parameters")
    yield Case(endpoint, valid, "Application/JSON", "any", "Content-Type in capitals")


def cases(endpoint: str | None = None) -> list[Case]:
    out: list[Case] = []
    for ep in ([endpoint] if endpoint else list(ENDPOINTS)):
        out += list(field_cases(ep)) + list(generic_cases(ep))
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: make_requests.py DIR")
    for i, case in enumerate(cases()):
        d = os.path.join(argv[0], case.endpoint)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:05d}.body"), "wb") as f:
            f.write(case.body)
        with open(os.path.join(d, f"{i:05d}.json"), "w") as f:
            json.dump({"content_type": case.content_type, "expect": case.expect,
                       "note": case.note}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
