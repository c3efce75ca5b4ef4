"""One stage's build: its state (image, config, ARGs in scope, shell) and its steps in order.

Each step goes through :meth:`StageRun.cached`: its cache key is the parent image, the
instruction after substitution, the build arguments in scope, the config so far and what the
step reads (``extra``); a hit takes the earlier image, a miss makes a new one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from . import cache as cachemod
from .errors import BuildError, at_line
from .output import StepOutput
from .parse import Instruction, Stage

if TYPE_CHECKING:
    from .build import Build

DEFAULT_SHELL = ["/bin/sh", "-c"]


class StageRun:
    def __init__(self, build: "Build", stage: Stage) -> None:
        self.b = build
        self.stage = stage
        self.label = stage.label
        self.image: str | None = None
        self.cfg: dict[str, Any] = {}
        self.args: dict[str, str | None] = {}
        self.shell = list(DEFAULT_SHELL)
        self.author: str | None = None
        self.cmd_set = False

    # -- variables -------------------------------------------------------------------------------
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

    def word(self, text: str) -> str:
        return self.b.lexer.word(text, self.env())

    def words(self, text: str) -> list[str]:
        return self.b.lexer.words(text, self.env())

    # -- running ---------------------------------------------------------------------------------
    async def execute(self) -> str | None:
        from .steps import dispatch
        from .steps.base import do_from
        st = self.stage
        await self.step(st.from_ins, self.b.numbers[id(st.from_ins)], do_from)
        for ins in st.instructions:
            await self.step(ins, self.b.numbers[id(ins)], dispatch(ins.cmd))
        return self.image

    async def step(self, ins: Instruction, number: int,
                   handler: Callable[["StageRun", Instruction, StepOutput], Awaitable[None]]) -> None:
        out = await self.b.out.header(self.label, number, ins.original)
        try:
            await handler(self, ins, out)
        except BuildError as exc:
            raise at_line(exc, ins.line) from None
        finally:
            await out.flush()
        if self.image:
            await out.line(f" ---> {self.image[7:19]}")

    async def sub_step(self, ins: Instruction, out: StepOutput) -> None:
        """An ONBUILD trigger: run as part of the FROM step."""
        from .steps import dispatch
        try:
            await dispatch(ins.cmd)(self, ins, out)
        except BuildError as exc:
            raise at_line(exc, ins.line) from None

    async def cached(self, out: StepOutput, text: str, created_by: str,
                     make: Callable[[], Awaitable[str]], *extra: Any) -> bool:
        """Take step ``text`` from the cache, or ``make`` its image; True on a hit."""
        k = cachemod.key(self.image, text, self.cfg, self.args, self.author, *extra)
        hit = self.b.cache.get(k, self.image, created_by, self.cfg)
        if hit:
            await out.line(" ---> Using cache")
            self.image = hit
            return True
        self.image = await make()
        self.b.cache.put(k, self.image)
        return False

    async def meta(self, out: StepOutput, text: str) -> None:
        """A config-only step (no layer), through the cache."""
        created_by = "/bin/sh -c #(nop)  " + text

        async def make() -> str:
            return await self.b.thread(self.b.committer.config_only, self.image, self.cfg,
                                       created_by, self.author)
        await self.cached(out, "#(nop) " + text, created_by, make)
