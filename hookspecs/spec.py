"""pluggy hook specifications: the one-to-many extension points of dockyard.

Plugins are found through the entry-point group ``dockyard.plugins`` and implement any of these
with ``@dockyard.hookspecs.hookimpl``. Drivers are *not* found here: they are one-of-N choices made
through stevedore (see ``dockyard.core.plugins``). Lifecycle hooks are called from the daemon's event
loop after the state change is recorded; an exception raised by a plugin is logged and never undoes
the change.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # types only; hookspecs imports nothing of the project at run time
    import aiohttp.web
    import click

PROJECT = "dockyard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- container lifecycle ------------------------------------------------------------------------
@hookspec
def dockyard_container_created(container: dict[str, Any]) -> None:
    """A container was created.

    :param container: the container as ``GET /containers/{id}/json`` shows it.

    Called after ``POST /containers/create`` has stored the container. Return value ignored.
    """


@hookspec
def dockyard_container_started(container: dict[str, Any]) -> None:
    """A container's process was started.

    :param container: the container as ``GET /containers/{id}/json`` shows it, ``State.Pid`` set.

    Called after the exec driver started the process. Return value ignored.
    """


@hookspec
def dockyard_container_exited(container: dict[str, Any], exit_code: int) -> None:
    """A container's main process exited.

    :param container: the container as ``GET /containers/{id}/json`` shows it.
    :param exit_code: the exit code recorded (128+N for death by signal N).

    Called once the exit status is recorded, before any auto-remove. Return value ignored.
    """


@hookspec
def dockyard_container_removed(container_id: str) -> None:
    """A container was removed.

    :param container_id: the full id of the removed container.

    Called after its layer and record are gone. Return value ignored.
    """


# -- image lifecycle ----------------------------------------------------------------------------
@hookspec
def dockyard_image_pulled(image_id: str, reference: str) -> None:
    """An image was pulled from a registry.

    :param image_id: ``sha256:...`` id of the image.
    :param reference: the normalised reference it was pulled as.

    Called after the image and its tag are stored. Return value ignored.
    """


@hookspec
def dockyard_image_pushed(image_id: str, reference: str) -> None:
    """An image was pushed to a registry.

    :param image_id: ``sha256:...`` id of the image.
    :param reference: the normalised reference it was pushed as.

    Called after the registry accepted the manifest. Return value ignored.
    """


@hookspec
def dockyard_image_built(image_id: str, tags: list[str]) -> None:
    """An image was built or imported.

    :param image_id: ``sha256:...`` id of the new image.
    :param tags: the normalised references it was tagged with (may be empty).

    Called after the image is stored and tagged. Return value ignored.
    """


@hookspec
def dockyard_image_removed(image_id: str) -> None:
    """An image was deleted (not merely untagged).

    :param image_id: ``sha256:...`` id of the deleted image.

    Called after its record and unused layers are gone. Return value ignored.
    """


# -- extending the daemon and the CLI -----------------------------------------------------------
@hookspec
def dockyard_add_routes(app: aiohttp.web.Application) -> None:
    """Register extra HTTP routes on the daemon's aiohttp application.

    :param app: the application, before it starts serving; add routes with ``app.router``.

    Called once at daemon start-up, after the Docker API routes are registered. Return value
    ignored.
    """


@hookspec
def dockyard_add_commands(cli: click.Group) -> None:
    """Register extra commands on the ``dockyard`` CLI.

    :param cli: the top-level click group; call ``cli.add_command``.

    Called once when the CLI starts, before arguments are parsed. Return value ignored.
    """


@hookspec
def dockyard_info() -> dict[str, Any] | None:
    """Contribute keys to ``GET /info``.

    Called on every ``GET /info``. Return a dict, shown under the answer's ``DockyardExtra`` key
    as the value of the plugin's name (``{"DockyardExtra": {"myplugin": {...}}}``: two plugins
    never overwrite each other's keys), or ``None`` to show nothing. Every plugin's result is
    collected; one that raises is logged and left out.
    """


@hookspec(firstresult=True)
def dockyard_authorize(method: str, path: str, body: bytes | None) -> str | None:
    """Veto an API request (an authorization plugin).

    :param method: the HTTP method.
    :param path: the request path without the ``/vX.Y`` prefix and without the query string
        (``/containers/create``, not ``/v1.43/containers/create?name=x``).
    :param body: the raw request body when the request has one and its ``Content-Type`` is
        ``application/json`` (parameters such as ``; charset=utf-8`` allowed), read ahead once
        and held to the daemon's JSON body limit (a larger body is refused with 413 before any
        hook runs; the handler then reads the same bytes); else ``None``: no body, or a tar or
        other stream, which is never read ahead.

    Called for every API request before it is handled (``/_ping`` included), after the API
    version is checked and before Docker's authorization plugins (``authorization-plugins``) are
    asked. Called on the daemon's event loop: do not block. Return a message to refuse the
    request (HTTP 403 with that message) or ``None`` to let it through; the first non-``None``
    result wins. An exception the hook raises answers the request as a handler's would: a
    ``DockyardError`` with its status, a ``ValueError`` 400, anything else 500. The hook does
    not see the response.
    """
