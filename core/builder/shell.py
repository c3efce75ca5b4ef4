"""Docker's shell-word processing of instruction arguments (BuildKit's ``shell`` lexer).

Quotes are removed, the escape token (``\\``, or the ``# escape=`` one) escapes the next
character, and ``$VAR``/``${VAR}`` are expanded with the modifiers BuildKit knows:
``${VAR:-word}`` ``${VAR-word}`` ``${VAR:+word}`` ``${VAR+word}`` ``${VAR:?msg}`` ``${VAR?msg}``
``${VAR#pat}`` ``${VAR##pat}`` ``${VAR%pat}`` ``${VAR%%pat}`` ``${VAR/pat/repl}``
``${VAR//pat/repl}`` (``*`` and ``?`` wildcards). Nothing is expanded inside single quotes,
and an ``env`` of ``None`` expands nothing at all.
"""
from __future__ import annotations

import json
import re
from typing import Mapping

from .errors import BuildError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!0-]")


class Lexer:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def words(self, text: str, env: Mapping[str, str] | None) -> list[str]:
        """``text`` split into words at unquoted white space."""
        out, _ = self._scan(text, 0, env, split=True, stop="")
        return out

    def word(self, text: str, env: Mapping[str, str] | None) -> str:
        """``text`` processed as one word (white space kept)."""
        out, _ = self._scan(text, 0, env, split=False, stop="")
        return out[0] if out else ""

    # -- the scanner -------------------------------------------------------------------------------
    def _scan(self, text: str, i: int, env: Mapping[str, str] | None, *, split: bool,
              stop: str, raw_escapes: bool = False) -> tuple[list[str], int]:
        """Words from ``text[i:]`` up to an unquoted ``stop`` character (``""``: the end);
        returns them and the index after ``stop``."""
        out: list[str] = []
        cur: list[str] = []
        has = False
        n = len(text)
        esc = self.escape
        while i < n:
            ch = text[i]
            if stop and ch == stop:
                if cur or has:
                    out.append("".join(cur))
                return out, i + 1
            if ch == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise BuildError("unexpected end of statement while looking for matching '")
                cur.append(text[i + 1:j])
                has, i = True, j + 1
            elif ch == '"':
                i = self._double(text, i + 1, env, cur)
                has = True
            elif ch == esc:
                if i + 1 < n:
                    if raw_escapes:
                        cur.append(esc)
                    cur.append(text[i + 1])
                has, i = True, i + 2
            elif ch == "$" and env is not None:
                val, i = self._dollar(text, i, env)
                cur.append(val)
                has = True
            elif ch.isspace() and split:
                if cur or has:
                    out.append("".join(cur))
                cur, has = [], False
                i += 1
            else:
                cur.append(ch)
                has, i = True, i + 1
        if stop:
            raise BuildError("syntax error: missing '}'" if stop == "}" else f"syntax error: missing '{stop}'")
        if cur or has:
            out.append("".join(cur))
        return out, i

    def _double(self, text: str, i: int, env: Mapping[str, str] | None, cur: list[str]) -> int:
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == '"':
                return i + 1
            if ch == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                cur.append(text[i + 1])
                i += 2
            elif ch == "$" and env is not None:
                val, i = self._dollar(text, i, env)
                cur.append(val)
            else:
                cur.append(ch)
                i += 1
        raise BuildError('unexpected end of statement while looking for matching "')

    def _dollar(self, text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
        """Expand the ``$`` at ``text[i]``; return the value and the index after it."""
        if text.startswith("${", i):
            return self._braced(text, i + 2, env)
        m = _NAME.match(text, i + 1)
        if not m:
            return "$", i + 1
        return env.get(m.group(0), ""), m.end()

    def _braced(self, text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
        m = _NAME.match(text, i)
        if not m:
            raise BuildError(f"syntax error: bad substitution in {text!r}")
        name, i = m.group(0), m.end()
        if i >= len(text):
            raise BuildError("syntax error: missing '}'")
        op = text[i]
        value = env.get(name)
        if op == "}":
            return value or "", i + 1
        null_unset = op == ":"
        if null_unset:
            op = text[i + 1:i + 2]
            i += 1
            if op not in ("-", "+", "?"):
                raise BuildError(f"unsupported modifier (:{op}) in substitution")
        if op in "-+?":
            word, i = self._arg(text, i + 1, env, "}")
            unset = value is None or (null_unset and value == "")
            if op == "-":
                return (word if unset else value or ""), i
            if op == "+":
                return ("" if unset else word), i
            if unset:
                why = "is not allowed to be unset" if value is None else "is not allowed to be empty"
                raise BuildError(f"{name}: {word or why}")
            return value or "", i
        if op in "#%":
            greedy = text.startswith(op, i + 1)
            pattern, i = self._arg(text, i + 1 + greedy, env, "}", raw=True)
            return _trim(value or "", pattern, greedy, prefix=op == "#"), i
        if op == "/":
            every = text.startswith("/", i + 1)
            pattern, i = self._arg(text, i + 1 + every, env, "/", raw=True)
            repl, i = self._arg(text, i, env, "}", raw=True)
            rx = _glob_rx(pattern, greedy=True)
            return rx.sub(lambda _m: repl, value or "", count=0 if every else 1), i
        raise BuildError(f"unsupported modifier ({op}) in substitution")

    def _arg(self, text: str, i: int, env: Mapping[str, str], stop: str,
             raw: bool = False) -> tuple[str, int]:
        words, i = self._scan(text, i, env, split=False, stop=stop, raw_escapes=raw)
        return (words[0] if words else ""), i


def _glob_rx(pattern: str, greedy: bool, anchor: str = "") -> re.Pattern[str]:
    """A shell wildcard pattern (``*``, ``?``, ``\\`` escapes) as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" and greedy else ".*?" if ch == "*" else "." if ch == "?"
                   else re.escape(ch))
        i += 1
    body = "".join(out)
    return re.compile(("^" + body) if anchor == "^" else (body + "$") if anchor == "$" else body,
                      re.DOTALL)


def _trim(value: str, pattern: str, greedy: bool, prefix: bool) -> str:
    """``${v#p}`` / ``${v##p}`` (prefix) and ``${v%p}`` / ``${v%%p}`` (suffix)."""
    rx = _glob_rx(pattern, greedy, "^" if prefix else "$")
    if prefix:
        m = rx.match(value)
        return value[m.end():] if m else value
    # the shortest suffix is the match that starts last; the longest, the one that starts first
    starts = range(len(value), -1, -1) if not greedy else range(len(value) + 1)
    for s in starts:
        if rx.fullmatch(value, s):
            return value[:s]
    return value


#: the default lexer (``\\`` as the escape token)
DEFAULT = Lexer()


def words(text: str, env: Mapping[str, str] | None, escape: str = "\\") -> list[str]:
    return Lexer(escape).words(text, env)


def word(text: str, env: Mapping[str, str] | None, escape: str = "\\") -> str:
    return Lexer(escape).word(text, env)


def json_list(rest: str) -> list[str] | None:
    """The exec (JSON array of strings) form of an instruction's arguments, or None."""
    if not rest.startswith("["):
        return None
    try:
        v = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def key_values(cmd: str, rest: str, env: Mapping[str, str], lexer: Lexer = DEFAULT) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``k=v k2="v 2"`` or the legacy ``k v w`` form."""
    first = rest.split(None, 1)[0] if rest.strip() else ""
    if not first:
        raise BuildError(f"{cmd} requires at least one argument")
    if "=" not in first:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise BuildError(f"{cmd} must have two arguments")
        return [(lexer.word(parts[0], env), lexer.word(parts[1], env))]
    pairs = []
    for w in lexer.words(rest, env):
        if "=" not in w:
            raise BuildError(f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        k, _, v = w.partition("=")
        pairs.append((k, v))
    return pairs


_DUR = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration(text: str, name: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds, at least 1ms (or 0)."""
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DUR.match(text, pos)
        if not m:
            raise BuildError(f"invalid --{name} value {text!r}: a duration such as 30s or 1m30s")
        total += float(m.group(1)) * _NS[m.group(2)]
        pos = m.end()
    if not text or (0 < total < 10**6):
        raise BuildError(f"Interval \"{name}\" cannot be less than 1ms")
    return int(total)


def parse_bool(value: str, what: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    v = value.strip()
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise BuildError(f"invalid value for {what}: {value}")
