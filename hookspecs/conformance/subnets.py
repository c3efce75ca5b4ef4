"""Free IPv4 subnets and ULA IPv6 prefixes for test and benchmark networks (no pytest needed:
the ``dockyard bench`` command uses it too)."""
from __future__ import annotations

import contextlib
import ipaddress
import random
import subprocess
from typing import Any


def _host_destinations(version: int) -> list[Any]:
    """The destinations of the host's routes of IP ``version``, in any table (default routes
    left out)."""
    out = subprocess.run(["ip", f"-{version}", "-o", "route", "show", "table", "all"],
                         capture_output=True, text=True).stdout
    taken = []
    for line in out.splitlines():
        for word in line.split()[:2]:
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(word, strict=False))
                break
    return [t for t in taken if t.prefixlen > 0]


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no route of the host, in any table (so that parallel
    runs and the host's own networks never share addresses)."""
    taken = _host_destinations(4)
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{random.randint(128, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free 10.x.y.0/24 subnet on this host")


def free_subnet6() -> ipaddress.IPv6Network:
    """A random ULA /64 (fd00::/8 with a random 40-bit global ID) that no route of the host
    overlaps."""
    taken = _host_destinations(6)
    for _ in range(1000):
        net = ipaddress.ip_network(f"fd{random.randint(0, 255):02x}:{random.randint(0, 0xffff):x}:"
                                   f"{random.randint(0, 0xffff):x}:1::/64")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free IPv6 ULA /64 on this host")
