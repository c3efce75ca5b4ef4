"""``dockyard plugins ls/info``, the CLI's own plugin manager (disabled-plugins), and what the
CLI's hot path imports (never timings: contrib/bench/cli_start.py measures those)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

from conftest import DOCKYARD, Daemon

#: what no hot command may import: the daemon's libraries, and what only plugins need
HEAVY = ("aiohttp", "pluggy", "stevedore", "yaml", "ssl", "asyncio", "http.client",
         "importlib.metadata", "dockyard.core", "dockyard.hookspecs.spec")


def imported(*argv: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a ``dockyard`` run imports (``-X importtime``)."""
    r = subprocess.run([sys.executable, "-X", "importtime", DOCKYARD, *argv], capture_output=True,
                       env={**os.environ, **(env or {})}, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.decode().splitlines()
            if line.startswith("import time:") and "|" in line}


def heavy(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_imports_no_command_module() -> None:
    """``--help`` is served before click is imported; through click (a narrow terminal), it
    still imports no command module."""
    mods = imported("--help")
    assert heavy(mods) == [] and "click" not in mods
    assert sorted(m for m in mods if m.startswith("dockyard.cli.")) == ["dockyard.cli.helptext",
                                                                        "dockyard.cli.main"]
    mods = imported("--help", env={"COLUMNS": "60"})
    assert heavy(mods) == [] and "click" in mods
    assert sorted(m for m in mods if m.startswith("dockyard.cli.")) == [
        "dockyard.cli.app", "dockyard.cli.client", "dockyard.cli.main"]


def test_fast_help_is_clicks_help() -> None:
    """The stored help text is what click renders now (else: regenerate cli/helptext.py, as its
    docstring says), and what ``dockyard --help`` prints."""
    from dockyard.cli import helptext, main as m

    assert m.help_text() == helptext.HELP
    out = subprocess.run([DOCKYARD, "--help"], capture_output=True, env={**os.environ,
                         "COLUMNS": "120"}).stdout
    assert out.decode() == helptext.HELP
    narrow = subprocess.run([DOCKYARD, "--help"], capture_output=True,
                            env={**os.environ, "COLUMNS": "60"}).stdout.decode()
    assert narrow != helptext.HELP and narrow.split() == helptext.HELP.split()


def test_help_from_the_table_is_clicks_own() -> None:
    """The short help kept in COMMANDS (so --help imports nothing) is what click would show
    with every command imported."""
    from dockyard.cli import app as m

    ctx = click.Context(m.cli, info_name="dockyard")
    lazy = m.cli.get_help(ctx)
    full = click.Context(m.cli, info_name="dockyard")
    formatter = full.make_formatter()
    click.Group.format_commands(m.cli, full, formatter)
    assert lazy.endswith(formatter.getvalue().rstrip("\n"))
    assert all(name in lazy for name in m.COMMANDS)


def test_hot_commands_import_little(shared_daemon: Daemon) -> None:
    for argv in (["version"], ["ps"], ["ps", "-a", "--format", "{{.Names}}"]):
        mods = imported("-H", shared_daemon.host, *argv)
        assert heavy(mods) == [], argv
    assert "click" not in imported("-H", shared_daemon.host, "version")


def test_fast_version_prints_what_click_prints(shared_daemon: Daemon) -> None:
    fast = shared_daemon.cli("version")
    slow = shared_daemon.cli("-l", "info", "version")  # another global option: click's path
    assert fast.returncode == slow.returncode == 0, (fast.stderr, slow.stderr)
    assert fast.stdout == slow.stdout and b"Server: dockyard" in fast.stdout
    gone = [DOCKYARD, "-H", f"unix://{shared_daemon.root}/nosuch.sock"]
    fast = subprocess.run(gone + ["version"], capture_output=True)
    slow = subprocess.run(gone + ["-l", "info", "version"], capture_output=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout,
                                                           slow.stderr)
    assert fast.returncode == 1 and b"Cannot connect" in fast.stderr


def test_fast_ps_prints_what_click_prints(shared_daemon: Daemon) -> None:
    """``ps`` served without click (a plain line) prints what click's path (another global
    option) prints, for listings, a template error and a daemon that is not there."""
    name = "fastps" + os.urandom(4).hex()
    r = shared_daemon.cli("create", "--name", name, "--label", "k=v", "busybox", "true")
    assert r.returncode == 0, r.stderr
    try:
        fmt = "{{.ID}} {{.Image}} {{.Command}} {{.Names}} {{.Labels}} {{.State}} {{.Ports}}"
        for argv in (["-a", "--format", fmt], ["-aq"], ["-a", "--no-trunc", "-q"],
                     ["-a", "-f", f"name={name}", "--format", "table " + fmt],
                     ["-a", "--format", "{{nosuchfunc .}}"]):
            fast = shared_daemon.cli("ps", *argv)
            slow = shared_daemon.cli("-l", "info", "ps", *argv)
            assert (fast.returncode, fast.stdout, fast.stderr) == (
                slow.returncode, slow.stdout, slow.stderr), argv
        assert name.encode() in shared_daemon.cli("ps", "-a", "--format", fmt).stdout
        assert b"template parsing error" in fast.stderr and fast.returncode == 1
    finally:
        shared_daemon.cli("rm", "-f", name)
    gone = [DOCKYARD, "-H", f"unix://{shared_daemon.root}/nosuch.sock"]
    fast = subprocess.run(gone + ["ps"], capture_output=True)
    slow = subprocess.run(gone + ["-l", "info", "ps"], capture_output=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout,
                                                           slow.stderr)
    assert fast.returncode == 1 and b"Cannot connect" in fast.stderr
    assert "click" not in imported("-H", shared_daemon.host, "ps", "-a", "--format", fmt)


def test_plugins_ls_from_the_daemon(shared_daemon: Daemon) -> None:
    r = shared_daemon.cli("plugins", "ls", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by = {(x["Kind"], x["Name"]): x for x in rows}
    _, info = shared_daemon.api.get("/info")
    graph = by[("graph", info["Driver"])]
    assert graph["State"] == "active" and graph["Package"] == "dockyard" and graph["Version"]
    assert by[("exec", "native")]["State"] == "active"
    assert by[("network", "bridge")]["State"] == "active"
    assert by[("registry", "oci-layout")]["State"] == "available"
    # the drivers not chosen: available, or skipped with the reason the host gave
    for (kind, _name), row in by.items():
        if kind == "graph" and row is not graph:
            assert row["State"] == "available" or (row["State"].startswith("skipped: ")
                                                   and row["Reason"]), row
    table = shared_daemon.cli("plugins", "ls")
    assert table.stdout.splitlines()[0].split() == [b"KIND", b"NAME", b"PACKAGE", b"VERSION", b"STATE"]
    r = shared_daemon.cli("plugins", "info", "bridge")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["EntryPoint"] == "dockyard.plugins.netdrivers.bridge:BridgeDriver"
    r = shared_daemon.cli("plugins", "info", "nosuchdriver")
    assert r.returncode == 1 and b"No such driver or plugin: nosuchdriver" in r.stderr


HELLO = ("import click, os\nfrom dockyard.hookspecs import hookimpl\n"
         "open(os.environ['DKY_HELLO_MARK'], 'a').write('imported\\n')\n"
         "@hookimpl\ndef dockyard_add_commands(cli):\n"
         "    @cli.command()\n    def hello():\n        click.echo('hello from plugin')\n")


@pytest.fixture
def hello_plugin(tmp_path) -> dict[str, str]:
    """A ``dockyard.plugins`` plugin adding ``dockyard hello``, and a daemon.json for the CLI."""
    (tmp_path / "dky_hello.py").write_text(HELLO)
    dist = tmp_path / "dky_hello-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dky-hello\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dockyard.plugins]\nhello = dky_hello\n")
    config = tmp_path / "daemon.json"
    config.write_text("{}")
    return {"PYTHONPATH": str(tmp_path), "DOCKYARD_CONFIG_FILE": str(config),
            "DKY_HELLO_MARK": str(tmp_path / "imported"),
            "DOCKYARD_HOST": f"unix://{tmp_path}/no-daemon.sock"}


def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([DOCKYARD, *argv], capture_output=True, env={**os.environ, **env},
                          timeout=60)


def test_cli_plugin_manager_honours_disabled_plugins(hello_plugin: dict[str, str]) -> None:
    r = run(hello_plugin, "hello")
    assert r.returncode == 0 and r.stdout == b"hello from plugin\n", r.stderr
    assert b"hello" in run(hello_plugin, "--help").stdout
    r = run(hello_plugin, "plugins", "ls", "--kind", "plugin", "--format",
            "{{.Name}} {{.Package}} {{.Version}} {{.State}}")
    assert r.stdout == b"hello dky-hello 1.0 available\n", r.stderr
    assert b"listing what is installed here" in r.stderr  # no daemon: the local view
    # a built-in command never looks for plugins
    os.unlink(hello_plugin["DKY_HELLO_MARK"])
    assert run(hello_plugin, "plugins", "--help").returncode == 0
    assert run(hello_plugin, "version", "--help").returncode == 0
    assert not os.path.exists(hello_plugin["DKY_HELLO_MARK"])

    with open(hello_plugin["DOCKYARD_CONFIG_FILE"], "w") as f:
        json.dump({"disabled-plugins": ["hello"]}, f)
    r = run(hello_plugin, "hello")
    assert r.returncode != 0 and b"No such command 'hello'" in r.stderr
    assert b"hello" not in run(hello_plugin, "--help").stdout
    r = run(hello_plugin, "plugins", "ls", "--local", "--kind", "plugin", "--format",
            "{{.Name}} {{.State}}")
    assert r.stdout == b"hello disabled: named by disabled-plugins\n", r.stderr

    with open(hello_plugin["DOCKYARD_CONFIG_FILE"], "w") as f:
        f.write('{"disabled-plugin": []}')
    r = run(hello_plugin, "hello")  # a broken configuration is said, not skipped over
    assert r.returncode != 0 and b"unknown configuration key(s) 'disabled-plugin'" in r.stderr
