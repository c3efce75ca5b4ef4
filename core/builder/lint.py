"""Build checks (BuildKit's linter) and the ``# check=`` directive that configures them.

``# check=skip=<rule>[,<rule>...]|all;error=true|false;experimental=...``: the named rules are
skipped; with ``error=true`` a build with any warning fails before its first step, naming the
rules (BuildKit's ``lint violation found for rules: ...``). The rules are BuildKit's, checked on
the Dockerfile as written; each warning names its line.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterator

from .errors import BuildError, ParseError
from .parse import Dockerfile, Instruction, Stage

RULES: dict[str, str] = {
    "StageNameCasing": "Stage names should be lowercase",
    "FromAsCasing": "The 'as' keyword should match the case of the 'from' keyword",
    "NoEmptyContinuation": "Empty continuation lines will become errors in a future release",
    "ConsistentInstructionCasing": "All commands within the Dockerfile should use the same casing",
    "ReservedStageName": "Reserved words should not be used as stage names",
    "JSONArgsRecommended": "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended "
                           "behavior related to OS signals",
    "MaintainerDeprecated": "The MAINTAINER instruction is deprecated, use a label instead to "
                            "define an image author",
    "UndefinedArgInFrom": "FROM command must use declared ARGs",
    "WorkdirRelativePath": "Relative workdir without an absolute workdir declared within the "
                           "build can have unexpected results if the base image changes",
    "MultipleInstructionsDisallowed": "Multiple instructions of the same type should not be used "
                                      "in the same stage",
    "LegacyKeyValueFormat": "Legacy key/value format with whitespace separator should not be used",
    "SecretsUsedInArgOrEnv": "Sensitive data should not be used in the ARG or ENV commands",
    "ExposeProtoCasing": "Protocol in EXPOSE instruction should be lowercase",
    "RedundantTargetPlatform": "Setting platform to predefined $TARGETPLATFORM in FROM is "
                               "redundant as this is the default behavior",
    "FromPlatformFlagConstDisallowed": "FROM --platform flag should not use a constant value",
}
PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM",
                 "BUILDOS", "BUILDARCH", "BUILDVARIANT")
_SECRET = re.compile(r"(?i)(?:^|_)(?:apikey|auth|credentials?|key|password|pword|passwd|secret|token)(?:_|$)")
_VARS = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@dataclasses.dataclass
class CheckConfig:
    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False
    notes: tuple[str, ...] = ()


def parse_check(value: str) -> CheckConfig:
    """The ``# check=`` directive's value."""
    skip: set[str] = set()
    skip_all = error = False
    notes = []
    text = value.strip().split(" ", 1)[0]
    for part in [p for p in text.split(";") if p.strip()] if text else []:
        key, eq, val = part.partition("=")
        key, val = key.strip(), val.strip()
        if not eq:
            raise BuildError(f"invalid check option {part!r}")
        if key == "skip":
            if val == "all":
                skip_all = True
            else:
                names = {n.strip() for n in val.split(",") if n.strip()}
                notes += [f"unknown check {n!r} in the check directive" for n in sorted(names - set(RULES))]
                skip |= names
        elif key == "error":
            if val.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise BuildError(f"failed to parse check option {part!r}")
            error = val.lower() in ("1", "t", "true")
        elif key == "experimental":
            notes.append("no experimental checks are implemented: experimental= selects none")
        else:
            raise BuildError(f"invalid check option {key!r}")
    return CheckConfig(frozenset(skip), skip_all, error, tuple(notes))


Warn = Callable[[str, str, int], None]


def run_checks(df: Dockerfile) -> tuple[list[str], BuildError | None]:
    """The warnings for ``df`` (``"Rule: message (line N)"``) and, with ``error=true``, the
    error that stops the build."""
    try:
        cfg = parse_check(df.directives.get("check", ""))
    except BuildError as exc:
        return [], ParseError(exc.message, 1)
    found: list[tuple[str, str, int]] = []

    def warn(rule: str, msg: str, line: int) -> None:
        if not cfg.skip_all and rule not in cfg.skip:
            found.append((rule, msg, line))

    for check in _CHECKS:
        check(df, warn)
    out = [f"{note}" for note in cfg.notes]
    out += [f"{rule}: {msg}" + (f" (line {line})" if line else "") for rule, msg, line in found]
    if cfg.error and found:
        names = ", ".join(sorted({r for r, _, _ in found}))
        return out, BuildError(f"lint violation found for rules: {names}")
    return out, None


def _stage_instructions(df: Dockerfile) -> Iterator[tuple[Stage, Instruction]]:
    for st in df.stages:
        for ins in st.instructions:
            yield st, ins


def _check_stages(df: Dockerfile, warn: Warn) -> None:
    for st in df.stages:
        words = st.from_ins.args.split()
        if len(words) == 3:
            if words[2] != words[2].lower():
                warn("StageNameCasing", f"Stage name '{words[2]}' should be lowercase", st.from_ins.line)
            if st.name in ("scratch", "context"):
                warn("ReservedStageName", f"Stage name should not use the same name as reserved "
                     f"stage {st.name!r}", st.from_ins.line)
            kw, as_ = st.from_ins.keyword, words[1]
            if (kw.isupper() and not as_.isupper()) or (kw.islower() and not as_.islower()):
                warn("FromAsCasing", f"'{as_}' and '{kw}' keywords' casing do not match", st.from_ins.line)
        platform = st.from_ins.flag("platform")
        if platform in ("$TARGETPLATFORM", "${TARGETPLATFORM}"):
            warn("RedundantTargetPlatform", f"Setting platform to predefined {platform} in FROM "
                 "is redundant as this is the default behavior", st.from_ins.line)
        elif platform and "$" not in platform:
            warn("FromPlatformFlagConstDisallowed", f"FROM --platform flag should not use "
                 f"constant value {platform!r}", st.from_ins.line)
        declared = set(PLATFORM_ARGS)
        for ins in df.meta_args:
            declared |= {w.split("=", 1)[0] for w in ins.args.split()}
        for var in _VARS.findall(st.base + " " + platform):
            if var not in declared:
                warn("UndefinedArgInFrom", f"FROM argument '{var}' is not declared", st.from_ins.line)


def _check_casing(df: Dockerfile, warn: Warn) -> None:
    upper = sum(1 for ins in df.all_instructions if ins.keyword.isupper())
    lower = sum(1 for ins in df.all_instructions if ins.keyword.islower())
    majority = "uppercase" if upper >= lower else "lowercase"
    for ins in df.all_instructions:
        if (majority == "uppercase" and not ins.keyword.isupper()) or \
                (majority == "lowercase" and not ins.keyword.islower()):
            warn("ConsistentInstructionCasing", f"Command '{ins.keyword}' should match the case "
                 f"of the command majority ({majority})", ins.line)


def _check_instructions(df: Dockerfile, warn: Warn) -> None:
    for text in df.warnings:
        warn("NoEmptyContinuation", text, 0)
    for ins in df.meta_args:
        _secret_names(ins, warn)
    for st in df.stages:
        seen: dict[str, int] = {}
        absolute = False
        for ins in st.instructions:
            if ins.cmd in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
                seen[ins.cmd] = seen.get(ins.cmd, 0) + 1
                if seen[ins.cmd] == 2:
                    warn("MultipleInstructionsDisallowed", f"Multiple {ins.cmd} instructions should "
                         "not be used in the same stage because only the last one will be used", ins.line)
            if ins.cmd in ("CMD", "ENTRYPOINT") and ins.json is None:
                warn("JSONArgsRecommended", f"JSON arguments recommended for {ins.cmd} to prevent "
                     "unintended behavior related to OS signals", ins.line)
            elif ins.cmd == "MAINTAINER":
                warn("MaintainerDeprecated", RULES["MaintainerDeprecated"], ins.line)
            elif ins.cmd in ("ENV", "LABEL") and "=" not in ins.args.split(None, 1)[0]:
                warn("LegacyKeyValueFormat", f'"{ins.cmd} key=value" should be used instead of '
                     f'legacy "{ins.cmd} key value" format', ins.line)
            elif ins.cmd == "WORKDIR":
                if ins.args.startswith(("/", "$")):
                    absolute = True
                elif not absolute:
                    warn("WorkdirRelativePath", f"Relative workdir {ins.args!r} can have unexpected "
                         "results if the base image changes", ins.line)
            elif ins.cmd == "EXPOSE":
                for port in ins.args.split():
                    if "/" in port and port.split("/", 1)[1] != port.split("/", 1)[1].lower():
                        warn("ExposeProtoCasing", f"Defined protocol '{port}' in EXPOSE instruction "
                             "should be lowercase", ins.line)
            if ins.cmd in ("ARG", "ENV"):
                _secret_names(ins, warn)


def _secret_names(ins: Instruction, warn: Warn) -> None:
    for w in ins.args.split():
        name = w.split("=", 1)[0]
        if _SECRET.search(name):
            warn("SecretsUsedInArgOrEnv", f"Do not use ARG or ENV instructions for sensitive data "
                 f"({ins.cmd} {name!r})", ins.line)
        if ins.cmd == "ENV" and "=" not in ins.args.split(None, 1)[0]:
            return  # the legacy form names one variable


_CHECKS = (_check_stages, _check_casing, _check_instructions)
