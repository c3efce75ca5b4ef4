"""``--chmod`` values: octal (``0644``, ``755``) or symbolic (``u+x``, ``go-w``, ``a=rX``,
``u=rw,g=r,o=``), as BuildKit (dockerfile 1.14) accepts them."""
from __future__ import annotations

import re
import stat
from typing import Callable

from ..errors import BuildError

_SYMBOLIC = re.compile(r"^[ugoa]*[-+=][rwxXst]*$")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}

Chmod = Callable[[int, bool], int]   # (current mode, is directory) -> new mode


def parse_chmod(value: str) -> Chmod:
    """A function giving each copied file its new permission bits."""
    if re.fullmatch(r"[0-7]{3,4}", value):
        bits = int(value, 8)
        return lambda _mode, _is_dir: bits
    clauses = value.split(",")
    if not clauses or not all(_SYMBOLIC.match(c) for c in clauses):
        raise BuildError(f"invalid chmod value {value!r}: an octal mode or symbolic clauses "
                         "such as u+x,go-w")

    def apply(mode: int, is_dir: bool) -> int:
        mode = stat.S_IMODE(mode)
        for clause in clauses:
            m = re.match(r"^([ugoa]*)([-+=])(.*)$", clause)
            assert m is not None
            who = m.group(1).replace("a", "ugo") or "ugo"
            mask = 0
            for w in who:
                mask |= _WHO[w]
            bits = 0
            for p in m.group(3):
                if p == "X":
                    if is_dir or mode & 0o111:
                        bits |= 0o111
                else:
                    bits |= _PERM[p]
            bits &= mask
            if m.group(2) == "+":
                mode |= bits
            elif m.group(2) == "-":
                mode &= ~bits
            else:
                mode = (mode & ~mask) | bits
        return mode
    return apply
