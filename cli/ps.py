"""``dockyard ps`` (``container ls``) as a click command, built from :data:`pslist.OPTIONS`
(a plain ``dockyard ps`` line is served by the entry point without click)."""
from __future__ import annotations

from typing import Any, Callable

import click

from .pslist import OPTIONS, list_containers

_KINDS: dict[str, dict[str, Any]] = {"flag": {"is_flag": True}, "str": {}, "int": {"type": int},
                                     "multiple": {"multiple": True}}


def with_options(options: tuple[tuple[tuple[str, ...], str, str, Any, str], ...]
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """click options from a table of :mod:`dockyard.cli.fastargs`' form, in the table's order."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for decls, name, kind, default, help_ in reversed(options):
            extra = {"default": default} if kind == "int" else {}
            f = click.option(*decls, name, help=help_, **_KINDS[kind], **extra)(f)
        return f
    return decorate


@click.command(short_help="List containers")
@with_options(OPTIONS)
@click.pass_obj
def ps(opts: Any, **values: Any) -> None:
    """List containers."""
    list_containers(opts.client, **values)
