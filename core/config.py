"""Daemon configuration: ``/etc/dockyard/daemon.json`` with Docker's key names, flags on top.

An unknown key, a value of the wrong type or an unknown driver name stops start-up with a message
that names it and lists the valid choices.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter

DEFAULT_CONFIG_FILE = "/etc/dockyard/daemon.json"

# key -> (type, default). Docker's names wherever Docker has one.
SCHEMA: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "data-root": (str, "/var/lib/dockyard"),
    "exec-root": (str, "/run/dockyard"),
    "pidfile": (str, ""),
    "hosts": (list, ["unix:///run/dockyard.sock"]),
    # the unix socket's group (dockerd's -G); "": dockyard if that group exists, else root
    "group": (str, ""),
    "tls": (bool, False),
    "tlsverify": (bool, False),
    "tlscacert": (str, ""),
    "tlscert": (str, ""),
    "tlskey": (str, ""),
    "storage-driver": (str, ""),
    "storage-opts": (list, []),
    "exec-driver": (str, ""),
    "exec-opts": (list, []),
    # dockerd's: more OCI runtimes by path, {"name": {"path": ..., "runtimeArgs": [...]}}
    "runtimes": (dict, {}),
    # dockerd's name for the default: an exec driver, or an entry of "runtimes"
    "default-runtime": (str, ""),
    "log-level": (str, "info"),
    "debug": (bool, False),
    "log-driver": (str, "json-file"),
    "log-opts": (dict, {}),
    "insecure-registries": (list, []),
    "registry-mirrors": (list, []),
    "bridge": (str, "dockyard0"),
    "bip": (str, ""),
    "default-address-pools": (list, []),
    "iptables": (bool, True),
    "ip-masq": (bool, True),
    "ip-forward": (bool, True),
    "icc": (bool, True),
    "userland-proxy": (bool, True),
    "mtu": (int, 1500),
    "dns": (list, []),
    # IPv6 on the default bridge (its subnet: fixed-cidr-v6, else one from the pools)
    "ipv6": (bool, False),
    "fixed-cidr-v6": (str, ""),
    # ip6 nftables rules for IPv6 networks (isolation, published ports, masquerade)
    "ip6tables": (bool, True),
    "live-restore": (bool, True),
    "userns-remap": (str, ""),
    # stricter than dockerd's false: setuid programs gain nothing unless a container asks
    # (--security-opt no-new-privileges=false)
    "no-new-privileges": (bool, True),
    "default-ulimits": (dict, {}),
    # the real-time CPU budget (microseconds) given to the containers' parent cgroups (0: none)
    "cpu-rt-period": (int, 0),
    "cpu-rt-runtime": (int, 0),
    "labels": (list, []),
    # dockyard's own: how far one archive (layer, build context, cp) may unpack; 0 turns a
    # limit off (the free space of the target file system always bounds it)
    "max-unpack-size": (int, 256 << 30),
    "max-unpack-ratio": (int, 1000),
    # seconds a client may send nothing: before its first request, between requests, or in
    # the middle of a request body (dockyard's own; dockerd waits 5 minutes for headers)
    "api-read-timeout": ((int, float), 300),
    # dockyard's own: how many build stages may build at once (0: the CPU count plus two,
    # as ninja's jobs; 3 on two CPUs)
    "max-build-parallelism": (int, 0),
    "disabled-plugins": (list, []),
    # Docker authorization plugins (``authz``), asked in this order about every request
    "authorization-plugins": (list, []),
    # dockyard's own: where Docker's out-of-process plugins (*.sock, *.spec, *.json) are found,
    # in order (dockerd's fixed places by default)
    "docker-plugin-dirs": (list, ["/run/docker/plugins", "/etc/docker/plugins",
                                  "/usr/lib/docker/plugins"]),
    "required-plugins": (list, []),
}
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
LOG_DRIVERS = ("json-file",)


@dataclasses.dataclass
class Config:
    values: dict[str, Any]
    source: str | None = None
    #: the keys given in the file or as flags (``--tls=false`` differs from no ``--tls``)
    explicit: frozenset[str] = frozenset()
    #: how it was loaded, so that a reload (SIGHUP) reads the same file with the same flags on top
    path: str | None = None
    path_explicit: bool = False
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def reread(self) -> "Config":
        """The configuration as it would be loaded now: the same file, the same flags."""
        return load(self.path, self.overrides, path_explicit=self.path_explicit)

    def storage_opts(self) -> dict[str, str]:
        return parse_opts(self.values["storage-opts"], "storage-opts")

    def exec_opts(self) -> dict[str, str]:
        return parse_opts(self.values["exec-opts"], "exec-opts")


def parse_opts(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise InvalidParameter(f"invalid {what} value {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _check_type(key: str, value: Any, want: type | tuple[type, ...], where: str) -> Any:
    if want is int and isinstance(value, bool):
        raise InvalidParameter(f"{where}: {key!r} must be an integer, not {value!r}")
    if want is list and isinstance(value, str):
        return [value]
    if not isinstance(value, want):
        names = want.__name__ if isinstance(want, type) else "/".join(t.__name__ for t in want)
        raise InvalidParameter(f"{where}: {key!r} must be {names}, not {json.dumps(value)}")
    return value


def load(path: str | None, overrides: dict[str, Any], *, path_explicit: bool = False) -> Config:
    """Read ``path`` (a missing default file is fine; a missing explicit one is an error), check
    every key and type, then apply ``overrides`` (flags given on the command line)."""
    values = {k: (list(d) if isinstance(d, list) else dict(d) if isinstance(d, dict) else d)
              for k, (_, d) in SCHEMA.items()}
    source = None
    explicit: set[str] = set()
    if path and (path_explicit or os.path.exists(path)):
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise InvalidParameter(f"config file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise InvalidParameter(f"config file {path} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidParameter(f"config file {path} must hold a JSON object")
        unknown = sorted(set(raw) - set(SCHEMA))
        if unknown:
            raise InvalidParameter(
                f"{path}: unknown configuration key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(sorted(SCHEMA))}")
        for key, value in raw.items():
            values[key] = _check_type(key, value, SCHEMA[key][0], path)
        explicit.update(raw)
        both = sorted(k for k in raw if overrides.get(k) not in (None, [], ()))
        if both:
            raise InvalidParameter(
                f"the following directives are specified both as a flag and in the configuration "
                f"file {path}: {', '.join(both)}")
        source = path
    for key, value in overrides.items():
        if value in (None, [], ()):
            continue
        if key not in SCHEMA:
            raise InvalidParameter(f"unknown configuration key {key!r}")
        values[key] = _check_type(key, value, SCHEMA[key][0], "flag")
        explicit.add(key)
    if values["debug"]:
        values["log-level"] = "debug"
    if values["log-level"] not in LOG_LEVELS:
        raise InvalidParameter(f"invalid log-level {values['log-level']!r}; valid choices: "
                               + ", ".join(LOG_LEVELS))
    if values["log-driver"] not in LOG_DRIVERS:
        raise InvalidParameter(f"invalid log-driver {values['log-driver']!r}; valid choices: "
                               + ", ".join(LOG_DRIVERS))
    for key in ("max-unpack-size", "max-unpack-ratio", "max-build-parallelism"):
        if values[key] < 0:
            raise InvalidParameter(f"{key} must be 0 (no limit; for max-build-parallelism: the "
                                   f"default bound) or a positive integer, not {values[key]}")
    for key, low in (("cpu-rt-period", 0), ("cpu-rt-runtime", -1)):
        if values[key] < low:
            raise InvalidParameter(f"{key} must be {low} or more, not {values[key]}")
    for key in ("data-root", "exec-root"):
        if not os.path.isabs(values[key]):
            raise InvalidParameter(f"{key} must be an absolute path, not {values[key]!r}")
    if isinstance(values["api-read-timeout"], bool) or values["api-read-timeout"] <= 0:
        raise InvalidParameter(f"api-read-timeout must be a positive number of seconds, not "
                               f"{values['api-read-timeout']!r}")
    if values["exec-driver"] and values["default-runtime"] and \
            values["exec-driver"] != values["default-runtime"]:
        raise InvalidParameter(f"exec-driver {values['exec-driver']!r} and default-runtime "
                               f"{values['default-runtime']!r} name different defaults: give one")
    parse_opts(values["storage-opts"], "storage-opts")
    parse_opts(values["exec-opts"], "exec-opts")
    return Config(values, source, frozenset(explicit), path=path, path_explicit=path_explicit,
                  overrides=dict(overrides))
