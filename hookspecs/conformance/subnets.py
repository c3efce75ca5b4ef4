"""Free IPv4 subnets for test and benchmark networks (no pytest needed: the ``dockyard bench``
command uses it too)."""
from __future__ import annotations

import contextlib
import ipaddress
import random
import subprocess


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no route of the host, in any table (so that parallel
    runs and the host's own networks never share addresses)."""
    out = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    taken = []
    for line in out.splitlines():
        for word in line.split()[:2]:
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(word, strict=False))
                break
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{random.randint(128, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free 10.x.y.0/24 subnet on this host")
