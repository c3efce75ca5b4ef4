"""The ``dockyard`` command: a click group whose commands are imported only when invoked."""
from __future__ import annotations

import os
import sys
from typing import Any

import click

from .client import DEFAULT_HOST

#: command name → (module under dockyard.cli, attribute)
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("system", "version"),
    "info": ("system", "info"),
    "system": ("system", "system_group"),
    "events": ("system", "events"),
    "images": ("images", "images"),
    "rmi": ("images", "rmi"),
    "import": ("images", "import_"),
    "build": ("build", "build"),
    "builder": ("build", "builder_group"),
    "pull": ("images", "pull"),
    "push": ("images", "push"),
    "tag": ("images", "tag"),
    "save": ("images", "save"),
    "load": ("images", "load"),
    "history": ("images", "history"),
    "login": ("images", "login"),
    "logout": ("images", "logout"),
    "image": ("images", "image_group"),
    "registry": ("images", "registry_group"),
    "export": ("containers", "export"),
    "create": ("containers", "create"),
    "run": ("containers", "run"),
    "start": ("containers", "start"),
    "stop": ("containers", "stop"),
    "restart": ("containers", "restart"),
    "diff": ("containers", "diff"),
    "commit": ("containers", "commit"),
    "rename": ("containers", "rename"),
    "update": ("containers", "update"),
    "cp": ("containers", "cp"),
    "volume": ("volumes", "volume_group"),
    "container": ("containers", "container_group"),
    "kill": ("containers", "kill"),
    "wait": ("containers", "wait"),
    "logs": ("containers", "logs"),
    "ps": ("containers", "ps"),
    "rm": ("containers", "rm"),
    "inspect": ("containers", "inspect"),
    "storage": ("storage", "storage"),
    "exec": ("execs", "exec_"),
    "pause": ("execs", "pause"),
    "unpause": ("execs", "unpause"),
    "top": ("execs", "top"),
    "stats": ("execs", "stats"),
    "network": ("networks", "network"),
    "port": ("networks", "port"),
    "tls": ("tls", "tls_group"),
    "bench": ("bench.command", "bench"),
    "completion": ("complete", "completion"),
    "dashboard": ("dashboard", "dashboard"),
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
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        import importlib
        mod = importlib.import_module(f"dockyard.cli.{entry[0]}")
        return getattr(mod, entry[1])


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


def _plugin_entry_points_present(group: str = "dockyard.plugins") -> bool:
    """A cheap pre-scan of installed distributions' ``entry_points.txt`` for ``[group]``.

    Importing ``importlib.metadata`` costs ~20 ms; the scan only reads small text files, and pluggy
    (which uses importlib.metadata) is loaded only when some distribution declares the group.
    """
    needle = f"[{group}]"
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(entry, name, "entry_points.txt"), encoding="utf-8") as f:
                        if needle in f.read():
                            return True
                except OSError:
                    continue
    return False


def load_plugins(group: click.Group) -> None:
    """Let ``dockyard.plugins`` plugins add commands (pluggy hook ``dockyard_add_commands``)."""
    if not _plugin_entry_points_present():
        return
    import pluggy
    from dockyard.hookspecs import spec
    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(spec)
    pm.load_setuptools_entrypoints("dockyard.plugins")
    pm.hook.dockyard_add_commands(cli=group)


def main(argv: list[str] | None = None) -> None:
    from .client import ConnectError, DaemonError

    try:
        load_plugins(cli)
    except Exception as e:  # a broken plugin must not take the CLI down
        print(f"WARNING: loading dockyard plugins failed: {e}", file=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
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


if __name__ == "__main__":
    main()
