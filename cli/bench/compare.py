"""``dockyard bench compare A.json B.json``: the same subjects in two runs, side by side, and
which changes stand out of the noise of their samples.

A change of a subject's median is flagged when both hold:

* it is larger than ``threshold`` (5 % by default): smaller moves are not worth a flag;
* the two sets of samples are told apart: a two-sided Mann–Whitney test (the rank-sum, exact
  over every split of the pooled samples when there are few, else over 20,000 seeded random
  ones) gives p ≤ 0.05; when the samples are too few for any split to reach 0.05 (3 against 3
  cannot: the smallest p is 0.1), the ranges [min, max] of the two runs must not overlap.

Everything else is reported as noise. Fewer than :data:`MIN_SAMPLES` samples on a side say
nothing of the noise: such a change is shown as "few samples", not judged; so is a subject or
figure present in one run only.
"""
from __future__ import annotations

import itertools
import math
import random
import statistics
from typing import Any

from . import results

ALPHA = 0.05
#: fewer samples than this on either side: the change is shown, not judged
MIN_SAMPLES = 3
MAX_SPLITS = 20_000
FORMAT = "dockyard-bench-compare/1"


def midranks(values: list[float]) -> list[float]:
    """Ranks 1..n of ``values``, ties sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_p(a: list[float], b: list[float], seed: int = 0) -> float:
    """Two-sided p-value of the rank-sum of ``a`` against every (or many random) splits of the
    pooled samples into groups of the same sizes."""
    ranks = midranks(a + b)
    n, na = len(ranks), len(a)
    mean = na * (n + 1) / 2
    observed = abs(sum(ranks[:na]) - mean) - 1e-9
    if math.comb(n, na) <= MAX_SPLITS:
        splits = itertools.combinations(range(n), na)
        total = math.comb(n, na)
    else:
        rng = random.Random(seed)
        splits = (rng.sample(range(n), na) for _ in range(MAX_SPLITS))
        total = MAX_SPLITS
    extreme = sum(1 for idx in splits if abs(sum(ranks[i] for i in idx) - mean) >= observed)
    return extreme / total


def smallest_p(na: int, nb: int) -> float:
    """The smallest two-sided p any split of ``na`` + ``nb`` samples can give."""
    return 2 / math.comb(na + nb, na)


def judge(a: list[float], b: list[float], better: str, threshold: float) -> dict[str, Any]:
    """change (relative, of the median), p (or None) and verdict: better, worse or noise."""
    ma, mb = statistics.median(a), statistics.median(b)
    change = (mb - ma) / ma if ma else math.inf
    if min(len(a), len(b)) < MIN_SAMPLES:
        return {"change": change, "p": None, "verdict": "few samples"}
    p = mann_whitney_p(a, b)
    if abs(change) < threshold:
        apart = False
    elif smallest_p(len(a), len(b)) <= ALPHA:
        apart = p is not None and p <= ALPHA
    else:
        apart = max(a) < min(b) or max(b) < min(a)
    if not apart:
        verdict = "noise"
    else:
        verdict = "better" if (change < 0) == (better == "lower") else "worse"
    return {"change": change, "p": p, "verdict": verdict}


def metric_index(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(name, key): {**metric, "scenario": name}
            for name, _scen, key, metric in results.metrics(doc)}


def compare_docs(a: dict[str, Any], b: dict[str, Any], threshold: float,
                 names: tuple[str, str]) -> dict[str, Any]:
    subjects = {**results.subject_map(a), **results.subject_map(b)}
    ia, ib = metric_index(a), metric_index(b)
    metrics = []
    for where in [*ia, *(k for k in ib if k not in ia)]:
        ma, mb = ia.get(where), ib.get(where)
        meta = ma or mb
        sa, sb = (ma or {}).get("samples", {}), (mb or {}).get("samples", {})
        rows = []
        ids = [*(s for s in sa if sa[s]), *(s for s in sb if sb[s] and s not in sa)]
        labels = results.labels([subjects.get(i, {"id": i, "engine": i}) for i in ids])
        for sid in ids:
            xa, xb = sa.get(sid) or [], sb.get(sid) or []
            row = {"id": sid, "label": labels[sid],
                   "engine": subjects.get(sid, {}).get("engine", sid),
                   "a": results.summary(xa) if xa else None,
                   "b": results.summary(xb) if xb else None, "change": None, "p": None,
                   "verdict": None}
            if xa and xb:
                row.update(judge(xa, xb, meta["better"], threshold))
            rows.append(row)
        metrics.append({"scenario": where[0], "key": where[1], "title": meta["title"],
                        "unit": meta["unit"], "better": meta["better"], "rows": rows})
    return {"format": FORMAT, "runs": [run_meta(a, names[0]), run_meta(b, names[1])],
            "threshold": threshold, "rule": rule_text(threshold), "metrics": metrics}


def run_meta(doc: dict[str, Any], name: str) -> dict[str, Any]:
    m = doc.get("machine", {})
    return {"name": name, "started": doc.get("started", ""),
            "machine": f"{m.get('hostname', '')}, kernel {m.get('kernel', '')}, "
                       f"{m.get('cpus')} CPUs, load {(m.get('loadavg_start') or [0])[0]:.1f}"}


def rule_text(threshold: float) -> str:
    return (f"A change is flagged when the median moved by more than {threshold * 100:.0f}% and "
            f"the samples of the two runs are told apart (two-sided Mann–Whitney p ≤ {ALPHA}, "
            f"or, with too few samples for that, ranges that do not overlap); else it is noise. "
            f"With fewer than {MIN_SAMPLES} samples on a side a change is shown, not judged.")


def render_compare_table(cmp: dict[str, Any]) -> str:
    lines = [f"before: {cmp['runs'][0]['name']}  after: {cmp['runs'][1]['name']}",
             cmp["rule"], "", "| scenario | figure | subject | before | after | change | verdict |",
             "|---|---|---|---:|---:|---:|---|"]
    for m in cmp["metrics"]:
        for r in m["rows"]:
            before = results.fmt_value(r["a"]["median"], m["unit"]) if r["a"] else "–"
            after = results.fmt_value(r["b"]["median"], m["unit"]) if r["b"] else "–"
            change = f"{r['change'] * 100:+.1f}%" if r["change"] is not None else "–"
            verdict = r["verdict"] or "only in one run"
            if verdict in ("better", "worse"):
                verdict = f"**{verdict}**"
            lines.append(f"| {m['scenario']} | {m['title']} | {r['label']} | {before} | {after} | "
                         f"{change} | {verdict} |")
    return "\n".join(lines) + "\n"
