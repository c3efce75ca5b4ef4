"""Dockerfile text → stages of instructions, checked whole before any step runs.

What BuildKit's frontend reads: parser directives at the top (``# syntax=`` is read and
ignored with a note, ``# escape=`` sets the escape token, ``# check=`` configures the checks of
:mod:`.lint`), comments, line continuations (a warning for empty continuation lines),
``--flags`` before the arguments of an instruction, here-documents for RUN/COPY/ADD
(``<<EOF``, ``<<-EOF``, ``<<'EOF'``, several per instruction), ``FROM ... AS name``. Every
error names its line, as dockerd's ``dockerfile parse error line N: ...``.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from .errors import BuildError, ParseError
from .shell import Lexer, json_list, key_values

KNOWN = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
         "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
         "HEALTHCHECK", "SHELL")

BOOL, STRING, STRINGS = "bool", "string", "strings"
#: the flags each instruction takes (BuildKit's, minus labs-only ones)
FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": STRING},
    "RUN": {"mount": STRINGS, "network": STRING, "security": STRING},
    "COPY": {"from": STRING, "chown": STRING, "chmod": STRING, "link": BOOL, "exclude": STRINGS,
             "parents": BOOL},
    "ADD": {"chown": STRING, "chmod": STRING, "link": BOOL, "exclude": STRINGS, "checksum": STRING,
            "keep-git-dir": BOOL, "unpack": BOOL},
    "HEALTHCHECK": {"interval": STRING, "timeout": STRING, "start-period": STRING,
                    "start-interval": STRING, "retries": STRING},
}
HEREDOC_CMDS = ("RUN", "COPY", "ADD")
DIRECTIVES = ("syntax", "escape", "check")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)(.*)$", re.DOTALL)
_WS = re.compile(r"[\t\v\f\r ]+")


@dataclasses.dataclass
class Heredoc:
    name: str
    content: str
    expand: bool
    chomp: bool
    fd: int = 0

    def text(self) -> str:
        """The content, leading tabs removed for ``<<-``."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclasses.dataclass
class Instruction:
    cmd: str                      # upper case
    keyword: str                  # as written
    args: str                     # after the flags
    flags: dict[str, list[str]]   # --name=value (bool flags: "true"/"false")
    original: str                 # the logical line (continuations joined)
    line: int
    end_line: int = 0
    heredocs: list[Heredoc] = dataclasses.field(default_factory=list)
    trigger: "Instruction | None" = None  # ONBUILD's instruction

    @property
    def json(self) -> list[str] | None:
        return json_list(self.args)

    def flag(self, name: str, default: str = "") -> str:
        values = self.flags.get(name)
        return values[-1] if values else default

    def has(self, name: str) -> bool:
        return name in self.flags

    def error(self, message: str) -> ParseError:
        return ParseError(message, self.line)

    def __repr__(self) -> str:
        return f"Instruction({self.cmd} {self.args!r} line {self.line})"


@dataclasses.dataclass
class Stage:
    index: int
    name: str | None              # lower case, as BuildKit matches it
    base: str                     # FROM's image argument, not yet expanded
    from_ins: Instruction
    instructions: list[Instruction]

    @property
    def label(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclasses.dataclass
class Dockerfile:
    directives: dict[str, str]
    escape: str
    meta_args: list[Instruction]
    stages: list[Stage]
    warnings: list[str]
    all_instructions: list[Instruction]

    @property
    def lexer(self) -> Lexer:
        return Lexer(self.escape)

    def stage(self, ref: str) -> Stage | None:
        """The stage ``ref`` names (its name, case-insensitively, or its index)."""
        low = ref.lower()
        for st in self.stages:
            if st.name == low:
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


# -- the reader --------------------------------------------------------------------------------
def parse(text: str) -> Dockerfile:
    """The whole Dockerfile, checked; :class:`ParseError` naming the line otherwise."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    directives, first = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise ParseError(f"invalid escape token '{escape}' does not match ` or \\", 1)
    reader = _Reader(lines, first, escape)
    instructions = reader.instructions()
    if not instructions:
        raise BuildError("the Dockerfile cannot be empty")
    df = _assemble(instructions, directives, escape, reader.warnings)
    for ins in instructions:
        check(ins, df.lexer)
    return df


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    out: dict[str, str] = {}
    for i, raw in enumerate(lines):
        m = _DIRECTIVE.match(raw.strip("\r\n").lstrip())
        if not m or m.group(1).lower() not in DIRECTIVES:
            return out, i
        key = m.group(1).lower()
        if key in out:
            raise ParseError(f"only one {key} parser directive can be used", i + 1)
        out[key] = m.group(2)
    return out, len(lines)


class _Reader:
    def __init__(self, lines: list[str], first: int, escape: str) -> None:
        self.lines, self.i, self.escape = lines, first, escape
        e = re.escape(escape)
        self.cont = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")
        self.warnings: list[str] = []

    def _trim(self, s: str) -> tuple[str, bool]:
        m = self.cont.search(s)
        if m:
            return s[:m.start()] + (m.group(1) or ""), False
        return s, True

    def instructions(self) -> list[Instruction]:
        out = []
        n = len(self.lines)
        while self.i < n:
            s = self.lines[self.i].rstrip("\r\n").lstrip()
            self.i += 1
            start = self.i
            if s.startswith("#"):
                continue
            s, done = self._trim(s)
            if done and not s.strip():
                continue
            buf, empty = [s], False
            while not done and self.i < n:
                raw = self.lines[self.i].rstrip("\r\n")
                self.i += 1
                if raw.lstrip().startswith("#"):
                    continue
                if not raw.strip():
                    empty = True
                    continue
                raw, done = self._trim(raw)
                buf.append(raw)
            logical = "".join(buf)
            if empty:
                self.warnings.append(f"Empty continuation line found in: {logical.strip()}")
            ins = make_instruction(logical, start, self.i, self.escape)
            if ins.cmd in HEREDOC_CMDS and ins.json is None and "<<" in ins.args:
                for doc in heredoc_markers(ins.args, self.escape):
                    doc.content = self._heredoc_body(doc, start)
                    ins.heredocs.append(doc)
                ins.end_line = self.i
            out.append(ins)
        return out

    def _heredoc_body(self, doc: Heredoc, start: int) -> str:
        body: list[str] = []
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            self.i += 1
            last = self.i == len(self.lines)
            candidate = raw.rstrip("\r\n")
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                return "".join(body)
            body.append(raw if last else raw + "\n")
        raise ParseError("unterminated heredoc", start)


def make_instruction(logical: str, line: int, end_line: int, escape: str = "\\") -> Instruction:
    parts = _WS.split(logical.strip(), maxsplit=1)
    keyword = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    args, flag_words = _builder_flags(rest, escape)
    cmd = keyword.upper()
    ins = Instruction(cmd=cmd, keyword=keyword, args=args.strip(), flags={}, original=logical.strip(),
                      line=line, end_line=end_line)
    if cmd not in KNOWN:
        raise ParseError(f"unknown instruction: {keyword}", line)
    ins.flags = _check_flags(cmd, flag_words, line)
    if cmd == "ONBUILD":
        trigger = ins.args
        if not trigger:
            raise ParseError("ONBUILD requires at least one argument", line)
        word = _WS.split(trigger, maxsplit=1)[0].upper()
        if word in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ParseError(f"{word} isn't allowed as an ONBUILD trigger", line)
        ins.trigger = make_instruction(trigger, line, end_line, escape)
    return ins


def _builder_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--flag`` words (quotes and escapes removed) and what follows them."""
    words: list[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        cur: list[str] = []
        quote = ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == escape and pos + 1 < n:
                    pos += 1
                    cur.append(line[pos])
                else:
                    cur.append(ch)
            elif ch.isspace():
                break
            elif ch in "'\"":
                quote = ch
            elif ch == escape:
                if pos + 1 < n:
                    pos += 1
                    cur.append(line[pos])
            else:
                cur.append(ch)
            pos += 1
        word = "".join(cur)
        if word == "--":
            return line[pos:], words
        words.append(word)


def _check_flags(cmd: str, flag_words: list[str], line: int) -> dict[str, list[str]]:
    allowed = FLAGS.get(cmd, {})
    out: dict[str, list[str]] = {}
    for w in flag_words:
        name, eq, value = w[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            raise ParseError(f"unknown flag: --{name}", line)
        if name in out and kind != STRINGS:
            raise ParseError(f"duplicate flag specified: --{name}", line)
        if kind == BOOL:
            if eq and value == "":
                raise ParseError(f"missing a value on flag: --{name}", line)
            if value.lower() not in ("", "true", "false"):
                raise ParseError(f"expecting boolean value for flag --{name}, not: {value}", line)
            value = "false" if value.lower() == "false" else "true"
        elif not eq:
            raise ParseError(f"missing a value on flag: --{name}", line)
        out.setdefault(name, []).append(value)
    return out


def _raw_words(text: str) -> list[str]:
    """White-space separated words, quotes kept (for finding here-document markers)."""
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch.isspace():
            if cur:
                out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    # "<< EOF": the marker and its word
    joined: list[str] = []
    for w in out:
        if joined and re.fullmatch(r"\d*<<-?", joined[-1]):
            joined[-1] += w
        else:
            joined.append(w)
    return joined


def heredoc_markers(args: str, escape: str = "\\") -> list[Heredoc]:
    """The here-documents an instruction's arguments open, in order (contents not read yet)."""
    docs = []
    for w in _raw_words(args):
        m = _HEREDOC.match(w)
        if not m or not m.group(3) or "<" in m.group(3):
            continue
        rest = m.group(3)
        name = Lexer(escape).word(rest, None)
        docs.append(Heredoc(name=name, content="", expand=not any(q in rest for q in "'\""),
                            chomp=m.group(2) == "-", fd=int(m.group(1) or 0)))
    return docs


# -- stages --------------------------------------------------------------------------------------
def _assemble(instructions: list[Instruction], directives: dict[str, str], escape: str,
              warnings: list[str]) -> Dockerfile:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            stages.append(_stage(ins, len(stages), stages))
        elif not stages:
            if ins.cmd != "ARG":
                raise ins.error(f"no build stage in current context: {ins.keyword} before the first FROM")
            meta.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise BuildError("dockerfile contains no stages to build")
    return Dockerfile(directives=directives, escape=escape, meta_args=meta, stages=stages,
                      warnings=warnings, all_instructions=instructions)


def _stage(ins: Instruction, index: int, before: list[Stage]) -> Stage:
    w = ins.args.split()
    if len(w) not in (1, 3) or (len(w) == 3 and w[1].lower() != "as"):
        raise ins.error("FROM requires either one or three arguments")
    name = None
    if len(w) == 3:
        name = w[2].lower()
        if not _STAGE_NAME.match(name):
            raise ins.error(f"invalid name for build stage: {w[2]!r}, name can't start with a "
                            "number or contain symbols")
        if any(s.name == name for s in before):
            raise ins.error(f"duplicate stage name {name!r}")
    return Stage(index=index, name=name, base=w[0], from_ins=ins, instructions=[])


# -- static checks ------------------------------------------------------------------------------
def check(ins: Instruction, lexer: Lexer) -> None:
    """What can be known wrong about one instruction without running anything."""
    try:
        _CHECKS.get(ins.cmd, _no_check)(ins, lexer)
        if ins.trigger is not None:
            check(ins.trigger, lexer)
    except ParseError:
        raise
    except BuildError as exc:
        raise ins.error(exc.message) from None


def _no_check(ins: Instruction, lexer: Lexer) -> None:
    return None


def _check_copy(ins: Instruction, lexer: Lexer) -> None:
    j = ins.json
    n = len(j) if j is not None else len(lexer.words(ins.args, None))
    if n < 2 and not (ins.heredocs and n >= 1):
        raise BuildError(f"{ins.cmd} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined.")
    chmod = ins.flag("chmod")
    if chmod and "$" not in chmod:
        from .steps.chmod import parse_chmod
        parse_chmod(chmod)
    if ins.flag("checksum") and "$" not in ins.flag("checksum"):
        from .remote import parse_checksum
        parse_checksum(ins.flag("checksum"))


def _check_run(ins: Instruction, lexer: Lexer) -> None:
    if not ins.args and not ins.heredocs:
        raise BuildError("RUN requires at least one argument")
    network = ins.flag("network", "default")
    if network not in ("default", "none", "host"):
        raise BuildError(f"unsupported network mode {network!r} (default, none or host)")
    security = ins.flag("security", "sandbox")
    if security not in ("sandbox", "insecure"):
        raise BuildError(f"unsupported security mode {security!r} (sandbox or insecure)")
    from .mounts import parse_mount
    for spec in ins.flags.get("mount", []):
        parse_mount(spec)


def _check_json_only(ins: Instruction, lexer: Lexer) -> None:
    if not ins.json:
        raise BuildError(f"{ins.cmd} requires the arguments to be in JSON form")


def _check_nonempty(ins: Instruction, lexer: Lexer) -> None:
    if not ins.args.strip():
        raise BuildError(f"{ins.cmd} requires at least one argument")


def _check_key_values(ins: Instruction, lexer: Lexer) -> None:
    key_values(ins.cmd, ins.args, {}, lexer)


def _check_healthcheck(ins: Instruction, lexer: Lexer) -> None:
    from .steps.config import healthcheck_config
    healthcheck_config(ins, {}, lexer, check_only=True)


_CHECKS: dict[str, Any] = {
    "COPY": _check_copy, "ADD": _check_copy, "RUN": _check_run, "SHELL": _check_json_only,
    "ENV": _check_key_values, "LABEL": _check_key_values, "HEALTHCHECK": _check_healthcheck,
    "CMD": _check_nonempty, "ENTRYPOINT": _check_nonempty, "USER": _check_nonempty,
    "WORKDIR": _check_nonempty, "ARG": _check_nonempty, "EXPOSE": _check_nonempty,
    "VOLUME": _check_nonempty, "STOPSIGNAL": _check_nonempty, "MAINTAINER": _check_nonempty,
}
