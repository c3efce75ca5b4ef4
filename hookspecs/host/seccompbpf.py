"""Seccomp filters: an OCI ``linux.seccomp`` object compiled to a classic-BPF program, and
installed on the calling thread.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`). The object (``defaultAction``,
``defaultErrnoRet``, ``architectures``, ``syscalls`` with ``names``, ``action``, ``errnoRet`` and
``args``; :func:`dockyard.hookspecs.host.seccomp.resolve` makes one from a Docker profile) is
compiled with libseccomp's Python binding (Debian's ``python3-seccomp``) to a BPF program
(:func:`compile_bpf`; :func:`bpf_for` remembers programs, so a fork server pays each compile
once) and installed with ``prctl(PR_SET_SECCOMP)`` (:func:`load_bpf`) as the last step before
``execve``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
from typing import Any

from ..bindings import Binding, advice
from .ns import prctl

# fmt: off
__all__ = ["SECCOMP_BINDING", "ACTIONS", "compile_filter", "compile_bpf", "bpf_for", "load_bpf",
           "load_seccomp", "wants_enosys", "enosys_ranges", "enosys_stub", "BPF_MAXINSNS",
           "ENOSYS_BOUND"]
# fmt: on

#: Debian's libseccomp binding (not on PyPI): without it, no seccomp profile can be applied. An
#: exec driver that compiles filters lists it in its ``bindings`` (the daemon checks at start-up)
SECCOMP_BINDING = Binding(
    "seccomp",
    "python3-seccomp",
    "seccomp profiles (Docker's default one included) cannot be applied, so "
    "containers start only with --security-opt seccomp=unconfined; everything "
    "else works",
)

#: the actions :func:`compile_filter` compiles (Docker's ``SCMP_ACT_*`` names)
ACTIONS = frozenset(
    {
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRAP",
    }
)


# -- seccomp --------------------------------------------------------------------------------------
# fmt: off
_OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
        "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
# fmt: on


def _action(seccomp: Any, name: str, errno_ret: int | None) -> Any:
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    raise ValueError(f"unsupported seccomp action {name!r}")


# fmt: off
_ARCHES = {"SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X32": "X32",
           "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_PPC64LE": "PPC64LE",
           "SCMP_ARCH_S390X": "S390X", "SCMP_ARCH_S390": "S390"}
# fmt: on


def _import_seccomp() -> Any:
    try:
        import seccomp  # Debian's python3-seccomp; imported only when a profile is asked for
    except ImportError:
        raise RuntimeError(
            "a seccomp profile was asked for but libseccomp's Python binding is "
            "not importable: " + advice(SECCOMP_BINDING)
        ) from None
    return seccomp


def compile_filter(profile: dict[str, Any]) -> Any:
    """A ``seccomp.SyscallFilter`` for an OCI ``linux.seccomp`` object (not loaded yet)."""
    seccomp = _import_seccomp()
    default = _action(
        seccomp, profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet")
    )
    flt = seccomp.SyscallFilter(default)
    for name in profile.get("architectures") or ():
        arch = getattr(seccomp.Arch, _ARCHES.get(name, ""), None)
        if arch is None:
            continue  # an architecture libseccomp cannot filter for here
        try:
            flt.add_arch(arch)
        except (RuntimeError, ValueError, OSError):
            pass  # already in the filter (the native one)
    for rule in profile.get("syscalls") or ():
        act = _action(seccomp, rule.get("action", "SCMP_ACT_ALLOW"), rule.get("errnoRet"))
        if act == default:
            continue  # libseccomp refuses a rule whose action is the default one
        args = []
        for a in rule.get("args") or ():
            op = a.get("op", "SCMP_CMP_EQ")
            if op not in _OPS:
                raise ValueError(f"unsupported seccomp operator {op!r}")
            values = [int(a.get("value", 0))]
            if op == "SCMP_CMP_MASKED_EQ":
                values.append(int(a.get("valueTwo", 0)))
            args.append(seccomp.Arg(int(a["index"]), getattr(seccomp, _OPS[op]), *values))
        for name in rule.get("names") or ():
            try:
                flt.add_rule(act, name, *args)
            except (RuntimeError, ValueError, OSError):
                continue  # a syscall this architecture or libseccomp does not know
    return flt


# -- ENOSYS for system calls newer than the profile ----------------------------------------------
# A deny-by-default profile answers EPERM to a system call it does not name. For a call newer than
# the profile that is the wrong answer: libc (glibc, musl) falls back from a new call (clone3,
# fchmodat2, ...) only on ENOSYS, "this kernel has no such call", and takes EPERM as a real refusal.
# So, as runc does, every number above the highest one the profile names for an architecture
# answers ENOSYS. libseccomp cannot say "numbers above N" (a rule names one call it knows; numbers
# it does not know are refused), so the check is a short classic-BPF stub put in front of
# libseccomp's program: BPF jumps are relative and only forward, so the program behind the stub is
# unchanged.

X32_SYSCALL_BIT = 0x40000000
BPF_MAXINSNS = 4096
#: the highest number the stub answers ENOSYS for: above every table the kernel has today (x86_64
#: and i386 end below 470, x32's own calls are 512..547), so a stray huge or negative number keeps
#: the profile's default action
ENOSYS_BOUND = 1023
#: libseccomp architecture -> (the kernel's AUDIT_ARCH_* in seccomp_data.arch, the segments of its
#: numbering, each getting ENOSYS above the highest number the profile names inside it). x32 shares
#: x86_64's AUDIT_ARCH and sets bit 30 in the number; its own calls (512 and up) are a second
#: segment, otherwise naming rt_sigaction (x32: 512) would hide every new common call (450, ...).
# fmt: off
_ENOSYS_ARCHES: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "X86_64": (0xC000003E, ((0, ENOSYS_BOUND),)),
    "X86": (0x40000003, ((0, ENOSYS_BOUND),)),
    "X32": (0xC000003E, ((X32_SYSCALL_BIT, X32_SYSCALL_BIT + 511),
                         (X32_SYSCALL_BIT + 512, X32_SYSCALL_BIT + ENOSYS_BOUND))),
    "AARCH64": (0xC00000B7, ((0, ENOSYS_BOUND),)),
}
# fmt: on
#: default actions that let an unnamed call through (or hand it to a tracer/listener that should
#: cope with new calls itself): no stub, as in runc
_PERMISSIVE = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"}


def wants_enosys(profile: dict[str, Any]) -> bool:
    """Whether calls newer than ``profile`` should answer ENOSYS: only when its default denies
    (ERRNO, KILL*, TRAP) and that denial is not already ENOSYS."""
    action = profile.get("defaultAction", "SCMP_ACT_ALLOW")
    if action in _PERMISSIVE:
        return False
    return not (action == "SCMP_ACT_ERRNO" and profile.get("defaultErrnoRet") == errno.ENOSYS)


def _filter_arches(seccomp: Any, profile: dict[str, Any]) -> list[str]:
    """libseccomp's names (``X86_64``...) of the architectures the filter covers: the profile's
    plus the native one, which libseccomp always puts in."""
    names = [_ARCHES.get(a, "") for a in profile.get("architectures") or ()]
    native = seccomp.system_arch() & 0xFFFFFFFF  # the binding gives one unsigned, Arch signed
    names += [
        n for n in _ARCHES.values() if int(getattr(seccomp.Arch, n, -1)) & 0xFFFFFFFF == native
    ]
    out: list[str] = []
    for n in names:
        if n in _ENOSYS_ARCHES and n not in out:
            out.append(n)
    return out


def enosys_ranges(profile: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """Per libseccomp architecture, the inclusive ranges of numbers that answer ENOSYS: above the
    highest number (resolved by libseccomp for that architecture) any rule of ``profile`` names,
    whatever its action, up to the segment's bound. Empty when the profile's default action does
    not deny. An architecture for which the profile names nothing libseccomp knows is left out."""
    if not wants_enosys(profile):
        return {}
    seccomp = _import_seccomp()
    names = {n for rule in profile.get("syscalls") or () for n in rule.get("names") or ()}
    out: dict[str, list[tuple[int, int]]] = {}
    for arch_name in _filter_arches(seccomp, profile):
        arch = getattr(seccomp.Arch, arch_name)
        nums = set()
        for name in names:
            try:
                nr = seccomp.resolve_syscall(arch, name)
            except (RuntimeError, ValueError, OSError):
                continue  # a name this architecture or libseccomp does not know
            if nr >= 0:  # negative: libseccomp's pseudo number for a call this arch lacks
                nums.add(nr)
        if not nums:
            continue
        ranges = []
        for lo, hi in _ENOSYS_ARCHES[arch_name][1]:
            top = max((n for n in nums if lo <= n <= hi), default=lo - 1)
            if top < hi:
                ranges.append((top + 1, hi))
        out[arch_name] = ranges
    return out


# classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS, _JA, _JEQ, _JGT, _JGE, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06
SECCOMP_RET_ERRNO = 0x00050000


def _assemble(items: list[Any]) -> bytes:
    """Instructions ``(code, jt, jf, k)`` whose jump targets may be label names, and labels
    (plain strings), to ``struct sock_filter`` bytes. ``"filter"`` is the first instruction after
    the stub. Every jump here is short: the stub is a few dozen instructions."""
    labels: dict[str, int] = {}
    pc = 0
    for item in items:
        if isinstance(item, str):
            labels[item] = pc
        else:
            pc += 1
    labels["filter"] = pc
    out = bytearray()
    pc = 0

    def rel(target: Any, pc: int) -> int:
        off = (labels[target] if isinstance(target, str) else pc + 1 + target) - (pc + 1)
        assert 0 <= off <= 255, off
        return off

    for item in items:
        if isinstance(item, str):
            continue
        code, jt, jf, k = item
        if code == _JA:
            k, jt, jf = labels[k] - (pc + 1), 0, 0
        elif code & 0x07 == 0x05:
            jt, jf = rel(jt, pc), rel(jf, pc)
        out += struct.pack("=HBBI", code, jt, jf, k)
        pc += 1
    return bytes(out)


def enosys_stub(profile: dict[str, Any]) -> bytes:
    """The BPF instructions to put in front of libseccomp's program for :func:`enosys_ranges`
    (empty when there are none)::

        ld  [4]                       ; seccomp_data.arch
        jeq AUDIT_ARCH_X86_64, x86_64 ; one per AUDIT_ARCH
        jeq AUDIT_ARCH_I386, x86
        ja  filter
      x86_64:
        ld  [0]                       ; seccomp_data.nr
        jset 0x40000000, x32          ; x32 shares x86_64's AUDIT_ARCH
        jge 450, 0, filter            ; one pair per range
        jgt 1023, filter, enosys
      x32: ...
      enosys:
        ret ERRNO(ENOSYS)
      filter:                         ; libseccomp's program, untouched
    """
    ranges = enosys_ranges(profile)
    if not any(ranges.values()):
        return b""
    by_audit: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for arch_name, rs in ranges.items():
        by_audit.setdefault(_ENOSYS_ARCHES[arch_name][0], {})[arch_name] = rs
    items: list[Any] = [(_LD_W_ABS, 0, 0, 4)]
    for audit in by_audit:
        items.append((_JEQ, f"a{audit}", 0, audit))
    items.append((_JA, 0, 0, "filter"))

    def checks(tag: str, rs: list[tuple[int, int]]) -> list[Any]:
        body: list[Any] = []
        for i, (lo, hi) in enumerate(rs):
            nxt = f"{tag}.{i + 1}" if i + 1 < len(rs) else "filter"
            body += [f"{tag}.{i}", (_JGE, 0, nxt, lo), (_JGT, nxt, "enosys", hi)]
        return body or [(_JA, 0, 0, "filter")]  # the last jgt jumps either way

    for audit, arches in by_audit.items():
        items += [f"a{audit}", (_LD_W_ABS, 0, 0, 0)]
        x32 = arches.pop("X32", None)
        if x32 is not None:
            items.append((_JSET, "x32", 0 if arches else "filter", X32_SYSCALL_BIT))
        for arch_name, rs in arches.items():
            items += checks(arch_name, rs)
        if x32 is not None:
            items += ["x32", *checks("X32", x32)]
    items += ["enosys", (_RET, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    return _assemble(items)


def compile_bpf(profile: dict[str, Any]) -> bytes:
    """The classic-BPF program of a profile, every architecture's dispatch included, behind the
    ENOSYS stub for calls newer than the profile (:func:`enosys_stub`)."""
    flt = compile_filter(profile)
    try:  # a binary tree instead of a linear chain: the kernel installs (and runs) it faster
        flt.set_attr(_import_seccomp().Attr.CTL_OPTIMIZE, 2)
    except (AttributeError, RuntimeError, ValueError, OSError):
        pass  # libseccomp < 2.5
    fd = os.memfd_create("dockyard-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as f:
        flt.export_bpf(f)
        f.flush()
        f.seek(0)
        program = f.read()
    stub = enosys_stub(profile)
    if len(stub + program) // 8 > BPF_MAXINSNS:
        raise ValueError(
            f"seccomp profile too large: {len(stub + program) // 8} BPF "
            f"instructions, the kernel takes at most {BPF_MAXINSNS}"
        )
    return stub + program


_bpf_cache: dict[str, bytes] = {}


def bpf_for(profile: dict[str, Any]) -> bytes:
    """:func:`compile_bpf`, remembered per profile: the profile is already resolved for one
    capability set, so the key is (profile, caps); the fork server pays the compile once."""
    key = json.dumps(profile, sort_keys=True, separators=(",", ":"))
    bpf = _bpf_cache.get(key)
    if bpf is None:
        bpf = compile_bpf(profile)
        if len(_bpf_cache) >= 64:
            _bpf_cache.pop(next(iter(_bpf_cache)))
        _bpf_cache[key] = bpf
    return bpf


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_bpf(bpf: bytes) -> None:
    """Install a program from :func:`compile_bpf` on the calling thread (needs no_new_privs or
    CAP_SYS_ADMIN, as libseccomp's load does)."""
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))


def load_seccomp(flt: Any) -> None:
    if isinstance(flt, bytes):
        load_bpf(flt)
    else:
        flt.load()
