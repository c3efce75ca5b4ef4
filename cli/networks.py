"""Network commands: ``network create|ls|inspect|rm|connect|disconnect|prune`` and ``port``."""
from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

import click

from . import complete
from .client import DaemonError


def _p(name: str) -> str:
    return quote(name, safe="")


def _err(msg: str) -> None:
    print(f"Error response from daemon: {msg}", file=sys.stderr)


class NetworkRow:
    """The formatting context of one ``network ls`` row (docker's placeholders)."""

    def __init__(self, n: dict[str, Any], trunc: bool) -> None:
        self._n = n
        self.ID = n["Id"][:12] if trunc else n["Id"]
        self.Name = n["Name"]
        self.Driver = n["Driver"]
        self.Scope = n.get("Scope", "local")
        self.IPv6 = str(bool(n.get("EnableIPv6"))).lower()
        self.Internal = str(bool(n.get("Internal"))).lower()
        self.CreatedAt = n.get("Created", "")
        self.Labels = ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items())

    def Label(self, name: str) -> str:
        return (self._n.get("Labels") or {}).get(name, "")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS"}


def _kv(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise click.BadParameter(f"invalid {what}: {v!r}")
        out[k] = val
    return out


@click.group(short_help="Manage networks")
def network() -> None:
    """Manage networks."""


@network.command("create", short_help="Create a network")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", multiple=True, help="IPv4 or IPv6 Gateway for the master subnet")
@click.option("--ip-range", "ip_range", multiple=True, help="Allocate container ip from a sub-range")
@click.option("--aux-address", "aux_address", multiple=True,
              help="Auxiliary IPv4 or IPv6 addresses used by Network driver (name=address)")
@click.option("--ipv6", is_flag=True, help="Enable or disable IPv6 networking")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.option("--ipam-opt", "ipam_opt", multiple=True, help="Set IPAM driver specific options")
@click.pass_obj
def create(opts: Any, name: str, driver: str, subnet: tuple[str, ...], gateway: tuple[str, ...],
           ip_range: tuple[str, ...], aux_address: tuple[str, ...], ipv6: bool, internal: bool,
           attachable: bool, label: tuple[str, ...], opt: tuple[str, ...],
           ipam_opt: tuple[str, ...]) -> None:
    try:
        configs = ipam_configs(subnet, gateway, ip_range, _kv(aux_address, "aux-address"))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    body = {"Name": name, "Driver": driver, "CheckDuplicate": True, "Internal": internal,
            "Attachable": attachable, "EnableIPv6": ipv6,
            "IPAM": {"Driver": "default", "Config": configs, "Options": _kv(ipam_opt, "ipam-opt")},
            "Options": _kv(opt, "option"), "Labels": _kv(label, "label")}
    try:
        res = opts.client.post_json("/networks/create", body=body)
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)
    print(res["Id"])


def ipam_configs(subnets: tuple[str, ...], gateways: tuple[str, ...], ranges: tuple[str, ...],
                 aux: dict[str, str]) -> list[dict[str, Any]]:
    """``IPAM.Config`` from the flags, as the docker CLI pairs them: each gateway, ip-range
    and auxiliary address goes with the subnet that contains it."""
    import ipaddress

    nets = [ipaddress.ip_network(s, strict=False) for s in subnets]
    configs: list[dict[str, Any]] = [{"Subnet": s} for s in subnets]

    def owner(value: str, what: str) -> dict[str, Any]:
        addr = ipaddress.ip_network(value, strict=False)
        for net, cfg in zip(nets, configs):
            if addr.version == net.version and addr.subnet_of(net):  # type: ignore[arg-type]
                return cfg
        raise ValueError(f"no matching subnet for {what} {value}")

    for gw in gateways:
        cfg = owner(gw, "gateway")
        if "Gateway" in cfg:
            raise ValueError(f"cannot configure multiple gateways ({gw}) for the same subnet")
        cfg["Gateway"] = gw
    for rng in ranges:
        cfg = owner(rng, "range")
        if "IPRange" in cfg:
            raise ValueError(f"cannot configure multiple ranges ({rng}) on the same subnet")
        cfg["IPRange"] = rng
    for key, addr in aux.items():
        owner(addr, "aux-address").setdefault("AuxiliaryAddresses", {})[key] = addr
    return configs


@network.command("ls", short_help="List networks")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.option("--format", "fmt", help="Format output using a custom template")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')")
@click.pass_obj
def ls(opts: Any, quiet: bool, no_trunc: bool, fmt: str | None, filters: tuple[str, ...]) -> None:
    from .fmt import filter_args
    params: dict[str, Any] = {}
    if filters:
        params["filters"] = json.dumps(filter_args(filters))
    nets = sorted(opts.client.get_json("/networks", params) or [], key=lambda n: n["Name"])
    rows = [NetworkRow(n, not no_trunc) for n in nets]
    if quiet and not fmt:
        sys.stdout.write("".join(r.ID + "\n" for r in rows))
        return
    from .fmt import render_list
    render_list(fmt or "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", rows, HEADERS)


@network.command("inspect", short_help="Display detailed information on one or more networks")
@click.argument("names", nargs=-1, required=True, shell_complete=complete.networks)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@click.pass_obj
def inspect(opts: Any, names: tuple[str, ...], fmt: str | None) -> None:
    results, failed = [], False
    for n in names:
        try:
            results.append(opts.client.get_json(f"/networks/{_p(n)}"))
        except DaemonError as e:
            print(f"Error: No such network: {n}" if e.status == 404 else e.message, file=sys.stderr)
            failed = True
    if fmt:
        from .fmt import render_one
        for obj in results:
            sys.stdout.write(render_one(fmt, obj) + "\n")
    else:
        sys.stdout.write(json.dumps(results, indent=4, ensure_ascii=False) + "\n")
    if failed:
        sys.exit(1)


@network.command("rm", short_help="Remove one or more networks")
@click.argument("names", nargs=-1, required=True, shell_complete=complete.networks)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@click.pass_obj
def rm(opts: Any, names: tuple[str, ...], force: bool) -> None:
    failed = False
    for n in names:
        try:
            opts.client.request("DELETE", f"/networks/{_p(n)}").read()
            print(n)
        except DaemonError as e:
            if force and e.status == 404:
                continue
            _err(e.message)
            failed = True
    if failed:
        sys.exit(1)


@network.command("connect", short_help="Connect a container to a network")
@click.argument("network_name", metavar="NETWORK", shell_complete=complete.networks)
@click.argument("container", shell_complete=complete.containers)
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)")
@click.pass_obj
def connect(opts: Any, network_name: str, container: str, alias: tuple[str, ...], ip: str | None) -> None:
    cfg: dict[str, Any] = {"Aliases": list(alias) or None}
    if ip:
        cfg["IPAMConfig"] = {"IPv4Address": ip}
    # a refusal is printed by app.run as the docker CLI does (Error response from daemon, 1)
    opts.client.post_json(f"/networks/{_p(network_name)}/connect",
                          body={"Container": container, "EndpointConfig": cfg})


@network.command("disconnect", short_help="Disconnect a container from a network")
@click.argument("network_name", metavar="NETWORK", shell_complete=complete.networks)
@click.argument("container", shell_complete=complete.containers)
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.pass_obj
def disconnect(opts: Any, network_name: str, container: str, force: bool) -> None:
    opts.client.post_json(f"/networks/{_p(network_name)}/disconnect",
                          body={"Container": container, "Force": force})


@network.command("prune", short_help="Remove all unused networks")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def prune(opts: Any, force: bool) -> None:
    if not force and not click.confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue?", default=False):
        return
    res = opts.client.post_json("/networks/prune") or {}
    deleted = res.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for n in deleted:
            print(n)


@click.command(short_help="List port mappings or a specific mapping for the container")
@click.argument("container", shell_complete=complete.running_containers)
@click.argument("private_port", metavar="[PRIVATE_PORT[/PROTO]]", required=False)
@click.pass_obj
def port(opts: Any, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    try:
        c = opts.client.get_json(f"/containers/{_p(container)}/json")
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)
    ports = (c.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        key = private_port if "/" in private_port else private_port + "/tcp"
        bindings = ports.get(key)
        if not bindings:
            _err(f"No public port '{key}' published for {container}")
            sys.exit(1)
        for b in bindings:
            print(f"{b['HostIp'] or '0.0.0.0'}:{b['HostPort']}")
        return

    def order(k: str) -> tuple[int, str]:
        p, _, proto = k.partition("/")
        return int(p), proto
    for key in sorted(ports, key=order):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp'] or '0.0.0.0'}:{b['HostPort']}")
