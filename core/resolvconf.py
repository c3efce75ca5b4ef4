"""The host's resolver configuration, as dockerd reads it for containers.

The embedded DNS forwards names it does not know to the host's name servers (those of
``/etc/resolv.conf``, read again whenever the file changes), from the daemon's own network
namespace, so loopback resolvers such as systemd-resolved's ``127.0.0.53`` work too; a
container's ``resolv.conf`` gets the host's ``search`` and ``options`` lines unless it has its
own (``--dns-search``, ``--dns-option``).

``DOCKYARD_HOST_RESOLV_CONF`` (in the daemon's environment) names another file to read instead:
the test suite points it at a file naming its own responder, so that no query of a test ever
leaves the machine.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os

log = logging.getLogger(__name__)

ENV = "DOCKYARD_HOST_RESOLV_CONF"
DEFAULT_PATH = "/etc/resolv.conf"


@dataclasses.dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def path() -> str:
    return os.environ.get(ENV) or DEFAULT_PATH


def parse(text: str) -> ResolvConf:
    """``nameserver``, ``search``/``domain`` and ``options`` lines (the last ``search`` or
    ``domain`` wins, as in resolv.conf(5)); nameservers that are not IP addresses are skipped."""
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, args = words[0], words[1:]
        if key == "nameserver" and args:
            addr = args[0].split("%", 1)[0]  # fe80::1%eth0: the zone names a host interface
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                continue
            if args[0] not in servers:
                servers.append(args[0])
        elif key in ("search", "domain"):
            search = args
        elif key == "options":
            options += args
    return ResolvConf(tuple(servers), tuple(search), tuple(options))


class HostResolvConf:
    """The host's resolv.conf at :func:`path`, parsed again when the file changes."""

    def __init__(self, file: str | None = None) -> None:
        self.file = file or path()
        self._stamp: tuple[int, int, int] | None = None
        self._value = ResolvConf()

    def text(self) -> str:
        try:
            with open(self.file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def get(self) -> ResolvConf:
        try:
            st = os.stat(self.file)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self._value = parse(self.text()) if stamp else ResolvConf()
            log.debug("host resolvers (%s): %s", self.file, ", ".join(self._value.nameservers) or "none")
        return self._value
