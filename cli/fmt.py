"""Output helpers shared by commands: docker-like tables, humanized times and sizes, --format."""
from __future__ import annotations

import contextlib
import sys
import time

from dockyard.hookspecs.host.units import bytes_size, human_duration, human_size

TYPE_CHECKING = False  # not typing's: importing typing costs a few ms on every dockyard run
if TYPE_CHECKING:
    from typing import IO, Any, Iterable, Iterator

__all__ = ["ago", "bytes_size", "filter_args", "human_duration", "human_size", "tabwrite", "to_epoch"]


def _click_error(message: str) -> Exception:
    """click's error for ``message`` (click is imported only then: ``ps`` may run without it)."""
    import click
    return click.ClickException(message)


def filter_args(filters: Iterable[str],
                base: dict[str, dict[str, bool]] | None = None) -> dict[str, dict[str, bool]]:
    """``-f name=value`` flags as the API's ``filters`` object (``{"name": {"value": true}}``),
    added to ``base``; ``json.dumps`` it into the request's ``filters`` parameter."""
    flt = base if base is not None else {}
    for f in filters:
        k, _, v = f.partition("=")
        flt.setdefault(k, {})[v] = True
    return flt


def ago(ts: float | int | str | None) -> str:
    t = to_epoch(ts)
    if t is None:
        return ""
    return human_duration(max(0.0, time.time() - t)) + " ago"


def to_epoch(ts: float | int | str | None) -> float | None:
    """Unix seconds from an int or an RFC 3339 string (nanosecond fractions allowed)."""
    if ts is None or ts == "":
        return None
    if isinstance(ts, (int, float)):
        return float(ts)
    from datetime import datetime
    s = ts.strip()
    if s.startswith("0001-01-01"):
        return None
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    frac = ""
    if "." in s:
        main, rest = s.split(".", 1)
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
        s = main + tz
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


@contextlib.contextmanager
def archive_output(output: str | None) -> Iterator[IO[bytes]]:
    """Where ``save``/``export`` write their tar: the ``-o`` file, or standard output unless it
    is a terminal (refused, before anything is asked of the daemon, with the docker CLI's
    words)."""
    if not output:
        if sys.stdout.isatty():
            raise _click_error("cowardly refusing to save to a terminal. Use the -o flag "
                                       "or redirect")
        yield sys.stdout.buffer
        return
    with open(output, "wb") as f:
        yield f


def tabwrite(lines: Iterable[str], minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: align tab-separated cells."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, minwidth)
    out = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        out.append("".join(cells))
    return "\n".join(out) + ("\n" if out else "")


class Header:
    """The header context of a ``table`` format: ``{{.ID}}`` renders as ``CONTAINER ID``."""

    def __init__(self, names: dict[str, str]) -> None:
        self._names = names

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("Label",):
            return lambda *a: "LABEL"
        return self._names.get(name, name.upper())


def render_list(fmt: str, items: list[Any], headers: dict[str, str]) -> None:
    """Print items with a docker-style ``--format`` (``table ...`` gets a header and alignment)."""
    from .gotemplate import Template, TemplateError
    if fmt == "json":
        fmt = "{{json .}}"
    table = fmt.startswith("table")
    src = fmt[len("table"):].lstrip() if table else fmt
    src = src.replace("\\t", "\t").replace("\\n", "\n")
    try:
        tpl = Template(src)
        lines = []
        if table:
            lines.append(tpl.execute(Header(headers)))
        for it in items:
            lines.append(tpl.execute(it))
    except TemplateError as e:
        raise _click_error(f"template parsing error: {e}") from None
    if table:
        sys.stdout.write(tabwrite(lines))
    else:
        sys.stdout.write("".join(line + "\n" for line in lines))


def render_one(fmt: str, obj: Any) -> str:
    from .gotemplate import Template, TemplateError
    try:
        return Template(fmt).execute(obj)
    except TemplateError as e:
        raise _click_error(f"template parsing error: {e}") from None


def stringify_ports(ports: list[dict[str, Any]] | None) -> str:
    """docker ps PORTS column: ``0.0.0.0:8080->80/tcp, 53/udp``."""
    out = []
    for p in sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""))):
        priv = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{host}:{p['PublicPort']}->{priv}")
        else:
            out.append(priv)
    return ", ".join(out)
