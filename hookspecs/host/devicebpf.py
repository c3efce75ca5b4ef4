"""The device cgroup of cgroup v2: an eBPF ``BPF_PROG_TYPE_CGROUP_DEVICE`` program.

cgroup v2 has no ``devices`` controller: the kernel asks the eBPF programs attached to a cgroup
(and to its ancestors) with ``BPF_CGROUP_DEVICE`` whether a process in it may open or mknod a
device node. This module writes that program for a
:class:`~dockyard.hookspecs.host.devices.DeviceRules` state — so a v2 cgroup decides exactly as a v1
``devices`` cgroup given the same rules — and loads, attaches and lists programs with the
``bpf(2)`` system call (through ctypes: no compiler, no libbpf). Part of the driver toolkit
(:mod:`dockyard.hookspecs.host`), for exec drivers.

The program (``struct bpf_cgroup_dev_ctx`` in R1: ``access_type`` = access << 16 | type,
``major``, ``minor``)::

    r2 = ctx->access_type & 0xffff        ; BPF_DEVCG_DEV_BLOCK 1, _CHAR 2
    r3 = ctx->access_type >> 16           ; BPF_DEVCG_ACC_MKNOD 1, _READ 2, _WRITE 4
    r4 = ctx->major; r5 = ctx->minor
    ; one block per exception, in a stable order:
    if r2 != TYPE goto next
    r1 = r3 & ACCESS; if r1 != r3 goto next   ; deny-by-default: every access asked is granted
                      if r1 == 0  goto next   ; allow-by-default: some access asked is denied
    if r4 != MAJOR goto next                  ; left out for *
    if r5 != MINOR goto next                  ; left out for *
    r0 = !DEFAULT; exit
    next: ...
    r0 = DEFAULT; exit
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from .devices import DeviceRules
from .libc import syscall

# bpf(2) commands, program and attach types, flags (linux/bpf.h)
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_PROG_QUERY = 5, 8, 9, 16
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 1 << 1
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}


# eBPF instruction classes and fields (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_ALU32_K, _ALU32_X = 0x04, 0x0C  # BPF_ALU | BPF_K, BPF_ALU | BPF_X
_AND, _RSH, _MOV = 0x50, 0x70, 0xB0
_JMP_K, _JMP_X, _JMP32_K = 0x05, 0x0D, 0x06  # BPF_JMP | BPF_K, | BPF_X; BPF_JMP32 | BPF_K
_JEQ, _JNE = 0x10, 0x50
_EXIT = 0x95  # BPF_JMP | BPF_EXIT
R0, R1, R2, R3, R4, R5 = range(6)
LICENSE = b"Apache-2.0"


_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn`` (the register nibbles in the machine's bit-field order)."""
    regs = (src << 4) | dst if _LITTLE else (dst << 4) | src
    return struct.pack("=BBhi", code, regs, off, imm)


def _cmp(op: int, reg: int, value: int) -> tuple[int, int, int]:
    """(code, reg, imm) of a jump comparing ``reg`` with a 32-bit value: a 64-bit compare while
    the value fits in a positive s32 (every kernel with cgroup device programs), else a 32-bit
    one (kernel 5.1+; device numbers never need it)."""
    if value < 1 << 31:
        return _JMP_K | op, reg, value
    return _JMP32_K | op, reg, value - (1 << 32)


def program(rules: DeviceRules) -> bytes:
    """The instructions (``struct bpf_insn`` bytes) deciding as ``rules`` do."""
    body: list[tuple[int, int, int, int, str | None]] = []  # code, dst, src, imm, jump label
    labels: dict[str, int] = {}

    def emit(code: int, dst: int = 0, src: int = 0, imm: int = 0, to: str | None = None) -> None:
        body.append((code, dst, src, imm, to))

    def jump(op: int, reg: int, value: int, to: str) -> None:
        code, reg, imm = _cmp(op, reg, value)
        emit(code, reg, imm=imm, to=to)

    emit(_LDX_MEM_W, R2, R1)  # r2 = ctx->access_type & 0xffff
    emit(_ALU32_K | _AND, R2, imm=0xFFFF)
    emit(_LDX_MEM_W, R3, R1)  # r3 = ctx->access_type >> 16
    emit(_ALU32_K | _RSH, R3, imm=16)
    body.append((_LDX_MEM_W, R4, R1, 4, None))  # r4 = ctx->major (imm holds the offset)
    body.append((_LDX_MEM_W, R5, R1, 8, None))  # r5 = ctx->minor
    verdict = 0 if rules.default_allow else 1
    for n, ((typ, major, minor), access) in enumerate(rules.sorted_exceptions()):
        nxt = f"next{n}"
        jump(_JNE, R2, _TYPES[typ], nxt)
        mask = sum(_ACCESS[c] for c in access)
        if mask != 0b111:
            emit(_ALU32_X | _MOV, R1, R3)
            emit(_ALU32_K | _AND, R1, imm=mask)
            if rules.default_allow:
                jump(_JEQ, R1, 0, nxt)  # shares no access with the exception
            else:
                emit(_JMP_X | _JNE, R1, R3, to=nxt)  # asks for more than the exception grants
        if major is not None:
            jump(_JNE, R4, major, nxt)
        if minor is not None:
            jump(_JNE, R5, minor, nxt)
        emit(_ALU32_K | _MOV, R0, imm=verdict)
        emit(_EXIT)
        labels[nxt] = len(body)
    emit(_ALU32_K | _MOV, R0, imm=1 - verdict)
    emit(_EXIT)
    out = bytearray()
    for pc, (code, dst, src, imm, to) in enumerate(body):
        if code == _LDX_MEM_W:  # loads: imm is the field's offset
            out += _insn(code, dst, src, off=imm)
        elif to is not None:
            out += _insn(code, dst, src, off=labels[to] - (pc + 1), imm=imm)
        else:
            out += _insn(code, dst, src, imm=imm)
    return bytes(out)


# -- the bpf system call -------------------------------------------------------------------------
def _bpf(cmd: int, attr: ctypes.Array) -> int:
    return syscall("bpf", ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))


def load(prog: bytes, name: str = "dockyard_dev") -> int:
    """Load a device program; return its file descriptor (close-on-exec). A program the
    verifier refuses raises OSError with the verifier's log."""
    insns = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(LICENSE)
    for log_size in (0, 1 << 16):
        log = ctypes.create_string_buffer(log_size) if log_size else None
        attr = ctypes.create_string_buffer(
            struct.pack(
                "=IIQQIIQII16sII",
                BPF_PROG_TYPE_CGROUP_DEVICE,
                len(prog) // 8,
                ctypes.addressof(insns),
                ctypes.addressof(lic),
                1 if log_size else 0,
                log_size,
                ctypes.addressof(log) if log is not None else 0,
                0,
                0,
                name.encode()[:15],
                0,
                BPF_CGROUP_DEVICE,
            ),
            72,
        )
        try:
            return _bpf(BPF_PROG_LOAD, attr)  # bpf(2) fds are close-on-exec
        except OSError as e:
            if log is None and e.errno in (errno.EACCES, errno.EINVAL):
                continue  # once more, to get the verifier's reasons
            detail = log.value.decode(errors="replace").strip() if log is not None else ""
            raise OSError(
                e.errno,
                f"loading the device eBPF program: {e.strerror}"
                + (f": {detail}" if detail else ""),
            ) from None
    raise AssertionError("unreachable")


def _attach_cmd(cmd: int, cgroup_dir: str, prog_fd: int, flags: int) -> None:
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _bpf(
            cmd,
            ctypes.create_string_buffer(
                struct.pack("=IIIII", fd, prog_fd, BPF_CGROUP_DEVICE, flags, 0), 20
            ),
        )
    finally:
        os.close(fd)


def attach(prog_fd: int, cgroup_dir: str) -> None:
    """Attach a loaded program to a cgroup v2 directory (``BPF_F_ALLOW_MULTI``: programs of the
    ancestors keep deciding too; every one must allow). The cgroup holds it from now on: the
    caller may close ``prog_fd``; removing the directory detaches it."""
    try:
        _attach_cmd(BPF_PROG_ATTACH, cgroup_dir, prog_fd, BPF_F_ALLOW_MULTI)
    except OSError as e:
        raise OSError(
            e.errno, f"attaching the device eBPF program to {cgroup_dir}: {e.strerror}"
        ) from None


def detach(prog_fd: int, cgroup_dir: str) -> None:
    _attach_cmd(BPF_PROG_DETACH, cgroup_dir, prog_fd, 0)


def attached(cgroup_dir: str) -> list[int]:
    """The ids of the device programs attached to the cgroup v2 directory itself."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = (ctypes.c_uint32 * 64)()
        attr = ctypes.create_string_buffer(
            struct.pack("=IIIIQI", fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64), 32
        )
        _bpf(BPF_PROG_QUERY, attr)
        (count,) = struct.unpack_from("=I", attr.raw, 24)
        return list(ids[:count])
    finally:
        os.close(fd)


def detach_all(cgroup_dir: str) -> int:
    """Detach every device program attached to the cgroup v2 directory itself (before a new
    rule set is attached to a cgroup that keeps running processes, attach first, then detach
    the old ones); return how many."""
    n = 0
    for prog_id in attached(cgroup_dir):
        try:
            fd = _bpf(
                BPF_PROG_GET_FD_BY_ID,
                ctypes.create_string_buffer(struct.pack("=III", prog_id, 0, 0), 12),
            )
        except FileNotFoundError:
            continue  # gone meanwhile
        try:
            detach(fd, cgroup_dir)
            n += 1
        finally:
            os.close(fd)
    return n
