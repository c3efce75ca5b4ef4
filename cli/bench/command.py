"""``dockyard bench``: every driver and every peer side by side in one run, with charts.

Only click is imported here: ``dockyard --help`` lists this command, and the measuring modules
load when a run starts.
"""
from __future__ import annotations

import datetime
import os
import sys

import click

from .scenarios import SCENARIOS

DEFAULT_PEERS = "dockerd,podman,runc,crun,lxc"
DEFAULT_NETS = "none,host,bridge"


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def default_out(kind: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(os.getcwd(), f"dockyard-{kind}-{stamp}")


class BenchGroup(click.Group):
    """``dockyard bench [OPTIONS] [SCENARIO...]`` runs; ``dockyard bench compare A B`` compares.
    Anything that is not a subcommand's name goes to the run (``measure``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = ["measure", *args]
        return super().parse_args(ctx, args)


class MeasureCommand(click.Command):
    """The run is the group's default: its usage line says ``dockyard bench``, not ``measure``."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        path = ctx.parent.command_path if ctx.parent else ctx.command_path
        formatter.write_usage(path, " ".join(self.collect_usage_pieces(ctx)))


@click.group(cls=BenchGroup, name="bench",
             short_help="Benchmark drivers against each other, dockerd and podman")
def bench() -> None:
    """Benchmark dockyard's drivers against each other and against dockerd, podman and the
    bare runtimes (see `dockyard bench --help`)."""


SCENARIO_HELP = ", ".join(SCENARIOS)


@bench.command("measure", cls=MeasureCommand, epilog=f"Scenarios: {SCENARIO_HELP}.\n\n"
               "Compare two runs: dockyard bench compare A/results.json B/results.json")
@click.argument("scenarios", nargs=-1, metavar="[SCENARIO]...")
@click.option("--graph-drivers", metavar="LIST",
              help="graph drivers of the dockyard subjects, comma-separated, or 'all' "
                   "[default: the one dockyardd picks]")
@click.option("--exec-drivers", metavar="LIST",
              help="exec drivers of the dockyard subjects, or 'all' [default: dockyardd's]")
@click.option("--net-drivers", metavar="LIST", default=DEFAULT_NETS, show_default=True,
              help="network drivers; scenarios that are not about networks use the first")
@click.option("--peers", metavar="LIST", default=DEFAULT_PEERS, show_default=True,
              help="peers and floors to measure when installed ('none': only dockyard)")
@click.option("--runs", type=click.IntRange(min=1), help="samples per subject and scenario "
              "[default: each scenario's own]")
@click.option("--quick", is_flag=True, help="fewer samples and smaller sizes (a few minutes)")
@click.option("--out", "out_dir", metavar="DIR", help="where results.json, report.html and "
              "table.md go [default: ./dockyard-bench-DATE]")
@click.option("--json", "as_json", is_flag=True, help="print the results JSON instead of the table")
@click.option("--baseline", metavar="SUBJECT", help="the subject ratios are taken against "
              "(an engine name or a subject id) [default: the first dockyard subject]")
def measure(scenarios: tuple[str, ...], graph_drivers: str | None, exec_drivers: str | None,
            net_drivers: str, peers: str, runs: int | None, quick: bool, out_dir: str | None,
            as_json: bool, baseline: str | None) -> None:
    """Measure SCENARIOs (all when none is named) on every subject: a dockyardd per graph ×
    exec driver (the network driver is per container), dockerd and podman, and runc, crun and
    lxc-execute alone as the floor of a start. Each gets a fresh tmpfs (or loop file system),
    socket and data-root of its own: your daemons and images are never touched. What is not
    installed or not supported is skipped, with the reason."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise click.UsageError(f"unknown scenario {', '.join(unknown)} (choose among: {SCENARIO_HELP})")
    if os.geteuid() != 0:
        raise click.ClickException("dockyard bench needs root (it starts daemons, mounts file "
                                   "systems and makes network namespaces)")
    from .runner import Options, Progress, run_bench
    nets = split_list(net_drivers) or ["none"]
    opts = Options(scenarios=list(scenarios), graph_drivers=split_list(graph_drivers),
                   exec_drivers=split_list(exec_drivers), net_drivers=nets,
                   peers=[p for p in split_list(peers) or [] if p != "none"], runs=runs,
                   quick=quick, baseline=baseline)
    out_dir = out_dir or default_out("bench")
    made = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)  # now: an unwritable place fails before the run
    try:
        doc = run_bench(opts, ["dockyard", "bench", *sys.argv[2:]], Progress())
    except BaseException:
        if made and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    write_reports(doc, out_dir, as_json)


def write_reports(doc: dict, out_dir: str, as_json: bool) -> None:
    import json

    from .report.html import render_html
    from .report.table import render_table
    from .results import write_json
    write_json(doc, os.path.join(out_dir, "results.json"))
    table = render_table(doc)
    write_text(os.path.join(out_dir, "table.md"), table)
    write_text(os.path.join(out_dir, "report.html"), render_html(doc))
    if as_json:
        click.echo(json.dumps(doc, indent=1))
    else:
        click.echo(table, nl=False)
    click.echo(f"results: {out_dir}/results.json, report: {out_dir}/report.html", err=True)


def write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@bench.command("compare")
@click.argument("before", type=click.Path(exists=True, dir_okay=False))
@click.argument("after", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", metavar="DIR", help="where compare.html and compare.json go "
              "[default: ./dockyard-bench-compare-DATE]")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
@click.option("--threshold", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="smallest change of a median (percent) that may be flagged")
def compare(before: str, after: str, out_dir: str | None, as_json: bool, threshold: float) -> None:
    """The same charts for two runs (before/after a change, or two hosts): each subject's
    samples of both runs side by side, changes beyond the noise of the samples flagged."""
    import json

    from .compare import compare_docs, render_compare_table
    from .report.html import render_compare_html
    from .results import read_json, write_json
    try:
        a, b = read_json(before), read_json(after)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    cmp = compare_docs(a, b, threshold / 100, (before, after))
    out_dir = out_dir or default_out("bench-compare")
    os.makedirs(out_dir, exist_ok=True)
    write_json(cmp, os.path.join(out_dir, "compare.json"))
    write_text(os.path.join(out_dir, "compare.html"), render_compare_html(cmp))
    click.echo(json.dumps(cmp, indent=1) if as_json else render_compare_table(cmp))
    click.echo(f"comparison: {out_dir}/compare.html", err=True)
