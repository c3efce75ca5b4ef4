"""The terminal table (Markdown, so the same text goes into table.md and a README)."""
from __future__ import annotations

from typing import Any

from .. import results


def render_table(doc: dict[str, Any]) -> str:
    base_label = results.baseline_label(doc)
    lines = [f"dockyard bench — {doc['machine'].get('kernel', '')}, "
             f"{doc['machine'].get('cpus')} CPUs, load {fmt_load(doc['machine'])}; "
             f"medians of n samples; ratio = {base_label} / this (below 1: {base_label} needs "
             "less; for MB/s, more is better)", ""]
    lines += ["| scenario | figure | subject | median | min – max | n | ratio |",
              "|---|---|---|---:|---:|---:|---:|"]
    for name, _scen, _key, metric in results.metrics(doc):
        unit = metric["unit"]
        for row in results.chart_rows(doc, metric):
            ratio = "baseline" if row["baseline"] else results.fmt_ratio(row["ratio"])
            lines.append(f"| {name} | {metric['title']} | {row['label']} | "
                         f"{results.fmt_value(row['median'], unit)} | "
                         f"{fmt_num(row['min'])} – {fmt_num(row['max'])} | {row['n']} | {ratio} |")
    notes = [f"- {name}: {scen['note']}" for name, scen in doc.get("scenarios", {}).items()
             if scen.get("note")]
    skipped = [f"- {s.get('scenario', 'all') }: {s['subject']}: {s['reason']}"
               for s in doc.get("skipped", [])]
    if notes:
        lines += ["", "Scenarios without figures:", *notes]
    if skipped:
        lines += ["", "Skipped:", *skipped]
    return "\n".join(lines) + "\n"


def fmt_num(v: float) -> str:
    return results.fmt_value(v, "").strip()


def fmt_load(machine: dict[str, Any]) -> str:
    start = machine.get("loadavg_start") or [0]
    end = machine.get("loadavg_end") or start
    return f"{start[0]:.1f} → {end[0]:.1f}"
