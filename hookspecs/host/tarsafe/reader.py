"""The strict tar reader under every archive dockyard reads.

Learned from Go's ``archive/tar`` (the reader dockerd uses) and the POSIX pax / GNU formats;
written from scratch because :mod:`tarfile` takes a bad header after the first one for the end of
the archive, expands sparse members by producing their holes as data, and has no hook for
cancellation. Here:

* every header's checksum and numeric fields are checked, wherever it is in the archive;
* end of input at a header boundary is the end of the archive (the docker CLI's ``build -f-``
  sends no end-of-archive blocks), end of input inside a header or a member's data is an error;
* after the end-of-archive blocks only zero padding may follow (at most :data:`MAX_TRAILER`);
* pax (``x``), global pax (``g``, checked then ignored, as dockerd does) and GNU long name/link
  (``L``/``K``) headers are limited to :data:`MAX_SPECIAL` bytes and must precede an entry;
* GNU sparse members (old GNU ``S``, pax 0.0, 0.1 and 1.0) carry their map: :attr:`TarEntry.sparse`
  lists the data segments and :attr:`TarEntry.size` the file's real size, so a consumer writes
  the segments and seeks over holes instead of producing them;
* names and link targets are bytes in the archive; they are decoded as UTF-8 with
  ``surrogateescape`` (what :func:`os.fsdecode` does), so a non-UTF-8 name reaches the file
  system byte for byte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator

from ...errors import InvalidParameter

BLOCK = 512
#: largest pax / GNU long-name header accepted (Go's archive/tar has the same limit)
MAX_SPECIAL = 1 << 20
#: zero padding accepted after the end-of-archive blocks (tar's records are 10 KiB)
MAX_TRAILER = 16 << 20
#: most segments in one sparse map
MAX_SPARSE = 1 << 16
_COPY = 1 << 20
_ZERO = bytes(BLOCK)
_INT64 = (1 << 63) - 1
_ID_MAX = (1 << 32) - 2  # (uid_t)-1 means "unchanged" to chown

REG, LNK, SYM, CHR, BLK, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
HEADER_ONLY = frozenset({LNK, SYM, CHR, BLK, DIR, FIFO})
_REG_ALIASES = {b"\0": REG, b"7": REG, REG: REG}
KIND_NAMES = {
    REG: "file",
    LNK: "hard link",
    SYM: "symlink",
    CHR: "character device",
    BLK: "block device",
    DIR: "directory",
    FIFO: "fifo",
}


class TarFormatError(InvalidParameter):
    """The bytes are not a well-formed tar archive (HTTP 400)."""


@dataclass
class TarEntry:
    """One member of an archive, its extended headers applied."""

    name: str
    type: bytes  #: one of REG, LNK, SYM, CHR, BLK, DIR, FIFO
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0  #: the file's size (a sparse file's real size)
    mtime: float = 0.0
    atime: float | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    uname: str = ""
    gname: str = ""
    xattrs: dict[str, bytes] = field(default_factory=dict)
    #: ``(offset, length)`` data segments of a sparse file, in order; None for a plain one
    sparse: list[tuple[int, int]] | None = None
    offset: int = 0  #: where its stored data starts in the (uncompressed) stream
    stored: int = 0  #: bytes of data the archive holds for it
    index: int = 0  #: its position in the archive, from 1

    def isreg(self) -> bool:
        return self.type == REG

    def isdir(self) -> bool:
        return self.type == DIR

    def issym(self) -> bool:
        return self.type == SYM

    def islnk(self) -> bool:
        return self.type == LNK

    def isdev(self) -> bool:
        return self.type in (CHR, BLK)

    def isfifo(self) -> bool:
        return self.type == FIFO

    @property
    def kind(self) -> str:
        return KIND_NAMES[self.type]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


class TarReader:
    """Iterate the entries of the uncompressed tar ``stream`` (anything with ``read(n)``).

    While an entry is current, :meth:`read` returns its stored data; moving on skips what was
    not read. ``tick(n)`` (optional) is called for every chunk of data read or skipped, and
    may raise to stop the work (cancellation, limits). ``label`` starts every error message.
    ``seekable``: ``stream`` is a regular file, data is skipped with ``seek``.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        label: str = "archive",
        tick: Callable[[int], None] | None = None,
        seekable: bool = False,
    ) -> None:
        self._s, self.label, self._tick = stream, label, tick or (lambda n: None)
        self.pos = 0  # bytes consumed from the stream
        self._left = 0  # stored data of the current entry not read yet
        self._pad = 0
        self._current: TarEntry | None = None
        self._count = 0
        self._end = None if not seekable else os.fstat(stream.fileno()).st_size
        self._held: bytes | None = None  # a byte read ahead by _peek

    # -- raw input ------------------------------------------------------------------------------
    def _fail(self, msg: str) -> TarFormatError:
        if self.pos <= BLOCK and not self._count:
            msg = f"not a tar archive: {msg}"
        return TarFormatError(f"{self.label}: {msg}")

    def _read(self, n: int) -> bytes:
        if self._held is not None:
            held, self._held = self._held, None
            data = held + self._s.read(n - 1) if held and n > 1 else held
        else:
            data = self._s.read(n)
        while len(data) < n:
            more = self._s.read(n - len(data))
            if not more:
                break
            data += more
        self.pos += len(data)
        return data

    def _exact(self, n: int, what: str) -> bytes:
        data = self._read(n)
        if len(data) < n:
            raise self._fail(f"unexpected end of data in {what} (truncated archive)")
        return data

    def _skip(self, n: int, what: str) -> None:
        if self._end is not None:
            if self.pos + n > self._end:
                raise self._fail(f"unexpected end of data in {what} (truncated archive)")
            self._s.seek(n, os.SEEK_CUR)
            self.pos += n
            self._tick(n)
            return
        while n:
            chunk = self._exact(min(n, _COPY), what)
            n -= len(chunk)
            self._tick(len(chunk))

    # -- entry data -----------------------------------------------------------------------------
    def read(self, n: int = _COPY) -> bytes:
        """Up to ``n`` bytes of the current entry's stored data (b"" once all was read)."""
        n = min(n, self._left)
        if n <= 0:
            return b""
        data = self._exact(n, self._what())
        self._left -= n
        self._tick(n)
        return data

    def _what(self) -> str:
        e = self._current
        return f"entry {e.index} ({e.name!r})" if e is not None else "the archive"

    def _finish_entry(self) -> None:
        if self._current is None:
            return
        self._skip(self._left, self._what())
        # end of input right after the data, padding and all missing, is the end of the
        # archive: the docker CLI's `build -f-` sends that (and Go's reader accepts it)
        if self._pad:
            at_end = self.pos == self._end if self._end is not None else not self._peek()
            if not at_end:
                self._skip(self._pad, self._what())
        self._left = self._pad = 0
        self._current = None

    def _peek(self) -> bytes:
        """One byte of input, kept for the next read (b"" at the end of input)."""
        if self._held is None:
            self._held = self._s.read(1)
        return self._held

    # -- headers --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TarEntry]:
        ext: dict[str, object] = {}
        while True:
            self._finish_entry()
            at = self.pos
            hdr = self._header()
            if hdr is None:
                if ext:
                    raise self._fail("the archive ends after an extended header, without its entry")
                return
            flag = hdr[156:157]
            size = self._num(hdr[124:136], "size", at)
            if flag in (b"x", b"g", b"L", b"K"):
                self._extension(flag, size, at, ext)
                continue
            self._count += 1
            entry = self._entry(hdr, flag, size, at, ext)
            ext = {}
            self._current = entry
            yield entry

    def _header(self) -> bytes | None:
        at = self.pos
        blk = self._read(BLOCK)
        if not blk:
            return None  # end of input at an entry boundary: accepted, as dockerd does
        if len(blk) < BLOCK:
            raise self._fail(f"truncated header at byte {at}")
        if blk == _ZERO:
            nxt = self._read(BLOCK)
            if nxt and nxt != _ZERO:
                raise self._fail(f"a zero block inside the archive at byte {at}, followed by data")
            if len(nxt) == BLOCK:
                self._trailer()
            elif nxt:
                raise self._fail(f"truncated end-of-archive block at byte {at + BLOCK}")
            return None
        want = self._num(blk[148:156], "checksum", at)
        unsigned = sum(blk[:148]) + 8 * 32 + sum(blk[156:])
        if want != unsigned and want != unsigned - 256 * sum(
            b > 127 for b in blk[:148] + blk[156:]
        ):
            raise self._fail(
                f"invalid header at byte {at} (entry {self._count + 1}): "
                "checksum mismatch, the archive is corrupt"
            )
        return blk

    def _trailer(self) -> None:
        seen = 0
        while True:
            chunk = self._read(_COPY)
            if not chunk:
                return
            if chunk.count(0) != len(chunk):
                at = self.pos - len(chunk) + len(chunk) - len(chunk.lstrip(bytes(1)))
                raise self._fail(f"data after the end-of-archive marker (at byte {at})")
            seen += len(chunk)
            self._tick(len(chunk))
            if seen > MAX_TRAILER:
                raise self._fail(
                    f"more than {MAX_TRAILER >> 20} MiB of padding after the end-of-archive marker"
                )

    def _num(self, raw: bytes, what: str, at: int) -> int:
        if raw and raw[0] & 0x80:  # GNU base-256
            if raw[0] == 0xFF:
                value = int.from_bytes(raw, "big", signed=True)
            else:
                value = int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
        else:
            text = _cstr(raw).strip(b" ")
            if text.translate(None, b"01234567"):
                raise self._fail(
                    f"invalid header at byte {at} (entry {self._count + 1}): "
                    f"bad {what} field {raw!r}"
                )
            value = int(text, 8) if text else 0
        if not -_INT64 <= value <= _INT64:
            raise self._fail(f"{what} out of range at byte {at}")
        return value

    def _extension(self, flag: bytes, size: int, at: int, ext: dict[str, object]) -> None:
        if not 0 <= size <= MAX_SPECIAL:
            raise self._fail(
                f"extended header at byte {at} is {size} bytes (the limit is {MAX_SPECIAL})"
            )
        data = self._exact(size, f"the extended header at byte {at}")
        self._skip(-size % BLOCK, f"the extended header at byte {at}")
        if flag == b"L":
            ext["name"] = _cstr(data)
        elif flag == b"K":
            ext["linkname"] = _cstr(data)
        else:
            records = parse_pax(data, self._fail, at)
            if flag == b"x":
                ext["pax"] = records  # a later pax header replaces an earlier one, as in Go

    def _entry(
        self, hdr: bytes, flag: bytes, size: int, at: int, ext: dict[str, object]
    ) -> TarEntry:
        pax: list[tuple[str, bytes]] = ext.get("pax", [])  # type: ignore[assignment]
        magic = hdr[257:263]
        name = _cstr(hdr[0:100])
        if magic == b"ustar\0" and hdr[345]:
            name = _cstr(hdr[345:500]) + b"/" + name
        e = TarEntry(
            name=_text(ext.get("name", name)),  # type: ignore[arg-type]
            type=_REG_ALIASES.get(flag, flag),
            index=self._count,
            mode=self._num(hdr[100:108], "mode", at) & 0o7777,
            uid=self._num(hdr[108:116], "uid", at),
            gid=self._num(hdr[116:124], "gid", at),
            mtime=float(self._num(hdr[136:148], "mtime", at)),
            linkname=_text(ext.get("linkname", _cstr(hdr[157:257]))),  # type: ignore[arg-type]
            uname=_text(_cstr(hdr[265:297])),
            gname=_text(_cstr(hdr[297:329])),
            devmajor=self._num(hdr[329:337], "devmajor", at),
            devminor=self._num(hdr[337:345], "devminor", at),
            size=size,
        )
        sparse_ext = _apply_pax(e, pax, self._fail)
        if flag == b"S" and magic == b"ustar ":
            e.type = REG
        elif e.type not in KIND_NAMES:
            raise self._fail(f"entry {e.index} ({e.name!r}): unsupported entry type {flag!r}")
        self._check(e, at)
        stored = e.size
        if e.type in HEADER_ONLY:
            stored = e.size = 0  # as Go's reader: these types have no data, whatever the size says
        self._pad = -stored % BLOCK
        if flag == b"S":
            self._old_gnu_sparse(e, hdr, at, stored)
        elif sparse_ext is not None:
            if e.type != REG:
                raise self._fail(f"entry {e.index} ({e.name!r}): a sparse map on a {e.kind}")
            stored = self._pax_sparse(e, sparse_ext, stored)
        e.stored, e.offset, self._left = stored, self.pos, stored
        return e

    def _check(self, e: TarEntry, at: int) -> None:
        where = f"entry {e.index} ({e.name!r})"
        if not e.name:
            raise self._fail(f"entry {e.index} at byte {at} has an empty name")
        if e.size < 0:
            raise self._fail(f"{where}: negative size")
        for what, v in (("uid", e.uid), ("gid", e.gid)):
            if not 0 <= v <= _ID_MAX:
                raise self._fail(f"{where}: {what} {v} out of range")
        for what, v in (("devmajor", e.devmajor), ("devminor", e.devminor)):
            if not 0 <= v < (1 << 32):
                raise self._fail(f"{where}: {what} {v} out of range")
        for t in (e.mtime, e.atime or 0.0):
            if not -(1 << 40) < t < (1 << 40):
                raise self._fail(f"{where}: timestamp {t} out of range")

    # -- sparse maps ----------------------------------------------------------------------------
    def _old_gnu_sparse(self, e: TarEntry, hdr: bytes, at: int, stored: int) -> None:
        pairs: list[tuple[int, int]] = []

        def take(area: bytes, count: int) -> None:
            for i in range(count):
                raw = area[i * 24 : (i + 1) * 24]
                if raw[0] == 0:
                    break
                pairs.append(
                    (
                        self._num(raw[:12], "sparse offset", at),
                        self._num(raw[12:], "sparse length", at),
                    )
                )
                if len(pairs) > MAX_SPARSE:
                    raise self._fail(
                        f"entry {e.index} ({e.name!r}): more than {MAX_SPARSE} sparse segments"
                    )

        take(hdr[386:482], 4)
        extended = hdr[482]
        while extended:
            blk = self._exact(BLOCK, f"the sparse header of entry {e.index}")
            take(blk[:504], 21)
            extended = blk[504]
        self._set_sparse(e, pairs, self._num(hdr[483:495], "sparse real size", at), stored)

    def _pax_sparse(self, e: TarEntry, sp: dict[str, object], stored: int) -> int:
        """Apply a pax sparse map; return the bytes of file data stored after it."""
        real: int | None = sp.get("size")  # type: ignore[assignment]
        if sp.get("major") == b"1" and sp.get("minor") == b"0":
            pairs, used = self._sparse_1x0(e, stored)
            self._set_sparse(e, pairs, real, stored - used)
            return stored - used
        nums: list[int] = sp.get("nums", [])  # type: ignore[assignment]
        if len(nums) % 2:
            raise self._fail(f"entry {e.index} ({e.name!r}): malformed sparse map")
        self._set_sparse(e, list(zip(nums[::2], nums[1::2])), real, stored)
        return stored

    def _sparse_1x0(self, e: TarEntry, stored: int) -> tuple[list[tuple[int, int]], int]:
        """Read the GNU 1.0 sparse map stored at the start of the entry's data."""
        buf, used = b"", 0
        nums: list[int] = []
        want: int | None = None
        while want is None or len(nums) < want:
            if b"\n" not in buf:
                if used + BLOCK > min(stored, MAX_SPECIAL):
                    raise self._fail(f"entry {e.index} ({e.name!r}): malformed sparse map")
                buf += self._exact(BLOCK, f"the sparse map of entry {e.index}")
                used += BLOCK
                continue
            line, buf = buf.split(b"\n", 1)
            if not line.isdigit():
                raise self._fail(f"entry {e.index} ({e.name!r}): malformed sparse map")
            if want is None:
                want = 2 * int(line)
                if want > 2 * MAX_SPARSE:
                    raise self._fail(
                        f"entry {e.index} ({e.name!r}): more than {MAX_SPARSE} sparse segments"
                    )
            else:
                nums.append(int(line))
        return list(zip(nums[::2], nums[1::2])), used

    def _set_sparse(
        self, e: TarEntry, pairs: list[tuple[int, int]], real: int | None, stored: int
    ) -> None:
        where = f"entry {e.index} ({e.name!r})"
        if real is None or real < 0:
            raise self._fail(f"{where}: sparse file without a valid real size")
        if len(pairs) > MAX_SPARSE:
            raise self._fail(f"{where}: more than {MAX_SPARSE} sparse segments")
        end = 0
        for off, n in pairs:
            if off < end or n < 0 or off + n > real:
                raise self._fail(f"{where}: sparse map out of order or beyond the file's size")
            end = off + n
        if sum(n for _, n in pairs) != stored:
            raise self._fail(f"{where}: its sparse map does not match its data")
        e.sparse, e.size = pairs, real


def parse_pax(data: bytes, fail: Callable[[str], Exception], at: int) -> list[tuple[str, bytes]]:
    """The ``(key, value)`` records of a pax extended header, in order."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos, pos + 21)
        if sp <= pos or not data[pos:sp].isdigit():
            raise fail(f"malformed pax header at byte {at}")
        length = int(data[pos:sp])
        rec = data[pos : pos + length]
        if length <= sp - pos + 1 or len(rec) != length or not rec.endswith(b"\n"):
            raise fail(f"malformed pax record in the header at byte {at}")
        key, eq, value = rec[sp - pos + 1 : -1].partition(b"=")
        if not eq or not key:
            raise fail(f"malformed pax record in the header at byte {at}")
        try:
            out.append((key.decode("utf-8"), value))
        except UnicodeDecodeError:
            raise fail(f"pax record key {key!r} is not UTF-8 (header at byte {at})") from None
        pos += length
    return out


def _apply_pax(
    e: TarEntry, records: list[tuple[str, bytes]], fail: Callable[[str], Exception]
) -> dict[str, object] | None:
    """Apply pax records to ``e``; return the GNU sparse records (None: not sparse)."""
    sparse: dict[str, object] = {}
    nums: list[int] = []
    for key, value in records:
        if key in ("path", "linkpath", "uname", "gname", "GNU.sparse.name"):
            if b"\0" in value:
                raise fail(f"entry {e.index}: pax {key} contains NUL")
            attr = {"path": "name", "GNU.sparse.name": "name", "linkpath": "linkname"}.get(key, key)
            setattr(e, attr, _text(value))
        elif key in (
            "size",
            "uid",
            "gid",
            "GNU.sparse.size",
            "GNU.sparse.realsize",
            "GNU.sparse.offset",
            "GNU.sparse.numbytes",
        ):
            if not value.isdigit():
                raise fail(f"entry {e.index}: pax {key} {value!r} is not a number")
            n = int(value)
            if key in ("size", "uid", "gid"):
                setattr(e, key, n)
            elif key in ("GNU.sparse.size", "GNU.sparse.realsize"):
                sparse["size"] = n
            else:
                nums.append(n)
        elif key in ("mtime", "atime"):
            try:
                t = float(value)
            except ValueError:
                raise fail(f"entry {e.index}: pax {key} {value!r} is not a time") from None
            setattr(e, key, t)
        elif key.startswith("SCHILY.xattr."):
            e.xattrs[key[len("SCHILY.xattr.") :]] = value
        elif key == "GNU.sparse.map":
            try:
                nums += [int(x) for x in value.split(b",")] if value else []
            except ValueError:
                raise fail(f"entry {e.index}: malformed GNU.sparse.map") from None
        elif key in ("GNU.sparse.major", "GNU.sparse.minor"):
            sparse[key.rsplit(".", 1)[1]] = value
    if nums:
        sparse["nums"] = nums
    return sparse or None
