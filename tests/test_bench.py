"""``dockyard bench``: the SVG chart maker and ``compare`` (pure units), and one real run of two
cheap scenarios on a dockyardd of its own, whose HTML report is rendered in headless Chromium."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from conftest import DOCKYARD
from dockyard.cli.bench import compare, results
from dockyard.cli.bench.report import svg
from dockyard.cli.bench.report.html import render_compare_html, render_html

SVG_NS = "{http://www.w3.org/2000/svg}"


def row(i: str, label: str, median: float, lo: float, hi: float, baseline: bool = False,
        engine: str = "dockyard") -> dict[str, Any]:
    return {"id": i, "label": label, "engine": engine, "median": median, "min": lo, "max": hi,
            "n": 5, "baseline": baseline, "ratio": None if baseline else 1.0}


def subjects_of(chart: str) -> dict[str, ET.Element]:
    root = ET.fromstring(chart)
    return {g.get("data-subject"): g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "subject"}


def test_bar_chart_draws_every_subject_with_median_and_whiskers():
    rows = [row("a", "dockyard", 100, 80, 130, baseline=True),
            row("b", "dockerd", 400, 350, 900, engine="dockerd"),
            row("c", "podman", 250, 240, 260, engine="podman")]
    chart = svg.bar_chart("run-rm-true", rows, "run --rm busybox true", "ms, lower is better", "ms")
    root = ET.fromstring(chart)
    assert root.get("class") == "chart" and root.get("data-metric") == "run-rm-true"
    groups = subjects_of(chart)
    assert set(groups) == {"a", "b", "c"}
    xs = {}
    for sid, g in groups.items():
        label = next(t for t in g.iter(f"{SVG_NS}text") if t.get("class") == "label")
        assert label.text.startswith({"a": "dockyard", "b": "dockerd", "c": "podman"}[sid])
        bar = next(r for r in g.iter(f"{SVG_NS}rect") if r.get("class") == "bar")
        lines = list(next(w for w in g.iter(f"{SVG_NS}g") if w.get("class") == "whisker"))
        end = float(bar.get("x")) + float(bar.get("width"))
        lo, hi = float(lines[0].get("x1")), float(lines[0].get("x2"))
        assert lo <= end <= hi  # the median lies inside its whisker
        xs[sid] = end
    assert xs["a"] < xs["c"] < xs["b"]  # bars in proportion
    assert "(baseline)" in chart and chart.count("baseline-mark") == 1
    # the axis reaches past the largest value
    ticks = [float(t.text.replace(",", "")) for t in root.iter(f"{SVG_NS}text")
             if re.fullmatch(r"[\d,.]+", t.text or "") and t.get("text-anchor") == "middle"]
    assert max(ticks) >= 900


def test_bar_chart_negative_values_and_escaping():
    rows = [row("a", "dockyard <x>", -50, -80, 10, baseline=True), row("b", "podman", 20, 10, 30)]
    chart = svg.bar_chart("m", rows, "MemAvailable & co", "KiB", "KiB")
    root = ET.fromstring(chart)  # well-formed despite < & in labels
    groups = subjects_of(chart)
    bars = {sid: next(r for r in g.iter(f"{SVG_NS}rect") if r.get("class") == "bar")
            for sid, g in groups.items()}
    zero = [float(line.get("x1")) for line in root.iter(f"{SVG_NS}line") if line.get("stroke") == "#999"]
    # the negative bar ends at zero, the positive one starts there
    assert abs(float(bars["a"].get("x")) + float(bars["a"].get("width")) - zero[0]) < 0.2
    assert abs(float(bars["b"].get("x")) - zero[0]) < 0.2


def test_scale_ticks_are_round_and_cover_the_values():
    s = svg.Scale([3.2, 17.9])
    assert s.lo == 0 and s.hi >= 17.9 and s.step in (2.0, 2.5, 5.0)
    assert all(abs(t / s.step - round(t / s.step)) < 1e-9 for t in s.ticks())


def test_labels_show_only_what_differs():
    subs = [{"id": "1", "engine": "dockyard", "graph": "overlay", "exec": "native", "net": "none"},
            {"id": "2", "engine": "dockyard", "graph": "vfs", "exec": "native", "net": "none"},
            {"id": "3", "engine": "dockyard", "graph": "overlay", "exec": "native", "net": "none",
             "client": "dockyard-cli"},
            {"id": "4", "engine": "dockerd", "graph": "overlay2", "exec": "runc", "net": "none"}]
    assert results.labels(subs) == {"1": "dockyard overlay", "2": "dockyard vfs",
                                    "3": "dockyard overlay via dockyard-cli", "4": "dockerd"}


def test_mann_whitney_exact_and_small_samples():
    assert compare.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert compare.mann_whitney_p([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert compare.smallest_p(3, 3) == pytest.approx(0.1)
    # ties share ranks: identical samples are never told apart
    assert compare.mann_whitney_p([5.0] * 6, [5.0] * 6) == 1.0


def doc_with(samples_a: dict[str, list[float]], better: str = "lower") -> dict[str, Any]:
    return {"format": results.FORMAT, "started": "t", "machine": {"kernel": "k", "cpus": 2},
            "baseline": "dy",
            "subjects": [{"id": "dy", "engine": "dockyard", "net": "none"},
                         {"id": "dk", "engine": "dockerd", "net": "none"}],
            "scenarios": {"run": {"metrics": {"m": {"title": "run", "unit": "ms", "better": better,
                                                     "samples": samples_a}}}}}


def verdicts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str | None]:
    cmp = compare.compare_docs(a, b, 0.05, ("a.json", "b.json"))
    return {r["id"]: r["verdict"] for r in cmp["metrics"][0]["rows"]}


def test_compare_flags_only_changes_beyond_the_noise():
    before = doc_with({"dy": [100, 102, 98, 101, 99, 103, 97, 100, 101, 99],
                       "dk": [400, 420, 380, 410, 390, 405, 395, 400, 415, 385]})
    after = doc_with({"dy": [130, 128, 133, 131, 129, 132, 127, 130, 134, 126],  # +30 %, clear
                      "dk": [390, 430, 370, 420, 400, 395, 410, 380, 425, 388]})  # same spread
    assert verdicts(before, after) == {"dy": "worse", "dk": "noise"}
    # higher is better (MB/s): the same move is an improvement
    assert verdicts(doc_with(before["scenarios"]["run"]["metrics"]["m"]["samples"], "higher"),
                    doc_with(after["scenarios"]["run"]["metrics"]["m"]["samples"], "higher")
                    )["dy"] == "better"
    # a move smaller than the threshold is noise even when the samples are apart
    assert verdicts(doc_with({"dy": [100, 100.1, 100.2, 100.1]}),
                    doc_with({"dy": [102, 102.1, 102.2, 102.1]}))["dy"] == "noise"
    # three samples each: no test can reach p <= 0.05, so the ranges decide
    assert verdicts(doc_with({"dy": [100, 110, 105]}), doc_with({"dy": [150, 160, 155]}))["dy"] == "worse"
    assert verdicts(doc_with({"dy": [100, 160, 105]}), doc_with({"dy": [150, 155, 140]}))["dy"] == "noise"
    # a subject in one run only is shown, not judged; nor are one or two samples a side
    assert verdicts(doc_with({"dy": [1, 2]}), doc_with({"dy": [1, 2], "dk": [3, 4]})) == {
        "dy": "few samples", "dk": None}
    assert verdicts(doc_with({"dy": [100]}), doc_with({"dy": [200]}))["dy"] == "few samples"


def test_compare_command_writes_charts(tmp_path):
    before = doc_with({"dy": [100, 101, 99, 100, 102, 98], "dk": [400, 401, 399, 402, 398, 400]})
    after = doc_with({"dy": [70, 71, 69, 70, 72, 68], "dk": [400, 402, 398, 401, 399, 400]})
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(before))
    b.write_text(json.dumps(after))
    r = subprocess.run([DOCKYARD, "bench", "compare", str(a), str(b), "--out", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\| run \| run \| dockyard \| 100 ms \| 70.0 ms \| -30.0% \| "
                     r"\*\*better\*\* \|", r.stdout)
    assert re.search(r"\| dockerd \| 400 ms \| 400 ms \| [-+]0.0% \| noise \|", r.stdout)
    html = (tmp_path / "c" / "compare.html").read_text()
    charts = svg_charts(html)
    assert list(charts) == ["m"] and charts["m"] == {"dy", "dk"}
    assert "▲ better" in html
    # a file that is not a bench result is refused with a message, not a traceback
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = subprocess.run([DOCKYARD, "bench", "compare", str(bad), str(b)], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and "not a dockyard bench result" in r.stderr


class ChartFinder(HTMLParser):
    """metric key → subject ids drawn in its chart."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, set[str]] = {}
        self.current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg" and "chart" in (a.get("class") or ""):
            self.current = a.get("data-metric") or ""
            self.charts[self.current] = set()
        elif tag == "g" and a.get("class") == "subject" and self.current is not None:
            self.charts[self.current].add(a.get("data-subject") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None


def svg_charts(html: str) -> dict[str, set[str]]:
    finder = ChartFinder()
    finder.feed(html)
    return finder.charts


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="dky-chromium-")
    try:
        return subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def bench_mounts() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if "/dyb-" in line.split()[1]]


@pytest.mark.skipif(os.geteuid() != 0, reason="dockyard bench needs root")
def test_bench_run_json_table_and_html(tmp_path):
    out = tmp_path / "out"
    mounts_before = bench_mounts()
    r = subprocess.run([DOCKYARD, "bench", "run", "exec", "--runs", "2", "--peers", "none,nosuch",
                        "--net-drivers", "none", "--exec-drivers", "native,nosuch-exec",
                        "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "dockyard-bench/1"
    m = doc["machine"]
    assert m["kernel"] == os.uname().release and m["cpus"] == os.cpu_count() and m["mem_total_kib"] > 0
    assert m["timer_floor_ms"] > 0 and len(m["loadavg_start"]) == 3 and len(m["loadavg_end"]) == 3
    assert doc["versions"]["dockyard"]
    engines = {s["id"]: s for s in doc["subjects"]}
    base = engines[doc["baseline"]]
    assert base["engine"] == "dockyard" and base["exec"] == "native" and base["net"] == "none"
    assert base["graph"]  # what the daemon picked, from its /info
    # the run figure has dockyard through the docker CLI and through its own CLI
    run = doc["scenarios"]["run"]["metrics"]["run-rm-true"]["samples"]
    own_cli = next(i for i, s in engines.items() if s.get("client") == "dockyard-cli")
    assert set(run) == {base["id"], own_cli}
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in run.values())
    ex = doc["scenarios"]["exec"]["metrics"]["exec-true"]["samples"]
    assert list(ex) == [base["id"]] and len(ex[base["id"]]) == 2
    reasons = {s["subject"]: s["reason"] for s in doc["skipped"]}
    assert "unknown peer" in reasons["nosuch"]
    assert re.search(r"not installed \(installed exec drivers: .*native",
                     reasons["exec driver nosuch-exec"])
    # the table went to the terminal and to table.md
    assert "| run | run --rm busybox true | dockyard |" in r.stdout
    assert (out / "table.md").read_text() == r.stdout
    # its file systems are gone (another run's may have gone meanwhile too: a subset, not equal)
    assert set(bench_mounts()) <= set(mounts_before)

    html = out / "report.html"
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed (apt-get install chromium): HTML not rendered")
    dom = chromium("--dump-dom", f"file://{html}")
    assert dom.returncode == 0, dom.stderr[-2000:]
    charts = svg_charts(dom.stdout)
    expected = {key: set(metric["samples"]) for _n, _s, key, metric in results.metrics(doc)}
    assert charts == expected  # one chart per figure, each with every subject measured
    shot = tmp_path / "report.png"
    r = chromium("--hide-scrollbars", "--window-size=900,1400", f"--screenshot={shot}", f"file://{html}")
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # drawn, not a blank page


def test_reports_render_from_a_document_alone():
    doc = doc_with({"dy": [1.0, 2.0], "dk": [3.0, 4.0]})
    doc.update(command=["dockyard", "bench"], versions={"dockyard": "0"}, skipped=[])
    html = render_html(doc)
    assert svg_charts(html) == {"m": {"dy", "dk"}}
    assert "Headline ratios" in html and "dockyard / peer" in html
    cmp = compare.compare_docs(doc, doc, 0.05, ("x", "y"))
    assert svg_charts(render_compare_html(cmp)) == {"m": {"dy", "dk"}}
