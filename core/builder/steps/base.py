"""FROM: the stage starts from an image (pulled before the first step if missing), another
stage's result, or nothing (``scratch``); the base image's ONBUILD triggers run as part of the
step (dockerd's ``# Executing N build triggers``) and are not passed on."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..output import StepOutput
from ..parse import Instruction, check, make_instruction
from ..stage import DEFAULT_SHELL

if TYPE_CHECKING:
    from ..stage import StageRun


async def do_from(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    b = st.b
    st.args = {}
    st.image = b.base_image(st.stage)
    cfg = dict(b.images.config(st.image).get("config") or {}) if st.image else {}
    cfg.pop("Image", None)
    triggers = cfg.pop("OnBuild", None) or []
    st.cfg = cfg
    st.shell = list(cfg.get("Shell") or DEFAULT_SHELL)
    st.cmd_set = False
    if not triggers:
        return
    if st.image:
        await out.line(f" ---> {st.image[7:19]}")
    await out.line(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
    for text in triggers:
        trigger = make_instruction(text, ins.line, ins.line, b.df.escape)
        check(trigger, b.lexer)
        await st.sub_step(trigger, out)
