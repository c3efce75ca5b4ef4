"""What COPY and ADD read: paths of a root (the build context, a stage's or image's file
system, a here-document, a download, a git checkout), resolved inside it (symlinks are followed
as if the root were ``/``), wildcards expanded, ignore and ``--exclude`` patterns applied; and
the digest of that content for the cache (names, modes, owners where kept, contents, link
targets; not modification times, as BuildKit)."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import stat
from typing import Iterator

from dockyard.hookspecs.host.tarsafe import SecureRoot

from ..context import Patterns, ignored, pattern_match
from ..errors import BuildError

MAX_LINKS = 255


@dataclasses.dataclass
class Src:
    root: str                   # the directory the path is resolved in
    rel: str                    # the path as matched, relative to ``root`` ("." for the root)
    host: str                   # where it really is (symlinks followed inside ``root``)
    ignore: Patterns            # the context's ignore patterns (paths relative to ``root``)
    keep_owner: bool = False    # a stage's or image's files keep their owners
    name: str = ""              # the name a file source gets in a directory destination
    mode: int | None = None     # a download's mode (0600)
    mtime: float | None = None  # a download's Last-Modified
    archive: bool = False       # ADD: unpack it (a local tar)
    parents_rel: str = ""       # COPY --parents: the path it keeps below the destination

    @property
    def is_dir(self) -> bool:
        return os.path.isdir(self.host)

    @property
    def base_name(self) -> str:
        return self.name or posixpath.basename(self.rel) or posixpath.basename(self.host)


def scoped(root: str, rel: str) -> str:
    """The host path of ``rel`` inside ``root``, every symlink (the last one too) followed as
    if ``root`` were ``/``; FileNotFoundError when it does not exist."""
    parts = [p for p in posixpath.normpath("/" + rel).split("/") if p]
    for _ in range(MAX_LINKS):
        if not parts:
            return root
        with SecureRoot(root, label="build source") as sroot:
            try:
                fd, here = sroot.resolve(parts[:-1])
            except NotADirectoryError:
                raise FileNotFoundError(rel) from None
            os.close(fd)
        path = os.path.join(root, *here, parts[-1])
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode):
            return path
        target = os.readlink(path)
        base = "" if target.startswith("/") else "/".join(here)
        parts = [p for p in posixpath.normpath(f"/{base}/{target}").split("/") if p]
    raise BuildError(f"{rel}: too many levels of symbolic links")


def _has_glob(p: str) -> bool:
    return any(c in p for c in "*?[")


def expand(root: str, pattern: str, ignore: Patterns, what: str) -> list[str]:
    """The paths (relative to ``root``) ``pattern`` names: itself, or its wildcard matches."""
    rel = posixpath.normpath("/" + pattern).lstrip("/") or "."
    if not _has_glob(rel):
        if rel != "." and ignored(rel, ignore):
            raise BuildError(f"{what} failed: file not found in build context or excluded by "
                             f".dockerignore: stat {rel}: file does not exist")
        return [rel]
    matches = []
    comps = rel.split("/")
    for dirpath, dirs, files in os.walk(root):
        reldir = os.path.relpath(dirpath, root)
        level = 0 if reldir == "." else reldir.count("/") + 1
        if level + 1 < len(comps):
            dirs[:] = sorted(d for d in dirs if pattern_match(comps[level], d))
            continue
        for name in sorted(dirs + files):
            p = name if reldir == "." else f"{reldir}/{name}"
            if pattern_match(rel, p) and not ignored(p, ignore):
                matches.append(p)
        dirs[:] = []
    if not matches:
        raise BuildError(f"{what} failed: no source files were specified")
    return matches


def resolve(root: str, patterns: list[str], ignore: Patterns, what: str,
            keep_owner: bool = False) -> list[Src]:
    out = []
    for pattern in patterns:
        for rel in expand(root, pattern, ignore, what):
            try:
                host = scoped(root, rel)
            except FileNotFoundError:
                raise BuildError(f"{what} failed: file not found in build context or excluded by "
                                 f".dockerignore: stat {rel}: file does not exist") from None
            out.append(Src(root=root, rel=rel, host=host, ignore=ignore, keep_owner=keep_owner,
                           parents_rel=_parents_rel(pattern, rel)))
    return out


def _parents_rel(pattern: str, rel: str) -> str:
    """``--parents``: the path kept below the destination (after a ``/./`` marker if any)."""
    marker = posixpath.normpath("/" + pattern.split("/./", 1)[0]).lstrip("/") if "/./" in pattern else ""
    if marker and (rel + "/").startswith(marker + "/"):
        return posixpath.relpath(rel, marker)
    return "" if rel == "." else rel


def walk(src: Src, exclude: Patterns) -> Iterator[tuple[str, str, os.stat_result]]:
    """``(host path, path relative to the copied directory, lstat)`` of a directory source's
    content, in name order; ignored and excluded paths (and what is below them) left out — but
    an excluded directory that a ``!`` pattern reaches into is walked, as moby's archiver
    walks it, and given only when something below it is (``ignored/`` + ``!ignored/sub/f``)."""
    base_rel = "" if src.rel == "." else src.rel
    pending: dict[str, tuple[str, os.stat_result]] = {}  # excluded directories walked into
    for dirpath, dirs, files in os.walk(src.host):
        dirs.sort()
        inner = os.path.relpath(dirpath, src.host)
        keep_dirs = []
        for name in sorted(dirs + files):
            sub = name if inner == "." else f"{inner}/{name}"
            ctx_rel = f"{base_rel}/{sub}" if base_rel else sub
            host = os.path.join(dirpath, name)
            if (src.ignore and ignored(ctx_rel, src.ignore)) or (exclude and ignored(sub, exclude)):
                if name in dirs and (_reaches_into(ctx_rel, src.ignore) or _reaches_into(sub, exclude)):
                    pending[sub] = (host, os.lstat(host))
                    keep_dirs.append(name)
                continue
            st = os.lstat(host)
            if name in dirs:
                keep_dirs.append(name)
            yield from _pending_parents(pending, sub)
            yield host, sub, st
        dirs[:] = keep_dirs


def _reaches_into(rel: str, patterns: Patterns) -> bool:
    """Whether a ``!`` pattern names something below directory ``rel`` (moby's test: the
    pattern's text starts with ``rel/``)."""
    return any(neg and (pat + "/").startswith(rel + "/") for neg, pat in patterns or ())


def _pending_parents(pending: dict[str, tuple[str, os.stat_result]],
                     sub: str) -> Iterator[tuple[str, str, os.stat_result]]:
    parts = sub.split("/")
    for k in range(1, len(parts)):
        parent = "/".join(parts[:k])
        if parent in pending:
            host, st = pending.pop(parent)
            yield host, parent, st


def excluded(src: Src, exclude: Patterns) -> bool:
    return bool(exclude) and any(pattern_match(p, src.base_name) for neg, p in exclude if not neg)


def digest(srcs: list[Src], exclude: Patterns) -> str:
    h = hashlib.sha256()
    for src in srcs:
        h.update(f"{src.rel}\0{src.name}\0{src.mode}\0{src.archive}\0".encode())
        if src.is_dir:
            for host, sub, st in walk(src, exclude):
                _hash_one(h, host, sub, st, src.keep_owner)
        elif not excluded(src, exclude):
            _hash_one(h, src.host, src.base_name, os.lstat(src.host), src.keep_owner)
    return h.hexdigest()


def _hash_one(h: "hashlib._Hash", host: str, name: str, st: os.stat_result, owner: bool) -> None:
    h.update(f"{name}\0{st.st_mode:o}\0{st.st_size}\0".encode())
    if owner:
        h.update(f"{st.st_uid}:{st.st_gid}\0".encode())
    if stat.S_ISREG(st.st_mode):
        with open(host, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    elif stat.S_ISLNK(st.st_mode):
        h.update(os.readlink(host).encode())
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        h.update(f"{st.st_rdev}".encode())
