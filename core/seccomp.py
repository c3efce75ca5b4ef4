"""The daemon's seccomp policy: which profile a container gets, checked when it is created.

The profile format, Docker's default profile and :func:`~dockyard.hookspecs.host.seccomp.resolve`
live in the driver toolkit (:mod:`dockyard.hookspecs.host.seccomp`); what an exec driver can
compile is :data:`dockyard.hookspecs.host.seccompbpf.ACTIONS`. Here: reading
``--security-opt seccomp=...`` (refused at create with a 400 when it cannot be read, parsed or
compiled), and choosing a container's ``linux.seccomp`` — none for ``--privileged`` and
``seccomp=unconfined``, Docker's default otherwise.
"""
from __future__ import annotations

import json
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.seccomp import DEFAULT, resolve
from dockyard.hookspecs.host.seccompbpf import ACTIONS

from .schema import decode
from .schema.seccomp import SeccompProfile

__all__ = ["parse_profile", "normalize_security_opts", "for_container"]


def parse_profile(value: str) -> dict[str, Any]:
    """A profile from ``--security-opt seccomp=VALUE``: the JSON itself (what the docker CLI
    sends: it reads the file client-side) or the path of a JSON file on the daemon's host."""
    text = value
    if not value.lstrip().startswith("{"):
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidParameter(f"opening seccomp profile ({value}) failed: "
                                   f"{e.strerror or e}") from None
    try:
        profile = decode(text.encode(), SeccompProfile)
    except InvalidParameter as e:
        raise InvalidParameter(f"decoding seccomp profile failed: {e.message}") from None
    if not profile.get("defaultAction"):
        raise InvalidParameter("decoding seccomp profile failed: no defaultAction")
    _check_action(profile["defaultAction"], "defaultAction")
    for rule in profile.get("syscalls") or ():
        names = rule.get("names") or [rule.get("name")]
        _check_action(rule.get("action", "SCMP_ACT_ALLOW"), f"the rule for {names[0]}")
    return profile


#: actions of Docker's format that hand the call to another process, which dockyard does not run
_UNSUPPORTED = {
    "SCMP_ACT_NOTIFY": "it hands the call to a user-space listener (listenerPath), and dockyard "
                       "runs none",
    "SCMP_ACT_TRACE": "it hands the call to a ptrace tracer, and dockyard attaches none (without "
                      "one the kernel fails every such call with ENOSYS)",
}


def _check_action(action: Any, where: str) -> None:
    """Refuse at create (400), not at start, an action the exec driver cannot compile."""
    if action in ACTIONS:
        return
    why = _UNSUPPORTED.get(action) if isinstance(action, str) else None
    if why:
        raise InvalidParameter(f"seccomp profile: {action} ({where}) is not supported: {why}")
    raise InvalidParameter(f"seccomp profile: unknown action {action!r} ({where}); supported: "
                           + ", ".join(sorted(ACTIONS)))


def _split(opt: str) -> tuple[str, str] | None:
    """``seccomp=VALUE`` or Docker's older ``seccomp:VALUE``: (key, value)."""
    cut = min((i for i in (opt.find("="), opt.find(":")) if i >= 0), default=-1)
    return None if cut < 0 else (opt[:cut], opt[cut + 1:])


def normalize_security_opts(opts: Any) -> list[str] | None:
    """Check ``HostConfig.SecurityOpt`` at create time, as Docker does: a seccomp profile that
    cannot be read or parsed is refused there; a profile given as a path on the daemon's host
    is stored as its JSON (what the docker CLI sends anyway), so later edits of the file do not
    change the container."""
    if opts is None:
        return None
    out = []
    for opt in opts:
        kv = _split(opt)
        if kv and kv[0] == "seccomp" and kv[1] not in ("unconfined", "", "builtin", "default"):
            opt = "seccomp=" + json.dumps(parse_profile(kv[1]), separators=(",", ":"))
        out.append(opt)
    return out


def for_container(security_opts: list[str], caps: list[str],
                  privileged: bool) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` object for a container (None: no filter)."""
    if privileged:
        return None
    profile = DEFAULT
    for opt in security_opts:
        kv = _split(opt)
        if kv is None or kv[0] != "seccomp":
            continue
        value = kv[1]
        if value == "unconfined":
            return None
        if value in ("", "builtin", "default"):
            profile = DEFAULT
        else:
            profile = parse_profile(value)
    return resolve(profile, caps)
