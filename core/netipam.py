"""A network's address configuration: the ``IPAM.Config`` of ``POST /networks/create`` (and of
the predefined network, from daemon.json) checked and completed as dockerd does, and the
``EndpointSettings`` a container asks for on a network checked against it.

A network has at most one IPv4 and, when IPv6 is enabled (``EnableIPv6``; ``ipv6`` in
daemon.json for the default bridge), one IPv6 subnet. Each entry of ``IPAM.Config`` is
``{"Subnet", "Gateway", "IPRange"?, "AuxiliaryAddresses"?}``: a missing subnet is taken from
``default-address-pools`` (for IPv6, when no IPv6 pool is configured, from a ULA /48 derived from
the daemon's ID, as dockerd derives one from its host ID), a missing gateway is the subnet's first
address; ``IPRange`` is where dynamic addresses come from; auxiliary addresses are never handed
out.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable

from dockyard.hookspecs.errors import Forbidden, InvalidParameter

from . import ipam as ipammod

Config = dict[str, Any]


def _addr(value: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {value!r}: not an IP address") from None


def _check_in(addr: Any, subnet: ipammod.Network, what: str) -> None:
    if addr.version != subnet.version:
        raise InvalidParameter(f"invalid {what} {addr}: parent subnet is an IPv{subnet.version} block")
    if addr not in subnet:
        raise InvalidParameter(f"invalid {what} {addr}: it is not in subnet {subnet}")
    if addr == subnet.network_address:
        raise InvalidParameter(f"invalid {what} {addr}: it is the subnet's network address")
    if subnet.version == 4 and addr == subnet.broadcast_address:
        raise InvalidParameter(f"invalid {what} {addr}: it is the subnet's broadcast address")


def _ip_range(value: str, subnet: ipammod.Network) -> str:
    try:
        rng = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid ip-range {value!r}") from None
    if rng.version != subnet.version:
        raise InvalidParameter(f"invalid ip-range {value}: parent subnet is an IPv{subnet.version} block")
    if ipaddress.ip_interface(value).ip != rng.network_address:
        raise InvalidParameter(f"invalid ip-range {value}: it should be {rng}")
    if rng.prefixlen < subnet.prefixlen:
        raise InvalidParameter(f"invalid ip-range {value}: CIDR block is bigger than its parent "
                               f"subnet {subnet}")
    if not rng.subnet_of(subnet):  # type: ignore[arg-type]
        raise InvalidParameter(f"invalid ip-range {value}: parent subnet {subnet} doesn't contain "
                               f"ip-range")
    return str(rng)


def complete(entry: Config, subnet: ipammod.Network) -> Config:
    """One ``IPAM.Config`` entry on ``subnet``, checked, with its gateway chosen."""
    out: Config = {"Subnet": str(subnet)}
    gw = entry.get("Gateway")
    if gw:
        addr = _addr(gw, "gateway")
        _check_in(addr, subnet, "gateway")
        out["Gateway"] = str(addr)
    else:
        out["Gateway"] = str(next(subnet.hosts()))
    if entry.get("IPRange"):
        out["IPRange"] = _ip_range(entry["IPRange"], subnet)
    aux = entry.get("AuxiliaryAddresses") or {}
    if aux:
        shown = {}
        for name, value in aux.items():
            addr = _addr(value, f"auxiliary address {name}:")
            _check_in(addr, subnet, "auxiliary address")
            if str(addr) == out["Gateway"]:
                raise InvalidParameter(f"invalid auxiliary address {name}: {addr} is the gateway")
            shown[name] = str(addr)
        out["AuxiliaryAddresses"] = shown
    return out


#: the bridge driver option that turns IPv6 on, as ``EnableIPv6`` does (compose files use it)
ENABLE_IPV6_OPTION = "com.docker.network.enable_ipv6"
_GO_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
             **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}


def wants_ipv6(body: dict[str, Any]) -> bool:
    """A network-create body's IPv6 switch: ``EnableIPv6``, or the driver option
    ``com.docker.network.enable_ipv6`` (a Go boolean), which dockerd honours the same way."""
    option = (body.get("Options") or {}).get(ENABLE_IPV6_OPTION)
    if option is None:
        return bool(body.get("EnableIPv6"))
    if option not in _GO_BOOLS:
        raise InvalidParameter(f"invalid value {option!r} for option {ENABLE_IPV6_OPTION}: "
                               f"a boolean is expected")
    return bool(body.get("EnableIPv6")) or _GO_BOOLS[option]


def network_config(wanted: list[Config], ipv6: bool, pools: list[Config], seed: str,
                   taken: Iterable[ipammod.Network], check_overlap: bool = True) -> list[Config]:
    """The ``IPAM.Config`` of a new network: ``wanted`` (the request's entries) checked, at
    most one per IP version, and a subnet picked from ``pools`` for each version that has
    none (IPv6 only when ``ipv6``). Overlapping ``taken`` (other networks, host routes) is
    refused for a given subnet (unless not ``check_overlap``), avoided for a picked one."""
    taken = list(taken)
    by_version: dict[int, Config] = {}
    for entry in wanted or []:
        entry = dict(entry or {})
        if not entry.get("Subnet"):
            if entry.get("Gateway") or entry.get("IPRange") or entry.get("AuxiliaryAddresses"):
                raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
            continue
        subnet = ipammod.parse_subnet(entry["Subnet"], ipv6=ipv6)
        if subnet.version in by_version:
            raise InvalidParameter(f"only one IPv{subnet.version} subnet per network is supported "
                                   f"by this engine (got {by_version[subnet.version]['Subnet']} "
                                   f"and {subnet})")
        for other in taken if check_overlap else ():
            if subnet.overlaps(other):
                raise Forbidden(f"Pool overlaps with other one on this address space "
                                f"({subnet} overlaps {other})")
        by_version[subnet.version] = complete(entry, subnet)
    for version in (4, 6) if ipv6 else (4,):
        if version not in by_version:
            by_version[version] = complete({}, pick(version, pools, seed, taken))
    return [by_version[v] for v in sorted(by_version)]


def pick(version: int, pools: list[Config], seed: str, taken: Iterable[ipammod.Network]) -> ipammod.Network:
    """A free subnet of IP ``version`` from ``pools`` (dockerd's defaults when none is
    configured for that version: the 172.17/12 and 192.168/16 pools, or a ULA /48)."""
    mine = [p for p in pools or [] if ipaddress.ip_network(p["base"], strict=False).version == version]
    if not mine and version == 6:
        mine = [ipammod.ula_pool(seed)]
    return ipammod.pick_subnet(mine, taken, version)


def by_version(net: dict[str, Any], version: int) -> Config:
    """The network's ``IPAM.Config`` entry of IP ``version`` (``{}`` when it has none)."""
    for cfg in net["IPAM"].get("Config") or []:
        if cfg.get("Subnet") and ipaddress.ip_network(cfg["Subnet"], strict=False).version == version:
            return cfg
    return {}


def check_endpoint(net: dict[str, Any], cfg: dict[str, Any] | None, user_defined: bool,
                   addressed: bool = True) -> None:
    """An ``EndpointSettings`` for ``net`` as dockerd's ``validateEndpointSettings``: static
    addresses and aliases only on user-defined networks, each address in the network's subnet
    of its version, link-local addresses and the MAC address well formed; no address nor MAC
    address at all on a network whose driver gives none (``addressed``: host, none)."""
    cfg = cfg or {}
    ipam = cfg.get("IPAMConfig") or {}
    if not addressed:
        if cfg.get("MacAddress"):
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        if ipam.get("IPv4Address") or ipam.get("IPv6Address") or ipam.get("LinkLocalIPs"):
            raise InvalidParameter(f"user specified IP address is supported on user defined "
                                   f"networks only (network {net['Name']})")
    errs = []
    v4, v6 = ipam.get("IPv4Address") or "", ipam.get("IPv6Address") or ""
    if (v4 or v6) and not user_defined:
        errs.append("user specified IP address is supported on user defined networks only")
    if cfg.get("Aliases") and not user_defined:
        errs.append("network-scoped aliases are only supported for user-defined networks")
    for value, version in ((v4, 4), (v6, 6)):
        if not value:
            continue
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            addr = None
        if addr is None or addr.version != version or addr.is_unspecified:
            errs.append(f"invalid IPv{version} address: {value}")
            continue
        if user_defined and (net["IPAM"].get("Config") or []):
            subnet = by_version(net, version).get("Subnet")
            if not subnet or addr not in ipaddress.ip_network(subnet):
                errs.append(f"no configured subnet contains IP address {value}")
    for value in ipam.get("LinkLocalIPs") or []:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            addr = None
        if addr is None or addr.is_unspecified:
            errs.append(f"invalid link-local IP address: {value}")
    if cfg.get("MacAddress"):
        try:
            normal_mac(cfg["MacAddress"])
        except InvalidParameter as e:
            errs.append(e.message)
    try:
        endpoint_sysctls(cfg.get("DriverOpts"), "eth0")
    except InvalidParameter as e:
        errs.append(e.message)
    if errs:
        raise InvalidParameter("invalid endpoint settings:\n" + "\n".join(errs))


def normal_mac(mac: str) -> str:
    """A 48-bit MAC address as ``aa:bb:cc:dd:ee:ff``; InvalidParameter if it is not one (Go's
    ``net.ParseMAC`` also takes ``-`` separators)."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise InvalidParameter(f"invalid MAC address {mac!r}")
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        raise InvalidParameter(f"invalid MAC address {mac!r}") from None
    if octets[0] & 1:
        raise InvalidParameter(f"invalid MAC address {mac!r}: a multicast address")
    return ":".join(f"{o:02x}" for o in octets)


def predefined_wanted(config: Any, current: list[Config]) -> tuple[list[Config], bool]:
    """What the daemon's configuration asks of the predefined network's addresses: ``bip``
    (else the IPv4 subnet it has), and with ``ipv6`` ``fixed-cidr-v6`` (else the IPv6 subnet it
    has); a missing one is picked from the pools. Returns (wanted entries, IPv6 on)."""
    wanted = []
    bip = config.get("bip") or ""
    if bip:
        iface = ipaddress.ip_interface(bip)
        if iface.network.prefixlen > ipammod.MAX_PREFIX[iface.version]:
            raise InvalidParameter(f"bip {bip} is too small a network")
        gw = str(iface.ip) if iface.ip != iface.network.network_address else ""
        wanted.append({"Subnet": str(iface.network), "Gateway": gw})
    else:
        wanted += [c for c in current if ipaddress.ip_network(c["Subnet"]).version == 4]
    ipv6 = bool(config.get("ipv6"))
    if ipv6:
        fixed = config.get("fixed-cidr-v6") or ""
        wanted += [{"Subnet": fixed}] if fixed else \
            [c for c in current if ipaddress.ip_network(c["Subnet"]).version == 6]
    elif config.get("fixed-cidr-v6"):
        raise InvalidParameter("fixed-cidr-v6 is given but ipv6 is not enabled (ipv6: true)")
    return wanted, ipv6


def allocate(ipam: ipammod.Ipam, net: dict[str, Any], owner: str, wanted: dict[str, Any],
             opts: dict[str, Any]) -> list[str]:
    """``owner``'s addresses on ``net`` from ``ipam``, one per IP version the network has (the
    requested ones, else from its ip-range, never its gateway or auxiliary addresses), written
    into the network driver's endpoint ``opts`` (``Address``/``IPv6Address``...)."""
    out: list[str] = []
    try:
        for version, key, prefix in ((4, "IPv4Address", ""), (6, "IPv6Address", "IPv6")):
            pool = by_version(net, version)
            if not pool:
                continue
            address = ipam.allocate(net["Id"], pool["Subnet"], owner, wanted.get(key) or "",
                                    gateway=pool.get("Gateway") or "", pool=pool.get("IPRange") or "",
                                    reserved=(pool.get("AuxiliaryAddresses") or {}).values())
            out.append(address)
            opts.update({prefix + "Address": address, prefix + "Gateway": pool.get("Gateway") or "",
                         prefix + "PrefixLen": ipaddress.ip_network(pool["Subnet"]).prefixlen})
    except BaseException:
        for address in out:
            ipam.release(net["Id"], address)
        raise
    if wanted.get("LinkLocalIPs"):
        opts["LinkLocalIPs"] = list(wanted["LinkLocalIPs"])
    return out


#: the endpoint driver option dockerd reads itself, whatever the network driver
OPT_SYSCTLS = "com.docker.network.endpoint.sysctls"


def endpoint_sysctls(driver_opts: dict[str, str] | None, interface: str) -> list[tuple[str, str]]:
    """The interface sysctls of an endpoint's ``com.docker.network.endpoint.sysctls`` driver
    option (``net.ipv4.conf.IFNAME.forwarding=1,...``) as (``/proc/sys`` path, value) for
    ``interface``; InvalidParameter, in dockerd's words, for one it does not take."""
    out = []
    text = (driver_opts or {}).get(OPT_SYSCTLS) or ""
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        parts = key.split(".", 4)
        if not sep or len(parts) != 5 or parts[0] != "net" or parts[1] not in ("ipv4", "ipv6", "mpls") \
                or parts[3] not in ("IFNAME", "ifname") or "/" in key or ".." in key:
            raise InvalidParameter(f"unrecognised network interface sysctl '{item}'; represent "
                                   f"'net.X.Y.ethN.Z=V' as 'net.X.Y.IFNAME.Z=V', 'X' must be "
                                   f"'ipv4', 'ipv6' or 'mpls'")
        parts[3] = interface
        out.append(("/proc/sys/" + "/".join(parts), value))
    return out


def apply_sysctls(settings: list[tuple[str, str]]) -> None:
    """Write ``settings`` (from :func:`endpoint_sysctls`), in the calling thread's network
    namespace."""
    for path, value in settings:
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise InvalidParameter(f"setting sysctl {path[len('/proc/sys/'):].replace('/', '.')}="
                                   f"{value}: {e.strerror}") from None
