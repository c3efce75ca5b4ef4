"""``RUN --mount``: what a RUN step's container sees besides its image.

* ``type=bind`` (the default): a path of the build context, or of a stage or image
  (``from=``), read-only unless ``rw`` (then writes go to a copy and are discarded);
* ``type=cache``: a directory the daemon keeps across builds under its data-root, one per
  ``id`` (the target by default), shared, ``private`` or ``locked`` between concurrent users,
  seeded from ``from=``/``source=`` when new, listed and pruned as build cache;
* ``type=tmpfs``: a tmpfs (``size=``);
* ``type=secret``: a secret given with the build request (:mod:`.options`), as a file
  (``/run/secrets/<id>`` by default, ``mode=0400``, ``uid``/``gid``) or an ``env=`` variable;
  never in a layer nor in the history. A secret the request does not give fails the step
  unless the mount says ``required=false`` (then it is left out; BuildKit's default is the
  other way round, which lets a misspelt id go unnoticed).
* ``type=ssh`` is refused: the classic build API cannot forward an SSH agent.

Mount points the step's container needed that its image did not have are removed before the
layer is committed (as BuildKit does), so a mount leaves no trace in the image.
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import functools
import os
import secrets as token
import shutil
import threading
from typing import Any, AsyncIterator, Callable

from .errors import BuildError
from .shell import parse_bool
from dockyard.hookspecs.host.units import ram_in_bytes

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
_KEYS = {"type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro",
         "readwrite", "rw", "required", "size", "id", "sharing", "mode", "uid", "gid", "env"}


@dataclasses.dataclass
class MountSpec:
    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = True
    size: int = 0
    id: str = ""
    sharing: str = "shared"
    required: bool | None = None   # secrets: None counts as required (see _secret)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> MountSpec:
    """One ``--mount`` value (CSV ``key=value`` fields), as BuildKit reads it. Without
    ``expand`` (the parse-time check), values with variables are not checked."""
    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        raise BuildError(f"failed to parse csv mounts: {spec!r}") from None
    m = MountSpec()
    ro_auto = True
    for field in fields:
        k, eq, v = field.partition("=")
        k = k.strip().lower()
        if k not in _KEYS:
            raise BuildError(f"unexpected key '{k}' in '{field}'")
        if not eq:
            if k in ("readonly", "ro", "readwrite", "rw", "required"):
                v = "true"
            else:
                raise BuildError(f"invalid field '{field}' must be a key=value pair")
        if "$" in v:
            if k == "from":
                raise BuildError("'from' doesn't support variable expansion, define alias stage instead")
            if expand is None:
                continue
            v = expand(v)
        ro_auto = _mount_field(m, k, v, ro_auto)
    _mount_checks(m)
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    return m


_ALIAS = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly",
          "rw": "readwrite", "from": "from_"}
_CHOICES = {"type": ("mount type", TYPES), "sharing": ("sharing value", SHARING)}
_ONLY_FOR = {"required": ("secret", "ssh"), "size": ("tmpfs",)}


def _mount_field(m: MountSpec, k: str, v: str, ro_auto: bool) -> bool:
    k = _ALIAS.get(k, k)
    if k in _ONLY_FOR and m.type not in _ONLY_FOR[k]:
        raise BuildError(f"unexpected key '{k}' for mount type '{m.type}'")
    if k in _CHOICES:
        what, choices = _CHOICES[k]
        if v.lower() not in choices:
            raise BuildError(f"unsupported {what} {v!r} (one of {', '.join(choices)})")
        setattr(m, k, v.lower())
    elif k in ("readonly", "readwrite"):
        m.readonly, ro_auto = parse_bool(v, k) == (k == "readonly"), False
    elif k == "required":
        m.required = parse_bool(v, k)
    elif k == "size":
        try:
            m.size = ram_in_bytes(v)
        except Exception:  # noqa: BLE001 - any unparsable size
            raise BuildError(f"invalid value for size: {v}") from None
    elif k in ("mode", "uid", "gid"):
        try:
            setattr(m, k, int(v, 8) if k == "mode" else int(v))
        except ValueError:
            raise BuildError(f"invalid value {v} for {k}") from None
    else:  # from, source, target, id, env
        setattr(m, k, v)
    return ro_auto


def _mount_checks(m: MountSpec) -> None:
    if m.type not in ("secret", "ssh", "cache"):
        for k in ("mode", "uid", "gid"):
            if getattr(m, k) is not None:
                raise BuildError(f"{k} not allowed for {m.type!r} type mounts")
    if m.type == "ssh":
        raise BuildError("RUN --mount=type=ssh is not supported: the classic build API cannot "
                         "forward an SSH agent")
    if m.type == "secret":
        if m.from_:
            raise BuildError("secret mount should not have a from")
        if not (m.source or m.target or m.id):
            raise BuildError("invalid secret mount. one of source, target required")
        if m.source and m.id:
            raise BuildError("both source and id can't be set")
    elif m.type in ("bind", "cache") and not m.target:
        raise BuildError(f"invalid {m.type} mount: target is required")
    elif m.type == "tmpfs" and not m.target:
        raise BuildError("invalid tmpfs mount: target is required")
    if m.sharing != "shared" and m.type != "cache":
        raise BuildError(f"invalid cache sharing set for {m.type} mount")


def secret_id(m: MountSpec) -> str:
    return m.source or m.id or os.path.basename(m.target.rstrip("/"))


# -- the cache mounts' store ---------------------------------------------------------------------
class CacheMounts:
    """``RUN --mount=type=cache`` directories: ``<root>/<record>``, one SQLite row each."""

    def __init__(self, state: Any, root: str) -> None:
        self.state, self.root = state, root
        self.in_use: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._making: dict[str, asyncio.Lock] = {}
        self._reconciled = False
        self._reconciling = threading.Lock()

    def _reconcile(self) -> None:
        """Directories without a row (a crash between the two) go: once, and before any cache
        mount is made. A second caller waits for the first to finish: were it let through while
        the sweep runs, the directory it makes (not yet in the sweep's list of rows) would be
        swept away under its step (two stages starting together, seen in CI)."""
        with self._reconciling:
            if not self._reconciled:
                self._sweep()
                self._reconciled = True

    def _sweep(self) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        known = self.state.cache_mount_ids()
        for name in os.listdir(self.root):
            if name not in known:
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        for rid in known:
            if not os.path.isdir(os.path.join(self.root, rid)):
                self.state.delete_cache_mount(rid)

    def records(self) -> list[Any]:
        from .cache import Record
        self._reconcile()
        out = []
        for r in self.state.cache_mounts():
            out.append(Record(r.id, "exec.cachemount", r.description, r.created,
                              r.last_used, size=_du(os.path.join(self.root, r.id)),
                              in_use=bool(self.in_use.get(r.id)), usage=r.usage))
        return out

    def remove(self, ids: list[str]) -> int:
        freed = 0
        for rid in ids:
            if self.in_use.get(rid):
                continue
            path = os.path.join(self.root, rid)
            freed += _du(path)
            self.state.delete_cache_mount(rid)
            shutil.rmtree(path, ignore_errors=True)
        return freed

    def _pick(self, cache_id: str, private: bool) -> str | None:
        for rid in self.state.cache_mounts_for(cache_id):
            if not private or not self.in_use.get(rid):
                return rid
        return None

    def _create(self, cache_id: str, description: str, m: MountSpec) -> str:
        rid = token.token_hex(32)
        path = os.path.join(self.root, rid)
        os.makedirs(path, mode=0o755)
        os.chmod(path, 0o755 if m.mode is None else m.mode)
        if m.uid is not None or m.gid is not None:
            os.chown(path, m.uid or 0, m.gid or 0)
        self.state.add_cache_mount(rid, cache_id, description)
        return rid

    @contextlib.asynccontextmanager
    async def use(self, cache_id: str, m: MountSpec, description: str,
                  seed: Callable[[str], None] | None = None) -> AsyncIterator[str]:
        """The host directory of cache ``cache_id`` for the length of the block."""
        await asyncio.to_thread(self._reconcile)
        lock = self._locks.setdefault(cache_id, asyncio.Lock()) if m.sharing == "locked" else None
        if lock is not None:
            await lock.acquire()
        try:
            # one record made at a time per id: two steps starting together share it
            async with self._making.setdefault(cache_id, asyncio.Lock()):
                rid = self._pick(cache_id, m.sharing == "private")
                if rid is None:
                    rid = await asyncio.to_thread(self._create, cache_id, description, m)
                    if seed is not None:
                        await asyncio.to_thread(seed, os.path.join(self.root, rid))
                self.in_use[rid] = self.in_use.get(rid, 0) + 1
            try:
                yield os.path.join(self.root, rid)
            finally:
                self.in_use[rid] -= 1
                if not self.in_use[rid]:
                    del self.in_use[rid]
                self.state.cache_mount_used(rid)
        finally:
            if lock is not None:
                lock.release()


def _du(path: str) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


# -- one RUN step's mounts -----------------------------------------------------------------------
@dataclasses.dataclass
class Prepared:
    mounts: list[dict[str, Any]]          # HostConfig.Mounts of the step's container
    env: list[str]                        # secret env= variables
    key: list[Any]                        # what the mounts add to the step's cache key
    targets: list[str]                    # mount points in the container (for stub removal)


async def prepare(st: Any, ins: Any, stack: contextlib.AsyncExitStack) -> Prepared:
    """Everything the step's ``--mount`` flags need, released when ``stack`` closes."""
    import posixpath
    prep = Prepared([], [], [], [])
    workdir = st.cfg.get("WorkingDir") or "/"
    for spec in ins.flags.get("mount", []):
        m = parse_mount(spec, st.word)
        if m.target:
            m.target = posixpath.normpath(posixpath.join(workdir, m.target))
            if m.target == "/":
                raise BuildError(f"invalid mount target {m.target!r}")
        if m.type == "secret":
            await _secret(st, m, prep)
        elif m.type == "tmpfs":
            prep.mounts.append({"Type": "tmpfs", "Target": m.target,
                                "TmpfsOptions": {"SizeBytes": m.size} if m.size else {}})
            prep.key.append(["tmpfs", m.target, m.size])
        elif m.type == "cache":
            await _cache(st, ins, m, prep, stack)
        else:
            await _bind(st, ins, m, prep, stack)
        if m.target:
            prep.targets.append(m.target)
    return prep


async def _source_root(st: Any, ins: Any, m: MountSpec,
                       stack: contextlib.AsyncExitStack) -> tuple[str, str | None]:
    """The root a mount's ``source`` is read in: a stage's or image's file system (mounted
    for the step) or the build context; and the image's id (None for the context)."""
    b = st.b
    if not m.from_:
        return b.ctx.root, None
    image = await b.from_image(ins, m.from_)
    rw, root = await b.thread(b.committer.scratch, image)
    stack.push_async_callback(b.thread, b.committer.drop, rw)
    return root, image


async def _bind(st: Any, ins: Any, m: MountSpec, prep: Prepared,
                stack: contextlib.AsyncExitStack) -> None:
    from .steps.sources import Src, digest, scoped
    b = st.b
    root, image = await _source_root(st, ins, m, stack)
    try:
        host = await b.thread(scoped, root, m.source or "/")
    except FileNotFoundError:
        raise BuildError(f"failed to compute cache key: {m.source or '/'!r} not found "
                         f"({'stage ' + m.from_ if m.from_ else 'build context'})") from None
    ignore = b.ctx.ignore if image is None else []
    if image is None:
        rel = os.path.relpath(host, root)
        content = await b.thread(digest, [Src(root=root, rel=rel, host=host, ignore=ignore)], [])
        prep.key.append(["bind", m.target, m.source, m.readonly, content])
    else:
        prep.key.append(["bind", m.target, m.source, m.readonly, image])
    if not m.readonly or ignore:
        # writes go to a copy (and are discarded); the context's ignored files stay out
        copy = await b.thread(_filtered_copy, host, root, ignore, b.tmp, m.readonly)
        stack.push_async_callback(b.thread, shutil.rmtree, copy, True)
        host = copy if os.path.isdir(host) else os.path.join(copy, os.path.basename(host))
    prep.mounts.append({"Type": "bind", "Source": host, "Target": m.target, "ReadOnly": m.readonly})


def _filtered_copy(host: str, root: str, ignore: list[tuple[bool, str]], tmp: str, link: bool) -> str:
    """A copy of ``host`` (a tree or a file) without what ``ignore`` excludes; hard links
    when it is only read."""
    from .context import ignored
    dest = os.path.join(tmp, "bind-" + token.token_hex(8))
    os.makedirs(dest)
    if not os.path.isdir(host):
        shutil.copy2(host, os.path.join(dest, os.path.basename(host)))
        return dest
    base = os.path.relpath(host, root)
    for dirpath, dirs, files in os.walk(host):
        inner = os.path.relpath(dirpath, host)
        keep = []
        for name in sorted(dirs):
            rel = os.path.normpath(os.path.join(base, inner, name))
            if not ignored(rel, ignore):
                keep.append(name)
                os.makedirs(os.path.join(dest, inner, name), exist_ok=True)
        dirs[:] = keep
        for name in files:
            rel = os.path.normpath(os.path.join(base, inner, name))
            if ignored(rel, ignore):
                continue
            src, dst = os.path.join(dirpath, name), os.path.join(dest, inner, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            elif link:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            else:
                shutil.copy2(src, dst)
    return dest


async def _cache(st: Any, ins: Any, m: MountSpec, prep: Prepared,
                 stack: contextlib.AsyncExitStack) -> None:
    b = st.b
    cache_id = m.id or m.target
    seed: Callable[[str], None] | None = None
    if m.from_:
        from .steps.sources import scoped
        root, _image = await _source_root(st, ins, m, stack)
        src = await b.thread(scoped, root, m.source or "/")
        seed = functools.partial(_seed, src)
    description = f"cached mount {m.target} with id {cache_id!r}"
    path = await stack.enter_async_context(b.d.build_mounts.use(cache_id, m, description, seed))
    if m.source and not m.from_:
        path = os.path.join(path, m.source.lstrip("/"))
        os.makedirs(path, exist_ok=True)
    prep.mounts.append({"Type": "bind", "Source": path, "Target": m.target, "ReadOnly": m.readonly})
    prep.key.append(["cache", m.target, cache_id, m.sharing, m.readonly])


def _seed(src: str, path: str) -> None:
    shutil.copytree(src, path, symlinks=True, dirs_exist_ok=True)


async def _secret(st: Any, m: MountSpec, prep: Prepared) -> None:
    b = st.b
    sid = secret_id(m)
    value = b.opts.secrets.get(sid)
    if value is None:
        # BuildKit skips a missing secret unless required=true; here a secret the request did
        # not give fails the step unless the mount says required=false, so that a build never
        # runs on without the secret it names by mistake
        if m.required is not False:
            raise BuildError(f"secret {sid} not found: give it with the build request (dockyard "
                             f"build --secret id={sid},src=FILE)")
        return
    prep.key.append(["secret", sid, m.target, m.env])
    if m.env is not None and not m.target:
        prep.env.append(f"{m.env}={value.decode(errors='replace')}")
        return
    if m.env is not None:
        prep.env.append(f"{m.env}={value.decode(errors='replace')}")
    target = m.target or f"/run/secrets/{os.path.basename(sid)}"
    path = b.secret_file(value, m.mode if m.mode is not None else 0o400, m.uid or 0, m.gid or 0)
    prep.mounts.append({"Type": "bind", "Source": path, "Target": target, "ReadOnly": True})
    prep.targets.append(target)
