"""``POST /images/create?fromImage=``: pull a tag, a digest, or every tag of a repository.

As dockerd: a reference without a tag or digest (``docker pull -a``, docker-py's
``all_tags=True``) pulls every tag the registry lists; a registry that refuses the credentials is
answered as dockerd answers it, ``404 pull access denied ...`` — never ``401``, which the docker
CLI meets with an interactive login prompt (even with its stdin on /dev/null).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from dockyard.hookspecs.errors import NotFound, Unauthorized

from ... import imagelife, reference, remote
from ..clientwork import client_work
from ..jsonstream import JsonStream


def _denied(ref: reference.Reference, why: str) -> NotFound:
    return NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or "
                    f"may require 'docker login': {why}")


async def _tags_to_pull(every: list[Any], ref: reference.Reference) -> tuple[list[Any], list[str]]:
    """The pull sources from the first that has ``ref`` on (a registry's mirrors first,
    core.remote), and what to pull, checked before any progress goes out: an unknown image or
    refused credentials is an HTTP error, as with dockerd."""
    want = ref.digest or ref.tag
    try:
        if want:
            backends, _ = await asyncio.to_thread(remote.first_source, every, ref.path, want)
            return backends, [want]
        return await asyncio.to_thread(remote.each_source, every,
                                       lambda i, b: (every[i:], b.tags(ref.path)))
    except NotFound:
        raise _denied(ref, f"manifest unknown: {want or 'no tags'}") from None
    except Unauthorized as exc:
        raise _denied(ref, exc.message) from None


async def pull(request: web.Request, ref: reference.Reference, auth: dict[str, Any]) -> web.StreamResponse:
    """Pull ``ref`` (every tag when it names neither a tag nor a digest) with ``auth``."""
    d = request.app["daemon"]
    every = d.remote(ref.domain, auth).pull_sources()
    try:
        backends, wanted = await _tags_to_pull(every, ref)
        if not wanted:
            raise _denied(ref, "the repository has no tags")
        out = JsonStream(request)
        fresh = False
        for want in wanted:
            def work(progress: Any, cancel: threading.Event, want: str = want) -> dict[str, Any]:
                return remote.pull(d.images, backends, ref.path, want, progress, cancel,
                                   status_id=want)

            try:
                async with client_work(request):
                    result = await out.run(work)
            except Exception as exc:  # noqa: BLE001 - reported to the client in the stream
                return await out.fail(exc)
            one = ref if ref.tag or ref.digest else ref.with_tag(want)
            fresh = remote.tag_moves(d.images, one, result["image_id"]) or fresh
            imagelife.pulled(d, ref.name, one, result)
            await out.write({"status": f"Digest: {result['digest']}"})
    finally:
        await asyncio.to_thread(remote.close_all, every)
    shown = ref.familiar()
    await out.write({"status": (f"Status: Downloaded newer image for {shown}" if fresh
                                else f"Status: Image is up to date for {shown}")})
    return await out.finish()
