"""The entry point's option parser (cli/fastargs.py) against click's own, on ps's table: every
line it accepts gets the parameters click would pass, and every line click refuses or treats
specially is left to click. Pure logic: no daemon."""
from __future__ import annotations

import click
import pytest

from dockyard.cli import fastargs
from dockyard.cli.ps import ps
from dockyard.cli.pslist import OPTIONS

#: lines served without click
PLAIN = [[], ["-a"], ["-aq"], ["-qa", "--no-trunc"], ["--all", "--quiet"], ["-n", "3"], ["-n3"],
         ["--last=3"], ["--last", "3"], ["-an", "2"], ["-qn2"], ["-n", " 4"], ["-n", "+1"],
         ["-n", "-5"], ["-l"], ["--latest", "-s"], ["-sa"], ["--format", "{{.Names}}"],
         ["--format={{.ID}}={{.Names}}"], ["--format="], ["--format", "--all"],
         ["-f", "name=x"], ["-fname=x"], ["-af", "status=exited", "--filter", "label=k=v"],
         ["--filter=a=b", "-f", "-q"], ["-f="], ["-n", "1", "-n", "2"], ["--format", "a", "--format", "b"],
         ["-a", "-a"], ["--size", "--format", "table {{.Size}}"]]
#: lines click must see: --help, unknown options, arguments, missing or bad values
TO_CLICK = [["--help"], ["-a", "--help"], ["-h"], ["-x"], ["-ax"], ["--alll"], ["--al"],
            ["--all=1"], ["-a=b"], ["name"], ["-a", "name"], ["-"], ["--"], ["--", "-a"],
            ["-n"], ["-n", "x"], ["-nx"], ["-n=3"], ["--last="], ["-f"], ["--format"],
            ["-q", "--filter"], [""], ["-H", "x"]]


def clicks(argv: list[str]) -> dict[str, object] | None:
    """The parameters click passes to ps for ``argv``, or None if it refuses or exits."""
    try:
        with ps.make_context("ps", list(argv), obj=None) as ctx:
            return dict(ctx.params)
    except (click.exceptions.Exit, click.ClickException):
        return None


@pytest.mark.parametrize("argv", PLAIN, ids=repr)
def test_plain_lines_parse_as_click_parses_them(argv: list[str]) -> None:
    fast = fastargs.parse(OPTIONS, argv)
    assert fast is not None, "served by click, not the fast path"
    assert fast == clicks(argv)


@pytest.mark.parametrize("argv", TO_CLICK, ids=repr)
def test_other_lines_are_left_to_click(argv: list[str]) -> None:
    assert fastargs.parse(OPTIONS, argv) is None


def test_the_table_is_the_click_commands() -> None:
    """ps's click command is built from the table: the same names, in the same order."""
    params = [p for p in ps.params if p.name != "help"]
    assert [(tuple(p.opts), p.name) for p in params] == [(decls, name)
                                                         for decls, name, *_ in OPTIONS]
