"""``dockyardd``: the daemon's command line (flags mirror dockerd's)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import ssl
import sys
from typing import Any

import click
from aiohttp import web

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import DockyardError

from .. import config as configmod
from .. import userns
from . import listeners
from . import reload as reloadmod
from .diagnostics import Diagnostics
from .lock import RootLock
from .shutdown import HANDLER_GRACE, Pidfile, Stopper
from .systemd import Systemd

log = logging.getLogger("dockyard.daemon")


@dataclasses.dataclass
class Plan:
    """What ``main`` settled before the event loop starts: where to listen, and how."""
    where: list[tuple[str, Any]]
    sslctx: ssl.SSLContext | None
    gid: int
    warnings: list[str]
    systemd: Systemd


def prepare(cfg: configmod.Config) -> tuple[Plan, RootLock]:
    """Check the listeners, TLS and socket group, then lock the data-root and exec-root before
    anything is touched: a second daemon on the same roots stops here, leaving the first one's
    socket, pidfile, bridges and rules alone."""
    where = listeners.targets(cfg["hosts"])
    sslctx = listeners.ssl_context(cfg)
    gid = listeners.socket_gid(cfg) if any(kind == "unix" for kind, _ in where) else 0
    warnings = listeners.check_access(cfg, where)
    _id_map, _user, real_root = userns.resolve(cfg["data-root"], cfg["userns-remap"])
    os.makedirs(cfg["data-root"], mode=0o711, exist_ok=True)
    lock = RootLock([real_root, cfg["exec-root"]])
    lock.acquire()
    return Plan(where, sslctx, gid, warnings, Systemd.from_environment()), lock


async def _start(runner: web.AppRunner, plan: Plan, stopper: Stopper, pidfile: Pidfile) -> None:
    await runner.setup()  # the daemon's start-up: reconcile, networks, containers
    for kind, where in plan.where:
        if kind == "fd":  # sockets systemd passed: they stay its own, never unlinked here
            await listeners.start_activated(runner, plan.systemd.sockets(where), plan.sslctx)
        elif kind == "unix":
            unix = listeners.UnixListener(runner, where, plan.gid)
            await unix.start()
            stopper.on_exit.append(unix.remove)
            log.info("API listening on %s", where)
        else:
            site: web.BaseSite = (listeners.TLSSite(runner, where[0], where[1], plan.sslctx)
                                  if plan.sslctx else web.TCPSite(runner, where[0], where[1]))
            await site.start()
            log.info("API listening on %s://%s:%d", "https" if plan.sslctx else "tcp", *where)
    pidfile.write()
    stopper.on_exit.append(pidfile.remove)


def _serve_systemd(daemon: Any, systemd: Systemd) -> None:
    """Readiness for the service manager, and SIGHUP reloads the configuration."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloadmod.on_sighup, daemon, systemd)
    systemd.ready(f"serving the Docker Engine API (storage driver {daemon.graph.name}, "
                  f"exec driver {daemon.execdriver.name})")


async def serve(cfg: configmod.Config, plan: Plan) -> None:
    from .app import Daemon  # heavy imports only once the flags are good
    from .clients import access_log

    stopper = Stopper()
    stopper.install()
    Diagnostics().install(asyncio.get_running_loop())
    for kind, where in plan.where:
        if kind == "unix":
            os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
            listeners.check_socket(where)
    daemon = Daemon(cfg)
    daemon.warnings += plan.warnings
    runner = web.AppRunner(daemon.make_app(), handle_signals=False,
                           shutdown_timeout=HANDLER_GRACE, **access_log())
    try:
        if await stopper.unless_stopped(_start(runner, plan, stopper, Pidfile(cfg["pidfile"]))):
            log.info("dockyardd ready (storage driver %s, exec driver %s)", daemon.graph.name,
                     daemon.execdriver.name)
            _serve_systemd(daemon, plan.systemd)
            await stopper.requested.wait()
            plan.systemd.stopping()
    finally:
        # work in worker threads (unpacking an archive) stops at its next chunk
        tarsafe.cancel_all()
        if runner.server is not None:
            await stopper.bounded("closing the API", runner.cleanup(), reserve=1.5)
        else:  # start-up was cut short: undo what it did
            await stopper.bounded("the daemon's shutdown", daemon.shutdown(None), reserve=1.5)
        stopper.run_exit_hooks()
        if not await stopper.finish():
            stopper.force_exit(0)
        daemon.close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config-file", default=configmod.DEFAULT_CONFIG_FILE, show_default=True,
              help="daemon configuration file (JSON, Docker's key names)")
@click.option("--data-root", help="root of persistent state [default: /var/lib/dockyard]")
@click.option("--exec-root", help="root of runtime state [default: /run/dockyard]")
@click.option("-H", "--host", "hosts", multiple=True,
              help="socket(s) to listen on: unix://PATH, tcp://ADDR:PORT, or fd:// (sockets passed by systemd) "
                   "[default: unix:///run/dockyard.sock]")
@click.option("-G", "--group", help="group of the unix socket [default: dockyard if it exists, else root]")
@click.option("--pidfile", help="write the daemon's pid to this file")
@click.option("-s", "--storage-driver", help="graph driver to use (see `dockyard info`)")
@click.option("--storage-opt", "storage_opts", multiple=True, help="graph driver option key=value")
@click.option("--exec-driver", help="exec driver to use [default: the installed one of highest priority]")
@click.option("--default-runtime", "default_runtime",
              help="dockerd's name for the default: an exec driver or a runtime of daemon.json's "
                   "\"runtimes\"")
@click.option("--exec-opt", "exec_opts", multiple=True, help="exec driver option key=value")
@click.option("-l", "--log-level", type=click.Choice(configmod.LOG_LEVELS), help="log level [default: info]")
@click.option("-D", "--debug", is_flag=True, default=None, help="debug logging")
@click.option("--tls", type=click.BOOL, is_flag=False, flag_value=True, default=None,
              help="use TLS (implied by --tlsverify); --tls=false allows plain TCP listeners")
@click.option("--tlsverify", type=click.BOOL, is_flag=False, flag_value=True, default=None,
              help="use TLS and verify clients")
@click.option("--tlscacert", help="trust certificates signed by this CA")
@click.option("--tlscert", help="TLS certificate file")
@click.option("--tlskey", help="TLS key file")
@click.option("--insecure-registry", "insecure_registries", multiple=True,
              help="registry (host:port or CIDR) reached without TLS verification, or over HTTP")
@click.option("--registry-mirror", "registry_mirrors", multiple=True,
              help="preferred Docker Hub mirror (URL)")
@click.option("-b", "--bridge", help="name of the default bridge network's bridge [default: dockyard0]")
@click.option("--bip", help="address and prefix of the default bridge, e.g. 172.17.0.1/16")
@click.option("--iptables", type=click.BOOL, default=None, help="add firewall (nftables) rules [default: true]")
@click.option("--ip-masq", "ip_masq", type=click.BOOL, default=None, help="masquerade bridge traffic leaving the host [default: true]")
@click.option("--ip-forward", "ip_forward", type=click.BOOL, default=None, help="enable net.ipv4.ip_forward [default: true]")
@click.option("--icc", type=click.BOOL, default=None, help="allow traffic between containers of a bridge [default: true]")
@click.option("--userland-proxy", "userland_proxy", type=click.BOOL, default=None, help="proxy published ports in the daemon (needed for loopback) [default: true]")
@click.option("--mtu", type=int, help="MTU of container interfaces [default: 1500]")
@click.option("--ipv6", is_flag=True, default=None, help="IPv6 on the default bridge network")
@click.option("--fixed-cidr-v6", "fixed_cidr_v6", help="IPv6 subnet of the default bridge network (with --ipv6)")
@click.option("--ip6tables", type=click.BOOL, default=None, help="add ip6 firewall (nftables) rules for IPv6 networks [default: true]")
@click.option("--dns", multiple=True, help="upstream DNS server for names the embedded DNS does not know [default: the host's resolvers]")
@click.option("--userns-remap", "userns_remap",
              help="run containers in a user namespace: default, user[:group] or uid[:gid] "
                   "(ranges from /etc/subuid and /etc/subgid)")
@click.option("--no-new-privileges", "no_new_privileges", type=click.BOOL, default=None,
              help="set no_new_privs for every container unless it opts out [default: true]")
@click.option("--cpu-rt-period", "cpu_rt_period", type=click.IntRange(min=0),
              help="real-time CPU period (microseconds) of the containers' parent cgroups "
                   "(cgroup v1) [default: the kernel's]")
@click.option("--cpu-rt-runtime", "cpu_rt_runtime", type=click.IntRange(min=-1),
              help="real-time CPU runtime (microseconds) of the containers' parent cgroups, the "
                   "budget containers' --cpu-rt-runtime share (cgroup v1) [default: none]")
@click.option("--api-read-timeout", "api_read_timeout", type=click.FloatRange(min=0, min_open=True),
              help="seconds a client may send nothing (no request, or a stalled request body) "
                   "before it is disconnected [default: 300]")
@click.option("--authorization-plugin", "authorization_plugins", multiple=True,
              help="a Docker authorization plugin asked about every request (repeatable)")
@click.version_option(package_name="dockyard", prog_name="dockyardd")
def main(config_file: str, **flags: Any) -> None:
    """dockyardd: the dockyard container engine daemon (serves the Docker Engine API)."""
    explicit = config_file != configmod.DEFAULT_CONFIG_FILE
    overrides = {
        "data-root": flags["data_root"], "exec-root": flags["exec_root"],
        "hosts": list(flags["hosts"]), "pidfile": flags["pidfile"], "group": flags["group"],
        "storage-driver": flags["storage_driver"], "storage-opts": list(flags["storage_opts"]),
        "exec-driver": flags["exec_driver"], "exec-opts": list(flags["exec_opts"]),
        "default-runtime": flags["default_runtime"],
        "log-level": flags["log_level"], "debug": flags["debug"], "tls": flags["tls"],
        "tlsverify": flags["tlsverify"], "tlscacert": flags["tlscacert"],
        "tlscert": flags["tlscert"], "tlskey": flags["tlskey"],
        "insecure-registries": list(flags["insecure_registries"]),
        "registry-mirrors": list(flags["registry_mirrors"]),
        "bridge": flags["bridge"], "bip": flags["bip"], "iptables": flags["iptables"],
        "ip-masq": flags["ip_masq"], "ip-forward": flags["ip_forward"], "icc": flags["icc"],
        "userland-proxy": flags["userland_proxy"], "mtu": flags["mtu"], "dns": list(flags["dns"]),
        "ipv6": flags["ipv6"], "fixed-cidr-v6": flags["fixed_cidr_v6"], "ip6tables": flags["ip6tables"],
        "userns-remap": flags["userns_remap"], "no-new-privileges": flags["no_new_privileges"],
        "api-read-timeout": flags["api_read_timeout"],
        "cpu-rt-period": flags["cpu_rt_period"], "cpu-rt-runtime": flags["cpu_rt_runtime"],
        "authorization-plugins": list(flags["authorization_plugins"]),
    }
    try:
        cfg = configmod.load(config_file, overrides, path_explicit=explicit)
    except DockyardError as exc:
        click.echo(f"dockyardd: {exc}", err=True)
        sys.exit(1)
    logging.basicConfig(level=reloadmod.logging_level(cfg), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(ImportError):  # it resets its logger's level when imported
        import pyroute2.config.log  # noqa: F401
    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # it logs every netlink message
    if os.geteuid() != 0:
        click.echo("dockyardd: must run as root", err=True)
        sys.exit(1)
    try:
        plan, lock = prepare(cfg)
    except DockyardError as exc:
        click.echo(f"dockyardd: {exc.message}", err=True)
        sys.exit(1)
    try:
        asyncio.run(serve(cfg, plan))
    except DockyardError as exc:
        click.echo(f"dockyardd: {exc.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        lock.release()


if __name__ == "__main__":
    main()
