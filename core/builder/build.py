"""One build: plan it whole (before anything runs), resolve its images, build its stages.

:meth:`Build.plan` parses and checks the Dockerfile, evaluates the global ARGs, resolves every
stage reference (``FROM <stage>``, ``COPY --from``, ``RUN --mount=from=``), picks the stages the
target needs and numbers their steps as dockerd does; any error there is a 400 before the
output stream starts, naming the Dockerfile line. :meth:`Build.run` then pulls the images the
build needs (missing ones, or all with ``pull``), builds the stages (independent ones at the
same time, :mod:`.graph`), and applies the ``labels`` option to the result.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from typing import Any, Callable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter, NotFound

from .. import reference, remote, transfer
from . import graph, lint
from .cache import StepCache
from .commit import Committer, host_arch
from .context import Context
from .errors import BuildError, StepError
from .mounts import parse_mount
from .options import Options, check_platform
from .output import Output
from .parse import Instruction, Stage, parse
from .stage import StageRun
from .steps.config import arg_pairs
from .steps.run import BUILTIN_ARGS

def remove_leftovers(daemon: Any) -> None:
    """At start-up (no build runs yet): what builds cut short by a crash left behind, their
    contexts and work directories and their secrets' files."""
    shutil.rmtree(os.path.join(daemon.exec_root, "build-secrets"), ignore_errors=True)
    tmp = os.path.join(daemon.data_root, "tmp")
    with contextlib.suppress(OSError):
        for name in os.listdir(tmp):
            if name.startswith("build-"):
                shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


class Build:
    def __init__(self, daemon: Any, ctx: Context, opts: Options, out: Output,
                 limit: int | None = None) -> None:
        self.d = daemon
        self.images = daemon.images
        self.ctx, self.opts, self.out = ctx, opts, out
        self.committer = Committer(daemon)
        self.id_map = getattr(daemon.graph, "id_map", None)
        self.limit = limit
        tmp_root = os.path.join(daemon.data_root, "tmp")
        os.makedirs(tmp_root, exist_ok=True)
        self.tmp = tempfile.mkdtemp(dir=tmp_root, prefix="build-work-")
        self._secrets: str | None = None
        self.used_args: set[str] = set()
        self.meta: dict[str, str | None] = {}
        self.numbers: dict[int, int] = {}
        self.results: dict[int, str | None] = {}
        self.external: dict[str, str] = {}
        self.refs: dict[tuple[int, str], tuple[str, Any, int]] = {}
        arch = host_arch()
        self.platform_args = {"TARGETPLATFORM": f"linux/{arch}", "TARGETOS": "linux",
                              "TARGETARCH": arch, "TARGETVARIANT": "",
                              "BUILDPLATFORM": f"linux/{arch}", "BUILDOS": "linux",
                              "BUILDARCH": arch, "BUILDVARIANT": ""}

    async def thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Blocking work in a worker thread. Unpacking in it stops when the client goes (the
        request's cancel scope travels with the context); if the step is cancelled (another
        stage failed, the client went), the thread is waited for, so that clean-up never races
        it."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await task
            raise

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self._secrets:
            shutil.rmtree(self._secrets, ignore_errors=True)

    def work_dir(self) -> str:
        return tempfile.mkdtemp(dir=self.tmp, prefix="step-")

    def secret_file(self, value: bytes, mode: int, uid: int, gid: int) -> str:
        """A file holding a secret, outside the data-root (under the exec-root, a tmpfs on a
        usual host), for one bind mount."""
        if self._secrets is None:
            base = os.path.join(self.d.exec_root, "build-secrets")
            os.makedirs(base, mode=0o700, exist_ok=True)
            self._secrets = tempfile.mkdtemp(dir=base)
        fd, path = tempfile.mkstemp(dir=self._secrets)
        with os.fdopen(fd, "wb") as f:
            f.write(value)
        if self.id_map is not None:
            uid, gid = self.id_map.to_host(uid, gid)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return path

    # -- the plan -----------------------------------------------------------------------------------
    def plan(self) -> None:
        self.df = df = parse(self.ctx.text)
        self.lexer = df.lexer
        self.notes: list[str] = []
        if "syntax" in df.directives:
            self.notes.append(f"the syntax directive ({df.directives['syntax']}) is read and "
                              "ignored: this builder's own frontend reads the Dockerfile")
        self.lint_warnings, err = lint.run_checks(df)
        if err is not None:
            raise err
        self._meta_args()
        self.deps: dict[int, set[int]] = {}
        for st in df.stages:
            self.deps[st.index] = self._stage_refs(st)
        graph.check_acyclic(self.deps)
        self.target = self._target()
        self.order = graph.needed(self.deps, self.target.index)
        self._number()
        if self.opts.network_mode and self.opts.network_mode not in ("host", "none", "bridge"):
            try:
                self.d.networks.get(self.opts.network_mode)
            except NotFound as exc:
                raise InvalidParameter(f"networkmode: {exc.message}") from None

    def meta_env(self) -> dict[str, str]:
        return {**self.platform_args, **{k: v for k, v in self.meta.items() if v is not None}}

    def _meta_args(self) -> None:
        for ins in self.df.meta_args:
            try:
                pairs = arg_pairs(ins.args, self.meta_env(), self.lexer)
            except BuildError as exc:
                raise ins.error(exc.message) from None
            for name, default, _raw in pairs:
                value = default
                if name in self.opts.buildargs:
                    self.used_args.add(name)
                    if self.opts.buildargs[name] is not None:
                        value = self.opts.buildargs[name]
                self.meta[name] = value

    def _stage_refs(self, st: Stage) -> set[int]:
        """Resolve what stage ``st`` refers to; return the stages it depends on."""
        env = self.meta_env()
        ins = st.from_ins
        try:
            base = self.lexer.word(st.base, env)
            platform = self.lexer.word(ins.flag("platform"), env)
        except BuildError as exc:
            raise ins.error(exc.message) from None
        if not base:
            raise ins.error(f"base name ({st.base}) should not be blank")
        if platform:
            try:
                check_platform(platform, "FROM --platform")
            except InvalidParameter as exc:
                raise ins.error(exc.message) from None
        deps: set[int] = set()
        refs = [(ins, "base", base)] + [(sub, v, v) for sub in st.instructions
                                         for v in self._from_values(sub, env)]
        for where, key, value in refs:
            kind, ref = self._ref(where, value, st)
            self.refs[(id(where), key)] = (kind, ref, st.index)
            if kind == "stage":
                deps.add(ref)
        return deps

    def _from_values(self, ins: Instruction, env: dict[str, str]) -> list[str]:
        out = []
        if ins.cmd == "COPY" and ins.flag("from"):
            out.append(self.lexer.word(ins.flag("from"), env))
        if ins.cmd == "RUN":
            for spec in ins.flags.get("mount", []):
                try:
                    m = parse_mount(spec, lambda v: v)
                except BuildError as exc:
                    raise ins.error(exc.message) from None
                if m.from_:
                    out.append(m.from_)
        return out

    def _ref(self, ins: Instruction, value: str, st: Stage) -> tuple[str, Any]:
        """``("scratch", None)``, ``("stage", index)`` or ``("image", reference)``."""
        is_from = ins.cmd == "FROM"
        if is_from and value.lower() == "scratch":
            return ("scratch", None)
        other = self.df.stage(value)
        if other is not None and is_from and (value.isdigit() or other.index >= st.index):
            other = None  # FROM sees the names of the stages before it only
        if other is not None:
            if other.index >= st.index:
                raise ins.error(f"invalid from flag value {value}: stage {value!r} is not defined "
                                "before the current one (circular dependency)")
            return ("stage", other.index)
        try:
            ref = reference.parse(value)
        except InvalidParameter:
            what = "base name" if is_from else "from flag value"
            raise ins.error(f"invalid {what} {value}: no build stage of that name, and not a "
                            "valid image reference") from None
        return ("image", str(ref))

    def _target(self) -> Stage:
        if not self.opts.target:
            return self.df.stages[-1]
        st = self.df.stage(self.opts.target)
        if st is None or st.name is None:
            raise InvalidParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
        return st

    def _number(self) -> None:
        """dockerd's step numbers: the global ARGs, then the needed stages' instructions."""
        wanted = set(self.order)
        n = 0
        for ins in self.df.meta_args:
            n += 1
            self.numbers[id(ins)] = n
        for st in self.df.stages:
            if st.index in wanted:
                for ins in [st.from_ins, *st.instructions]:
                    n += 1
                    self.numbers[id(ins)] = n
        self.out.total = n
        self.out.prefixed = len(self.order) > 1

    # -- the run --------------------------------------------------------------------------------------
    async def run(self) -> str:
        for note in self.notes:
            await self.out.write(f"[Note] {note}\n")
        for ins in self.df.meta_args:
            await self.out.header("global", self.numbers[id(ins)], ins.original)
        await self._resolve_images()
        self.cache = StepCache(self.images, self.committer.restore, self.opts.nocache,
                               await self._cache_sources())
        await graph.run(self.order, self.deps, self._build_stage, self.limit)
        image = self.results[self.target.index]
        st = StageRun(self, self.target)
        st.image = image
        st.cfg = {k: v for k, v in (self.images.config(image).get("config") or {}).items()
                  if k != "Image"} if image else {}
        if self.opts.labels:  # ``docker build --label``: a last step
            st.cfg["Labels"] = {**(st.cfg.get("Labels") or {}), **self.opts.labels}
            await st.meta(self.out.step(st.label, self.out.total), "LABEL " + " ".join(
                f"{k}={v}" for k, v in sorted(self.opts.labels.items())))
        if st.image is None:  # FROM scratch and nothing else: an empty image, as BuildKit's
            st.image = await self.thread(self.committer.config_only, None, {},
                                         "/bin/sh -c #(nop)  FROM scratch")
        await self._warnings()
        return st.image

    async def _warnings(self) -> None:
        unused = sorted(k for k in self.opts.buildargs if k not in self.used_args
                        and k not in BUILTIN_ARGS)
        if unused:
            await self.out.write(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                                 "consumed\n")
        for w in self.lint_warnings:
            await self.out.write(f"[Warning] {w}\n")

    async def _build_stage(self, index: int) -> str | None:
        image = await StageRun(self, self.df.stages[index]).execute()
        self.results[index] = image
        return image

    async def _resolve_images(self) -> None:
        """Every image the needed stages name, local or pulled, before the first step."""
        wanted = set(self.order)
        first: dict[str, tuple[Instruction, str]] = {}
        for (ins_id, value), (kind, ref, owner) in self.refs.items():
            if kind == "image" and owner in wanted:
                ins = self._instruction(ins_id)
                if ref not in first or ins.line < first[ref][0].line:
                    first[ref] = (ins, reference.familiar(ref) if value == "base" else value)
        for ref, (ins, shown) in sorted(first.items(), key=lambda item: item[1][0].line):
            try:
                self.external[ref] = await self.ensure_image(ref)
            except BuildError as exc:
                what = "FROM" if ins.cmd == "FROM" else "invalid from flag value"
                raise StepError(f"{what} {shown}: {exc.message}", ins.line) from None

    def _instruction(self, ins_id: int) -> Instruction:
        for st in self.df.stages:
            for ins in (st.from_ins, *st.instructions):
                if id(ins) == ins_id:
                    return ins
        raise KeyError(ins_id)

    async def ensure_image(self, ref: str) -> str:
        if not self.opts.pull:
            try:
                return self.images.resolve(ref)
            except NotFound:
                pass
        return await self._pull(reference.parse(ref))

    def _auth(self, domain: str) -> dict[str, Any]:
        keys = [domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v1/"]
        if domain == reference.DEFAULT_DOMAIN:
            keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", *keys]
        for k in keys:
            if k in self.opts.auth:
                return transfer.clean_auth(self.opts.auth[k])
        return {}

    async def _pull(self, ref: Any) -> str:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def progress(msg: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        def work() -> dict[str, Any]:
            try:
                backends = remote.open_pull(self.d, ref, self._auth(ref.domain))
                return remote.pull_into(self.d, ref, backends, progress)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        await self.out.write(f"Pulling {ref.familiar()}\n")
        task = asyncio.ensure_future(self.thread(work))
        while (msg := await queue.get()) is not None:
            await self.out.message(msg)
        try:
            result = await task
        except NotFound as exc:
            raise BuildError(exc.message) from None
        except DockyardError as exc:
            raise BuildError(f"pull of {ref.familiar()} failed: {exc.message}") from None
        self.d.event("image", "pull", str(ref), {"name": str(ref)})
        # the pull's last words, as a docker pull (and dockerd's build) prints them
        shown = ref.familiar()
        await self.out.message({"status": f"Digest: {result['digest']}"})
        await self.out.message({"status": f"Status: Downloaded newer image for {shown}"
                                if result.get("fresh") else f"Status: Image is up to date for {shown}"})
        return result["image_id"]

    async def _cache_sources(self) -> list[str] | None:
        if not self.opts.cache_from:
            return None
        out = []
        for name in self.opts.cache_from:
            try:
                out.append(self.images.resolve(name))
            except (NotFound, InvalidParameter):
                await self.out.write(f"[Warning] cache-from image {name} not found locally: "
                                     "not used (pull it first)\n")
        return out

    # -- what the steps ask for --------------------------------------------------------------------
    def base_image(self, st: Stage) -> str | None:
        kind, ref, _ = self.refs[(id(st.from_ins), "base")]
        return None if kind == "scratch" else self.results[ref] if kind == "stage" else self.external[ref]

    async def from_image(self, ins: Instruction, value: str) -> str | None:
        """The image ``COPY --from``/``--mount from=`` names: a stage's result, or an image
        (resolved in the plan; an ONBUILD trigger's is resolved now)."""
        known = self.refs.get((id(ins), value))
        if known is None:
            other = self.df.stage(value)
            if other is not None and other.index in self.results:
                return self.results[other.index]
            return await self.ensure_image(str(reference.parse(value)))
        kind, ref, _ = known
        if kind == "stage":
            return self.results[ref]
        return self.external[ref]

    def from_value(self, ins: Instruction) -> str:
        return self.lexer.word(ins.flag("from"), self.meta_env())
