"""The bridge driver's firewall, as one nftables script generated from the driver's model.

Tables (all named after the daemon's default bridge, so two daemons never touch each other's):

* ``ip``: IPv4 rules — published ports DNAT'ed to their endpoint (``ports_pre``/``ports_out``;
  loopback destinations are left to the daemon's userland proxy, as Docker does), masquerade of
  traffic leaving a non-internal network (``ip-masq``), isolation between networks and of
  internal networks (``forward``);
* ``ip6``: the same for networks with IPv6, when ``ip6tables`` is on (dockerd's default);
* ``bridge``: frames between two ports (veths) of one bridge whose network has ICC off
  (``icc``, or ``com.docker.network.bridge.enable_icc``), whatever their family.

The script first creates and deletes each table, so applying it replaces everything at once.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable

#: a published port: (proto, host IP, host port, container address, container port, bridge)
PortRow = tuple[str, str, int, str, int, str]


def _q(name: str) -> str:
    return '"' + name + '"'


def port_rows(ports: Iterable[dict[str, Any]], ipv4: str, ipv6: str, bridge: str) -> list[PortRow]:
    """The kernel rules' view of published ``ports`` of an endpoint with addresses ``ipv4``
    and ``ipv6``: an IPv6 host address goes to the IPv6 address (none when the endpoint has
    none: the userland proxy alone serves it), any other to the IPv4 address."""
    rows = []
    for p in ports:
        host_ip = (p.get("HostIp") or "").strip("[]")
        target = ipv6 if ":" in host_ip else ipv4
        if target:
            rows.append((p["Proto"], host_ip, int(p["HostPort"]), target, int(p["ContainerPort"]),
                         bridge))
    return rows


def _port_rules(ports: Iterable[PortRow], version: int, external: bool) -> list[str]:
    rules = []
    for proto, host_ip, host_port, ip, cport, bridge in ports:
        if ipaddress.ip_address(ip).version != version:
            continue
        cond = [f"iifname != {_q(bridge)}"] if external else []
        if host_ip and host_ip not in ("0.0.0.0", "::"):
            cond.append(f"{'ip' if version == 4 else 'ip6'} daddr {host_ip}")
        cond.append(f"{proto} dport {host_port}")
        dest = f"{ip}:{cport}" if version == 4 else f"[{ip}]:{cport}"
        rules.append("    " + " ".join(cond) + f" dnat to {dest}")
    return rules


def _family_table(table: str, version: int, nets: list[dict[str, Any]], bridges: list[str],
                  ports: list[PortRow]) -> list[str]:
    fam, saddr = ("ip", "ip saddr") if version == 4 else ("ip6", "ip6 saddr")
    loopback = "127.0.0.0/8" if version == 4 else "::1"
    subnet_key = "subnet" if version == 4 else "subnet6"
    body = [f"table {fam} {table} {{",
            f"  set bridges {{ type ifname; elements = {{ {', '.join(map(_q, bridges))} }} }}",
            "  chain ports_pre {", *_port_rules(ports, version, external=True), "  }",
            "  chain ports_out {", *_port_rules(ports, version, external=False), "  }",
            "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;",
            "    fib daddr type local jump ports_pre", "  }",
            "  chain output { type nat hook output priority -100; policy accept;",
            f"    {fam} daddr != {loopback} fib daddr type local jump ports_out", "  }",
            "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;"]
    for n in nets:
        if n["masq"] and not n["internal"] and n.get(subnet_key):
            body.append(f"    {saddr} {n[subnet_key]} oifname != {_q(n['bridge'])} masquerade")
    body += ["  }", "  chain forward { type filter hook forward priority filter; policy accept;"]
    for n in nets:
        b = _q(n["bridge"])
        if n["internal"]:
            body.append(f"    iifname {b} oifname != {b} drop")
            body.append(f"    oifname {b} iifname != {b} drop")
        body.append(f"    iifname {b} oifname != {b} oifname @bridges drop")
    body += ["  }", "}"]
    return body


def ruleset(table: str, nets: list[dict[str, Any]], ports: list[PortRow],
            members: dict[str, set[str]], ip6tables: bool) -> str:
    """The script that makes the driver's tables exactly what ``nets`` (the driver's network
    records), ``ports`` and ``members`` (bridge -> its veths) say."""
    out = [f"table {fam} {table}\ndelete table {fam} {table}" for fam in ("ip", "ip6", "bridge")]
    if not nets:
        return "\n".join(out) + "\n"
    bridges = sorted(n["bridge"] for n in nets)
    out += _family_table(table, 4, nets, bridges, ports)
    if ip6tables and any(n.get("subnet6") for n in nets):
        out += _family_table(table, 6, nets, bridges, ports)
    no_icc = [sorted(members.get(n["bridge"], ())) for n in nets if not n["icc"]]
    no_icc = [p for p in no_icc if p]
    if no_icc:
        out += [f"table bridge {table} {{",
                "  chain forward { type filter hook forward priority filter; policy accept;"]
        for p in no_icc:
            names = "{ " + ", ".join(map(_q, p)) + " }"
            out.append(f"    iifname {names} oifname {names} drop")
        out += ["  }", "}"]
    return "\n".join(out) + "\n"
