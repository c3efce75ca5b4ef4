"""The ``dockyard`` click group, whose commands are imported only when invoked (the entry
point, :mod:`dockyard.cli.main`, serves a few hot invocations before click is imported)."""
from __future__ import annotations

import os
import sys
from typing import Any

import click

from .client import DEFAULT_HOST
from .main import _plugin_entry_points_present

#: command name → (module under dockyard.cli, attribute, short help): ``--help`` lists the
#: commands without importing them (tests/test_plugins_cli.py checks the help matches)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "version": ("system", "version", "Show the dockyard version information"),
    "info": ("system", "info", "Display system-wide information"),
    "system": ("system", "system_group", "Manage dockyard"),
    "events": ("system", "events", "Get real time events from the server"),
    "images": ("images", "images", "List images"),
    "rmi": ("images", "rmi", "Remove one or more images"),
    "import": ("images", "import_",
              "Import the contents from a tarball to create a filesystem image"),
    "build": ("build", "build", "Build an image from a Dockerfile"),
    "builder": ("build", "builder_group", "Manage builds"),
    "pull": ("images", "pull", "Download an image from a registry"),
    "push": ("images", "push", "Upload an image to a registry"),
    "tag": ("images", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "save": ("images", "save",
            "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "load": ("images", "load", "Load an image from a tar archive or STDIN"),
    "history": ("images", "history", "Show the history of an image"),
    "login": ("images", "login", "Log in to a registry"),
    "logout": ("images", "logout", "Log out from a registry"),
    "image": ("images", "image_group", "Manage images"),
    "registry": ("images", "registry_group", "Run a private registry"),
    "export": ("containers", "export", "Export a container's filesystem as a tar archive"),
    "create": ("containers", "create", "Create a new container"),
    "run": ("containers", "run", "Create and run a new container from an image"),
    "start": ("containers", "start", "Start one or more stopped containers"),
    "stop": ("containers", "stop", "Stop one or more running containers"),
    "restart": ("containers", "restart", "Restart one or more containers"),
    "diff": ("containers", "diff",
            "Inspect changes to files or directories on a container's filesystem"),
    "commit": ("containers", "commit", "Create a new image from a container's changes"),
    "rename": ("containers", "rename", "Rename a container"),
    "update": ("containers", "update", "Update configuration of one or more containers"),
    "cp": ("cp", "cp", "Copy files/folders between a container and the local filesystem"),
    "volume": ("volumes", "volume_group", "Manage volumes"),
    "container": ("containers", "container_group", "Manage containers"),
    "kill": ("containers", "kill", "Kill one or more running containers"),
    "wait": ("containers", "wait",
            "Block until one or more containers stop, then print their exit codes"),
    "logs": ("containers", "logs", "Fetch the logs of a container"),
    "ps": ("ps", "ps", "List containers"),
    "rm": ("containers", "rm", "Remove one or more containers"),
    "inspect": ("containers", "inspect", "Return low-level information on dockyard objects"),
    "storage": ("storage", "storage", "Manage the daemon's storage"),
    "exec": ("execs", "exec_", "Execute a command in a running container"),
    "pause": ("execs", "pause", "Pause all processes within one or more containers"),
    "unpause": ("execs", "unpause", "Unpause all processes within one or more containers"),
    "top": ("execs", "top", "Display the running processes of a container"),
    "stats": ("execs", "stats", "Display a live stream of container(s) resource usage statistics"),
    "network": ("networks", "network", "Manage networks"),
    "port": ("networks", "port", "List port mappings or a specific mapping for the container"),
    "tls": ("tls", "tls_group", "TLS certificates for dockyardd's tcp:// listeners"),
    "bench": ("bench.command", "bench", "Benchmark drivers against each other, dockerd and podman"),
    "completion": ("complete", "completion",
                  "Print the shell completion script for bash, zsh or fish"),
    "dashboard": ("dashboard", "dashboard",
                 "Open the dashboard: containers, images, logs and stats in a browser"),
    "plugins": ("plugins", "plugins_group", "List drivers and plugins"),
}

CONTEXT_SETTINGS = {"help_option_names": ["--help"]}


class Options:
    """Global options; the API client is built on first use."""

    def __init__(self, host: str, tls: dict[str, Any] | None, log_level: str) -> None:
        self.host = host
        self.tls = tls
        self.log_level = log_level
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from .client import Client
            self._client = Client(self.host, self.tls)
        return self._client


class DockyardGroup(click.Group):
    """Built-in commands are imported when invoked; plugins' commands (``dockyard_add_commands``)
    are looked for only when a name is not built in or the commands are listed, so a built-in
    command never pays for an entry-point scan."""

    _plugins_looked_for = False

    def _plugin_commands(self) -> None:
        if self._plugins_looked_for:
            return
        self._plugins_looked_for = True
        try:
            load_plugins(self)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take the CLI down
            print(f"WARNING: loading dockyard plugins failed: {e}", file=sys.stderr)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._plugin_commands()
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            self._plugin_commands()
            return self.commands.get(name)
        import importlib
        mod = importlib.import_module(f"dockyard.cli.{entry[0]}")
        return getattr(mod, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the built-in commands' short help taken from COMMANDS."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in COMMANDS:  # a short_help is shown whole, as click shows it
                help_ = COMMANDS[name][2]
            else:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                help_ = cmd.get_short_help_str(limit)
            rows.append((name, help_))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from .system import client_version
    click.echo(f"dockyard version {client_version()}")
    ctx.exit(0)


def tls_config(tls: bool, tlsverify: bool | None, cacert: str | None, cert: str | None,
               key: str | None) -> dict[str, Any] | None:
    """Docker's rules: ``--tlsverify`` (or DOCKER_TLS_VERIFY) implies ``--tls``; files default to
    ``$DOCKER_CERT_PATH`` (else ``~/.docker``)/{ca,cert,key}.pem."""
    if tlsverify is None:
        tlsverify = bool(os.environ.get("DOCKER_TLS_VERIFY"))
    if not (tls or tlsverify):
        return None
    cert_path = os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")

    def pick(given: str | None, name: str) -> str | None:
        if given:
            return given
        p = os.path.join(cert_path, name)
        return p if os.path.exists(p) else None

    return {"verify": tlsverify, "cacert": pick(cacert, "ca.pem"), "cert": pick(cert, "cert.pem"),
            "key": pick(key, "key.pem")}


@click.group(cls=DockyardGroup, context_settings=CONTEXT_SETTINGS)
@click.option("-H", "--host", "host", metavar="HOST",
              help="Daemon socket to connect to (unix://PATH or tcp://HOST:PORT) "
                   "[env: DOCKYARD_HOST, DOCKER_HOST]")
@click.option("--tls", is_flag=True, help="Use TLS; implied by --tlsverify")
@click.option("--tlsverify", is_flag=True, default=None, help="Use TLS and verify the remote")
@click.option("--tlscacert", metavar="PATH", help="Trust certs signed only by this CA")
@click.option("--tlscert", metavar="PATH", help="Path to TLS certificate file")
@click.option("--tlskey", metavar="PATH", help="Path to TLS key file")
@click.option("-l", "--log-level", default="info",
              type=click.Choice(["debug", "info", "warn", "error", "fatal"]),
              help="Set the logging level")
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_show_version, help="Print version information and quit")
@click.pass_context
def cli(ctx: click.Context, host: str | None, tls: bool, tlsverify: bool | None,
        tlscacert: str | None, tlscert: str | None, tlskey: str | None, log_level: str) -> None:
    """A self-sufficient runtime for containers (speaks the Docker Engine API to dockyardd)."""
    host = (host or os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST")
            or DEFAULT_HOST)
    tls_cfg = tls_config(tls, tlsverify, tlscacert, tlscert, tlskey)
    if log_level == "debug":
        from . import client
        client._DEBUG = True
    if log_level != "info":
        import logging
        logging.basicConfig(level={"warn": "WARNING", "fatal": "CRITICAL"}.get(
            log_level, log_level.upper()))
    ctx.obj = Options(host, tls_cfg, log_level)


def daemon_config(path: str | None = None) -> Any:
    """The daemon configuration the CLI reads for itself (``disabled-plugins``...): ``path``,
    else ``$DOCKYARD_CONFIG_FILE``, else dockyardd's default file (which may be absent)."""
    from dockyard.core import config as configmod
    path = path or os.environ.get("DOCKYARD_CONFIG_FILE")
    return configmod.load(path or configmod.DEFAULT_CONFIG_FILE, {}, path_explicit=bool(path))


def load_plugins(group: click.Group) -> None:
    """Let ``dockyard.plugins`` plugins add commands (pluggy hook ``dockyard_add_commands``),
    through the daemon's own plugin manager factory: ``disabled-plugins`` of the daemon's
    configuration file keeps a plugin out of the CLI as it keeps it out of the daemon."""
    if not _plugin_entry_points_present():
        return
    from dockyard.core.plugins import make_plugin_manager
    pm = make_plugin_manager(daemon_config()["disabled-plugins"])
    pm.hook.dockyard_add_commands(cli=group)


def run(args: list[str]) -> None:
    """Run the command line ``args`` through click; exits with the command's status."""
    from .client import ConnectError, DaemonError

    try:
        rv = cli.main(args, prog_name="dockyard", standalone_mode=False)
    except click.exceptions.UsageError as e:
        e.show()
        sys.exit(125)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        print(e.format_message(), file=sys.stderr)
        sys.exit(e.exit_code)
    except DaemonError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        sys.exit(1)
    except ConnectError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            os._exit(141)
    sys.exit(rv if isinstance(rv, int) else 0)

