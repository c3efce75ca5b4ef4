"""What the daemon fetches for a build: ``ADD <http(s) URL>``, ``ADD <git URL>`` and remote
contexts (the ``remote`` parameter).

HTTP(S): downloaded by the daemon (no proxy from its environment), the file named by the
response's ``Content-Disposition`` or the URL's last path component, its modification time
from ``Last-Modified``; ``--checksum=sha256:<hex>`` must match the content.

Git: ``git://``, ``http(s)://...`` naming a ``.git`` repository, each with an optional
``#<ref>[:<subdir>]`` fragment (a branch, tag or commit; the default branch otherwise), cloned
by Debian's ``git`` with only the ``http``, ``https`` and ``git`` transports allowed, no
credential prompt and no configuration from the daemon's environment. ``git@host:repo``
(SSH) is refused: the classic build API has no way to forward an SSH agent.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import urllib.parse
import aiohttp

from dockyard.hookspecs.host import tarsafe

from .errors import BuildError

_CHECKSUM = re.compile(r"^sha256:([0-9a-f]{64})$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 1 << 20


def parse_checksum(value: str) -> str:
    """``sha256:<64 hex>`` → the hex digest."""
    m = _CHECKSUM.match(value.strip())
    if not m:
        raise BuildError(f"invalid checksum {value!r}: expected sha256:<64 hex digits>")
    return m.group(1)


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def is_git(src: str) -> bool:
    """Whether ``src`` names a git repository (moby's ``urlutil.IsGitURL`` and BuildKit's rules)."""
    if src.startswith(("git://", "git@", "ssh://", "github.com/")):
        return True
    if is_url(src):
        path = urllib.parse.urlsplit(src).path
        return path.endswith(".git") or src.split("#", 1)[0].endswith(".git")
    return False


@dataclasses.dataclass
class Download:
    path: str
    name: str
    mtime: float | None
    digest: str   # sha256 hex of the content


def _filename(url: str, disposition: str | None) -> str:
    if disposition:
        m = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition)
        if m:
            name = posixpath.basename(urllib.parse.unquote(m.group(1)).replace("\\", "/"))
            if name not in ("", ".", ".."):
                return name
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    return name if name not in ("", ".", "..") else "__unnamed__"


async def download(url: str, dest_dir: str, checksum: str | None = None) -> Download:
    """GET ``url`` into a new file under ``dest_dir``."""
    limit = tarsafe.current_limits().max_size
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)
    fd, path = tempfile.mkstemp(dir=dest_dir, prefix="download-")
    h = hashlib.sha256()
    size = 0
    try:
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            async with session.get(url, allow_redirects=True) as resp:
                if resp.status >= 400:
                    raise BuildError(f"failed to GET {url} with status {resp.status} {resp.reason}")
                with os.fdopen(fd, "wb") as f:
                    fd = -1
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if limit and size > limit:
                            raise BuildError(f"{url}: more than the daemon's max-unpack-size ({limit} bytes)")
                        h.update(chunk)
                        f.write(chunk)
                        tarsafe.check_cancelled()
                name = _filename(str(resp.url), resp.headers.get("Content-Disposition"))
                modified = resp.headers.get("Last-Modified")
    except aiohttp.ClientError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise BuildError(f"failed to GET {url}: {exc}") from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    digest = h.hexdigest()
    if checksum and digest != checksum:
        os.unlink(path)
        raise BuildError(f"digest mismatch for {url}: sha256:{digest}, expected sha256:{checksum}")
    mtime = None
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    return Download(path=path, name=name, mtime=mtime, digest=digest)


# -- git -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class GitRef:
    remote: str
    ref: str
    subdir: str


def parse_git(src: str) -> GitRef:
    if src.startswith(("git@", "ssh://")):
        raise BuildError(f"{src}: git over SSH is not supported (the classic build API cannot "
                         "forward an SSH agent); use an https:// or git:// URL")
    url, _, fragment = src.partition("#")
    if url.startswith("github.com/"):
        url = "https://" + url
    ref, _, subdir = fragment.partition(":")
    if ref.startswith("-") or "\n" in ref:
        raise BuildError(f"invalid git reference {ref!r}")
    subdir = posixpath.normpath("/" + subdir).lstrip("/") if subdir else ""
    return GitRef(remote=url, ref=ref, subdir=subdir)


def _git_env(home: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "GIT_PROTOCOL_FROM_USER": "0",
            "GIT_ALLOW_PROTOCOL": "http:https:git", "LC_ALL": "C"}


async def _git(args: list[str], cwd: str, env: dict[str, str]) -> str:
    git = shutil.which("git")
    if git is None:
        raise BuildError("git is not installed on the daemon's host (apt-get install git)")
    proc = await asyncio.create_subprocess_exec(
        git, "-c", "protocol.file.allow=never", "-c", "core.hooksPath=/dev/null", *args,
        cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise BuildError(f"failed to fetch git repository: git {args[0]}: "
                         f"{msg[-1] if msg else 'exit status ' + str(proc.returncode)}")
    return out.decode(errors="replace").strip()


async def git_checkout(src: str, dest_dir: str, keep_git_dir: bool = False) -> tuple[str, str]:
    """Clone ``src`` into a new directory under ``dest_dir``; return the directory the build
    reads (the fragment's subdirectory) and the commit checked out."""
    g = parse_git(src)
    work = tempfile.mkdtemp(dir=dest_dir, prefix="git-")
    home = os.path.join(work, ".home")
    repo = os.path.join(work, "repo")
    os.makedirs(home)
    os.makedirs(repo)
    env = _git_env(home)
    await _git(["init", "-q"], repo, env)
    await _git(["remote", "add", "origin", g.remote], repo, env)
    if g.ref and _COMMIT.match(g.ref):
        await _git(["fetch", "-q", "--no-tags", "origin"], repo, env)
        await _git(["checkout", "-q", "--detach", g.ref], repo, env)
    else:
        want = g.ref or "HEAD"
        try:
            await _git(["fetch", "-q", "--depth=1", "--no-tags", "origin", want], repo, env)
        except BuildError:  # a "dumb" HTTP server cannot fetch shallow
            await _git(["fetch", "-q", "--no-tags", "origin", want], repo, env)
        await _git(["checkout", "-q", "--detach", "FETCH_HEAD"], repo, env)
    commit = await _git(["rev-parse", "HEAD"], repo, env)
    if not keep_git_dir:
        shutil.rmtree(os.path.join(repo, ".git"), ignore_errors=True)
    root = os.path.realpath(os.path.join(repo, g.subdir))
    if not (root + "/").startswith(os.path.realpath(repo) + "/") or not os.path.isdir(root):
        raise BuildError(f"{src}: subdirectory {g.subdir!r} not found in the repository")
    return root, commit


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
