"""Bar charts as SVG text, made here (no plotting library, nothing fetched): horizontal bars so
long subject labels stay readable; a bar per subject at its median, a whisker from its minimum
to its maximum, the baseline drawn darker, labelled and marked with a dashed line across.

Every chart is ``<svg class="chart" data-metric=KEY>`` and every subject a
``<g class="subject" data-subject=ID data-label=LABEL>`` so that tests (and people with a DOM
inspector) can find them.
"""
from __future__ import annotations

import math
from html import escape
from typing import Any

from ..results import fmt_ratio, fmt_value

WIDTH = 860
LEFT = 230     # subject labels
RIGHT = 170    # median and ratio columns
TOP = 58       # title and subtitle
BOTTOM = 40    # axis
ROW = 30
FONT = "font-family='DejaVu Sans, Verdana, sans-serif'"

#: bar colours by engine: dockyard blues, peers warm, floors grey
COLOURS = {"dockyard": "#5b9bd5", "dockerd": "#ed7d31", "podman": "#9e6fcf", "runc": "#8c8c8c",
           "crun": "#a5a5a5", "lxc-execute": "#7a7a7a"}
BASELINE_COLOUR = "#1f4e9a"
BEFORE_COLOUR = "#c7cdd4"


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10^k) giving about ``ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


class Scale:
    """Values → x: from a round number at or below min(0, values) to one above max(0, values)
    (a MemAvailable drop can be negative on a busy machine)."""

    def __init__(self, values: list[float]) -> None:
        vals = [v for v in values if v is not None] or [1.0]
        lo, hi = min(0.0, *vals), max(0.0, *vals)
        if hi == lo:
            hi = lo + 1.0
        self.step = nice_step(hi - lo)
        self.lo = math.floor(lo / self.step) * self.step
        self.hi = math.ceil(hi * 1.02 / self.step) * self.step if hi > 0 else 0.0
        if self.hi <= self.lo:
            self.hi = self.lo + self.step

    def x(self, v: float) -> float:
        return LEFT + (v - self.lo) / (self.hi - self.lo) * (WIDTH - LEFT - RIGHT)

    def ticks(self) -> list[float]:
        n = int(round((self.hi - self.lo) / self.step))
        return [self.lo + i * self.step for i in range(n + 1)]


def bar(scale: Scale, v: float, y: float, h: float, colour: str, cls: str, extra: str = "") -> str:
    """A bar from 0 to ``v`` (leftwards when negative)."""
    x0, x1 = sorted((scale.x(0), scale.x(v)))
    return (f"<rect class='{cls}' x='{x0:.1f}' y='{y:.1f}' width='{max(x1 - x0, 1):.1f}' "
            f"height='{h:.1f}' fill='{colour}' rx='2'>{extra}</rect>")


def text(x: float, y: float, s: str, anchor: str = "start", size: int = 12, weight: str = "normal",
         fill: str = "#222", cls: str = "") -> str:
    c = f" class='{cls}'" if cls else ""
    return (f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' font-size='{size}' "
            f"font-weight='{weight}' fill='{fill}' {FONT}{c}>{escape(s)}</text>")


def axis(scale: Scale, y0: float, y1: float, unit: str) -> list[str]:
    """Vertical grid lines with tick labels under the plot, and the unit."""
    out = []
    for v in scale.ticks():
        x = scale.x(v)
        colour = "#999" if v == 0 else "#e3e3e3"
        out.append(f"<line x1='{x:.1f}' y1='{y0}' x2='{x:.1f}' y2='{y1}' stroke='{colour}'/>")
        out.append(text(x, y1 + 15, fmt_tick(v), "middle", 11, fill="#555"))
    out.append(f"<line x1='{LEFT}' y1='{y1}' x2='{WIDTH - RIGHT}' y2='{y1}' stroke='#999'/>")
    out.append(text(WIDTH - RIGHT, y1 + 31, unit, "end", 11, fill="#555"))
    return out


def fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:g}"


def whisker(x_min: float, x_max: float, y: float, h: float) -> str:
    return (f"<g class='whisker' stroke='#333' stroke-width='1.3'>"
            f"<line x1='{x_min:.1f}' y1='{y:.1f}' x2='{x_max:.1f}' y2='{y:.1f}'/>"
            f"<line x1='{x_min:.1f}' y1='{y - h:.1f}' x2='{x_min:.1f}' y2='{y + h:.1f}'/>"
            f"<line x1='{x_max:.1f}' y1='{y - h:.1f}' x2='{x_max:.1f}' y2='{y + h:.1f}'/></g>")


def frame(key: str, height: float, title: str, subtitle: str, body: list[str]) -> str:
    return (f"<svg class='chart' data-metric='{escape(key)}' xmlns='http://www.w3.org/2000/svg' "
            f"width='{WIDTH}' height='{height:.0f}' viewBox='0 0 {WIDTH} {height:.0f}' role='img' "
            f"aria-label='{escape(title)}'>"
            f"<rect width='100%' height='100%' fill='white'/>"
            + text(12, 22, title, size=15, weight="bold")
            + text(12, 41, subtitle, size=11, fill="#555") + "".join(body) + "</svg>")


def bar_chart(key: str, rows: list[dict[str, Any]], title: str, subtitle: str, unit: str) -> str:
    """One bar per row (``id``, ``label``, ``engine``, ``median``, ``min``, ``max``, ``n``,
    ``baseline``, ``ratio``)."""
    y0 = TOP + 16
    height = y0 + ROW * len(rows) + BOTTOM
    scale = Scale([v for r in rows for v in (r["min"], r["max"])])
    body = axis(scale, y0 - 6, y0 + ROW * len(rows), unit)
    body.append(text(WIDTH - RIGHT + 100, y0 - 8, "median", "end", 11, "bold", "#555"))
    body.append(text(WIDTH - 10, y0 - 8, "ratio", "end", 11, "bold", "#555"))
    compared = any(not r["baseline"] for r in rows)  # else nothing to mark or divide
    marked = [r for r in rows if r["baseline"] and compared]
    base = marked[0] if len(marked) == 1 else None  # one dashed line, or none (several modes)
    for i, r in enumerate(rows):
        y = y0 + i * ROW
        colour = BASELINE_COLOUR if r["baseline"] else COLOURS.get(r.get("engine", ""), "#8c8c8c")
        label = r["label"] + (" (baseline)" if r in marked else "")
        ratio = ("1" if compared else "–") if r["baseline"] else fmt_ratio(r["ratio"])
        tip = (f"{r['label']}: median {fmt_value(r['median'], unit)}, min {fmt_value(r['min'], unit)}, "
               f"max {fmt_value(r['max'], unit)}, {r['n']} samples")
        body.append(
            f"<g class='subject' data-subject='{escape(r['id'])}' data-label='{escape(r['label'])}'>"
            f"<title>{escape(tip)}</title>"
            + text(LEFT - 8, y + ROW / 2 + 4, label, "end", 12,
                   "bold" if r in marked else "normal", cls="label")
            + bar(scale, r["median"], y + 6, ROW - 12, colour, "bar")
            + whisker(scale.x(r["min"]), scale.x(r["max"]), y + ROW / 2, 5)
            + text(WIDTH - RIGHT + 100, y + ROW / 2 + 4, fmt_value(r["median"], unit), "end", 12,
                   cls="median")
            + text(WIDTH - 10, y + ROW / 2 + 4, ratio, "end", 12,
                   "bold" if r in marked else "normal", cls="ratio")
            + "</g>")
    if base is not None:
        x = scale.x(base["median"])
        body.append(f"<line class='baseline-mark' x1='{x:.1f}' y1='{y0 - 6}' x2='{x:.1f}' "
                    f"y2='{y0 + ROW * len(rows)}' stroke='{BASELINE_COLOUR}' "
                    f"stroke-dasharray='4 3' stroke-width='1.2'/>")
    return frame(key, height, title, subtitle, body)


def paired_chart(key: str, rows: list[dict[str, Any]], title: str, subtitle: str,
                 unit: str, names: tuple[str, str]) -> str:
    """Two bars per subject (``a`` before, light; ``b`` after, its colour), each with its
    whisker; the change of the median on the right, flagged when beyond the noise."""
    row = ROW + 14
    y0 = TOP + 16
    height = y0 + row * len(rows) + BOTTOM
    scale = Scale([v for r in rows for s in (r["a"], r["b"]) if s for v in (s["min"], s["max"])])
    body = axis(scale, y0 - 6, y0 + row * len(rows), unit)
    body.append(text(WIDTH - 10, y0 - 8, "change of median", "end", 11, "bold", "#555"))
    legend_x = LEFT
    for name, colours in ((names[0], [BEFORE_COLOUR]),
                          (f"{names[1]} (in the engine's colour)", list(COLOURS.values())[:3])):
        width = 12 if len(colours) == 1 else 5
        for k, colour in enumerate(colours):
            body.append(f"<rect x='{legend_x + 5 * k}' y='{TOP - 4}' width='{width}' height='10' "
                        f"fill='{colour}'/>")
        legend_x += 16 if len(colours) == 1 else 5 * len(colours) + 4
        body.append(text(legend_x, TOP + 5, name, size=11, fill="#333"))
        legend_x += 20 + 6.5 * len(name)
    for i, r in enumerate(rows):
        y = y0 + i * row
        parts = [f"<g class='subject' data-subject='{escape(r['id'])}' "
                 f"data-label='{escape(r['label'])}'>",
                 text(LEFT - 8, y + row / 2 + 4, r["label"], "end", 12, cls="label")]
        for j, (s, colour) in enumerate(((r["a"], BEFORE_COLOUR),
                                         (r["b"], COLOURS.get(r.get("engine", ""), "#5b9bd5")))):
            if not s:
                continue
            yy = y + 5 + j * (row - 10) / 2
            h = (row - 10) / 2 - 2
            tip = (f"<title>{escape(names[j])}: median {escape(fmt_value(s['median'], unit))}, "
                   f"n={s['n']}</title>")
            parts.append(bar(scale, s["median"], yy, h, colour, f"bar run{j}", tip))
            parts.append(whisker(scale.x(s["min"]), scale.x(s["max"]), yy + h / 2, 3))
        parts.append(change_text(r, y + row / 2 + 4))
        parts.append("</g>")
        body.append("".join(parts))
    return frame(key, height, title, subtitle, body)


def change_text(r: dict[str, Any], y: float) -> str:
    if r.get("change") is None:
        return text(WIDTH - 10, y, "only in one run", "end", 11, fill="#777", cls="change")
    pct = f"{r['change'] * 100:+.1f}%"
    if r["verdict"] in ("noise", "few samples"):
        return text(WIDTH - 10, y, f"{pct} ({r['verdict']})", "end", 12, fill="#777", cls="change")
    worse = r["verdict"] == "worse"
    return text(WIDTH - 10, y, f"{pct} {'▼ worse' if worse else '▲ better'}", "end", 12, "bold",
                "#c0392b" if worse else "#1e8449", cls=f"change flagged {r['verdict']}")
