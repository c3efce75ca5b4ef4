#!/usr/bin/env python3
"""Run a real client's own integration tests (docker-py's ``tests/integration``) against dockyardd
and against dockerd 20.10, and compare.

Run as root from the repository, with the project's venv::

    .venv/bin/python contrib/fidelity/run_client_suite.py /path/to/docker-py \\
        --client-python /path/to/client-venv/bin/python --out /tmp/fidelity

For each daemon (``--daemon``, default both, dockerd first): a fresh network namespace (the
sandbox: loopback only, so no test can reach an outside name), Debian's ``docker-registry`` on its
loopback seeded with busybox-based stand-ins for the Docker Hub images the suite uses (seed.py),
the daemon on a private socket/data-root/exec-root with that registry as its ``docker.io`` mirror,
the seed images pulled through the daemon, then ``pytest tests/integration`` of the checkout, run
by ``--client-python`` inside the sandbox with a per-test timeout, its junit XML kept in
``--out/<daemon>/junit.xml`` and the daemon's log in ``--out/<daemon>/<daemon>.log``. At the end
(or with ``--compare-only``, from what ``--out`` already holds) it prints passed/failed/error/
skipped per daemon, every test that passes on dockerd but not on dockyardd with the first lines of
its failure, the tests that saw a 5xx answer, and the tracebacks and ERROR lines of the logs.
See README.md beside this file.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import IO

import click

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402
from daemons import running  # noqa: E402
from sandbox import Registry, Sandbox  # noqa: E402
from seed import seed_registry  # noqa: E402
from suites import SUITES, Suite  # noqa: E402


def pytest_argv(client_python: str, tests: list[str], junit: str, timeout: int,
                deselect: list[str], keyword: str | None, extra: list[str]) -> list[str]:
    argv = [client_python, "-m", "pytest", *tests, "-p", "no:cacheprovider", "-q", "-rfE",
            f"--timeout={timeout}", f"--junitxml={junit}", "-o", "junit_family=xunit2",
            "-o", "junit_logging=all", "--tb=short"]
    for node in deselect:
        argv += ["--deselect", node]
    if keyword:
        argv += ["-k", keyword]
    return argv + extra


def run_pytest(argv: list[str], cwd: str, env: dict[str, str], log: IO[bytes],
               timeout: float) -> int | str:
    """Run pytest; past ``timeout`` interrupt it as Ctrl-C would, so that it still writes the
    junit XML of the tests it ran (nsenter execs, so the pid is pytest's)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return "interrupted (--suite-timeout)"
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def run_one(kind: str, suite: Suite, checkout: str, out: str, opts: dict) -> str:
    """Run ``suite`` against one daemon; returns the junit XML's path."""
    workdir = os.path.join(out, kind)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    junit = os.path.join(workdir, "junit.xml")
    extra = {"experimental": True} if kind == "dockerd" and opts["experimental"] else {}
    started = time.monotonic()
    with Sandbox() as sb, Registry(sb, workdir) as reg:
        seeded = seed_registry(sb.net([]), reg.addr, workdir, suite.images)
        click.echo(f"[{kind}] sandbox {sb.name}, registry {reg.url} with {', '.join(seeded)}")
        with running(kind, sb, reg.addr, workdir, **extra) as d:
            for ref in suite.preload:
                d.pull(ref)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
            # a HOME of its own: the suites write contexts and config under ~/.docker
            # (fresh each run). docker-py keeps contexts beside the config file it finds, and in
            # ./contexts of the checkout when there is none: a context one run's tests leave there
            # fails the next run's three context tests, whatever the daemon. So a config file.
            home = os.path.join(workdir, "home")
            shutil.rmtree(home, ignore_errors=True)
            os.makedirs(os.path.join(home, ".docker"))
            with open(os.path.join(home, ".docker", "config.json"), "w") as f:
                f.write("{}\n")
            env.update(suite.env, DOCKER_HOST=d.host, DOCKER_TEST_API_VERSION=opts["api_version"],
                       PYTHONDONTWRITEBYTECODE="1", HOME=home)
            argv = pytest_argv(opts["client_python"], list(opts["tests"]) or suite.tests, junit,
                               opts["timeout"], suite.deselect + list(opts["deselect"]), opts["keyword"],
                               list(opts["pytest_arg"]))
            click.echo(f"[{kind}] {d.host}: {' '.join(argv[1:])}")
            with open(os.path.join(workdir, "pytest.log"), "wb") as log:
                rc = run_pytest(sb.net(argv), checkout, env, log, opts["suite_timeout"])
    minutes = (time.monotonic() - started) / 60
    click.echo(f"[{kind}] pytest exit {rc} after {minutes:.1f} min; log {workdir}/pytest.log")
    return junit


def compare_dir(out: str, kinds: list[str]) -> str:
    per_daemon, logs = {}, {}
    for kind in kinds:
        junit = os.path.join(out, kind, "junit.xml")
        if os.path.exists(junit):
            per_daemon[kind] = report.load_junit(junit)
        else:
            click.echo(f"no {junit}: {kind} left out", err=True)
    if os.path.exists(os.path.join(out, "dockyardd", "dockyardd.log")):
        logs["dockyardd"] = os.path.join(out, "dockyardd", "dockyardd.log")
    with open(os.path.join(out, "outcomes.json"), "w") as f:
        json.dump({k: {t: r.outcome for t, r in v.items()} for k, v in per_daemon.items()}, f,
                  indent=1, sort_keys=True)
    return report.render(per_daemon, logs)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkout", type=click.Path(exists=True, file_okay=False))
@click.option("--suite", "suite_name", type=click.Choice(sorted(SUITES)), default="docker-py",
              show_default=True, help="which client's tests CHECKOUT holds (see suites.py)")
@click.option("--daemon", "daemons", multiple=True, type=click.Choice(["dockerd", "dockyardd"]),
              help="daemon(s) to run against [default: dockerd then dockyardd]")
@click.option("--client-python", default=sys.executable, show_default=True,
              help="interpreter with pytest, pytest-timeout, paramiko, websocket-client, requests")
@click.option("--out", default="/tmp/dockyard-fidelity", show_default=True,
              help="where junit XML, pytest output and daemon logs are kept")
@click.option("--tests", multiple=True,
              help="test paths or node ids, relative to the checkout [default: the suite's]")
@click.option("-k", "keyword", help="pytest -k expression")
@click.option("--deselect", multiple=True, help="more node ids to leave out")
@click.option("--pytest-arg", multiple=True, help="one more argument for pytest (e.g. --runxfail)")
@click.option("--timeout", default=300, show_default=True, help="seconds per test")
@click.option("--suite-timeout", default=6 * 3600, show_default=True, help="seconds for one daemon's run")
@click.option("--api-version", default="1.41", show_default=True,
              help="DOCKER_TEST_API_VERSION (dockerd 20.10 speaks up to 1.41)")
@click.option("--experimental", is_flag=True, help="start dockerd with --experimental (as docker-py's CI)")
@click.option("--compare-only", is_flag=True, help="only compare what --out holds")
def main(checkout: str, suite_name: str, daemons: tuple[str, ...], **opts: object) -> None:
    """Run CHECKOUT's (a docker-py or docker-compose 1.29 checkout) integration tests against
    dockerd and dockyardd."""
    if os.geteuid() != 0:
        raise click.ClickException("must run as root (it starts daemons and a network namespace)")
    # Started in the background, a shell leaves SIGINT ignored, and pytest would inherit that: take
    # it back (run_pytest interrupts pytest with it), and make SIGTERM clean up as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    kinds = list(daemons) or ["dockerd", "dockyardd"]
    out = os.path.abspath(str(opts["out"]))
    os.makedirs(out, exist_ok=True)
    if not opts["compare_only"]:
        for tool in ("ip", "nsenter", "unshare", "docker-registry", "skopeo", "curl",
                     *(["dockerd"] if "dockerd" in kinds else [])):
            if shutil.which(tool) is None:
                raise click.ClickException(f"{tool} not found (see contrib/fidelity/README.md)")
        for kind in kinds:
            run_one(kind, SUITES[suite_name], os.path.abspath(checkout), out, opts)
    text = compare_dir(out, kinds)
    with open(os.path.join(out, "comparison.txt"), "w") as f:
        f.write(text + "\n")
    click.echo(text)


if __name__ == "__main__":
    main()
