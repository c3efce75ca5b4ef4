"""One benchmark run: start the subjects, run the scenarios round by round, stop everything.

Rounds alternate between subjects (the order rotates each round) so that drift of a shared
machine hits every subject alike. A subject that fails in a scenario is dropped from that
scenario with the error as its reason; the run goes on.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import click

from . import host, results
from .scenarios import load_scenarios
from .scenarios.base import Scenario
from .subjects import Plan, plan_subjects, start_all, stop_all, versions
from .subjects.base import Skip, Subject

log = logging.getLogger(__name__)


@dataclass
class Options:
    scenarios: list[str]
    graph_drivers: list[str] | None = None
    exec_drivers: list[str] | None = None
    net_drivers: list[str] = field(default_factory=lambda: ["none", "host", "bridge"])
    peers: list[str] = field(default_factory=list)
    runs: int | None = None
    quick: bool = False
    baseline: str | None = None


@dataclass
class Context:
    """What scenarios share: a scratch tmpfs, the busybox rootfs tar, the options."""

    work: str
    image_tar: str
    quick: bool
    primary_net: str
    plan: Plan
    params: dict[str, Any] = field(default_factory=dict)


class Progress:
    """A click progress bar on a terminal; one line per step otherwise (logs, tests)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.step = ""

    def note(self, text: str) -> None:
        if self.bar is None:
            click.echo(text, err=True)
        else:
            self.step = text
            self.bar.render_progress()

    def begin(self, total: int) -> None:
        if self.tty and total:
            self.bar = click.progressbar(length=total, label="dockyard bench", file=sys.stderr,
                                         show_pos=True, item_show_func=lambda _: self.step)
            self.bar.__enter__()

    def advance(self, text: str) -> None:
        if self.bar is not None:
            self.step = text
            self.bar.update(1)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: through the clean-up below."""
    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def new_document(opts: Options, argv: list[str]) -> dict[str, Any]:
    return {"format": results.FORMAT, "started": now(), "command": argv,
            "options": {"scenarios": opts.scenarios, "graph_drivers": opts.graph_drivers,
                        "exec_drivers": opts.exec_drivers, "net_drivers": opts.net_drivers,
                        "peers": opts.peers, "runs": opts.runs, "quick": opts.quick},
            "machine": {**host.machine_info(), "loadavg_start": list(os.getloadavg())},
            "versions": {}, "subjects": [], "baseline": None, "skipped": [], "scenarios": {}}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_bench(opts: Options, argv: list[str], progress: Progress) -> dict[str, Any]:
    """Measure; return the results document (see :mod:`.results`)."""
    doc = new_document(opts, argv)
    t0 = time.monotonic()
    scenarios = load_scenarios(opts.scenarios)
    plan = plan_subjects(opts.graph_drivers, opts.exec_drivers, opts.net_drivers, opts.peers)
    with signals_raise(), host.FreshFs(prefix="dyb-work-") as work:
        tar = os.path.join(work.path, "busybox.tar")
        from dockyard.core.busybox import write_rootfs_tar
        with open(tar, "wb") as f:
            write_rootfs_tar(f)
        try:
            start_all(plan, tar, progress.note)
            doc["versions"] = versions(plan)
            doc["machine"]["timer_floor_ms"] = host.timer_floor() * 1000
            doc["subjects"] = [s.summary() for s in plan.subjects]
            doc["baseline"] = pick_baseline(plan.subjects, opts.baseline, plan.primary_net)
            ctx = Context(work.path, tar, opts.quick, plan.primary_net, plan)
            chosen = [(scen, participants(scen, ctx)) for scen in scenarios]
            progress.begin(sum(runs_of(scen, opts) * len(subs) for scen, subs in chosen))
            for scen, subs in chosen:
                doc["scenarios"][scen.name] = run_scenario(scen, subs, ctx, opts, progress)
        finally:
            progress.end()
            progress.note("stopping engines")
            stop_all(plan)
    doc["skipped"] = plan.skipped
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["finished"] = now()
    doc["seconds"] = round(time.monotonic() - t0, 1)
    return doc


def pick_baseline(subjects: list[Subject], wanted: str | None, primary_net: str) -> str | None:
    """``--baseline`` (a subject id, or an engine name), else the first dockyard subject on the
    first network driver, else the first subject."""
    if wanted:
        for s in subjects:
            if wanted in (s.id, s.engine_name) and (s.net == primary_net or wanted == s.id):
                return s.id
        raise click.UsageError(f"--baseline {wanted}: no such subject in this run "
                               f"({', '.join(s.id for s in subjects)})")
    for s in subjects:
        if s.engine_name == "dockyard" and s.net == primary_net and "client" not in s.dims:
            return s.id
    return subjects[0].id if subjects else None


def runs_of(scen: Scenario, opts: Options) -> int:
    return opts.runs or (scen.runs_quick if opts.quick else scen.runs_full)


def participants(scen: Scenario, ctx: Context) -> list[Subject]:
    subs = []
    for s in ctx.plan.subjects:
        if not scen.on_axis(s, ctx):
            continue
        reason = scen.applies(s, ctx)
        if reason:
            ctx.plan.skip(s.name, reason, scen.name)
        else:
            subs.append(s)
    return subs


FAILURES = (Skip, host.CommandFailed, subprocess.SubprocessError, OSError, AssertionError)


def run_scenario(scen: Scenario, subs: list[Subject], ctx: Context, opts: Options,
                 progress: Progress) -> dict[str, Any]:
    ctx.params = scen.params(opts.quick)
    runs = runs_of(scen, opts)
    entry: dict[str, Any] = {"title": scen.title, "about": about(scen), "params": ctx.params,
                             "runs": runs,
                             "net_axis": scen.net_axis,
                             "metrics": {m.key: {"title": m.title, "unit": m.unit,
                                                 "better": m.better, "samples": {}}
                                         for m in scen.metrics}}
    if not subs:
        entry["note"] = "no subject can take part"
        return entry
    progress.note(f"{scen.name}: {scen.title}")
    t0 = time.monotonic()
    active: list[Subject] = []
    try:
        scen.setup(ctx, subs)
        for s in subs:
            progress.note(f"{scen.name}: preparing {s.name}")
            if attempt(ctx, scen, s, lambda s=s: scen.prepare(ctx, s)) is not FAILED:
                active.append(s)
            else:
                finish(ctx, scen, s)  # what prepare made before it failed
        for i in range(runs):
            for s in rotate(list(active), i):
                progress.note(f"{scen.name}: {s.name} #{i + 1}")
                values = attempt(ctx, scen, s, lambda s=s, i=i: scen.sample(ctx, s, i))
                progress.advance(f"{scen.name}: {s.name} #{i + 1} done")
                if values is FAILED:
                    active.remove(s)
                    finish(ctx, scen, s)
                    continue
                for key, value in values.items():
                    entry["metrics"][key]["samples"].setdefault(s.id, []).append(value)
    except FAILURES as e:
        entry["note"] = f"failed: {getattr(e, 'reason', None) or e}"
        log.warning("scenario %s failed: %s", scen.name, e)
    finally:
        for s in active:
            finish(ctx, scen, s)
        with contextlib.suppress(Exception):
            scen.teardown(ctx)
        entry["seconds"] = round(time.monotonic() - t0, 1)
        for metric in entry["metrics"].values():  # "{containers}" → the count used
            for k, v in ctx.params.items():
                metric["title"] = metric["title"].replace("{" + k + "}", str(v))
    return entry


def about(scen: Scenario) -> str:
    """How the scenario measures: its class's documentation (else its module's), first
    paragraph."""
    doc = type(scen).__doc__ or sys.modules[type(scen).__module__].__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


FAILED = object()


def attempt(ctx: Context, scen: Scenario, s: Subject, fn: Any) -> Any:
    """``fn()``, or :data:`FAILED` after recording why ``s`` leaves the scenario."""
    try:
        return fn()
    except FAILURES as e:
        ctx.plan.skip(s.name, f"failed: {getattr(e, 'reason', None) or e}", scen.name)
        return FAILED


def finish(ctx: Context, scen: Scenario, s: Subject) -> None:
    try:
        scen.finish(ctx, s)
    except Exception as e:  # noqa: BLE001 - the clean-up of one subject must not stop the run
        log.warning("%s: finishing %s: %s", scen.name, s.id, e)


def rotate(items: list[Any], i: int) -> list[Any]:
    if not items:
        return items
    k = i % len(items)
    return items[k:] + items[:k]
