"""The HTML reports: one self-contained page (inline SVG and CSS, nothing fetched) per run, and
one per comparison of two runs."""
from __future__ import annotations

from html import escape
from typing import Any

from .. import results
from .svg import bar_chart, paired_chart

STYLE = """
body { font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 24px auto; max-width: 900px;
       color: #222; background: #fafafa; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin: 30px 0 6px; }
p, li { font-size: 13px; line-height: 1.45; } .meta { color: #555; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart { display: block; margin: 10px 0 18px; border: 1px solid #ddd; background: white; }
.note { color: #8a5a00; } .params { color: #555; font-size: 12px; }
"""


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def machine_line(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    load = m.get("loadavg_start", [0])[0], (m.get("loadavg_end") or m.get("loadavg_start", [0]))[0]
    return (f"{m.get('os', '')}, kernel {m.get('kernel', '')}, {m.get('cpus')} × "
            f"{m.get('cpu_model', '')}, {m.get('mem_total_kib', 0) // 1024} MiB, cgroup "
            f"{m.get('cgroup', '')}; load average {load[0]:.1f} at the start, {load[1]:.1f} at "
            f"the end; timer floor {m.get('timer_floor_ms', 0):.2f} ms")


def kv_table(items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                   for k, v in items.items())
    return f"<table>{rows}</table>"


def subtitle(metric: dict[str, Any], scen: dict[str, Any], base: str) -> str:
    params = ", ".join(f"{k}={v}" for k, v in (scen.get("params") or {}).items()
                       if not isinstance(v, (dict, list)))
    better = "lower is better" if metric["better"] == "lower" else "higher is better"
    return "; ".join(p for p in (f"{metric['unit']}, {better}",
                                 f"bar: median of {scen.get('runs')}, whisker: min–max",
                                 f"ratio = {base} / this", params) if p)


def prose(text: str) -> str:
    """Escaped text with ``literal`` spans as <code>."""
    parts = escape(text).split("``")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(doc: dict[str, Any]) -> str:
    base = results.baseline_label(doc)
    body = [f"<h1>dockyard bench</h1><p class='meta'>{escape(' '.join(doc.get('command', [])))}"
            f" — {escape(doc.get('started', ''))} to {escape(doc.get('finished', ''))}</p>",
            f"<p class='meta'>{escape(machine_line(doc))}</p>",
            f"<p>Ratios are <b>{escape(base)} / subject</b> of the medians: below 1, {escape(base)}"
            " needs less (time, memory); for throughput (MB/s) above 1 is better. Engines ran on "
            "one shared machine, taking turns round by round: compare ratios of one run, not "
            "absolute figures of different runs.</p>",
            "<h2>Versions</h2>", kv_table(doc.get("versions", {}))]
    body += headline_section(doc)
    for name, scen in doc.get("scenarios", {}).items():
        body.append(f"<h2 id='{escape(name)}'>{escape(name)}: {escape(scen.get('title', ''))}</h2>")
        if scen.get("about"):
            body.append(f"<p>{prose(scen['about'])}</p>")
        if scen.get("note"):
            body.append(f"<p class='note'>{escape(scen['note'])}</p>")
        for skip in doc.get("skipped", []):
            if skip.get("scenario") == name:
                body.append(f"<p class='note'>Not measured: {escape(skip['subject'])} — "
                            f"{escape(skip['reason'])}</p>")
        for key, metric in scen.get("metrics", {}).items():
            rows = results.chart_rows(doc, metric)
            if rows:
                body.append(bar_chart(key, rows, metric["title"], subtitle(metric, scen, base),
                                      metric["unit"]))
    body += skipped_section(doc)
    return page("dockyard bench", body)


def headline_section(doc: dict[str, Any]) -> list[str]:
    rows = results.headline(doc)
    if not rows:
        return []
    base = results.baseline_label(doc)
    out = ["<h2>Headline ratios</h2><table><tr><th>figure</th><th>peer</th>"
           f"<th>{escape(base)}</th><th>peer</th><th>{escape(base)} / peer</th></tr>"]
    for r in rows:
        out.append(f"<tr><td>{escape(r['title'])}</td><td>{escape(r['peer'])}</td>"
                   f"<td class='num'>{escape(results.fmt_value(r['baseline_median'], r['unit']))}</td>"
                   f"<td class='num'>{escape(results.fmt_value(r['peer_median'], r['unit']))}</td>"
                   f"<td class='num'><b>{results.fmt_ratio(r['ratio'])}</b></td></tr>")
    out.append("</table>")
    return out


def skipped_section(doc: dict[str, Any]) -> list[str]:
    skipped = doc.get("skipped", [])
    if not skipped:
        return []
    items = "".join(f"<li><b>{escape(s.get('scenario', 'all scenarios'))}</b> — "
                    f"{escape(s['subject'])}: {escape(s['reason'])}</li>" for s in skipped)
    return [f"<h2>Skipped</h2><ul>{items}</ul>"]


def render_compare_html(cmp: dict[str, Any]) -> str:
    a, b = cmp["runs"]
    body = ["<h1>dockyard bench compare</h1>",
            f"<p class='meta'>before: {escape(a['name'])} ({escape(a.get('started', ''))}, "
            f"{escape(a.get('machine', ''))})<br>after: {escape(b['name'])} "
            f"({escape(b.get('started', ''))}, {escape(b.get('machine', ''))})</p>",
            f"<p>{escape(cmp['rule'])}</p>"]
    for metric in cmp["metrics"]:
        if metric["rows"]:
            body.append(paired_chart(metric["key"], metric["rows"],
                                     f"{metric['scenario']}: {metric['title']}",
                                     f"{metric['unit']}, {metric['better']} is better; "
                                     "bar: median, whisker: min–max", metric["unit"],
                                     ("before", "after")))
    return page("dockyard bench compare", body)
