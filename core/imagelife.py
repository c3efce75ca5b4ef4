"""What completes an image operation, in one place per operation: the record it changes (tags,
repo digests), then the pluggy lifecycle hook and the ``docker events`` entry, as dockerd emits
them. Routes stream the operation's progress and call these; no route emits a hook itself (the
container service emits the container hooks the same way)."""
from __future__ import annotations

from typing import Any


def imported(d: Any, image_id: str, ref: Any | None) -> list[str]:
    """``docker import``: ``ref`` (if given) tags the new image; returns the tags."""
    tags = [d.images.tag(image_id, str(ref))] if ref else []
    d.emit("dockyard_image_built", image_id=image_id, tags=tags)
    d.event("image", "import", image_id, {"name": str(ref) if ref else ""})
    return tags


def pulled(d: Any, repo: str, ref: Any, result: dict[str, Any]) -> None:
    """``docker pull`` of ``ref`` (of repository ``repo``) done: tag it (a digest reference
    has no tag) and record its repo digest."""
    if ref.tag:
        d.images.tag(result["image_id"], str(ref))
    d.images.add_repo_digest(repo, result["digest"], result["image_id"], result["media_type"])
    d.emit("dockyard_image_pulled", image_id=result["image_id"], reference=str(ref))
    d.event("image", "pull", str(ref), {"name": str(ref)})


def pushed(d: Any, ref: Any, image_id: str, digest: str) -> None:
    """``docker push`` of ``ref`` done: its repo digest is recorded."""
    d.images.add_repo_digest(ref.name, digest, image_id, "")
    d.emit("dockyard_image_pushed", image_id=image_id, reference=str(ref))
    d.event("image", "push", str(ref), {"name": str(ref)})


def built(d: Any, image_id: str, tags: list[str]) -> None:
    """``docker build`` done: the image gets its tags (a ``tag`` event each)."""
    for t in tags:
        d.images.tag(image_id, t)
        d.event("image", "tag", image_id, {"name": t})
    d.emit("dockyard_image_built", image_id=image_id, tags=tags)


def removed(d: Any, image_id: str, result: list[dict[str, str]]) -> None:
    """dockerd's events for what one image deletion did: ``untag`` per tag removed, then
    ``delete`` (both name the image by its ID), with the hook for each image deleted."""
    for item in result:
        if "Untagged" in item:
            d.event("image", "untag", image_id, {"name": image_id})
        elif "Deleted" in item:
            d.emit("dockyard_image_removed", image_id=item["Deleted"])
            d.event("image", "delete", item["Deleted"], {"name": item["Deleted"]})
