"""Docker API groups dockyard does not implement, answered as dockerd answers on a node without
them, so that tools probing for them (docker-py's network tests leave a swarm in teardown and
accept 503; ``docker search``) get the status and words they expect. (Managed plugins are
served: routes/plugins.py.)

- swarm mode (``/swarm*``, ``/nodes``, ``/services``, ``/tasks``, ``/secrets``, ``/configs``):
  ``503`` and dockerd's words for a node that is not part of a swarm;
- ``GET /images/search``: dockyard keeps no index and contacts no outside registry to search.
"""
from __future__ import annotations

from aiohttp import web

from dockyard.hookspecs.errors import Unavailable

from ..app import route

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                 'join" to connect this node to swarm and try again.')
NOT_IN_A_SWARM = "This node is not part of a swarm"
NO_SWARM_MODE = "This node cannot start or join a swarm: dockyard does not implement swarm mode."

#: (method, path) of every swarm-mode endpoint but leave/init/join, as moby's swarm router has them
SWARM_ROUTES = [("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/update"),
                ("POST", "/swarm/unlock")]
for _kind in ("services", "nodes", "tasks", "secrets", "configs"):
    SWARM_ROUTES += [("GET", f"/{_kind}"), ("GET", f"/{_kind}/{{id}}")]
    if _kind != "tasks":
        SWARM_ROUTES += [("DELETE", f"/{_kind}/{{id}}"), ("POST", f"/{_kind}/{{id}}/update")]
    if _kind in ("services", "secrets", "configs"):
        SWARM_ROUTES.append(("POST", f"/{_kind}/create"))
    if _kind in ("services", "tasks"):
        SWARM_ROUTES.append(("GET", f"/{_kind}/{{id}}/logs"))


async def not_a_manager(request: web.Request) -> web.Response:
    raise Unavailable(NOT_A_MANAGER)


async def not_in_a_swarm(request: web.Request) -> web.Response:
    raise Unavailable(NOT_IN_A_SWARM)


async def no_swarm_mode(request: web.Request) -> web.Response:
    raise Unavailable(NO_SWARM_MODE)


async def search(request: web.Request) -> web.Response:
    raise NotImplementedError("image search is not supported by dockyard: it keeps no index of "
                              "registries and does not query Docker Hub; browse the registry "
                              "instead (GET /v2/_catalog on a private one)")


def setup(app: web.Application) -> None:
    for method, path in SWARM_ROUTES:
        route(app, method, path, not_a_manager)
    route(app, "POST", "/swarm/leave", not_in_a_swarm)
    route(app, "POST", "/swarm/init", no_swarm_mode)
    route(app, "POST", "/swarm/join", no_swarm_mode)
    route(app, "GET", "/images/search", search)
