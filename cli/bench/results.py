"""The results document of a run (what ``--json`` prints and ``results.json`` holds) and the
figures every report derives from it: medians, ranges, ratios, labels.

Shape (``format`` ``dockyard-bench/1``)::

    {"format", "started", "finished", "command", "options", "machine", "versions",
     "subjects": [{"id", "engine", "graph", "exec", "net", ...}], "baseline": id,
     "skipped": [{"subject", "reason", "scenario"?}],
     "scenarios": {name: {"title", "params", "runs", "note"?,
                          "metrics": {key: {"title", "unit", "better",
                                            "samples": {subject id: [values]}}}}}}

Every raw sample is kept; nothing else is needed to redraw the charts or compare two runs.
"""
from __future__ import annotations

import json
import os
import statistics
from typing import Any, Iterator

FORMAT = "dockyard-bench/1"
#: dimensions a label may show, in order
LABEL_DIMS = ("graph", "exec", "net", "client")


def summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


def metrics(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, dict[str, Any]]]:
    """(scenario name, scenario entry, metric key, metric entry) of every metric with samples."""
    for name, scen in doc.get("scenarios", {}).items():
        for key, metric in scen.get("metrics", {}).items():
            if any(metric.get("samples", {}).values()):
                yield name, scen, key, metric


def subject_map(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in doc.get("subjects", [])}


def labels(subjects: list[dict[str, Any]]) -> dict[str, str]:
    """A short label per subject id: the engine, then the dimensions that differ between
    subjects of the same engine *in this list* (``dockyard overlay``, ``dockyard bridge``,
    ``dockyard via dockyard-cli``)."""
    by_engine: dict[str, list[dict[str, Any]]] = {}
    for s in subjects:
        by_engine.setdefault(s["engine"], []).append(s)
    out = {}
    for engine, group in by_engine.items():
        varying = [d for d in LABEL_DIMS if len({s.get(d, "") for s in group}) > 1]
        for s in group:
            parts = [engine]
            for d in varying:
                value = s.get(d, "")
                if d == "client":
                    parts.append(f"via {value}" if value else "")
                elif value:
                    parts.append(value)
            out[s["id"]] = " ".join(p for p in parts if p)
    return out


def baseline_label(doc: dict[str, Any]) -> str:
    """The baseline's label among the subjects on its network mode (``dockyard``)."""
    subjects = subject_map(doc)
    base = subjects.get(doc.get("baseline") or "")
    if base is None:
        return "baseline"
    peers = [s for s in subjects.values() if s.get("net") == base.get("net") and "scenarios" not in s]
    return labels(peers).get(base["id"], base["engine"])


def ratio(value: float, base: float) -> float | None:
    """``base / value``, the factor the baseline takes of this subject's figure (so
    ``dockyard/dockerd = 0.3`` says dockyard needs 0.3 of dockerd's time)."""
    if base is None or value <= 0 or base <= 0:
        return None  # a negative MemAvailable drop (memory freed meanwhile) has no ratio
    return base / value


def baselines(doc: dict[str, Any], ids: list[str]) -> dict[str, str]:
    """Network mode → the subject of ``ids`` that is the baseline for that mode: the run's
    baseline, or the subject of the same engine configuration on that mode (so that a chart of
    every network driver compares bridge with bridge)."""
    subjects = subject_map(doc)
    base = subjects.get(doc.get("baseline") or "")
    if base is None:
        return {}
    same = ("engine", "graph", "exec", "client")
    out = {}
    for i in ids:
        s = subjects.get(i, {})
        if all(s.get(k) == base.get(k) for k in same) and "scenarios" not in s:
            out.setdefault(s.get("net", ""), i)
    if base["id"] in ids:
        out[base.get("net", "")] = base["id"]
    return out


def chart_rows(doc: dict[str, Any], metric: dict[str, Any]) -> list[dict[str, Any]]:
    """The subjects of one metric: id, label, engine, summary, baseline flag and ratio
    baseline/subject (None without a baseline figure), in the run's subject order — grouped by
    network mode when several are shown, each compared with the baseline on its mode."""
    subjects = subject_map(doc)
    ids = [i for i in subjects if metric["samples"].get(i)]
    ids += [i for i in metric["samples"] if i not in subjects and metric["samples"][i]]
    nets = list(dict.fromkeys(subjects.get(i, {}).get("net", "") for i in ids))
    ids.sort(key=lambda i: nets.index(subjects.get(i, {}).get("net", "")))
    names = labels([subjects.get(i, {"id": i, "engine": i}) for i in ids])
    bases = baselines(doc, ids)
    fallback = bases.get(subjects.get(doc.get("baseline") or "", {}).get("net", ""))
    rows = []
    for i in ids:
        s = summary(metric["samples"][i])
        base = bases.get(subjects.get(i, {}).get("net", ""), fallback)
        rows.append({"id": i, "label": names[i], "engine": subjects.get(i, {}).get("engine", i),
                     **s, "baseline": i in bases.values(), "ratio": ratio(
                         s["median"], statistics.median(metric["samples"][base]) if base else None)})
    return rows


def headline(doc: dict[str, Any], peers: tuple[str, ...] = ("dockerd", "podman")
             ) -> list[dict[str, Any]]:
    """The baseline's ratio to each peer on every metric both have (on the baseline's network
    mode): ``dockyard/dockerd``."""
    subjects = subject_map(doc)
    base = doc.get("baseline")
    out = []
    for _name, _scen, key, metric in metrics(doc):
        rows = {r["id"]: r for r in chart_rows(doc, metric)}
        if base not in rows:
            continue
        for r in rows.values():
            engine = subjects.get(r["id"], {}).get("engine")
            if (engine in peers and r["ratio"] is not None
                    and subjects[r["id"]].get("net") == subjects[base].get("net")):
                out.append({"metric": key, "title": metric["title"], "peer": engine,
                            "ratio": r["ratio"], "unit": metric["unit"], "better": metric["better"],
                            "baseline_median": rows[base]["median"], "peer_median": r["median"]})
    return out


def write_json(doc: dict[str, Any], path: str) -> None:
    """Write ``doc`` atomically (a temporary name in the same directory, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, Any]:
    """A results document; a file that is not one is a ``ValueError`` that says so."""
    with open(path) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dockyard bench result (format {FORMAT!r} expected)")
    return doc


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "–"
    if r >= 100:
        return f"{r:.0f}"
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def fmt_value(v: float, unit: str) -> str:
    """A figure with 3 significant digits and its unit."""
    if v == 0:
        return f"0 {unit}"
    a = abs(v)
    digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{v:,.{digits}f} {unit}"
