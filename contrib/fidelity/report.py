"""Reading a client suite's junit XML per daemon and comparing them; scanning a daemon's log.

Outcomes are pytest's: passed, failed, error, skipped (a test with a failure and an error counts
as failed). A test is keyed ``classname::name``.
"""
from __future__ import annotations

import collections
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

OUTCOMES = ("passed", "failed", "error", "skipped")
SERVER_ERROR = re.compile(r"\b(5\d\d) Server Error\b[^\n]*")
LOG_PROBLEM = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")
# docker-py's "NNN Client Error for http+docker://localhost/v1.41/PATH?QUERY: ..." -> "... for PATH: ..."
CLIENT_URL = re.compile(r"(?:http\+docker|https?)://[^/\s]+(?:/v\d+\.\d+)?(/[^?\s:]*)(?:\?\S*?)?(?=:? )")


@dataclass
class Result:
    outcome: str
    message: str = ""
    text: str = ""
    seconds: float = 0.0
    output: str = ""  # what the test printed (junit_logging=all), e.g. compose's "Stderr: ..."

    def head(self, lines: int = 3, width: int = 240) -> list[str]:
        """The first lines that say why: the message, then the traceback's last lines."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        first = CLIENT_URL.sub(r"\1", first)
        out = [first[:width]] if first else []
        # the assertion's own lines, less those that only repeat the message
        tail = [CLIENT_URL.sub(r"\1", x) for x in self.text.strip().splitlines() if x.startswith("E ")]
        tail = [x for x in tail if x[1:].strip() not in first and
                not x[1:].strip().startswith("requests.exceptions.HTTPError")]
        out += [x[:width] for x in tail[:max(lines - len(out), 0)]]
        out += [x[:width] for x in self.output.splitlines() if x.startswith("Stderr:")][:1]
        return out or [x[:width] for x in self.text.strip().splitlines()[-lines:]]


def load_junit(path: str) -> dict[str, Result]:
    results: dict[str, Result] = {}
    badness = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message, text = "passed", "", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message, text = el.get("message", ""), el.text or ""
                break
        printed = "\n".join(el.text or "" for el in case if el.tag in ("system-out", "system-err"))
        r = Result(outcome, message, text, float(case.get("time", 0) or 0), printed)
        old = results.get(key)
        # a teardown error after a pass or failure comes as a second entry: keep the worse one
        if old is None or badness[r.outcome] > badness[old.outcome]:
            results[key] = r
    return results


def counts(results: dict[str, Result]) -> dict[str, int]:
    c = collections.Counter(r.outcome for r in results.values())
    return {o: c.get(o, 0) for o in OUTCOMES} | {"total": len(results)}


def server_errors(results: dict[str, Result]) -> dict[str, list[str]]:
    """Tests whose failure text shows a 5xx answer, with the line that says so."""
    found: dict[str, list[str]] = {}
    for key, r in results.items():
        text = CLIENT_URL.sub(r"\1", r.message + "\n" + r.text)
        hits = sorted({m.group(0)[:200] for m in SERVER_ERROR.finditer(text)})
        if hits:
            found[key] = hits
    return found


def scan_log(path: str) -> dict[str, object]:
    """Tracebacks and ERROR lines of a dockyardd log (format ``date time LEVEL logger: msg``)."""
    tracebacks, errors = 0, collections.Counter()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Traceback (most recent call last)"):
                    tracebacks += 1
                m = LOG_PROBLEM.match(line)
                if m:
                    # strip ids so that one cause counts once
                    msg = line.split(" ", 3)[3].strip() if line.count(" ") >= 3 else line.strip()
                    errors[re.sub(r"[0-9a-f]{12,64}", "<id>", msg)[:240]] += 1
    except OSError:
        return {"tracebacks": None, "errors": {}}
    return {"tracebacks": tracebacks, "errors": dict(errors.most_common())}


def compare(base: dict[str, Result], other: dict[str, Result]) -> tuple[list[str], list[str]]:
    """(tests passing on ``base`` but not on ``other``, tests passing on ``other`` only)."""
    worse = sorted(k for k, r in base.items()
                   if r.outcome == "passed" and other.get(k, Result("missing")).outcome != "passed")
    better = sorted(k for k, r in other.items()
                    if r.outcome == "passed" and base.get(k, Result("missing")).outcome != "passed")
    return worse, better


def table(per_daemon: dict[str, dict[str, Result]]) -> str:
    names = list(per_daemon)
    rows = [("outcome", *names)]
    cs = {n: counts(per_daemon[n]) for n in names}
    for o in (*OUTCOMES, "total"):
        rows.append((o, *(str(cs[n][o]) for n in names)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def render(per_daemon: dict[str, dict[str, Result]], logs: dict[str, str],
           base: str = "dockerd", subject: str = "dockyardd") -> str:
    out = [table(per_daemon), ""]
    if base in per_daemon and subject in per_daemon:
        worse, better = compare(per_daemon[base], per_daemon[subject])
        out.append(f"pass on {base}, not on {subject}: {len(worse)}")
        for key in worse:
            r = per_daemon[subject].get(key, Result("missing"))
            out.append(f"  {key}  [{r.outcome}]")
            out += [f"      {line}" for line in r.head()]
        out.append(f"pass on {subject}, not on {base}: {len(better)}")
        out += [f"  {key}  [{per_daemon[base].get(key, Result('missing')).outcome}]" for key in better]
        out.append("")
    for name, results in per_daemon.items():
        se = server_errors(results)
        out.append(f"{name}: tests that saw a 5xx answer: {len(se)}")
        for key, hits in se.items():
            out.append(f"  {key}: {hits[0]}")
    for name, path in logs.items():
        found = scan_log(path)
        errors = found["errors"]
        out.append(f"{name} log {path}: tracebacks {found['tracebacks']}, "
                   f"ERROR lines {sum(errors.values()) if errors else 0}")
        for msg, n in list(errors.items())[:30]:
            out.append(f"  {n:4d}x {msg}")
    return "\n".join(out)
