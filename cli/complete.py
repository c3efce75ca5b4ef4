"""Shell completion: click's own mechanism, with names asked of the daemon.

``dockyard completion bash|zsh|fish`` prints the script (``_DOCKYARD_COMPLETE=<shell>_source``);
the shell then runs ``dockyard`` with ``_DOCKYARD_COMPLETE=<shell>_complete`` at each TAB, and
the ``shell_complete`` callbacks below answer with container, image, network and volume names
from the daemon the command line would talk to (``-H``, ``DOCKYARD_HOST``, ``DOCKER_HOST``,
the TLS flags). They must never get in the way of typing: a short timeout, and nothing at all
(not an error message) when the daemon cannot be reached.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click

if TYPE_CHECKING:  # click.shell_completion is imported at a TAB, not on every command
    from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
TIMEOUT = 2.0  # seconds, per TAB; the daemon answers these lists in milliseconds


def _client(ctx: click.Context) -> Any:
    from .client import DEFAULT_HOST, Client
    from .app import tls_config
    p = ctx.find_root().params
    host = (p.get("host") or os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST")
            or DEFAULT_HOST)
    tls = tls_config(bool(p.get("tls")), p.get("tlsverify"), p.get("tlscacert"), p.get("tlscert"),
                     p.get("tlskey"))
    return Client(host, tls, timeout=TIMEOUT)


def _ask(ctx: click.Context, path: str, params: dict[str, Any] | None = None) -> Any:
    client = _client(ctx)
    try:
        return client.get_json(path, params)
    finally:
        client.close()


def _items(pairs: Iterable[tuple[str, str]], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem
    seen: set[str] = set()
    out = []
    for value, help_ in pairs:
        if value.startswith(incomplete) and value not in seen:
            seen.add(value)
            out.append(CompletionItem(value, help=help_ or None))
    return out


def _silently(fetch: Callable[[click.Context, str], list[CompletionItem]]
              ) -> Callable[[click.Context, click.Parameter, str], list[CompletionItem]]:
    """A ``shell_complete`` callback that offers nothing when the daemon does not answer."""
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            return fetch(ctx, incomplete)
        except Exception:  # noqa: BLE001 - completion must never print a traceback at a TAB
            return []
    complete.__name__ = fetch.__name__
    return complete


def _containers(status: tuple[str, ...] = ()) -> Callable[..., list[CompletionItem]]:
    def containers(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        params: dict[str, Any] = {"all": 1}
        if status:
            import json
            params["filters"] = json.dumps({"status": list(status)})
        found = _ask(ctx, "/containers/json", params)
        pairs = [(n.lstrip("/"), f"{c.get('Image', '')}, {c.get('Status', '')}")
                 for c in found for n in c.get("Names") or ()]
        items = _items(pairs, incomplete)
        if not items and incomplete:  # an ID prefix, as docker's completion offers
            items = _items(((c["Id"][:12], (c.get("Names") or ["?"])[0].lstrip("/")) for c in found),
                           incomplete)
        return items
    return _silently(containers)


def _images(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    found = _ask(ctx, "/images/json")
    pairs = [(t, c["Id"].split(":")[-1][:12]) for c in found for t in c.get("RepoTags") or ()
             if t != "<none>:<none>"]
    items = _items(pairs, incomplete)
    if not items and incomplete:
        items = _items(((c["Id"].split(":")[-1][:12], "") for c in found), incomplete)
    return items


def _networks(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    return _items(((n["Name"], n.get("Driver", "")) for n in _ask(ctx, "/networks")), incomplete)


def _volumes(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    found = _ask(ctx, "/volumes").get("Volumes") or []
    return _items(((v["Name"], v.get("Driver", "")) for v in found), incomplete)


#: ``shell_complete=`` callbacks for arguments and options
containers = _containers()
running_containers = _containers(("running",))
stopped_containers = _containers(("created", "exited"))
paused_containers = _containers(("paused",))
images = _silently(_images)
networks = _silently(_networks)
volumes = _silently(_volumes)


def _any_object(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """``inspect``: containers first, then images, networks and volumes."""
    seen: set[str] = set()
    out: list[CompletionItem] = []
    for complete in (containers, images, networks, volumes):
        for item in complete(ctx, None, incomplete):  # type: ignore[arg-type]
            if item.value not in seen:
                seen.add(item.value)
                out.append(item)
    return out


any_object = _silently(_any_object)


@click.command(short_help="Print the shell completion script for bash, zsh or fish")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL. Load it for this session with

    \b
      source <(dockyard completion bash)        # bash
      source <(dockyard completion zsh)         # zsh
      dockyard completion fish | source         # fish

    or install it once (``make install`` does so for bash, zsh and fish):

    \b
      dockyard completion bash > /etc/bash_completion.d/dockyard
    """
    from click.shell_completion import get_completion_class
    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root.command, {}, "dockyard", "_DOCKYARD_COMPLETE").source(), nl=False)
