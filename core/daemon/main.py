"""``dockyardd``: the daemon's command line (flags mirror dockerd's)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
from typing import Any
from urllib.parse import urlparse

import click
from aiohttp import web

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import DockyardError

from .. import config as configmod
from . import reload as reloadmod
from .systemd import Systemd

log = logging.getLogger("dockyard.daemon")


def _listen_targets(hosts: list[str]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for h in hosts:
        if h.startswith("unix://"):
            out.append(("unix", h[len("unix://"):] or "/run/dockyard.sock"))
        elif h.startswith("tcp://"):
            u = urlparse(h)
            if not u.hostname or not u.port:
                raise DockyardError(f"invalid host {h!r}: expected tcp://ADDRESS:PORT")
            out.append(("tcp", (u.hostname, u.port)))
        elif h.startswith("fd://"):
            out.append(("fd", h[len("fd://"):]))
        else:
            raise DockyardError(f"invalid host {h!r}: expected unix://PATH, tcp://ADDRESS:PORT or fd://")
    return out


def _check_socket(path: str) -> None:
    if not os.path.exists(path):
        return
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except OSError:
        os.unlink(path)  # stale socket of a dead daemon
    else:
        raise DockyardError(f"another daemon is already listening on {path}")
    finally:
        s.close()


def _ssl_context(cfg: configmod.Config) -> ssl.SSLContext | None:
    if not (cfg["tls"] or cfg["tlsverify"]):
        return None
    if not cfg["tlscert"] or not cfg["tlskey"]:
        raise DockyardError("--tls/--tlsverify need --tlscert and --tlskey")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg["tlscert"], cfg["tlskey"])
    if cfg["tlsverify"]:
        if not cfg["tlscacert"]:
            raise DockyardError("--tlsverify needs --tlscacert")
        ctx.load_verify_locations(cfg["tlscacert"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def _start_activated(runner: web.AppRunner, sockets: list[socket.socket],
                           sslctx: ssl.SSLContext | None) -> None:
    """``-H fd://[SPEC]``: serve the listening sockets systemd passed (they stay systemd's: the
    daemon never unlinks their paths). TLS applies to inherited TCP sockets as to ``tcp://``."""
    for sock in sockets:
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        site = web.SockSite(runner, sock, ssl_context=sslctx if tcp else None)
        await site.start()
        where = sock.getsockname()
        where = f"tcp://{where[0]}:{where[1]}" if tcp else where
        log.info("API listening on %s (fd %d, socket activation)", where, sock.fileno())


def _serve_systemd(daemon: Any, systemd: Systemd) -> None:
    """Readiness for the service manager, and SIGHUP reloads the configuration."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloadmod.on_sighup, daemon, systemd)
    systemd.ready(f"serving the Docker Engine API (storage driver {daemon.graph.name}, "
                  f"exec driver {daemon.execdriver.name})")


async def serve(cfg: configmod.Config) -> None:
    from .app import Daemon  # heavy imports only once the flags are good
    from .clients import access_log

    targets = _listen_targets(cfg["hosts"])
    systemd = Systemd.from_environment()
    inherited = {where: systemd.sockets(where) for kind, where in targets if kind == "fd"}
    sslctx = _ssl_context(cfg)
    daemon = Daemon(cfg)
    app = daemon.make_app()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, **access_log())
    await runner.setup()
    sites = []
    try:
        for kind, where in targets:
            if kind == "fd":
                await _start_activated(runner, inherited[where], sslctx)
                continue
            if kind == "unix":
                os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
                _check_socket(where)
                site: web.BaseSite = web.UnixSite(runner, where)
                await site.start()
                os.chmod(where, 0o660)
            else:
                if sslctx is None and where[0] not in ("127.0.0.1", "localhost", "::1"):
                    log.warning("listening on tcp://%s:%d without TLS: anyone who can reach it "
                                "controls this host", *where)
                site = web.TCPSite(runner, where[0], where[1], ssl_context=sslctx)
                await site.start()
            sites.append((kind, where))
            log.info("API listening on %s", where if kind == "unix" else f"tcp://{where[0]}:{where[1]}")
        if cfg["pidfile"]:
            os.makedirs(os.path.dirname(cfg["pidfile"]) or ".", exist_ok=True)
            with open(cfg["pidfile"], "w") as f:
                f.write(f"{os.getpid()}\n")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("dockyardd ready (storage driver %s, exec driver %s)", daemon.graph.name,
                 daemon.execdriver.name)
        _serve_systemd(daemon, systemd)
        await stop.wait()
        log.info("shutting down")
        systemd.stopping()
    finally:
        # work in worker threads (unpacking an archive) stops at its next chunk: asyncio.run
        # waits for those threads before the process can exit
        tarsafe.cancel_all()
        await runner.cleanup()
        for kind, where in sites:
            if kind == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(where)
        if cfg["pidfile"]:
            with contextlib.suppress(OSError):
                os.unlink(cfg["pidfile"])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config-file", default=configmod.DEFAULT_CONFIG_FILE, show_default=True,
              help="daemon configuration file (JSON, Docker's key names)")
@click.option("--data-root", help="root of persistent state [default: /var/lib/dockyard]")
@click.option("--exec-root", help="root of runtime state [default: /run/dockyard]")
@click.option("-H", "--host", "hosts", multiple=True,
              help="socket(s) to listen on: unix://PATH, tcp://ADDR:PORT, or fd:// (sockets passed by systemd) "
                   "[default: unix:///run/dockyard.sock]")
@click.option("--pidfile", help="write the daemon's pid to this file")
@click.option("-s", "--storage-driver", help="graph driver to use (see `dockyard info`)")
@click.option("--storage-opt", "storage_opts", multiple=True, help="graph driver option key=value")
@click.option("--exec-driver", help="exec driver to use [default: the installed one of highest priority]")
@click.option("--exec-opt", "exec_opts", multiple=True, help="exec driver option key=value")
@click.option("-l", "--log-level", type=click.Choice(configmod.LOG_LEVELS), help="log level [default: info]")
@click.option("-D", "--debug", is_flag=True, default=None, help="debug logging")
@click.option("--tls", is_flag=True, default=None, help="use TLS (implied by --tlsverify)")
@click.option("--tlsverify", is_flag=True, default=None, help="use TLS and verify clients")
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
@click.option("--api-read-timeout", "api_read_timeout", type=click.FloatRange(min=0, min_open=True),
              help="seconds a client may send nothing (no request, or a stalled request body) "
                   "before it is disconnected [default: 300]")
@click.version_option(package_name="dockyard", prog_name="dockyardd")
def main(config_file: str, **flags: Any) -> None:
    """dockyardd: the dockyard container engine daemon (serves the Docker Engine API)."""
    explicit = config_file != configmod.DEFAULT_CONFIG_FILE
    overrides = {
        "data-root": flags["data_root"], "exec-root": flags["exec_root"],
        "hosts": list(flags["hosts"]), "pidfile": flags["pidfile"],
        "storage-driver": flags["storage_driver"], "storage-opts": list(flags["storage_opts"]),
        "exec-driver": flags["exec_driver"], "exec-opts": list(flags["exec_opts"]),
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
        asyncio.run(serve(cfg))
    except DockyardError as exc:
        msg = exc.message
        click.echo(f"dockyardd: {msg}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
