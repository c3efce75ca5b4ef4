"""A subset of Go's text/template, enough for ``docker ... --format`` strings.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming and ``{{/* comments */}}``;
field chains ``.A.B``, ``$``, ``$.A``, ``$var.A``, ``(pipeline).A``; string (``"..."``, raw
```...```), number, ``true``/``false``/``nil`` literals; pipelines ``a | b``; ``{{if}}``/
``{{else if}}``/``{{else}}``/``{{end}}``, ``{{range}}`` (optionally ``$v :=`` or ``$i, $v :=``, with
``{{else}}``), ``{{with}}``; variable declaration ``{{$x := ...}}``. Functions: Go's ``and or not eq
ne lt le gt ge len index print printf println slice`` and docker's ``json join split lower upper title
pad truncate``. Anything else raises :class:`TemplateError`.

Values are JSON-shaped Python data (dict, list, str, int, float, bool, None) or objects exposing
attributes/methods (the ``ps``/``images`` contexts); printing follows Go's ``%v``.
"""
from __future__ import annotations

import json as _json
import re

from .gofuncs import FUNCS, NO_VALUE, TemplateError, go_str, truthy

TYPE_CHECKING = False  # not typing's: importing typing costs a few ms on every dockyard run
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Template", "TemplateError", "render", "go_str"]


# and/or short-circuit and return an operand, handled in the evaluator
_SPECIAL = {"and", "or"}


# -- lexing -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|\.\d+))
  | (?P<decl>:=|=)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
""", re.VERBOSE)


def _tokenize(src: str) -> list[tuple[str, str]]:
    toks, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise TemplateError(f"unexpected {src[pos]!r} in action {{{{{src}}}}}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        val = m.group()
        # a field chain right after ')' or a variable is a field access on that value
        if kind == "field" and toks and toks[-1][0] in ("rp", "var") and m.start() > 0 \
                and not src[m.start() - 1].isspace():
            kind = "chain"
        toks.append((kind, val))
    return toks


# -- AST --------------------------------------------------------------------------------------
class _Node:
    pass


class _Text(_Node):
    def __init__(self, text: str) -> None:
        self.text = text


class _Action(_Node):
    def __init__(self, pipe: "_Pipe") -> None:
        self.pipe = pipe


class _If(_Node):
    def __init__(self, kind: str, pipe: "_Pipe") -> None:
        self.kind = kind  # if / with / range
        self.pipe = pipe
        self.body: list[_Node] = []
        self.else_: list[_Node] = []


class _Pipe:
    def __init__(self, decl: list[str], cmds: list[list[Any]], assign: bool = False) -> None:
        self.decl = decl
        self.cmds = cmds
        self.assign = assign


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            raise TemplateError("unexpected end of action")
        self.i += 1
        return t

    def pipeline(self, allow_decl: bool = True, stop: str | None = None) -> _Pipe:
        decl: list[str] = []
        assign = False
        if allow_decl:
            # $x := / $i, $v := / $x =
            j = self.i
            names = []
            while j < len(self.toks) and self.toks[j][0] == "var":
                names.append(self.toks[j][1])
                j += 1
                if j < len(self.toks) and self.toks[j][0] == "comma":
                    j += 1
                    continue
                break
            if names and j < len(self.toks) and self.toks[j][0] == "decl":
                decl = names
                assign = self.toks[j][1] == "="
                self.i = j + 1
        cmds: list[list[Any]] = []
        cur: list[Any] = []
        while True:
            t = self.peek()
            if t is None or t[0] == stop:
                break
            self.i += 1
            kind, val = t
            if kind == "pipe":
                if not cur:
                    raise TemplateError("missing command before '|'")
                cmds.append(cur)
                cur = []
            elif kind == "lp":
                sub = self.pipeline(allow_decl=False, stop="rp")
                self.next()
                cur.append(("pipe", sub))
            elif kind == "chain":
                if not cur:
                    raise TemplateError("unexpected field chain")
                cur[-1] = ("chain", cur[-1], val)
            elif kind in ("str", "raw", "char"):
                cur.append(("lit", _string(kind, val)))
            elif kind == "num":
                cur.append(("lit", _number(val)))
            elif kind == "ident":
                if val in ("true", "false"):
                    cur.append(("lit", val == "true"))
                elif val == "nil":
                    cur.append(("lit", None))
                elif val in FUNCS or val in _SPECIAL:
                    cur.append(("func", val))
                else:
                    raise TemplateError(f'function "{val}" not defined')
            elif kind == "field":
                cur.append(("field", val))
            elif kind == "var":
                cur.append(("var", val))
            else:
                raise TemplateError(f"unexpected {val!r} in command")
        if cur:
            cmds.append(cur)
        if not cmds:
            raise TemplateError("missing value for command")
        return _Pipe(decl, cmds, assign)


def _string(kind: str, val: str) -> str:
    if kind == "raw":
        return val[1:-1]
    if kind == "char":
        return _json.loads('"' + val[1:-1].replace('"', '\\"') + '"')
    try:
        return _json.loads(val)
    except ValueError:
        raise TemplateError(f"bad string literal {val}") from None


def _number(val: str) -> Any:
    try:
        return int(val, 0)
    except ValueError:
        return float(val)


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _parse(src: str) -> list[_Node]:
    root: list[_Node] = []
    stack: list[tuple[_If, list[_Node]]] = []  # open block, list being filled
    out = root
    pos = 0
    pending_trim = False
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if pending_trim:
            text = text.lstrip(" \t\r\n")
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if text:
            out.append(_Text(text))
        pos = m.end()
        pending_trim = bool(m.group(3))
        body = m.group(2).strip()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError("unclosed comment")
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word):].strip()
        if word in ("if", "with", "range"):
            p = _Parser(_tokenize(rest))
            node = _If(word, p.pipeline())
            out.append(node)
            stack.append((node, out))
            out = node.body
        elif word == "else":
            if not stack:
                raise TemplateError("unexpected {{else}}")
            node, parent = stack[-1]
            if out is node.else_:
                raise TemplateError("expected end; found {{else}}")
            if rest.startswith(("if ", "with ")):
                # else if: a nested block closed by the same {{end}}
                w2 = rest.split(None, 1)[0]
                sub = _If(w2, _Parser(_tokenize(rest[len(w2):].strip())).pipeline())
                node.else_.append(sub)
                sub.chained = True  # type: ignore[attr-defined]
                stack.append((sub, node.else_))
                out = sub.body
            elif rest:
                raise TemplateError(f"unexpected {rest!r} after else")
            else:
                out = node.else_
        elif word == "end":
            if not stack:
                raise TemplateError("unexpected {{end}}")
            while True:
                node, parent = stack.pop()
                if not getattr(node, "chained", False):
                    break
            out = parent
        elif word in ("define", "template", "block", "break", "continue"):
            raise TemplateError(f"{{{{{word}}}}} is not supported by dockyard's template engine")
        elif not body:
            raise TemplateError("missing value for command")
        else:
            out.append(_Action(_Parser(_tokenize(body)).pipeline()))
    if stack:
        raise TemplateError(f"unexpected EOF: unclosed {{{{{stack[-1][0].kind}}}}}")
    text = src[pos:]
    if pending_trim:
        text = text.lstrip(" \t\r\n")
    if text:
        out.append(_Text(text))
    return root


# -- evaluation -------------------------------------------------------------------------------
def _field(obj: Any, name: str, args: list[Any] | None = None) -> Any:
    if isinstance(obj, dict):
        if args:
            raise TemplateError(f"{name} is not a method but has arguments")
        return obj.get(name, NO_VALUE)
    if obj is None or obj is NO_VALUE:
        raise TemplateError(f"nil pointer evaluating .{name}")
    if isinstance(obj, (str, int, float, bool, list, tuple)):
        raise TemplateError(f"can't evaluate field {name} in type {_go_type(obj)}")
    attr = getattr(obj, name, NO_VALUE)
    if attr is NO_VALUE or name.startswith("_"):
        raise TemplateError(f"can't evaluate field {name} in type {type(obj).__name__}")
    if callable(attr):
        return attr(*(args or []))
    if args:
        raise TemplateError(f"{name} is not a method but has arguments")
    return attr


def _go_type(v: Any) -> str:
    return {str: "string", int: "int", float: "float64", bool: "bool", list: "[]interface {}",
            tuple: "[]interface {}"}.get(type(v), type(v).__name__)


class Template:
    def __init__(self, src: str) -> None:
        self.src = src
        self.nodes = _parse(src)

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(self, nodes: list[_Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        for n in nodes:
            if isinstance(n, _Text):
                out.append(n.text)
            elif isinstance(n, _Action):
                v = self._pipe(n.pipe, dot, scopes)
                if not n.pipe.decl:
                    out.append(go_str(v))
            elif isinstance(n, _If):
                scope: dict[str, Any] = {}
                if n.kind == "range":
                    v = self._eval_cmds(n.pipe.cmds, dot, scopes)
                    items: list[tuple[Any, Any]]
                    if isinstance(v, dict):
                        items = [(k, v[k]) for k in sorted(v, key=str)]
                    elif isinstance(v, (list, tuple)):
                        items = list(enumerate(v))
                    elif isinstance(v, int) and not isinstance(v, bool):
                        items = [(i, i) for i in range(v)]
                    elif v is None or v is NO_VALUE:
                        items = []
                    else:
                        raise TemplateError(f"range can't iterate over {go_str(v)}")
                    if not items:
                        self._run(n.else_, dot, scopes, out)
                    for k, item in items:
                        scope = {}
                        d = n.pipe.decl
                        if len(d) == 1:
                            scope[d[0]] = item
                        elif len(d) == 2:
                            scope[d[0]], scope[d[1]] = k, item
                        self._run(n.body, item, scopes + [scope], out)
                else:
                    v = self._pipe(n.pipe, dot, scopes + [scope])
                    if truthy(v):
                        self._run(n.body, v if n.kind == "with" else dot, scopes + [scope], out)
                    else:
                        self._run(n.else_, dot, scopes + [scope], out)

    def _pipe(self, pipe: _Pipe, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        v = self._eval_cmds(pipe.cmds, dot, scopes)
        if pipe.decl:
            if pipe.assign:
                for s in reversed(scopes):
                    if pipe.decl[0] in s:
                        s[pipe.decl[0]] = v
                        break
                else:
                    raise TemplateError(f"undefined variable: {pipe.decl[0]}")
            else:
                scopes[-1][pipe.decl[-1]] = v
        return v

    def _eval_cmds(self, cmds: list[list[Any]], dot: Any, scopes: list[dict[str, Any]]) -> Any:
        v: Any = NO_VALUE
        for i, cmd in enumerate(cmds):
            v = self._cmd(cmd, dot, scopes, v if i else NO_VALUE, piped=i > 0)
        return v

    def _cmd(self, cmd: list[Any], dot: Any, scopes: list[dict[str, Any]], prev: Any,
             piped: bool) -> Any:
        head = cmd[0]
        if head[0] == "func":
            name = head[1]
            args_nodes = cmd[1:]
            if name in _SPECIAL:
                vals = args_nodes + ([("val", prev)] if piped else [])
                if not vals:
                    raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
                last = None
                for a in vals:
                    last = self._arg(a, dot, scopes)
                    if (name == "and" and not truthy(last)) or (name == "or" and truthy(last)):
                        return last
                return last
            args = [self._arg(a, dot, scopes) for a in args_nodes]
            if piped:
                args.append(prev)
            try:
                return FUNCS[name](*args)
            except TemplateError:
                raise
            except TypeError as e:
                raise TemplateError(f"wrong number of args for {name}: {e}") from None
            except Exception as e:
                raise TemplateError(f"error calling {name}: {e}") from None
        if head[0] == "field" and (len(cmd) > 1 or piped) and head[1] != ".":
            # a method call with arguments: .Label "key"
            *path, last = head[1].split(".")[1:]
            obj = dot
            for p in path:
                obj = _field(obj, p)
            args = [self._arg(a, dot, scopes) for a in cmd[1:]] + ([prev] if piped else [])
            return _field(obj, last, args)
        if len(cmd) > 1 or piped:
            raise TemplateError(f"can't give argument to non-function {self._describe(head)}")
        return self._arg(head, dot, scopes)

    def _describe(self, node: Any) -> str:
        return str(node[1]) if node[0] != "pipe" else "(...)"

    def _arg(self, node: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        kind = node[0]
        if kind == "lit" or kind == "val":
            return node[1]
        if kind == "field":
            return self._chain(dot, node[1])
        if kind == "var":
            for s in reversed(scopes):
                if node[1] in s:
                    return s[node[1]]
            raise TemplateError(f"undefined variable: {node[1]}")
        if kind == "pipe":
            return self._eval_cmds(node[1].cmds, dot, scopes)
        if kind == "chain":
            return self._chain(self._arg(node[1], dot, scopes), node[2])
        if kind == "func":
            return self._cmd([node], dot, scopes, NO_VALUE, False)
        raise TemplateError(f"unsupported operand {node!r}")

    @staticmethod
    def _chain(obj: Any, chain: str) -> Any:
        if chain == ".":
            return obj
        for name in chain.split(".")[1:]:
            obj = _field(obj, name)
        return obj


def render(src: str, data: Any) -> str:
    return Template(src).execute(data)
