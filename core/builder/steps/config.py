"""Instructions that only change the image config: each is one ``empty_layer`` history entry
(ARG, ENV, LABEL, MAINTAINER, CMD, ENTRYPOINT, SHELL, EXPOSE, VOLUME, USER, STOPSIGNAL, ONBUILD,
HEALTHCHECK)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import BuildError
from ..lint import PLATFORM_ARGS
from ..output import StepOutput
from ..parse import Instruction
from ..shell import Lexer, go_duration, json_list, key_values

if TYPE_CHECKING:
    from ..stage import StageRun


def arg_pairs(args: str, env: dict[str, str], lexer: Lexer) -> list[tuple[str, str | None, str]]:
    """``ARG A B=x``: (name, default or None, the word as written) for each."""
    out = []
    for raw in args.split():
        name, eq, default = raw.partition("=")
        if not name:
            raise BuildError("ARG requires at least one argument")
        out.append((name, lexer.word(default, env) if eq else None, raw))
    if not out:
        raise BuildError("ARG requires at least one argument")
    return out


async def do_arg(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    b = st.b
    for name, default, _raw in arg_pairs(ins.args, st.env(), b.lexer):
        value = default
        if name in b.opts.buildargs:
            b.used_args.add(name)
            if b.opts.buildargs[name] is not None:
                value = b.opts.buildargs[name]
        elif default is None and name in b.meta:
            value = b.meta[name]
        elif default is None and name in PLATFORM_ARGS:
            value = b.platform_args[name]
        st.args[name] = value
    await st.meta(out, "ARG " + ins.args)


async def do_env(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    pairs = key_values("ENV", ins.args, st.env(), st.b.lexer)
    env = list(st.cfg.get("Env") or [])
    for k, v in pairs:
        env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
    st.cfg["Env"] = env
    await st.meta(out, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))


async def do_label(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    pairs = key_values("LABEL", ins.args, st.env(), st.b.lexer)
    st.cfg["Labels"] = {**(st.cfg.get("Labels") or {}), **dict(pairs)}
    await st.meta(out, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))


async def do_maintainer(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    st.author = ins.args.strip()
    await st.meta(out, "MAINTAINER " + st.author)


def command_line(st: "StageRun", rest: str) -> list[str]:
    parsed = json_list(rest)
    return parsed if parsed is not None else [*st.shell, rest]


async def do_cmd(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    st.cfg["Cmd"] = command_line(st, ins.args)
    st.cmd_set = True
    await st.meta(out, "CMD " + json.dumps(st.cfg["Cmd"]))


async def do_entrypoint(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    st.cfg["Entrypoint"] = command_line(st, ins.args)
    if not st.cmd_set:
        st.cfg.pop("Cmd", None)
    await st.meta(out, "ENTRYPOINT " + json.dumps(st.cfg["Entrypoint"]))


async def do_shell(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    j = ins.json
    if not j:
        raise BuildError("SHELL requires the arguments to be in JSON form")
    st.shell = j
    st.cfg["Shell"] = j
    await st.meta(out, "SHELL " + json.dumps(j))


async def do_expose(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    ports = st.cfg.setdefault("ExposedPorts", {})
    for p in st.words(ins.args):
        port, _, proto = p.partition("/")
        if ":" in port:
            raise BuildError(f"EXPOSE {p}: an IP address or a host port cannot be exposed")
        if not port or not all(c.isdigit() or c == "-" for c in port):
            raise BuildError(f"invalid containerPort: {port}")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise BuildError(f"invalid proto: {proto}")
        ports[f"{port}/{proto}"] = {}
    await st.meta(out, "EXPOSE " + " ".join(sorted(ports)))


async def do_volume(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    j = ins.json
    vols = [st.word(v) for v in j] if j is not None else st.words(ins.args)
    if not vols:
        raise BuildError("VOLUME requires at least one argument")
    for v in vols:
        if not v.strip():
            raise BuildError("VOLUME specified can not be an empty string")
        st.cfg.setdefault("Volumes", {})[v] = {}
    await st.meta(out, "VOLUME " + json.dumps(vols))


async def do_user(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    user = st.word(ins.args)
    if not user:
        raise BuildError("USER requires exactly one argument")
    st.cfg["User"] = user
    await st.meta(out, "USER " + user)


async def do_stopsignal(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    from ...containers import parse_signal
    sig = st.word(ins.args)
    if not sig:
        raise BuildError("STOPSIGNAL requires exactly one argument")
    parse_signal(sig)
    st.cfg["StopSignal"] = sig
    await st.meta(out, "STOPSIGNAL " + sig)


async def do_onbuild(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    trigger = ins.args.strip()
    st.cfg["OnBuild"] = list(st.cfg.get("OnBuild") or []) + [trigger]
    await st.meta(out, "ONBUILD " + trigger)


def healthcheck_config(ins: Instruction, env: dict[str, str], lexer: Lexer,
                       check_only: bool = False) -> dict[str, Any]:
    kind, _, cmd = ins.args.partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if ins.flags or cmd.strip():
            raise BuildError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise BuildError(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
    cmd = cmd.strip()
    if not cmd:
        raise BuildError("Missing command after HEALTHCHECK CMD")
    j = json_list(cmd)
    hc: dict[str, Any] = {"Test": ["CMD", *j] if j is not None else ["CMD-SHELL", cmd]}
    for name, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if ins.has(name):
            value = ins.flag(name)
            if check_only and "$" in value:
                continue
            hc[key] = go_duration(lexer.word(value, env), name)
    if ins.has("retries"):
        retries = ins.flag("retries")
        if not (check_only and "$" in retries):
            retries = lexer.word(retries, env)
            if not retries.isdigit():
                raise BuildError(f"invalid --retries value {retries!r}")
            hc["Retries"] = int(retries)
    return hc


async def do_healthcheck(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    hc = healthcheck_config(ins, st.env(), st.b.lexer)
    st.cfg["Healthcheck"] = hc
    await st.meta(out, "HEALTHCHECK " + json.dumps(hc, sort_keys=True))
