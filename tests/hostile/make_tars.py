"""Generate the hostile-archive corpus: ``python make_tars.py --canary DIR OUTDIR``.

Every archive is built here byte by byte (its own small tar writer, independent of the code
under test), so nothing binary is committed. Paths that try to reach the host point into
``--canary``: a directory the test fills with files it checks afterwards (``secret``, whose
content must never reach an image or a message, and ``victim``).

Each :class:`Case` says what every entry point must answer: ``OK`` (accepted), ``REFUSED``
(a 400, or an error in the progress stream) or ``ANY``. The entry points are ``import``
(``POST /images/create?fromSrc=-``), ``load`` (wrapped in a docker-archive), ``pull`` (a
layer in a loopback registry), ``cp`` (``PUT /containers/{id}/archive``), ``context``
(``POST /build``, the archive being the context, a Dockerfile that does ``COPY . /ctx/``
prepended) and ``add`` (``ADD`` of the archive, a file of a benign context). The first
three are image layers and share ``layer``.
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import os
import sys
from dataclasses import dataclass

BLOCK = 512
END = bytes(2 * BLOCK)
OK, REFUSED, ANY = "ok", "refused", "any"
ENTRY_POINTS = ("import", "load", "pull", "cp", "context", "add")
UP = b"../" * 40  # climbs to / from any directory the daemon unpacks into


# -- a tiny tar writer ------------------------------------------------------------------------------
def _oct(value: int, width: int) -> bytes:
    """Octal when it fits, else GNU base-256 (as GNU tar writes big numbers)."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o" % (width - 1, value) + b"\0"
    return _b256(value, width)


def _b256(value: int, width: int) -> bytes:
    return (value % (1 << (8 * width))).to_bytes(width, "big", signed=False) if value < 0 else \
        bytes([0x80]) + value.to_bytes(width - 1, "big")


def header(name: bytes, flag: bytes = b"0", *, size: int = 0, mode: int = 0o644, uid: int = 0,
           gid: int = 0, mtime: int = 1_600_000_000, linkname: bytes = b"", major: int = 0,
           minor: int = 0, magic: bytes = b"ustar\x0000", raw: dict[int, bytes] | None = None,
           bad_checksum: bool = False) -> bytes:
    """One 512-byte header; ``raw`` overwrites bytes at offsets before the checksum."""
    h = bytearray(BLOCK)
    fields = {0: name[:100], 100: _oct(mode, 8), 108: _oct(uid, 8), 116: _oct(gid, 8),
              124: _oct(size, 12), 136: _oct(mtime, 12),
              156: flag, 157: linkname[:100], 257: magic, 329: _oct(major, 8), 337: _oct(minor, 8)}
    for off, val in {**fields, **(raw or {})}.items():
        h[off:off + len(val)] = val
    h[148:156] = b" " * 8
    chk = sum(h) + (1 if bad_checksum else 0)
    h[148:156] = b"%06o\0 " % chk
    return bytes(h)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def member(name: bytes, data: bytes = b"", flag: bytes = b"0", **kw: object) -> bytes:
    return header(name, flag, size=len(data), **kw) + pad(data)  # type: ignore[arg-type]


def d(name: bytes, **kw: object) -> bytes:
    return header(name.rstrip(b"/") + b"/", b"5", mode=kw.pop("mode", 0o755), **kw)  # type: ignore[arg-type]


def sym(name: bytes, target: bytes, **kw: object) -> bytes:
    return header(name, b"2", linkname=target, mode=0o777, **kw)  # type: ignore[arg-type]


def hard(name: bytes, target: bytes, **kw: object) -> bytes:
    return header(name, b"1", linkname=target, **kw)  # type: ignore[arg-type]


def pax(records: list[tuple[bytes, bytes]], flag: bytes = b"x") -> bytes:
    body = b""
    for k, v in records:
        rec = b" " + k + b"=" + v + b"\n"
        n = len(rec) + 1
        while len(str(n)) + len(rec) != n:
            n = len(str(n)) + len(rec)
        body += str(n).encode() + rec
    return member(b"PaxHeaders/x", body, flag)


def gnu_long(flag: bytes, value: bytes) -> bytes:
    return member(b"././@LongLink", value + b"\0", flag, magic=b"ustar  \0")


def pax_sparse_1x0(name: bytes, real: int, segments: list[tuple[int, bytes]]) -> bytes:
    """A GNU 1.0 sparse file (pax): the map at the start of the data, then the segments."""
    smap = f"{len(segments)}\n".encode() + b"".join(f"{o}\n{len(b)}\n".encode() for o, b in segments)
    data = pad(smap) + b"".join(b for _, b in segments)
    return pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                (b"GNU.sparse.name", name), (b"GNU.sparse.realsize", str(real).encode())]) + \
        member(b"GNUSparseFile.0/" + name, data)


def old_gnu_sparse(name: bytes, real: int, segments: list[tuple[int, int]], data: bytes) -> bytes:
    raw = {386 + 24 * i: _oct(o, 12) + _oct(n, 12) for i, (o, n) in enumerate(segments[:4])}
    raw[483] = _oct(real, 12)
    return header(name, b"S", size=len(data), magic=b"ustar  \0", raw=raw) + pad(data)


# -- the corpus -----------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    data: bytes
    layer: str = REFUSED          #: import, load and pull
    cp: str | None = None         #: None: as ``layer``
    context: str | None = None
    add: str | None = None
    why: str = ""
    #: refused only once the file system is looked at (a hard link to a missing file, a loop):
    #: the entries before the bad one may stay, as with dockerd
    on_disk: bool = False

    def expect(self, entry_point: str) -> str:
        if entry_point in ("import", "load", "pull"):
            return self.layer
        value = getattr(self, entry_point)
        return self.layer if value is None else value


def _everywhere(name: str, data: bytes, why: str, outcome: str = REFUSED,
                on_disk: bool = False) -> Case:
    return Case(name, data, outcome, outcome, outcome, outcome, why, on_disk)


def cases(canary: str) -> list[Case]:
    """The corpus; ``canary`` is the absolute host directory the archives aim at."""
    c = canary.encode().strip(b"/")
    out: list[Case] = []
    add = out.append
    f = member(b"f", b"plain file\n")

    # traversal and absolute names
    add(_everywhere("dotdot-file", member(UP + c + b"/pwned", b"x") + END, "../ out of the root"))
    add(_everywhere("dotdot-inner", d(b"a") + member(b"a/../../" + UP + c + b"/pwned", b"x") + END,
                    "a/../.. climbing"))
    add(_everywhere("absolute-file", member(b"/" + c + b"/pwned", b"x") + END, "absolute name"))
    add(_everywhere("absolute-dir", d(b"/" + c + b"/newdir") + END, "absolute directory"))
    # hard links
    add(_everywhere("hardlink-absolute", hard(b"h", b"/" + c + b"/secret") + END,
                    "hard link to a host file"))
    add(_everywhere("hardlink-dotdot", hard(b"h", UP + c + b"/secret") + END,
                    "hard link climbing to a host file"))
    add(_everywhere("hardlink-via-abs-symlink", sym(b"s", b"/" + c) + hard(b"h", b"s/secret") + END,
                    "hard link through a symlink: resolved inside the root, missing there",
                    on_disk=True))
    add(_everywhere("hardlink-to-abs-symlink", sym(b"s", b"/" + c + b"/secret") + hard(b"h", b"s")
                    + END, "hard link to a symlink that leaves: links the symlink itself", OK))
    add(_everywhere("hardlink-then-write", hard(b"h", b"/" + c + b"/victim")
                    + member(b"h", b"owned") + END, "write through a hard link to a host file"))
    add(_everywhere("hardlink-chown-chmod", hard(b"h", UP + c + b"/victim", uid=1234, gid=1234,
                                                 mode=0o6777) + END, "chown/chmod via hard link"))
    add(_everywhere("dockerfile-hardlink", hard(b"Dockerfile", b"/" + c + b"/secret") + END,
                    "a Dockerfile that is a hard link to a host file"))
    add(_everywhere("hardlink-to-self", f + hard(b"f", b"f") + END, "a file linked to itself", OK))
    add(_everywhere("hardlink-to-dir", d(b"dd") + hard(b"h", b"dd") + END, "hard link to a dir",
                    on_disk=True))
    add(_everywhere("hardlink-missing", hard(b"h", b"nothere") + END, "hard link to nothing",
                    on_disk=True))
    # symbolic links
    add(_everywhere("symlink-climbs", sym(b"esc", UP + c) + END, "symlink climbing out"))
    add(_everywhere("symlink-climbs-then-write", sym(b"esc", UP + c) + member(b"esc/pwned", b"x")
                    + END, "write through a climbing symlink"))
    add(_everywhere("symlink-nested-climb", d(b"d") + sym(b"d/l", b"../..") + END,
                    "a nested symlink climbing one level above the root"))
    add(_everywhere("symlink-abs-then-write", sym(b"abs", b"/" + c) + member(b"abs/pwned", b"x")
                    + END, "absolute symlink then a file below it: contained", OK))
    add(_everywhere("symlink-abs-replaced", sym(b"v", b"/" + c + b"/victim")
                    + member(b"v", b"owned", mode=0o6777) + END,
                    "a file over an absolute symlink replaces the link", OK))
    add(_everywhere("dir-over-abs-symlink", sym(b"dd", b"/" + c) + d(b"dd", mode=0o777, uid=1234)
                    + END, "a directory over a symlink replaces the link", OK))
    add(_everywhere("symlink-abs-mkdir-below", sym(b"dd", b"/" + c) + d(b"dd/sub") + END,
                    "mkdir through an absolute symlink: contained", OK))
    add(_everywhere("symlink-loop", sym(b"a", b"b") + sym(b"b", b"a") + member(b"a/x", b"x") + END,
                    "a symlink loop in a path", on_disk=True))
    add(_everywhere("long-symlink-target", pax([(b"linkpath", b"t" * 5000)]) + sym(b"l", b"t") + END,
                    "5000-byte link target"))
    add(Case("dockerfile-abs-symlink", sym(b"Dockerfile", b"/" + c + b"/secret") + END, OK, OK,
             REFUSED, OK, "a Dockerfile that is a symlink to a host file"))
    add(_everywhere("dockerignore-abs-symlink", sym(b".dockerignore", b"/" + c + b"/secret") + f
                    + END, "a .dockerignore that is a symlink to a host file", OK))
    # modes, owners, special files
    add(_everywhere("setuid-root", member(b"suid", b"#!/bin/sh\n", mode=0o6755) + END,
                    "setuid/setgid root file", OK))
    add(Case("char-device", header(b"sdx", b"3", mode=0o666, major=8, minor=0) + END, OK, OK,
             REFUSED, OK, "a device node aiming at a host disk"))
    add(Case("block-device", header(b"loopx", b"4", mode=0o666, major=7, minor=0) + END, OK, OK,
             REFUSED, OK, "a block device node"))
    add(Case("fifo", header(b"pipe", b"6", mode=0o644) + END, OK, OK, REFUSED, OK, "a fifo"))
    add(_everywhere("xattr-capability", pax([(b"SCHILY.xattr.security.capability",
                                              b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12))])
                    + member(b"cap", b"x", mode=0o755) + END, "a file capability", OK))
    add(_everywhere("huge-uid", header(b"u", raw={108: _b256(1 << 40, 8)}) + END, "uid 2^40"))
    add(_everywhere("huge-mtime", header(b"m", raw={136: _b256(1 << 62, 12)}) + END, "mtime 2^62"))
    # names
    add(_everywhere("long-component", pax([(b"path", b"d/" + b"n" * 300)]) + member(b"x", b"x")
                    + END, "a 300-byte name component"))
    add(_everywhere("long-path", pax([(b"path", b"/".join([b"p" * 250] * 20))]) + member(b"x", b"x")
                    + END, "a 5000-byte path"))
    add(Case("non-utf8-name", member(b"caf\xe9", b"latin-1 name") + END, OK, OK, REFUSED, OK,
             "a name that is not UTF-8"))
    add(Case("non-utf8-link-target", sym(b"l", b"caf\xe9") + END, OK, OK, REFUSED, OK,
             "a symlink target that is not UTF-8"))
    add(_everywhere("empty-name", header(b"") + END, "an entry with no name"))
    add(_everywhere("root-entries", d(b"./") + d(b".") + f + END, "entries for the root itself", OK))
    add(_everywhere("duplicate-entries", member(b"dup", b"one") + member(b"dup", b"two")
                    + sym(b"dup", b"/" + c + b"/secret") + member(b"dup", b"three") + END,
                    "the same name four times", OK))
    add(_everywhere("dir-replaced-by-abs-link", d(b"dd") + member(b"dd/x", b"x")
                    + sym(b"dd", b"/" + c) + member(b"dd/y", b"y") + END,
                    "a directory replaced by a symlink, then written through: contained", OK))
    add(_everywhere("dir-replaced-by-climbing-link", d(b"dd") + sym(b"dd", UP + c)
                    + member(b"dd/y", b"y") + END, "a directory replaced by a climbing symlink"))
    add(_everywhere("file-replaces-dir", d(b"dd") + member(b"dd/x", b"x") + member(b"dd", b"file")
                    + END, "a file replacing a directory", OK))
    # whiteouts
    add(Case("whiteout-dotdot", d(b"dd") + member(b"dd/.wh...") + END, REFUSED, REFUSED, REFUSED,
             REFUSED, "a whiteout of '..'"))
    add(Case("whiteout-opaque-root", f + member(b".wh..wh..opq") + END, OK, REFUSED, REFUSED,
             REFUSED, "an opaque marker for the root"))
    add(Case("whiteout-through-abs-symlink", sym(b"s", b"/" + c) + member(b"s/.wh.victim") + END,
             OK, REFUSED, REFUSED, REFUSED, "a whiteout through an absolute symlink: contained"))
    add(Case("whiteout-meta", d(b".wh..wh.plnk") + END, OK, REFUSED, REFUSED, REFUSED,
             "an aufs meta whiteout"))
    # extended headers
    add(_everywhere("pax-path-climbs", pax([(b"path", UP + c + b"/pwned")]) + member(b"safe", b"x")
                    + END, "a pax path overriding a safe name"))
    add(_everywhere("pax-linkpath-climbs", pax([(b"linkpath", UP + c)]) + sym(b"l", b"ok") + END,
                    "a pax linkpath overriding a safe target"))
    add(_everywhere("pax-huge", pax([(b"comment", b"c" * (2 << 20))]) + f + END,
                    "a 2 MiB pax header"))
    add(_everywhere("pax-malformed", member(b"PaxHeaders/x", b"99 path=x\n", b"x") + f + END,
                    "a pax record whose length lies"))
    add(_everywhere("pax-nul-in-path", pax([(b"path", b"a\0b")]) + f + END, "NUL in a pax path"))
    add(_everywhere("pax-negative-size", pax([(b"size", b"-5")]) + f + END, "a negative pax size"))
    add(_everywhere("pax-global-ignored", pax([(b"path", UP + c + b"/pwned")], b"g") + f + END,
                    "a global pax header (ignored, as dockerd does)", OK))
    add(_everywhere("ext-header-at-end", f + pax([(b"path", b"x")]), "a pax header, then EOF"))
    add(_everywhere("gnu-longname-climbs", gnu_long(b"L", UP + c + b"/pwned")
                    + member(b"safe", b"x") + END, "a GNU long name climbing out"))
    add(_everywhere("gnu-longlink-climbs", gnu_long(b"K", UP + c) + sym(b"l", b"ok") + END,
                    "a GNU long link climbing out"))
    add(_everywhere("gnu-longname-huge", gnu_long(b"L", b"n" * (2 << 20)) + f + END,
                    "a 2 MiB GNU long name"))
    add(_everywhere("unknown-type", header(b"vol", b"V") + END, "a volume header"))
    add(_everywhere("negative-size", header(b"neg", size=-1) + END, "a negative base-256 size"))
    # corruption
    add(_everywhere("corrupt-second-header", f + header(b"g", size=3, bad_checksum=True)
                    + pad(b"abc") + END, "the second header's checksum is wrong"))
    add(_everywhere("corrupt-numeric-field", f + header(b"g", raw={124: b"00000001x4\0\0"})
                    + END, "a size field that is not octal"))
    add(_everywhere("truncated-member", f + header(b"big", size=10000) + b"x" * 3000,
                    "EOF inside a member"))
    add(_everywhere("truncated-header", f + header(b"g")[:200], "EOF inside a header"))
    add(_everywhere("trailing-garbage", f + END + b"garbage!" * 64, "data after the end blocks"))
    add(_everywhere("lone-zero-block", f + bytes(BLOCK) + member(b"g", b"x") + END,
                    "a zero block followed by more entries"))
    add(Case("not-a-tar", b"this is not a tar archive\n" * 100, REFUSED, REFUSED, REFUSED, OK,
             "no tar at all (ADD copies a non-archive as a file)"))
    # sparse files and bombs
    add(_everywhere("sparse-1tib-pax", pax_sparse_1x0(b"sp", 1 << 40, [((1 << 40) - 512, b"e" * 512)])
                    + END, "a 10 KiB tar claiming a 1 TiB sparse file (pax 1.0)"))
    add(_everywhere("sparse-1tib-oldgnu", old_gnu_sparse(b"sp", 1 << 40, [((1 << 40) - 512, 512)],
                                                         b"e" * 512) + END,
                    "a 1 TiB sparse file, old GNU format"))
    add(_everywhere("sparse-small", pax_sparse_1x0(b"sp", 1 << 20, [((1 << 20) - 4096, b"s" * 4096)])
                    + END, "a 1 MiB sparse file", OK))
    add(_everywhere("sparse-bad-map", old_gnu_sparse(b"sp", 4096, [(8192, 512)], b"e" * 512) + END,
                    "a sparse map beyond the file's size"))
    add(_everywhere("gzip-bomb", gzip.compress(header(b"zeros", size=16 << 30) + bytes(64 << 20),
                                               9, mtime=0), "gzip claiming a 16 GiB file"))
    add(_everywhere("bzip2-bomb", bz2.compress(header(b"zeros", size=64 << 30) + bytes(16 << 20)),
                    "bzip2 claiming a 64 GiB file"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--canary", required=True, help="absolute host directory the archives aim at")
    ap.add_argument("outdir")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    for case in cases(os.path.abspath(args.canary)):
        with open(os.path.join(args.outdir, case.name + ".tar"), "wb") as fh:
            fh.write(case.data)
        print(f"{case.name:32} {len(case.data):>9}  {case.why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
