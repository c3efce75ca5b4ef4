"""Go's ``fmt`` printing of decoded-JSON values and the functions of Go's text/template and
docker's ``--format`` (``json join split lower upper title pad truncate``), for
:mod:`dockyard.cli.gotemplate`."""
from __future__ import annotations

import json as _json
import re

TYPE_CHECKING = False  # not typing's: importing typing costs a few ms on every dockyard run
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["FUNCS", "NO_VALUE", "TemplateError", "go_str", "truthy"]


class TemplateError(Exception):
    pass


NO_VALUE = object()  # a missing map key: prints "<no value>"


# -- printing ---------------------------------------------------------------------------------
def go_str(v: Any) -> str:
    """Go's ``fmt.Sprint`` of a decoded-JSON value."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e21:
            return str(int(v)) if abs(v) < 1e6 else _go_float(v)
        return _go_float(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in sorted(v, key=str)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def _go_float(v: float) -> str:
    s = "%g" % v if abs(v) >= 1e21 or abs(v) < 1e-4 else repr(v)
    if "e" in s:  # Go: 1e+06 → "1e+06"
        mant, exp = s.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0").rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return s


def truthy(v: Any) -> bool:
    if v is NO_VALUE or v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return True


# -- functions --------------------------------------------------------------------------------
def _json_fn(v: Any) -> str:
    if v is NO_VALUE:
        v = None
    if hasattr(v, "to_json"):
        v = v.to_json()
    return _json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, NO_VALUE)
        elif isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise TemplateError(f"error calling index: cannot index slice/array with type {type(k).__name__}")
            if not 0 <= k < len(v):
                raise TemplateError(f"error calling index: index out of range: {k}")
            v = v[k]
        elif v is None or v is NO_VALUE:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(v).__name__}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v)
    raise TemplateError(f"error calling len: len of type {type(v).__name__}")


def _printf(fmt: str, *args: Any) -> str:
    out, i, ai = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        m = re.match(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?([a-zA-Z%])", fmt[i:])
        if not m:
            out.append(c)
            i += 1
            continue
        flags, width, prec, verb = m.groups()
        i += m.end()
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        if verb in "vs":
            s = go_str(a)
            if prec:
                s = s[:int(prec)]
        elif verb == "q":
            s = _json.dumps(go_str(a) if not isinstance(a, str) else a, ensure_ascii=False)
        elif verb == "d":
            s = str(int(a)) if isinstance(a, (int, float)) else f"%!d({go_str(a)})"
        elif verb in "fFeEgG":
            p = "." + prec if prec else ("" if verb in "gG" else ".6")
            s = ("%" + p + verb.lower()) % float(a)
        elif verb == "x":
            s = "%x" % a if isinstance(a, int) else (a.encode().hex() if isinstance(a, str) else go_str(a))
        elif verb == "t":
            s = go_str(bool(a))
        else:
            raise TemplateError(f"printf verb %{verb} is not supported")
        if width:
            w = int(width)
            s = s.ljust(w) if "-" in flags else (s.rjust(w, "0") if "0" in flags else s.rjust(w))
        out.append(s)
    return "".join(out)


def _print(*args: Any) -> str:
    # Go's Sprint: spaces between operands when neither is a string
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _cmp(name: str, op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def fn(a: Any, *bs: Any) -> bool:
        if not bs:
            raise TemplateError(f"error calling {name}: missing argument for comparison")
        for b in bs if name == "eq" else bs[:1]:
            a1, b1 = (None if a is NO_VALUE else a), (None if b is NO_VALUE else b)
            if name not in ("eq", "ne") and not (
                    isinstance(a1, (int, float)) and isinstance(b1, (int, float))
                    or isinstance(a1, str) and isinstance(b1, str)):
                raise TemplateError(f"error calling {name}: incompatible types for comparison")
            if op(a1, b1):
                if name == "eq":
                    return True
            elif name != "eq":
                return False
        return name != "eq"
    return fn


def _slice(v: Any, *idx: int) -> Any:
    if len(idx) > 2:
        raise TemplateError("slice with 3 indices is not supported")
    return v[slice(*idx)] if idx else v


def _pad(s: Any, left: int, right: int) -> str:
    return " " * left + go_str(s) + " " * right


def _truncate(s: Any, n: int) -> str:
    s = go_str(s)
    return s[:n]


def _join(v: Any, sep: str) -> str:
    if not isinstance(v, (list, tuple)):
        raise TemplateError(f"error calling join: wrong type for value; expected []string; got {type(v).__name__}")
    return sep.join(go_str(x) for x in v)


def _title(s: Any) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), go_str(s))


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json_fn,
    "index": _index,
    "len": _len,
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": _title,
    "join": _join,
    "split": lambda s, sep: go_str(s).split(sep),
    "pad": _pad,
    "truncate": _truncate,
    "print": _print,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": _printf,
    "not": lambda a: not truthy(a),
    "eq": _cmp("eq", lambda a, b: a == b),
    "ne": _cmp("ne", lambda a, b: a != b),
    "lt": _cmp("lt", lambda a, b: a < b),
    "le": _cmp("le", lambda a, b: a <= b),
    "gt": _cmp("gt", lambda a, b: a > b),
    "ge": _cmp("ge", lambda a, b: a >= b),
    "slice": _slice,
}
