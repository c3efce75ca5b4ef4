"""The instructions, one module per family: :mod:`.base` (FROM and ONBUILD triggers),
:mod:`.config` (the config-only ones and ARG), :mod:`.files` (COPY, ADD, WORKDIR), :mod:`.run`
(RUN). Each handler is ``async (stage, instruction, output) -> None``."""
from __future__ import annotations

from typing import Any

from ..errors import BuildError


def dispatch(cmd: str) -> Any:
    from . import base, config, files, run
    handlers = {
        "RUN": run.do_run, "COPY": files.do_copy, "ADD": files.do_add, "WORKDIR": files.do_workdir,
        "ARG": config.do_arg, "ENV": config.do_env, "LABEL": config.do_label,
        "MAINTAINER": config.do_maintainer, "CMD": config.do_cmd, "ENTRYPOINT": config.do_entrypoint,
        "SHELL": config.do_shell, "EXPOSE": config.do_expose, "VOLUME": config.do_volume,
        "USER": config.do_user, "STOPSIGNAL": config.do_stopsignal, "ONBUILD": config.do_onbuild,
        "HEALTHCHECK": config.do_healthcheck, "FROM": base.do_from,
    }
    if cmd not in handlers:
        raise BuildError(f"unknown instruction: {cmd}")
    return handlers[cmd]
