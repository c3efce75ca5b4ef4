"""A command's options parsed as click parses them, for the plain command lines the entry point
serves without importing click (:mod:`dockyard.cli.main`).

An option table is a tuple of ``(declarations, parameter, kind, default, help)``: kind ``flag``
(``is_flag``), ``str``, ``int`` or ``multiple`` (a ``str`` given any number of times, a tuple).
The click command is built from the same table (:func:`dockyard.cli.ps.with_options`). What
click would refuse or treat specially — an unknown option, ``--help``, a missing value, a flag
given a value, a bad number, an argument, ``--`` — gives ``None``: click then handles the whole
line, with its own words.
"""
from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs a few ms on every dockyard run
if TYPE_CHECKING:
    from typing import Any

    Options = tuple[tuple[tuple[str, ...], str, str, Any, str], ...]


def parse(options: Options, args: list[str]) -> dict[str, Any] | None:
    """The parameters click would pass for ``args``, or ``None`` if click must see them."""
    decls = {d: (name, kind) for ds, name, kind, _default, _help in options for d in ds}
    values: dict[str, Any] = {name: default for _ds, name, _kind, default, _help in options}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--") and arg != "--":
            opt, eq, value = arg.partition("=")
            if opt not in decls or not _take(values, decls[opt], value if eq else None, rest):
                return None
        elif arg.startswith("-") and len(arg) > 1 and arg != "--":
            if not _cluster(values, decls, arg, rest):
                return None
        else:  # an argument, or "--": none of the fast commands takes one
            return None
    return values


def _cluster(values: dict[str, Any], decls: dict[str, tuple[str, str]], arg: str,
             rest: list[str]) -> bool:
    """``-aq``, ``-n5``, ``-fname=x``: flags until one takes a value (the rest of the word, else
    the next argument)."""
    for i in range(1, len(arg)):
        spec = decls.get("-" + arg[i])
        if spec is None:
            return False
        if spec[1] != "flag":
            return _take(values, spec, arg[i + 1:] or None, rest)
        values[spec[0]] = True
    return True


def _take(values: dict[str, Any], spec: tuple[str, str], value: str | None,
          rest: list[str]) -> bool:
    name, kind = spec
    if kind == "flag":
        values[name] = True
        return value is None  # "--all=x": click refuses a value given to a flag
    if value is None:
        if not rest:
            return False
        value = rest.pop(0)
    if kind == "int":
        try:
            values[name] = int(value)
        except ValueError:
            return False
    elif kind == "multiple":
        values[name] = (*values[name], value)
    else:
        values[name] = value
    return True
