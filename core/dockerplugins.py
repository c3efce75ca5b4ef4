"""Docker's legacy out-of-process plugins: discovery, activation and calls.

A plugin is a process serving HTTP (JSON bodies, every call a ``POST``) on a unix socket or a
TCP address, found by name in plugin directories as dockerd finds it (moby ``pkg/plugins``):

- ``<dir>/<name>.sock`` or ``<dir>/<name>/<name>.sock`` — a unix socket;
- ``<dir>/<name>.spec`` (or in ``<dir>/<name>/``) — one line, the plugin's URL
  (``unix:///path`` or ``tcp://host:port``);
- ``<dir>/<name>.json`` — ``{"Name": ..., "Addr": URL}``.

dockerd looks in ``/run/docker/plugins``, then ``/etc/docker/plugins`` and
``/usr/lib/docker/plugins``; dockyard's ``docker-plugin-dirs`` (daemon.json) names the
directories, in that order by default. Before its first use a plugin is activated with
``POST /Plugin.Activate`` (answer ``{"Implements": ["VolumeDriver", ...]}``), retried with a
growing back-off while the plugin is not up yet, as dockerd retries it.

Calls are blocking (``http.client``): the daemon makes them from worker threads.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from typing import Any, Callable

from dockyard.hookspecs.errors import DockyardError, InvalidParameter, NotFound

log = logging.getLogger(__name__)

DEFAULT_DIRS = ["/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins"]
#: the media type dockerd sends and plugins answer with
MIMETYPE = "application/vnd.docker.plugins.v1.2+json"
#: dockerd's budget for reaching a plugin (activation and each call), in seconds
CALL_TIMEOUT = 30.0


class PluginError(DockyardError):
    """A plugin answered with an error (its ``Err``) or could not be reached; ``http_status``
    is the status the plugin answered (0 when it answered none, or 200 with an ``Err``)."""

    def __init__(self, message: str = "", http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Plugin:
    """One plugin by name and address; :meth:`call` posts a method and decodes the answer."""

    def __init__(self, name: str, addr: str, source: str, timeout: float = CALL_TIMEOUT) -> None:
        self.name = name
        self.addr = addr
        self.source = source  # the file it was found by
        self.timeout = timeout
        self.implements: list[str] | None = None
        self._lock = threading.Lock()
        url = urllib.parse.urlsplit(addr)
        self._connect: Callable[[], http.client.HTTPConnection]
        if url.scheme == "unix":
            self._connect = lambda: _UnixConnection(url.path, self.timeout)
        elif url.scheme in ("tcp", "http"):
            hostname, port = url.hostname, url.port
            if not hostname or not port:
                raise InvalidParameter(f"plugin {name}: address {addr!r} needs a host and a port")
            self._connect = lambda: http.client.HTTPConnection(hostname, port, timeout=self.timeout)
        else:
            raise InvalidParameter(f"plugin {name}: unsupported address {addr!r} in {source}; "
                                   "use unix:///path or tcp://host:port")

    def _post(self, method: str, body: Any) -> tuple[int, bytes]:
        conn = self._connect()
        try:
            data = json.dumps(body if body is not None else {}).encode()
            conn.request("POST", "/" + method, body=data,
                         headers={"Accept": MIMETYPE, "Content-Type": MIMETYPE})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def activate(self, retry: bool = True) -> list[str]:
        """``/Plugin.Activate``, retried (1 s, 2 s, 4 s... as dockerd) until :attr:`timeout`;
        once only with ``retry`` false (a scan of every plugin, as dockerd's ``GetAll``)."""
        with self._lock:
            if self.implements is not None:
                return self.implements
            deadline = time.monotonic() + self.timeout
            delay = 1.0
            while True:
                try:
                    status, raw = self._post("Plugin.Activate", None)
                    break
                except OSError as e:
                    if not retry or time.monotonic() + delay > deadline:
                        raise PluginError(f"error looking up plugin {self.name}: "
                                          f"could not reach {self.addr}: {e}") from None
                    log.info("plugin %s not answering yet (%s); retrying in %.0fs",
                             self.name, e, delay)
                    time.sleep(delay)
                    delay *= 2
            answer = _decode(self.name, "Plugin.Activate", status, raw)
            implements = answer.get("Implements") if isinstance(answer, dict) else None
            if not isinstance(implements, list):
                raise PluginError(f"plugin {self.name}: Plugin.Activate answered no Implements list")
            self.implements = [str(x) for x in implements]
            log.info("plugin %s at %s activated: implements %s", self.name, self.addr,
                     ", ".join(self.implements))
            return self.implements

    def call(self, method: str, body: Any = None) -> dict[str, Any]:
        """POST ``/<method>`` with ``body``; the answer, or PluginError with the plugin's words."""
        self.activate()
        try:
            status, raw = self._post(method, body)
        except OSError as e:
            raise PluginError(f"{method}: plugin {self.name} at {self.addr}: {e}") from None
        answer = _decode(self.name, method, status, raw)
        if not isinstance(answer, dict):
            raise PluginError(f"{method}: plugin {self.name} answered {raw[:200]!r}, not an object")
        if answer.get("Err"):
            raise PluginError(str(answer["Err"]))
        return answer


def _decode(name: str, method: str, status: int, raw: bytes) -> Any:
    try:
        answer = json.loads(raw) if raw.strip() else {}
    except ValueError:
        answer = None
    if status != 200:
        err = answer.get("Err") if isinstance(answer, dict) else None
        raise PluginError(f"{method}: {err or raw.decode(errors='replace').strip() or status}",
                          status)
    if answer is None:
        raise PluginError(f"{method}: plugin {name} answered invalid JSON: {raw[:200]!r}")
    return answer


class PluginDirs:
    """The plugins of the configured directories, found by name and activated on first use."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = list(dirs)
        self._found: dict[str, Plugin] = {}
        self._lock = threading.Lock()

    def _locate(self, name: str) -> Plugin | None:
        if not name or "/" in name or name.startswith("."):
            return None
        for d in self.dirs:
            for base in (d, os.path.join(d, name)):
                sock = os.path.join(base, name + ".sock")
                if os.path.exists(sock):
                    return Plugin(name, "unix://" + sock, sock)
                spec = os.path.join(base, name + ".spec")
                if os.path.isfile(spec):
                    with open(spec, encoding="utf-8") as f:
                        addr = f.read().strip()
                    return Plugin(name, addr, spec)
                js = os.path.join(base, name + ".json")
                if os.path.isfile(js):
                    return Plugin(name, _json_addr(name, js), js)
        return None

    def get(self, name: str, implements: str, retry: bool = True) -> Plugin:
        """The plugin ``name``, activated and implementing ``implements`` (else NotFound, as
        dockerd's ``plugin "x" not found``)."""
        with self._lock:
            plugin = self._found.get(name)
            if plugin is None:
                plugin = self._locate(name)
                if plugin is None:
                    raise NotFound(f"plugin {name!r} not found in " + ", ".join(self.dirs))
                self._found[name] = plugin
        try:
            kinds = plugin.activate(retry)
        except PluginError:
            with self._lock:  # looked up afresh next time (the file may change)
                self._found.pop(name, None)
            raise
        if implements not in kinds:
            raise NotFound(f"plugin {name!r} does not implement {implements} "
                           f"(it implements {', '.join(kinds) or 'nothing'})")
        return plugin

    def all(self, implements: str) -> tuple[list[Plugin], list[str]]:
        """Every announced plugin that implements ``implements``, each activated once without
        retries (dockerd's ``GetAll``), and the errors of those that could not be reached."""
        found, errors = [], []
        for name in self.names():
            try:
                found.append(self.get(name, implements, retry=False))
            except NotFound:
                continue  # a plugin of another kind
            except DockyardError as e:
                errors.append(e.message)
        return found, errors

    def activated(self, implements: str) -> list[str]:
        """The plugins activated so far that implement ``implements`` (dockerd's ``info``
        lists the volume plugins it has used)."""
        return sorted(name for name, p in list(self._found.items())
                      if p.implements and implements in p.implements)

    def names(self) -> list[str]:
        """Every plugin name a file in the directories announces (not activated)."""
        out: set[str] = set()
        for d in self.dirs:
            try:
                entries = os.listdir(d)
            except OSError:
                continue
            for entry in entries:
                stem, ext = os.path.splitext(entry)
                if ext in (".sock", ".spec", ".json"):
                    out.add(stem)
                elif os.path.isdir(os.path.join(d, entry)) and any(
                        os.path.exists(os.path.join(d, entry, entry + e))
                        for e in (".sock", ".spec", ".json")):
                    out.add(entry)
        return sorted(out)

    def describe(self) -> list[dict[str, Any]]:
        """Each announced plugin: name, address, the file, what it implements once activated."""
        out = []
        for name in self.names():
            plugin = self._found.get(name) or self._safe_locate(name)
            if plugin is None:
                continue
            out.append({"Name": name, "Addr": plugin.addr, "Source": plugin.source,
                        "Implements": plugin.implements})
        return out

    def _safe_locate(self, name: str) -> Plugin | None:
        try:
            return self._locate(name)
        except (OSError, DockyardError) as e:
            log.info("plugin %s: %s", name, e)
            return None


def _json_addr(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidParameter(f"plugin {name}: cannot read {path}: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("Addr"), str):
        raise InvalidParameter(f"plugin {name}: {path} has no \"Addr\"")
    if spec.get("TLSConfig"):
        raise InvalidParameter(f"plugin {name}: {path} asks for TLS (TLSConfig), which dockyard's "
                               "plugin client does not speak; serve it on a unix socket")
    return spec["Addr"]
