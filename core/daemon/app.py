"""The daemon: configuration → drivers → services → the aiohttp application serving Docker's API."""
from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import os
import platform
import time
from typing import Any

from aiohttp import web

from dockyard.hookspecs import DRIVER_GROUPS
from dockyard.hookspecs.bindings import advice
from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import DockyardError, DriverNotFound, DriverNotSupported

from .. import dashboard, netplugins, plugins, resources, userns
from ..blobs import BlobStore
from ..builder.mounts import CacheMounts
from ..config import Config
from ..containers import ContainerService
from ..dockerplugins import PluginDirs
from ..execs import ExecService
from ..images import ImageStore
from ..managedplugins import PluginService
from ..networks import NetworkService, driver_options
from ..pluginrun import PluginRunner
from ..reconcile import Reconciler
from ..reserve import DiskReserve
from ..runtimes import Runtimes
from ..state import State
from ..volumes import VolumeService
from .authz import AuthzPlugins, authorization_middleware
from .body import MAX_JSON_BODY
from .errors import error_middleware, error_response
from .params import version_tuple as _vtuple

log = logging.getLogger(__name__)

VERSION = "0.1.0"
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_root = config["data-root"]
        self.exec_root = config["exec-root"]
        # userns-remap: containers' root is an unprivileged host ID; images are stored shifted,
        # in a data-root of their own (as dockerd: <data-root>/<uid>.<gid>)
        self.id_map, self.remap_user, self.data_root = userns.resolve(self.data_root,
                                                                      config["userns-remap"])
        for root in (config["data-root"], self.data_root):  # a remapped root's parent first
            os.makedirs(root, mode=0o711, exist_ok=True)
        os.makedirs(self.exec_root, mode=0o700, exist_ok=True)
        #: every temporary file of the daemon's (spooled uploads, blobs being written, build
        #: contexts): emptied at start-up, nothing in it outlives a crash
        self.tmp_dir = os.path.join(self.data_root, "tmp")
        self.started = time.time()
        tarsafe.configure(tarsafe.Limits(max_size=config["max-unpack-size"],
                                         max_ratio=config["max-unpack-ratio"]))
        self.pm = plugins.make_plugin_manager(config["disabled-plugins"], config["required-plugins"])
        self.registries = {kind: plugins.DriverRegistry(kind) for kind in DRIVER_GROUPS}
        #: Docker's out-of-process plugins (volume plugins...), found by name in these directories
        self.docker_plugins = PluginDirs(config["docker-plugin-dirs"])
        self.authz = AuthzPlugins(self.docker_plugins, config["authorization-plugins"])
        self.missing_bindings = self._missing_bindings()
        #: what ``info`` reports under Warnings (as dockerd's)
        self.warnings = [f"WARNING: {advice(b)}" for b in self.missing_bindings]
        self.warnings += resources.host_warnings(resources.support())  # probed once, here

        # on a full disk, room for the database's journal and start-up's files first
        self.reserve = DiskReserve(self.data_root)
        self.reserve.make_room()
        self.state = State(os.path.join(self.data_root, "dockyard.db"))
        self.graph = self._select_graph_driver(config)
        self.migrating = False  # a storage migration holds off container creation and mounts

        #: every exec driver that runs here, by name (Docker's runtimes); ``execdriver`` is the
        #: default one
        self.runtimes = Runtimes(self.registries["exec"], config, self.exec_root,
                                 remapping=not self.id_map.is_identity)
        self.execdriver = self.runtimes.default
        rt_budget = {"realtimePeriod": config["cpu-rt-period"],
                     "realtimeRuntime": config["cpu-rt-runtime"]}
        if any(rt_budget.values()) and self.execdriver.unsupported_resources({"cpu": rt_budget}):
            raise DockyardError("daemon-scoped cpu-rt-period and cpu-rt-runtime are not supported "
                                "by the kernel (or by the exec driver on this host)")

        self.netdrivers: dict[str, Any] = {}
        self.netdriver_errors: dict[str, str] = {}
        nreg = self.registries["network"]
        for name in nreg.names():
            try:
                self.netdrivers[name] = nreg.create(name, os.path.join(self.data_root, "network", name),
                                                    driver_options(config))
            except DriverNotSupported as exc:
                log.info("network driver %s skipped: %s", name, exc.reason)
                self.netdriver_errors[name] = exc.reason

        self.blobs = BlobStore(os.path.join(self.data_root, "image", "blobs"), self.tmp_dir)
        self.images = ImageStore(self.state, self.blobs, self.graph)
        self.build_mounts = CacheMounts(self.state, os.path.join(self.data_root, "builder", "mounts"))
        self.volumes = VolumeService(self)
        self.containers = ContainerService(self)
        self.networks = NetworkService(self.state, config, self.netdrivers, self.containers,
                                       self.event, self.exec_root, self.data_root,
                                       functools.partial(netplugins.find, self.docker_plugins))
        self.execs = ExecService(self)
        self.managed_plugins = PluginService(self)
        self.plugin_runner = PluginRunner(self, self.managed_plugins)
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1024)
        self._event_subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def _missing_bindings(self) -> list[Any]:
        """The Debian bindings installed drivers declare (``bindings``) that this Python cannot
        import: each is logged, naming the package and what does not work without it."""
        out: list[Any] = []
        for reg in self.registries.values():
            for name in reg.names():
                try:
                    cls = reg.get_class(name)
                except Exception:  # noqa: BLE001 - a driver that fails to load is listed by info
                    continue
                for b in getattr(cls, "bindings", ()):
                    if b not in out and not b.available():
                        log.warning("%s", advice(b))
                        out.append(b)
        return out

    # -- registry backends ---------------------------------------------------------------------
    def backend(self, transport: str, location: str, options: dict[str, Any] | None = None) -> Any:
        """A registry backend for an image transport (``docker``, ``oci``, ``docker-archive``):
        the installed backend that declares it, chosen by what it serves, never by name."""
        reg = self.registries["registry"]
        for name in reg.names():
            cls = reg.get_class(name)
            if getattr(cls, "transport", "") == transport:
                return cls(location, options or {})
        raise DriverNotFound("registry", transport, reg.names())

    def remote(self, domain: str, auth: dict[str, Any] | None = None) -> Any:
        """The backend for a registry host, with the daemon's insecure-registries and mirrors."""
        return self.backend("docker", domain, {
            "auth": auth or {}, "insecure-registries": self.config["insecure-registries"],
            "mirrors": self.config["registry-mirrors"]})

    def _graph_kwargs(self) -> dict[str, Any]:
        """``id_map`` only when remapping: a driver written before it existed still loads
        (and is refused when remapping, by :meth:`create_graph`)."""
        return {} if self.id_map.is_identity else {"id_map": self.id_map}

    def create_graph(self, name: str, opts: dict[str, str]) -> Any:
        greg = self.registries["graph"]
        cls = greg.get_class(name)
        if not self.id_map.is_identity and \
                "id_map" not in inspect.signature(cls.__init__).parameters:
            raise DriverNotSupported(f"userns-remap: the {name} storage driver takes no ID map")
        return greg.create(name, os.path.join(self.data_root, name), opts, **self._graph_kwargs())

    def _select_graph_driver(self, config: Config) -> Any:
        """Explicit config, else the driver that stored this data-root's layers, else the
        installed drivers by their declared priority. Starting with a driver other than the one holding images and containers
        is refused, naming both: their layers would be invisible (the state database would list
        images the driver cannot find). ``dockyard storage migrate`` moves them instead."""
        greg = self.registries["graph"]
        opts = config.storage_opts()
        explicit = config["storage-driver"] or None
        recorded = self.state.get_meta("storage-driver")
        holds = self.state.holds_data()
        # the driver this data-root last ran with; the directory scan only for data-roots
        # older than that record
        prior = recorded or plugins.prior_graph_driver(self.data_root, greg.names())
        if explicit and holds and prior and explicit != prior:
            raise DockyardError(
                f"{self.data_root} holds images/containers stored by the {prior} storage driver, "
                f"but {explicit} was requested: they would be invisible to it. Start with "
                f"--storage-driver {prior}, or move them with `dockyard storage migrate --to "
                f"{explicit}` while running on {prior}.")
        if explicit and prior and explicit != prior:
            log.warning("storage driver %s requested; this data-root last ran with %s, which holds "
                        "no images or containers", explicit, prior)
        if prior and not explicit and prior not in greg.names():
            raise DockyardError(f"{self.data_root} holds data of the {prior} storage driver, which "
                                f"is not installed; installed: {', '.join(greg.names())}")
        try:
            graph = greg.select(explicit,
                                lambda name: self.create_graph(name, opts),
                                prior=prior)
        except DriverNotSupported as exc:
            name = explicit or prior
            if name:
                raise DriverNotSupported(f"storage driver {name} is not supported on this host: "
                                         f"{exc.reason}") from None
            raise
        self.state.set_meta("storage-driver", graph.name)
        log.info("storage driver: %s", graph.name)
        return graph

    # -- hooks & events -------------------------------------------------------------------------
    def emit(self, hook: str, **kwargs: Any) -> None:
        """Call a pluggy lifecycle hook; a failing plugin is logged, never fatal."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:  # noqa: BLE001
            log.exception("plugin hook %s failed", hook)

    def event(self, type_: str, action: str, id_: str, attrs: dict[str, str]) -> None:
        """One event, as dockerd's ``events.Message``: the deprecated ``status``/``id`` (and
        ``from``) first for containers and images, fields in its order, ``time`` the second
        of ``timeNano`` (one clock reading, so they agree)."""
        now = time.time_ns()
        ev: dict[str, Any] = {"status": action, "id": id_} if type_ in ("container", "image") else {}
        if type_ == "container" and attrs.get("image"):
            ev["from"] = attrs["image"]
        ev.update({"Type": type_, "Action": action, "Actor": {"ID": id_, "Attributes": attrs},
                   "scope": "local", "time": now // 1_000_000_000, "timeNano": now})
        self._events.append(ev)
        for q in list(self._event_subscribers):
            q.put_nowait(ev)

    # -- lifecycle ------------------------------------------------------------------------------
    async def startup(self, app: web.Application) -> None:
        await asyncio.to_thread(Reconciler(self).run)  # what a crash left, before anything runs
        from ..builder.build import remove_leftovers
        await asyncio.to_thread(remove_leftovers, self)
        await self.networks.start()
        await self.containers.restore()
        if not self.reserve.refill() and not self.reserve.held():
            log.warning("the data-root %s is nearly full: no room for its reserve, so removals "
                        "may fail once it is full", self.data_root)

    async def shutdown(self, app: web.Application | None) -> None:
        await self.plugin_runner.shutdown()
        await self.containers.shutdown()
        await self.networks.shutdown()
        await self.runtimes.close()
        if not any(c["State"]["Running"] for c in self.containers.all()):
            await asyncio.to_thread(self.graph.cleanup)

    def close(self) -> None:
        """Last of all, once no request or worker thread can use it: the state database."""
        self.state.close()

    # -- the application ------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        timeout = float(self.config["api-read-timeout"])
        # request.read() (unused: bodies go through .body) is held to the JSON limit too; a
        # connection that sends no request for `timeout` seconds is closed
        app = web.Application(middlewares=[debug_middleware, dashboard.same_origin_middleware,
                                           version_middleware, error_middleware,
                                           authorization_middleware, room_to_remove],
                              client_max_size=MAX_JSON_BODY,
                              handler_args={"max_field_size": 65536, "keepalive_timeout": timeout})
        app["daemon"] = self
        app["read_timeout"] = timeout
        from .routes import (absent, build, containers, distribution, execs, images, inventory,
                             networks, plugins as plugin_routes, storage, system, volumes)
        for module in (system, containers, execs, images, build, networks, storage, volumes,
                       distribution, plugin_routes, inventory, dashboard, absent):
            module.setup(app)
        self.pm.hook.dockyard_add_routes(app=app)
        app.on_response_prepare.append(_add_headers)
        app.on_startup.append(self.startup)
        app.on_shutdown.append(self.shutdown)
        return app

    def info_extra(self) -> dict[str, Any]:
        drivers = {}
        active = {"graph": self.graph.name, "exec": self.execdriver.name,
                  "network": ",".join(sorted(self.netdrivers)), "registry": ""}
        for kind, reg in self.registries.items():
            drivers[kind] = {"active": active[kind], "installed": reg.names(),
                             **({"runtimes": self.runtimes.names()} if kind == "exec" else {}),
                             "unavailable": {**reg.load_errors(),
                                             **(self.netdriver_errors if kind == "network" else {}),
                                             **(self.runtimes.unsupported if kind == "exec" else {})}}
        return drivers


def route(app: web.Application, method: str, path: str, handler: Any) -> None:
    """Register ``path`` both bare and under Docker's ``/vX.Y`` prefix."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{apiver:\d+\.\d+}" + path, handler)


@web.middleware
async def debug_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """At log level debug, each request is logged as dockerd does (``Calling GET /info``)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("Calling %s %s", request.method, request.path)
    return await handler(request)


@web.middleware
async def version_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    version = request.match_info.get("apiver")
    if version:
        v = _vtuple(version)
        if v < _vtuple(MIN_API_VERSION):
            return error_response(400, f"client version {version} is too old. Minimum supported "
                                       f"API version is {MIN_API_VERSION}, please upgrade your "
                                       "client to a newer version")
        if v > _vtuple(API_VERSION):
            return error_response(400, f"client version {version} is too new. Maximum supported "
                                       f"API version is {API_VERSION}")
    request["api_version"] = version or API_VERSION
    return await handler(request)


@web.middleware
async def room_to_remove(request: web.Request, handler: Any) -> web.StreamResponse:
    """Removals (``DELETE`` and ``.../prune``) must work on a full disk: the data-root's reserve
    is released first when space is short, and allocated again after when there is room."""
    removal = request.method == "DELETE" or (request.method == "POST"
                                             and request.path.endswith("/prune"))
    if not removal:
        return await handler(request)
    reserve = request.app["daemon"].reserve
    reserve.make_room()
    try:
        return await handler(request)
    finally:
        reserve.refill()


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"dockyard/{VERSION} ({platform.system().lower()})"
    response.headers["Docker-Experimental"] = "false"
