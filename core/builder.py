"""The classic builder (``POST /build``): a Dockerfile parser and a step executor.

Each instruction makes one image on top of the previous one: ``RUN`` runs a container and
commits its changes, ``COPY``/``ADD``/``WORKDIR`` unpack a tar into a scratch read-write layer
of the graph driver and commit that, every other instruction only changes the image config
(an ``empty_layer`` history entry, no new layer). A step whose parent image and instruction
(with, for COPY/ADD, a digest of the copied files) match an earlier step reuses its image.
Intermediate images are kept untagged, as dockerd does (``docker image prune`` removes them).
"""
from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import stat
import tarfile
import tempfile
from typing import Any, Awaitable, Callable

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import DockyardError
from dockyard.hookspecs.host.timefmt import rfc3339


class BuildError(DockyardError):
    status = 400


class StepFailed(BuildError):
    """A RUN step's command exited non-zero: dockerd reports the code in ``errorDetail``
    (the docker CLI exits with it)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- parsing -----------------------------------------------------------------------------------
KNOWN = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
         "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


class Instruction:
    def __init__(self, cmd: str, rest: str, original: str, line: int) -> None:
        self.cmd, self.rest, self.original, self.line = cmd, rest, original, line

    def __repr__(self) -> str:
        return f"Instruction({self.cmd!r}, {self.rest!r})"


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, ``\\`` continuations joined."""
    out: list[Instruction] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        buf = line.rstrip()
        while buf.endswith("\\"):
            buf = buf[:-1]
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            buf += lines[i].rstrip()
            i += 1
        buf = buf.strip()
        word, _, rest = buf.partition(" ")
        if "\t" in word:
            word, _, r2 = word.partition("\t")
            rest = r2 + " " + rest
        out.append(Instruction(word.upper(), rest.strip(), buf, start + 1))
    return out


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _lookup(env: dict[str, str], name: str, op: str | None, word: str | None) -> str:
    val = env.get(name)
    if op in (":-", "-"):
        if val is None or (op == ":-" and val == ""):
            return word or ""
        return val
    if op in (":+", "+"):
        if val is None or (op == ":+" and val == ""):
            return ""
        return word or ""
    return val or ""


def words(text: str, env: dict[str, str] | None, split: bool = True) -> list[str]:
    """Docker's shell-word processing: quotes removed, ``\\`` escapes, ``$VAR`` expanded
    (not inside single quotes; ``env=None`` expands nothing). ``split=False``: one word."""
    out: list[str] = []
    cur: list[str] = []
    has = False
    i, n = 0, len(text)
    quote = ""

    def expand(j: int) -> int:
        m = _VAR.match(text, j)
        if not m or env is None:
            cur.append("$")
            return j + 1
        if m.group(4):
            cur.append(env.get(m.group(4), ""))
        else:
            inner = m.group(3)
            if inner is not None and env is not None:
                inner = "".join(words(inner, env, split=False))
            cur.append(_lookup(env, m.group(1), m.group(2), inner))
        return m.end()

    while i < n:
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                cur.append(ch)
            i += 1
        elif quote == '"':
            if ch == '"':
                quote = ""
                i += 1
            elif ch == "\\" and i + 1 < n and text[i + 1] in '"\\$':
                cur.append(text[i + 1])
                i += 2
            elif ch == "$":
                i = expand(i)
            else:
                cur.append(ch)
                i += 1
        elif ch in "'\"":
            quote, has = ch, True
            i += 1
        elif ch == "\\" and i + 1 < n:
            cur.append(text[i + 1])
            has = True
            i += 2
        elif ch == "$":
            has = True
            i = expand(i)
        elif ch.isspace() and split:
            if cur or has:
                out.append("".join(cur))
            cur, has = [], False
            i += 1
        else:
            cur.append(ch)
            has = True
            i += 1
    if quote:
        raise BuildError(f"unexpected end of statement while looking for matching {quote}")
    if cur or has:
        out.append("".join(cur))
    return out


def json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        v = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def key_values(cmd: str, rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``k=v k2="v 2"`` or the old ``k v w`` form."""
    first = rest.split(None, 1)[0] if rest.strip() else ""
    if not first:
        raise BuildError(f"{cmd} requires at least one argument")
    if "=" not in first:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise BuildError(f"{cmd} must have two arguments")
        return [(words(parts[0], env, split=False)[0] if parts[0] else "",
                 "".join(words(parts[1], env, split=False)))]
    pairs = []
    for w in words(rest, env):
        if "=" not in w:
            raise BuildError(f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        k, _, v = w.partition("=")
        pairs.append((k, v))
    return pairs


def leading_flags(rest: str) -> tuple[list[str], str]:
    """``--chown=1 --chmod=644 src dst`` -> ``(["--chown=1", "--chmod=644"], "src dst")``."""
    words: list[str] = []
    while rest.startswith("--"):
        w, _, rest = rest.partition(" ")
        words.append(w)
        rest = rest.lstrip()
    return words, rest


def take_flags(args: list[str], allowed: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    while args and args[0].startswith("--"):
        name, _, val = args[0][2:].partition("=")
        if name not in allowed:
            raise BuildError(f"Unknown flag: {name}")
        flags[name] = val
        args = args[1:]
    return flags, args


# -- .dockerignore -----------------------------------------------------------------------------
def read_ignore(text: str) -> list[tuple[bool, str]]:
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


def _pat_match(pat: str, path: str) -> bool:
    rx = ""
    i = 0
    while i < len(pat):
        if pat.startswith("**", i):
            rx += ".*"
            i += 2
            if pat.startswith("/", i):
                i += 1
                rx = rx[:-2] + "(?:.*/)?"
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
                rx += "[" + pat[i + 1:j].replace("!", "^", 1) + "]" if pat[i + 1:i + 2] == "!" else pat[i:j + 1]
                i = j
        else:
            rx += re.escape(ch)
        i += 1
    return re.fullmatch(rx, path) is not None


def ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether context path ``rel`` is excluded (a pattern matching a parent excludes it too;
    the last matching pattern wins, ``!`` ones re-include)."""
    result = False
    parts = rel.split("/")
    for neg, pat in patterns:
        hit = any(_pat_match(pat, "/".join(parts[:k])) for k in range(1, len(parts) + 1))
        if hit:
            result = not neg
    return result


def tar_context(path: str, dockerfile: str | None = None,
                extra: tuple[str, bytes] | None = None) -> bytes:
    """The build context directory as a tar (what the docker CLI sends), .dockerignore applied;
    the Dockerfile and .dockerignore are always sent. ``extra``: a ``(name, content)`` file
    added at the end (a Dockerfile from outside the context, as ``docker build -f``)."""
    pats: list[tuple[bool, str]] = []
    ign = os.path.join(path, ".dockerignore")
    if os.path.isfile(ign):
        with open(ign) as f:
            pats = read_ignore(f.read())
    keep = {".dockerignore", posixpath.normpath(dockerfile or "Dockerfile")}
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


# -- the build ---------------------------------------------------------------------------------
class Options:
    def __init__(self, *, tags: list[str], dockerfile: str, buildargs: dict[str, str | None],
                 labels: dict[str, str], nocache: bool, rm: bool, forcerm: bool, quiet: bool) -> None:
        self.tags, self.dockerfile, self.buildargs, self.labels = tags, dockerfile, buildargs, labels
        self.nocache, self.rm, self.forcerm, self.quiet = nocache, rm, forcerm, quiet


def _safe_join(root: str, rel: str) -> str:
    """``rel`` inside the context directory ``root`` (symlinks may not lead out of it)."""
    full = os.path.realpath(os.path.join(root, rel.lstrip("/")))
    real_root = os.path.realpath(root)
    if full != real_root and not full.startswith(real_root + os.sep):
        raise BuildError(f"forbidden path outside the build context: {rel} ()")
    return full


class Builder:
    def __init__(self, daemon: Any, context_dir: str, opts: Options,
                 emit: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.d, self.ctx, self.opts, self._emit = daemon, context_dir, opts, emit
        self.images = daemon.images

    async def say(self, text: str) -> None:
        if not self.opts.quiet:
            await self._emit({"stream": text})

    # -- cache ------------------------------------------------------------------------------------
    def cache_get(self, key: str) -> str | None:
        if self.opts.nocache:
            return None
        rows = self.images.state.q("SELECT image_id FROM build_cache WHERE key=?", key)
        if not rows:
            return None
        try:
            self.images.get(rows[0]["image_id"])
        except DockyardError:
            return None
        return rows[0]["image_id"]

    async def use_cache(self, key: str) -> bool:
        """Take the cached result of a step, if there is one (and say so)."""
        hit = self.cache_get(key)
        if hit:
            await self.say(" ---> Using cache\n")
            self.image = hit
        return bool(hit)

    def cache_put(self, key: str, image_id: str) -> None:
        self.images.state.x("INSERT OR REPLACE INTO build_cache(key, image_id) VALUES(?,?)",
                            key, image_id)

    @staticmethod
    def cache_key(parent: str | None, text: str, extra: str = "") -> str:
        return hashlib.sha256(f"{parent}\n{text}\n{extra}".encode()).hexdigest()

    # -- images -----------------------------------------------------------------------------------
    def _new_config(self, parent: str | None, cfg: dict[str, Any], created_by: str,
                    chain: str | None, empty: bool) -> dict[str, Any]:
        base = self.images.config(parent) if parent else {
            "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        created = rfc3339()
        new = {k: v for k, v in base.items() if k not in ("container", "container_config")}
        clean = {k: v for k, v in cfg.items() if v not in (None, "", {}, [])}
        if parent:
            clean["Image"] = parent
        new.update(created=created, config=clean)
        if getattr(self, "author", None):
            new["author"] = self.author
        diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
        if not empty and chain is not None:
            diff_ids.append(self.images.layer(chain)["diff_id"])
        new["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        new["history"] = list(base.get("history") or []) + [entry]
        return new

    def _top(self, image_id: str | None) -> str | None:
        return self.images.get(image_id)["top_layer"] if image_id else None

    def config_only(self, parent: str | None, cfg: dict[str, Any], created_by: str) -> str:
        top = self._top(parent)
        image_id = self.images.create_image(self._new_config(parent, cfg, created_by, top, True), top)
        if parent:
            self.images.set_parent(image_id, parent)
        return image_id

    def commit_rw(self, rw_id: str, parent: str | None, cfg: dict[str, Any], created_by: str) -> str:
        """An image of ``parent`` plus the changes of graph layer ``rw_id``."""
        top = self._top(parent)
        parent_cache = self.images.layer(top)["cache_id"] if top else None
        stream = self.d.graph.diff(rw_id, parent_cache)
        try:
            chain = self.images.register_layer(stream, top, keep_blob=True)
        finally:
            stream.close()
        image_id = self.images.create_image(self._new_config(parent, cfg, created_by, chain, False), chain)
        if parent:
            self.images.set_parent(image_id, parent)
        return image_id

    # -- the run ----------------------------------------------------------------------------------
    async def build(self, dockerfile_text: str) -> str:
        instructions = parse(dockerfile_text)
        if not instructions:
            raise BuildError("the Dockerfile cannot be empty")
        pats: list[tuple[bool, str]] = []
        ign = os.path.realpath(os.path.join(self.ctx, ".dockerignore"))
        # a link may point anywhere: only a file inside the context is read
        if ign.startswith(os.path.realpath(self.ctx) + os.sep) and os.path.isfile(ign):
            with open(ign, errors="replace") as f:
                pats = read_ignore(f.read())
        self.ignore = pats
        for ins in instructions:
            if ins.cmd not in KNOWN:
                raise BuildError(f"Unknown instruction: {ins.cmd}")
        total = len(instructions)
        self.image: str | None = None
        self.cfg: dict[str, Any] = {}
        self.started = False
        self.cmd_set = False
        self.args: dict[str, str | None] = {}  # declared ARGs of this stage
        self.meta_args: dict[str, str | None] = {}  # ARGs before FROM
        self.used_args: set[str] = set()
        self.shell = ["/bin/sh", "-c"]
        for n, ins in enumerate(instructions, 1):
            await self.say(f"Step {n}/{total} : {ins.original}\n")
            if not self.started and ins.cmd not in ("FROM", "ARG"):
                raise BuildError("Please provide a source image with `from` prior to commit")
            handler = getattr(self, "do_" + ins.cmd.lower(), None)
            if handler is None:
                raise BuildError(f"{ins.cmd} is not supported by this builder")
            await handler(ins)
            if self.image:
                await self.say(f" ---> {self.image[7:19]}\n")
        if not self.image:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        if self.opts.labels:  # the ``labels`` parameter (``docker build --label``): a last step
            self.cfg["Labels"] = {**(self.cfg.get("Labels") or {}), **self.opts.labels}
            await self.meta(instructions[-1], "LABEL " + " ".join(
                f"{k}={v}" for k, v in sorted(self.opts.labels.items())))
        unused = sorted(k for k in self.opts.buildargs if k not in self.used_args
                        and k not in _BUILTIN_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        return self.image

    def env(self) -> dict[str, str]:
        """The variables instructions substitute: ARGs then ENV (ENV wins)."""
        out = {k: v for k, v in self.args.items() if v is not None}
        for e in self.cfg.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def run_args(self) -> list[str]:
        """``K=V`` of the ARGs with a value that ENV does not override (RUN sees them)."""
        env_keys = {e.partition("=")[0] for e in self.cfg.get("Env") or []}
        return [f"{k}={v}" for k, v in sorted(self.args.items())
                if v is not None and k not in env_keys]

    async def meta(self, ins: Instruction, text: str) -> None:
        """Commit a config change (no layer), through the cache."""
        key = self.cache_key(self.image, "#(nop) " + text, json.dumps(self.cfg, sort_keys=True))
        if await self.use_cache(key):
            return
        self.image = await asyncio.to_thread(self.config_only, self.image, self.cfg,
                                             "/bin/sh -c #(nop)  " + text)
        self.cache_put(key, self.image)

    # -- instructions -----------------------------------------------------------------------------
    async def do_from(self, ins: Instruction) -> None:
        w = words(ins.rest, {k: v for k, v in self.meta_args.items() if v is not None})
        if not w:
            raise BuildError("FROM requires either one or three arguments")
        w = [x for x in w if not x.startswith("--platform")]
        if len(w) not in (1, 3) or (len(w) == 3 and w[1].lower() != "as"):
            raise BuildError("FROM requires either one or three arguments")
        if self.started:
            raise BuildError("multi-stage builds are not supported by this builder")
        name = w[0]
        self.started = True
        self.args = {}
        if name == "scratch":
            self.image, self.cfg = None, {}
            return
        try:
            self.image = self.images.resolve(name)
        except DockyardError:
            raise BuildError(f"pull access denied for {name}, repository does not exist or may "
                             "require 'docker login': image not found locally (this builder "
                             "does not pull)") from None
        self.cfg = dict(self.images.config(self.image).get("config") or {})
        self.cfg.pop("Image", None)
        self.cmd_set = False
        for trigger in self.cfg.get("OnBuild") or []:
            raise BuildError(f"the base image has ONBUILD triggers ({trigger}); running them "
                             "is not supported by this builder")

    async def do_arg(self, ins: Instruction) -> None:
        w = words(ins.rest, self.env() if self.started else
                  {k: v for k, v in self.meta_args.items() if v is not None})
        if len(w) != 1:
            raise BuildError("ARG requires exactly one argument")
        name, eq, default = w[0].partition("=")
        value: str | None = default if eq else None
        if name in self.opts.buildargs:
            self.used_args.add(name)
            if self.opts.buildargs[name] is not None:
                value = self.opts.buildargs[name]
        if not self.started:
            self.meta_args[name] = value
            return
        if not eq and name in self.meta_args and name not in self.opts.buildargs:
            value = self.meta_args[name]
        self.args[name] = value
        await self.meta(ins, f"ARG {w[0]}")

    async def do_env(self, ins: Instruction) -> None:
        pairs = key_values("ENV", ins.rest, self.env())
        env = list(self.cfg.get("Env") or [])
        for k, v in pairs:
            env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
        self.cfg["Env"] = env
        await self.meta(ins, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    async def do_label(self, ins: Instruction) -> None:
        pairs = key_values("LABEL", ins.rest, self.env())
        self.cfg["Labels"] = {**(self.cfg.get("Labels") or {}), **dict(pairs)}
        await self.meta(ins, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    async def do_maintainer(self, ins: Instruction) -> None:
        self.author = ins.rest.strip()
        await self.meta(ins, "MAINTAINER " + self.author)

    def _cmdline(self, rest: str) -> tuple[list[str], bool]:
        j = json_list(rest)
        if j is not None:
            return j, False
        return [*self.shell, rest], True

    async def do_cmd(self, ins: Instruction) -> None:
        self.cfg["Cmd"], _ = self._cmdline(ins.rest)
        self.cmd_set = True
        await self.meta(ins, "CMD " + json.dumps(self.cfg["Cmd"]))

    async def do_entrypoint(self, ins: Instruction) -> None:
        self.cfg["Entrypoint"], _ = self._cmdline(ins.rest)
        if not self.cmd_set:
            self.cfg.pop("Cmd", None)
        await self.meta(ins, "ENTRYPOINT " + json.dumps(self.cfg["Entrypoint"]))

    async def do_shell(self, ins: Instruction) -> None:
        j = json_list(ins.rest)
        if not j:
            raise BuildError("SHELL requires the arguments to be in JSON form")
        self.shell = j
        self.cfg["Shell"] = j
        await self.meta(ins, "SHELL " + json.dumps(j))

    async def do_expose(self, ins: Instruction) -> None:
        ports = self.cfg.setdefault("ExposedPorts", {})
        for p in words(ins.rest, self.env()):
            port, _, proto = p.partition("/")
            if not port or not all(c.isdigit() or c == "-" for c in port):
                raise BuildError(f"invalid containerPort: {port}")
            ports[f"{port}/{(proto or 'tcp').lower()}"] = {}
        await self.meta(ins, "EXPOSE " + " ".join(sorted(ports)))

    async def do_volume(self, ins: Instruction) -> None:
        j = json_list(ins.rest)
        vols = j if j is not None else words(ins.rest, self.env())
        if not vols:
            raise BuildError("VOLUME requires at least one argument")
        for v in vols:
            if not v.strip():
                raise BuildError("VOLUME specified can not be an empty string")
            self.cfg.setdefault("Volumes", {})[v] = {}
        await self.meta(ins, "VOLUME " + json.dumps(vols))

    async def do_user(self, ins: Instruction) -> None:
        w = words(ins.rest, self.env(), split=False)
        if not w or not w[0]:
            raise BuildError("USER requires exactly one argument")
        self.cfg["User"] = w[0]
        await self.meta(ins, "USER " + w[0])

    async def do_stopsignal(self, ins: Instruction) -> None:
        from .containers import parse_signal
        w = words(ins.rest, self.env(), split=False)
        if not w:
            raise BuildError("STOPSIGNAL requires exactly one argument")
        parse_signal(w[0])
        self.cfg["StopSignal"] = w[0]
        await self.meta(ins, "STOPSIGNAL " + w[0])

    async def do_onbuild(self, ins: Instruction) -> None:
        trigger = ins.rest.strip()
        word = trigger.split(None, 1)[0].upper() if trigger else ""
        if word in ("ONBUILD", "FROM", "MAINTAINER"):
            raise BuildError(f"{word} isn't allowed as an ONBUILD trigger")
        if word not in KNOWN:
            raise BuildError(f"Unknown instruction: {word}")
        self.cfg["OnBuild"] = list(self.cfg.get("OnBuild") or []) + [trigger]
        await self.meta(ins, "ONBUILD " + trigger)

    async def do_healthcheck(self, ins: Instruction) -> None:
        flag_words, rest = leading_flags(ins.rest)
        flags, _ = take_flags(flag_words, ("interval", "timeout", "start-period", "retries"))
        kind, _, cmd = rest.partition(" ")
        kind = kind.upper()
        if kind == "NONE":
            if flags or cmd.strip():
                raise BuildError("HEALTHCHECK NONE takes no arguments")
            hc: dict[str, Any] = {"Test": ["NONE"]}
        elif kind == "CMD":
            cmd = cmd.strip()
            if not cmd:
                raise BuildError("Missing command after HEALTHCHECK CMD")
            j = json_list(cmd)
            hc = {"Test": ["CMD", *j] if j is not None else ["CMD-SHELL", cmd]}
            for name, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod")):
                if name in flags:
                    hc[key] = go_duration(flags[name], name)
            if "retries" in flags:
                if not flags["retries"].isdigit():
                    raise BuildError(f"invalid --retries value {flags['retries']!r}")
                hc["Retries"] = int(flags["retries"])
        else:
            raise BuildError(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        self.cfg["Healthcheck"] = hc
        await self.meta(ins, "HEALTHCHECK " + json.dumps(hc, sort_keys=True))

    async def do_workdir(self, ins: Instruction) -> None:
        w = words(ins.rest, self.env(), split=False)
        if not w or not w[0]:
            raise BuildError("WORKDIR requires exactly one argument")
        path = posixpath.normpath(posixpath.join(self.cfg.get("WorkingDir") or "/", w[0]))
        self.cfg["WorkingDir"] = path
        key = self.cache_key(self.image, "#(nop) WORKDIR " + path, json.dumps(self.cfg, sort_keys=True))
        if await self.use_cache(key):
            return

        def work() -> str:
            return self._layer_from(lambda root: self._mkdirs(root, path, 0, 0, []),
                                    "/bin/sh -c #(nop) WORKDIR " + path, allow_empty=True)
        self.image = await asyncio.to_thread(work)
        self.cache_put(key, self.image)

    # -- file system steps ---------------------------------------------------------------------------
    def _scratch_rw(self) -> tuple[str, str]:
        rw = "build-" + secrets.token_hex(16)
        top = self._top(self.image)
        parent_cache = self.images.layer(top)["cache_id"] if top else None
        self.d.graph.create_rw(rw, parent_cache)
        return rw, self.d.graph.get(rw)

    def _layer_from(self, fill: Callable[[str], list[tarfile.TarInfo] | int | None],
                    created_by: str, allow_empty: bool = False) -> str:
        """Run ``fill(rootfs)`` (which returns the tar entries to unpack, in order, or an
        already applied count) on a scratch layer over the current image; commit it."""
        rw, root = self._scratch_rw()
        try:
            try:
                res = fill(root)
                if isinstance(res, list):
                    if not res and allow_empty:
                        return self.config_only(self.image, self.cfg, created_by)
                    self._apply(root, "/", res)
            finally:
                self.d.graph.put(rw)
            return self.commit_rw(rw, self.image, self.cfg, created_by)
        finally:
            with contextlib.suppress(Exception):
                self.d.graph.remove(rw)

    def _apply(self, root: str, dest: str, entries: list[Any]) -> None:
        from . import archive
        # spooled through a temporary file: a context may be larger than memory
        with tempfile.TemporaryFile(dir=self.d.tmp_dir) as buf:
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for ti, src in entries:
                    if src is not None:
                        with open(src, "rb") as f:
                            tar.addfile(ti, f)
                    else:
                        tar.addfile(ti)
            buf.seek(0)
            archive.extract_in(root, dest, buf, getattr(self.d.graph, "id_map", None))

    @staticmethod
    def _exists(root: str, path: str) -> str | None:
        """``"dir"``/``"file"``/None for ``path`` in the rootfs (no link followed out of it)."""
        cur = root
        for part in [p for p in path.split("/") if p]:
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except OSError:
                return None
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(cur)
                base = root if target.startswith("/") else os.path.dirname(cur)
                cur = os.path.normpath(os.path.join(base, target.lstrip("/")))
                if not (cur + "/").startswith(root.rstrip("/") + "/"):
                    return None
        try:
            return "dir" if os.path.isdir(cur) else "file"
        except OSError:
            return None

    def _mkdirs(self, root: str, path: str, uid: int, gid: int, entries: list[Any]) -> list[Any]:
        """Tar entries for the missing directories of ``path`` (absolute)."""
        parts = [p for p in path.split("/") if p]
        for k in range(1, len(parts) + 1):
            sub = "/".join(parts[:k])
            if self._exists(root, sub) is None and not any(e[0].name == sub for e in entries):
                ti = tarfile.TarInfo(sub)
                ti.type, ti.mode, ti.uid, ti.gid = tarfile.DIRTYPE, 0o755, uid, gid
                entries.append((ti, None))
        return entries

    def _sources(self, srcs: list[str]) -> list[tuple[str, str]]:
        """``(context-relative path, host path)`` of every source, globs expanded."""
        out = []
        for s in srcs:
            if "://" in s:
                raise BuildError(f"source can't be a URL for COPY/ADD: {s} (URLs are not supported "
                                 "by this builder)")
            rel = posixpath.normpath("/" + s).lstrip("/") or "."
            if any(c in rel for c in "*?["):
                matches = []
                for r, dirs, files in os.walk(self.ctx):
                    for name in dirs + files:
                        p = os.path.relpath(os.path.join(r, name), self.ctx)
                        if fnmatch.fnmatchcase(p, rel) and not ignored(p, self.ignore):
                            matches.append(p)
                if not matches:
                    raise BuildError("COPY failed: no source files were specified")
                out += [(m, _safe_join(self.ctx, m)) for m in sorted(matches)]
                continue
            full = _safe_join(self.ctx, rel)
            if rel != "." and ignored(rel, self.ignore) or not os.path.lexists(full):
                raise BuildError(f"COPY failed: file not found in build context or excluded by "
                                 f".dockerignore: stat {rel}: file does not exist")
            out.append((rel, full))
        return out

    def _chown(self, root: str, spec: str) -> tuple[int, int] | None:
        if not spec:
            return None
        user, _, group = spec.partition(":")

        def lookup(name: str, file: str) -> int:
            if name.isdigit():
                return int(name)
            p = os.path.join(root, "etc", file)
            try:
                with open(p) as f:
                    for line in f:
                        fields = line.split(":")
                        if fields[0] == name and len(fields) > 2:
                            return int(fields[2])
            except OSError:
                pass
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: "
                             f"can't find uid for user {name}")
        uid = lookup(user, "passwd")
        gid = lookup(group, "group") if group else uid
        return uid, gid

    def _content_digest(self, sources: list[tuple[str, str]], chown: str, add: bool) -> str:
        h = hashlib.sha256(f"{chown}|{add}".encode())
        for rel, full in sources:
            paths = [(rel, full)]
            if os.path.isdir(full) and not os.path.islink(full):
                for r, dirs, files in os.walk(full):
                    dirs.sort()
                    for name in sorted(dirs + files):
                        p = os.path.join(r, name)
                        prel = os.path.relpath(p, self.ctx)
                        if not ignored(prel, self.ignore):
                            paths.append((prel, p))
            for prel, p in paths:
                st = os.lstat(p)
                h.update(f"{prel}\0{st.st_mode:o}\0{st.st_size}\0".encode())
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
                elif stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(p).encode())
        return h.hexdigest()

    async def do_copy(self, ins: Instruction) -> None:
        await self._copy(ins, add=False)

    async def do_add(self, ins: Instruction) -> None:
        await self._copy(ins, add=True)

    async def _copy(self, ins: Instruction, add: bool) -> None:
        flags_words, raw = leading_flags(ins.rest)
        flags, _ = take_flags(flags_words, ("chown", "chmod", "from") if not add else ("chown", "chmod"))
        if flags.get("from"):
            raise BuildError("COPY --from (multi-stage builds) is not supported by this builder")
        j = json_list(raw)
        args = [words(a, self.env(), split=False)[0] if a else a for a in j] if j is not None \
            else words(raw, self.env())
        name = "ADD" if add else "COPY"
        if len(args) < 2:
            raise BuildError(f"{name} requires at least two arguments, but only one was provided. "
                             "Destination could not be determined.")
        srcs, dest = args[:-1], args[-1]
        sources = self._sources(srcs)
        chown = words(flags.get("chown", ""), self.env(), split=False)
        chown_s = chown[0] if chown else ""
        chmod = flags.get("chmod", "")
        if chmod and not re.fullmatch(r"[0-7]{3,4}", chmod):
            raise BuildError(f"invalid chmod value {chmod!r} (octal numbers only)")
        digest = self._content_digest(sources, chown_s + "|" + chmod, add)
        workdir = self.cfg.get("WorkingDir") or "/"
        dest_abs = posixpath.join(workdir, dest)
        dir_dest = dest.endswith("/") or dest.endswith("/.") or dest == "." or len(sources) > 1
        text = f"{name} " + " ".join(f"{'dir' if os.path.isdir(f) else 'file'}:{r}" for r, f in sources) \
            + f" in {dest_abs}"
        key = self.cache_key(self.image, "#(nop) " + text, digest + json.dumps(self.cfg, sort_keys=True))
        if await self.use_cache(key):
            return
        dest_abs = posixpath.normpath(dest_abs)

        def fill(root: str) -> int:
            owner = self._chown(root, chown_s)
            uid, gid = owner or (0, 0)
            mode_override = int(chmod, 8) if chmod else None
            into_dir = dir_dest or self._exists(root, dest_abs) == "dir"
            entries: list[Any] = []
            archives: list[str] = []
            base = dest_abs.strip("/")

            def add_entry(host: str, arc: str) -> None:
                st = os.lstat(host)
                ti = tarfile.TarInfo(arc)
                ti.mtime = int(st.st_mtime)
                ti.mode = mode_override if mode_override is not None else stat.S_IMODE(st.st_mode)
                ti.uid, ti.gid = (uid, gid) if owner else (0, 0)
                if stat.S_ISDIR(st.st_mode):
                    ti.type = tarfile.DIRTYPE
                    entries.append((ti, None))
                elif stat.S_ISLNK(st.st_mode):
                    ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(host)
                    entries.append((ti, None))
                elif stat.S_ISREG(st.st_mode):
                    ti.size = st.st_size
                    entries.append((ti, host))

            if into_dir or any(os.path.isdir(f) for _, f in sources):
                self._mkdirs(root, dest_abs if (into_dir or os.path.isdir(sources[0][1])) else
                             posixpath.dirname(dest_abs), uid, gid, entries)
            else:
                self._mkdirs(root, posixpath.dirname(dest_abs), uid, gid, entries)
            for rel, full in sources:
                if os.path.isdir(full) and not os.path.islink(full):
                    for r, dirs, files in os.walk(full):
                        dirs.sort()
                        for nm in sorted(dirs) + sorted(files):
                            p = os.path.join(r, nm)
                            if ignored(os.path.relpath(p, self.ctx), self.ignore):
                                continue
                            sub = os.path.relpath(p, full)
                            add_entry(p, posixpath.join(base, sub) if base else sub)
                    continue
                if add and os.path.isfile(full) and _is_archive(full):
                    archives.append(full)
                    if not into_dir:
                        self._mkdirs(root, dest_abs, 0, 0, entries)
                    continue
                arc = posixpath.join(base, posixpath.basename(rel)) if into_dir else base
                if not arc:
                    raise BuildError("cannot copy a file onto /")
                add_entry(full, arc)
            self._apply(root, "/", entries)
            for a in archives:
                from . import archive
                # the scratch layer is discarded if the archive is refused: no need to check first
                archive.extract_in(root, dest_abs, a, getattr(self.d.graph, "id_map", None),
                                   check_first=False)
            return 0

        self.image = await asyncio.to_thread(self._layer_from, fill,
                                             f"/bin/sh -c #(nop) {text}")
        self.cache_put(key, self.image)

    async def do_run(self, ins: Instruction) -> None:
        j = json_list(ins.rest)
        cmd = j if j is not None else [*self.shell, ins.rest]
        run_args = self.run_args()
        for a in self.args:
            if a in self.opts.buildargs:
                self.used_args.add(a)
        created_by = " ".join(cmd)
        if run_args:
            created_by = f"|{len(run_args)} {' '.join(run_args)} {created_by}"
        key = self.cache_key(self.image, "RUN " + json.dumps(cmd),
                             json.dumps([run_args, self.cfg], sort_keys=True))
        if await self.use_cache(key):
            return
        if self.image is None:
            raise BuildError("RUN on an image built FROM scratch has no shell to run it in")
        cs = self.d.containers
        body = {"Image": self.image, "Cmd": cmd, "Entrypoint": [""],
                "Env": run_args, "User": self.cfg.get("User", ""),
                "WorkingDir": self.cfg.get("WorkingDir", ""), "Labels": {},
                "HostConfig": {"NetworkMode": "bridge"}}
        created = await cs.create(body, None)
        cid = created["Id"]
        ok = False
        try:
            await self.say(f" ---> Running in {cid[:12]}\n")
            exit_fut = cs.wait_future(cid, "next-exit")
            await cs.start(cid)
            async for _stream, data in cs.logs(cid, stdout=True, stderr=True, follow=True,
                                                 tail="all", since=0, until=0, timestamps=False):
                await self.say(data.decode(errors="replace"))
            code = await exit_fut
            if code != 0:
                shown = " ".join(cmd)
                raise StepFailed(f"The command '{shown}' returned a non-zero code: {code}", code)
            c = cs.get(cid)
            rw = cid

            def work() -> str:
                return self.commit_rw(rw, self.image, self.cfg, created_by)
            self.image = await asyncio.to_thread(work)
            ok = True
            self.cache_put(key, self.image)
            del c
        finally:
            # dockerd keeps a failed step's container unless forcerm; it is removed here too
            if self.opts.rm or self.opts.forcerm:
                with contextlib.suppress(DockyardError):
                    await cs.remove(cid, force=True, volumes=True)
                if ok:
                    await self.say(f"Removing intermediate container {cid[:12]}\n")


_DUR = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration(text: str, name: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DUR.match(text, pos)
        if not m:
            raise BuildError(f"invalid --{name} value {text!r}: a duration such as 30s or 1m30s")
        total += float(m.group(1)) * _NS[m.group(2)]
        pos = m.end()
    if not text or (0 < total < 10**6):
        raise BuildError(f"Interval \"{name}\" cannot be less than 1ms")
    return int(total)


_BUILTIN_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                 "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}


def _is_archive(path: str) -> bool:
    """As dockerd's ``isArchivePath``: the file, decompressed, starts with a valid tar header."""
    try:
        with open(path, "rb") as f, tarsafe.uncompressed(f) as src:
            return tarsafe.is_tar(src)
    except (OSError, DockyardError):
        return False
