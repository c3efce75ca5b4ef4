"""The daemon: configuration → drivers → services → the aiohttp application serving Docker's API."""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import platform
import time
from typing import Any

from aiohttp import web

from dockyard.hookspecs import DRIVER_GROUPS
from dockyard.hookspecs.errors import DriverNotSupported

from .. import plugins
from ..blobs import BlobStore
from ..config import Config
from ..containers import ContainerService
from ..images import ImageStore
from ..networks import NetworkService, driver_options
from ..state import State
from .errors import error_middleware, error_response

log = logging.getLogger(__name__)

VERSION = "0.1.0"
API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
#: the graph drivers tried, in order, when none is configured and none holds data yet
GRAPH_PRIORITY = ["overlay", "btrfs", "fuse-overlayfs", "vfs"]

def _vtuple(v: str) -> tuple[int, int]:
    a, b = v.split(".")
    return int(a), int(b)


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_root = config["data-root"]
        self.exec_root = config["exec-root"]
        os.makedirs(self.data_root, mode=0o711, exist_ok=True)
        os.makedirs(self.exec_root, mode=0o700, exist_ok=True)
        self.started = time.time()
        self.pm = plugins.make_plugin_manager(config["disabled-plugins"], config["required-plugins"])
        self.registries = {kind: plugins.DriverRegistry(kind) for kind in DRIVER_GROUPS}

        greg = self.registries["graph"]
        opts = config.storage_opts()
        self.graph = greg.select(
            config["storage-driver"] or None, GRAPH_PRIORITY,
            lambda name: greg.create(name, os.path.join(self.data_root, name), opts),
            prior=plugins.prior_graph_driver(self.data_root, greg.names()))
        log.info("storage driver: %s", self.graph.name)

        ereg = self.registries["exec"]
        ename = config["exec-driver"]
        self.execdriver = ereg.create(ename, os.path.join(self.exec_root, ename), config.exec_opts())

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

        self.state = State(os.path.join(self.data_root, "dockyard.db"))
        self.blobs = BlobStore(os.path.join(self.data_root, "image", "blobs"))
        self.images = ImageStore(self.state, self.blobs, self.graph)
        self.networks = NetworkService(self)
        self.containers = ContainerService(self)
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1024)
        self._event_subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    # -- hooks & events -------------------------------------------------------------------------
    def emit(self, hook: str, **kwargs: Any) -> None:
        """Call a pluggy lifecycle hook; a failing plugin is logged, never fatal."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:  # noqa: BLE001
            log.exception("plugin hook %s failed", hook)

    def event(self, type_: str, action: str, id_: str, attrs: dict[str, str]) -> None:
        now = time.time()
        ev = {"Type": type_, "Action": action, "Actor": {"ID": id_, "Attributes": attrs},
              "scope": "local", "time": int(now), "timeNano": int(now * 1e9)}
        if type_ == "container":
            ev.update(status=action, id=id_, **({"from": attrs["image"]} if "image" in attrs else {}))
        self._events.append(ev)
        for q in list(self._event_subscribers):
            q.put_nowait(ev)

    # -- lifecycle ------------------------------------------------------------------------------
    async def startup(self, app: web.Application) -> None:
        await self.networks.start()
        await self.containers.restore()

    async def shutdown(self, app: web.Application) -> None:
        await self.containers.shutdown()
        await self.networks.shutdown()
        await self.execdriver.close()
        if not any(c["State"]["Running"] for c in self.containers.all()):
            await asyncio.to_thread(self.graph.cleanup)
        self.state.close()

    # -- the application ------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[version_middleware, error_middleware],
                              client_max_size=1 << 40, handler_args={"max_field_size": 65536})
        app["daemon"] = self
        from .routes import containers, images, networks, system
        for module in (system, containers, images, networks):
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
                             "unavailable": {**reg.load_errors(),
                                             **(self.netdriver_errors if kind == "network" else {})}}
        return drivers


def route(app: web.Application, method: str, path: str, handler: Any) -> None:
    """Register ``path`` both bare and under Docker's ``/vX.Y`` prefix."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{apiver:\d+\.\d+}" + path, handler)


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
    pm = request.app["daemon"].pm
    if pm.hook.dockyard_authorize.get_hookimpls():
        path = request.path
        if version:
            path = path[len(version) + 2:]
        veto = pm.hook.dockyard_authorize(method=request.method, path=path, body=None)
        if veto:
            return error_response(403, str(veto))
    return await handler(request)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"dockyard/{VERSION} ({platform.system().lower()})"
    response.headers["Docker-Experimental"] = "false"
