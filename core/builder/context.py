"""The build context: the request's tar (or a remote context) as a private directory, its
``.dockerignore``, and the Dockerfile in it.

The tar is unpacked by the one safe extractor (``tarsafe.BUILD_CONTEXT``); the docker CLI's
``build -f-`` tar, which has no end-of-archive blocks, is accepted as dockerd accepts it.
Ignore patterns are read from ``<Dockerfile>.dockerignore`` next to the Dockerfile when there
is one (BuildKit's rule), else from ``.dockerignore`` at the root, and applied whenever the
context is read (the files stay, as dockerd's). A remote context (``remote=``) is a git
repository (``#ref:subdir``), a tarball at an http(s) URL, or a plain Dockerfile there.
"""
from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import posixpath
import re
import tarfile
from typing import Any

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import DockyardError, InvalidParameter

from . import remote

Patterns = list[tuple[bool, str]]


# -- .dockerignore ---------------------------------------------------------------------------------
def read_ignore(text: str) -> Patterns:
    pats = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        line = posixpath.normpath(line.lstrip("/"))
        if line == ".":
            continue
        pats.append((neg, line))
    return pats


def _pattern_rx(pat: str) -> str:
    rx = ""
    i = 0
    while i < len(pat):
        if pat.startswith("**", i):
            i += 2
            if pat.startswith("/", i):
                i += 1
                rx += "(?:.*/)?"
            else:
                rx += ".*"
            continue
        ch = pat[i]
        if ch == "*":
            rx += "[^/]*"
        elif ch == "?":
            rx += "[^/]"
        elif ch == "[":
            j = pat.find("]", i)
            if j < 0:
                rx += re.escape(ch)
            else:
                body = pat[i + 1:j]
                rx += "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]"
                i = j
        elif ch == "\\" and i + 1 < len(pat):
            i += 1
            rx += re.escape(pat[i])
        else:
            rx += re.escape(ch)
        i += 1
    return rx


def pattern_match(pat: str, path: str) -> bool:
    """Go's ``filepath.Match`` with ``**`` (any number of directories), as moby's patternmatcher."""
    return re.fullmatch(_pattern_rx(pat), path) is not None


def ignored(rel: str, patterns: Patterns) -> bool:
    """Whether context path ``rel`` is excluded (a pattern matching a parent excludes it too;
    the last matching pattern wins, ``!`` ones re-include)."""
    result = False
    parts = rel.split("/")
    for neg, pat in patterns:
        if any(pattern_match(pat, "/".join(parts[:k])) for k in range(1, len(parts) + 1)):
            result = not neg
    return result


def ignore_file(root: str, dockerfile: str) -> str | None:
    """The ignore file that applies: ``<dockerfile>.dockerignore``, else ``.dockerignore``
    (a path inside ``root``, or None)."""
    for name in (posixpath.normpath(dockerfile) + ".dockerignore", ".dockerignore"):
        full = os.path.join(root, name.lstrip("/"))
        real = os.path.realpath(full)
        # a link may point anywhere: only a file inside the context is read
        if real.startswith(os.path.realpath(root) + os.sep) and os.path.isfile(real):
            return real
    return None


def load_ignore(root: str, dockerfile: str) -> Patterns:
    path = ignore_file(root, dockerfile)
    if path is None:
        return []
    with open(path, errors="replace") as f:
        return read_ignore(f.read())


# -- the client's side: a directory as the context tar -------------------------------------------
def tar_context(path: str, dockerfile: str | None = None,
                extra: tuple[str, bytes] | None = None) -> bytes:
    """The build context directory as a tar (what the docker CLI sends), the ignore file
    applied; the Dockerfile and the ignore files are always sent. ``extra``: a
    ``(name, content)`` file added at the end (a Dockerfile from outside the context)."""
    df = posixpath.normpath(dockerfile or "Dockerfile")
    pats = load_ignore(path, df)
    keep = {".dockerignore", df, df + ".dockerignore"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            rel_root = os.path.relpath(root, path)
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(root, name)
                rel = name if rel_root == "." else f"{rel_root}/{name}"
                if rel not in keep and ignored(rel, pats):
                    if name in dirs and not any(neg for neg, _ in pats):
                        dirs.remove(name)
                    continue
                ti = tar.gettarinfo(full, arcname=rel)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                if ti.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(ti, f)
                else:
                    tar.addfile(ti)
        if extra is not None:
            ti = tarfile.TarInfo(extra[0])
            ti.size, ti.mode = len(extra[1]), 0o600
            tar.addfile(ti, io.BytesIO(extra[1]))
    return buf.getvalue()


def is_archive(path: str) -> bool:
    """As dockerd's ``isArchivePath``: the file, decompressed, starts with a valid tar header."""
    try:
        with open(path, "rb") as f, tarsafe.uncompressed(f) as src:
            return tarsafe.is_tar(src)
    except (OSError, DockyardError):
        return False


# -- the daemon's side ------------------------------------------------------------------------------
@dataclasses.dataclass
class Context:
    root: str                  # the directory the build reads
    dockerfile: str            # the Dockerfile's path in it
    text: str                  # the Dockerfile
    ignore: Patterns


def unpack(path: str, ctx: str) -> None:
    """Unpack the request body (a tar, maybe compressed; empty: no context) into ``ctx``."""
    if os.path.getsize(path):
        # the context directory is discarded whatever happens: no need to check first
        tarsafe.extract_file(path, ctx, tarsafe.BUILD_CONTEXT, check_first=False)


def read_dockerfile(root: str, dockerfile: str) -> Context:
    """The Dockerfile ``dockerfile`` of the context at ``root`` (``dockerfile`` as a fallback
    for the default name, as dockerd); InvalidParameter (400) when there is none."""
    name = posixpath.normpath("/" + dockerfile).lstrip("/")
    df_path = os.path.join(root, name)
    if not os.path.isfile(df_path) and dockerfile == "Dockerfile" and \
            os.path.isfile(os.path.join(root, "dockerfile")):
        name, df_path = "dockerfile", os.path.join(root, "dockerfile")
    # a link may point anywhere: only a file of the context itself is read
    if not os.path.isfile(df_path) or os.path.realpath(df_path) != os.path.abspath(df_path):
        raise InvalidParameter(f"Cannot locate specified Dockerfile: {dockerfile}")
    with open(df_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return Context(root=root, dockerfile=name, text=text, ignore=load_ignore(root, name))


async def fetch_remote(url: str, ctx: str, dockerfile: str, run: Any) -> Context:
    """A remote context into ``ctx``: a git repository, a tarball, or a plain Dockerfile.
    ``run`` runs blocking work in a thread that stops with the client."""
    if remote.is_git(url):
        root, _commit = await remote.git_checkout(url, ctx)
        return await asyncio.to_thread(read_dockerfile, root, dockerfile)
    if not remote.is_url(url):
        raise InvalidParameter(f"remote context {url!r}: not an http(s) URL or a git repository")
    got = await remote.download(url, ctx)
    try:
        archive = await asyncio.to_thread(is_archive, got.path)
        root = os.path.join(ctx, "context")
        os.makedirs(root)
        if archive:
            await run(unpack, got.path, root)
            return await asyncio.to_thread(read_dockerfile, root, dockerfile)
        # not an archive: the download is the Dockerfile (dockerd's rule; dockerfile= is ignored)
        os.rename(got.path, os.path.join(root, "Dockerfile"))
        return await asyncio.to_thread(read_dockerfile, root, "Dockerfile")
    finally:
        remote.remove_quietly(got.path)
