"""Moving every layer of a data-root from one graph driver to another (``dockyard storage
migrate --to DRIVER``), verified layer by layer, then switching the daemon to the new driver.

No peer does this: Docker and Podman make a user save, wipe and reload images when changing
storage drivers, and lose stopped containers' changes. Here, with no container running:

1. plan: every image layer, parents before children, then every stopped container's writable
   layer on top of its image;
2. an image layer whose registered blob is kept (pulled, loaded, imported) is unpacked from that
   blob into the new driver, hashing it: the sha256 must equal the recorded diff id
   (``diff_id verified``); the old and new drivers' own diffs of the layer are then compared,
   and a difference (the old copy drifted) is reported as a warning, the registered content
   kept. Any other layer (a stopped container's, or an image layer without its blob):
   ``new.create``/``create_rw``, ``old.diff`` streamed into ``new.apply_diff`` while hashing,
   then ``new.diff`` hashed: the two sha256 must be equal (``content verified``; a layer's
   diff cannot reproduce the original tar's bytes, hence its diff id, without that tar);
3. any failure removes what was made in the new driver and leaves the old one in charge;
4. on success the daemon, image store and container service switch to the new driver, the state
   database records it, container records get the new ``GraphDriver`` data, and the old driver's
   layers and directory are removed.

Core code: it never names a driver, it only calls the graph-driver contract.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from typing import IO, Any, Callable

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter
from dockyard.hookspecs.graphdriver import GraphDriver

from .images import HashingReader

log = logging.getLogger(__name__)


@dataclass
class Step:
    id: str                  #: the layer's id in both drivers (cache id, or container id)
    parent: str | None
    rw: bool                 #: a container's writable layer
    label: str               #: what the user knows it as
    diff_id: str | None      #: the recorded diff id (image layers)


def _sha256(stream: IO[bytes]) -> str:
    h = hashlib.sha256()
    with stream:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def plan(daemon: Any) -> list[Step]:
    rows = {r["chain_id"]: r for r in daemon.state.layers()}
    steps: list[Step] = []
    seen: set[str] = set()

    def visit(chain: str) -> None:
        if chain in seen:
            return
        row = rows[chain]
        if row["parent"]:
            visit(row["parent"])
        seen.add(chain)
        parent = rows[row["parent"]]["cache_id"] if row["parent"] else None
        steps.append(Step(row["cache_id"], parent, False, f"layer {row['diff_id'][7:19]}",
                          row["diff_id"]))

    for chain in sorted(rows):
        visit(chain)
    for c in daemon.containers.all():
        steps.append(Step(c["Id"], daemon.images.top_cache_id(c["Image"]), True,
                          f"container {c['Id'][:12]} ({c['Name'].lstrip('/')})", None))
    return steps


def copy_from_blob(daemon: Any, old: GraphDriver, new: GraphDriver, step: Step,
                   blob: str) -> tuple[str, str | None]:
    """Unpack the blob an image layer was registered from into ``new``; its uncompressed
    sha256 must be the recorded diff id. Returns ``(diff id, warning)``: the old and new
    drivers' own diffs of the layer are compared as a cross-check of the old copy."""
    if new.exists(step.id):
        new.remove(step.id)
    new.create(step.id, step.parent)
    with open(daemon.blobs.path(blob), "rb") as f, tarsafe.uncompressed(f) as plain:
        reader = HashingReader(plain)
        new.apply_diff(step.id, step.parent, reader)  # type: ignore[arg-type]
        reader.drain()
    if reader.digest() != step.diff_id:
        raise DockyardError(f"{step.label}: stored blob {blob[:19]} unpacks to {reader.digest()}, "
                            f"not the recorded diff id {step.diff_id}")
    was, now = _sha256(old.diff(step.id, step.parent)), _sha256(new.diff(step.id, step.parent))
    warning = None if was == now else (
        f"{step.label}: {old.name}'s copy differed from its registered content ({was} vs {now}); "
        "the registered content was kept")
    return reader.digest(), warning


def copy_layer(old: GraphDriver, new: GraphDriver, step: Step) -> str:
    """Copy one layer through the drivers' diffs; return its sha256 as both drivers diff it
    (raise if they differ)."""
    if new.exists(step.id):  # left by an interrupted migration
        new.remove(step.id)
    (new.create_rw if step.rw else new.create)(step.id, step.parent)
    reader = HashingReader(old.diff(step.id, step.parent))
    try:
        new.apply_diff(step.id, step.parent, reader)  # type: ignore[arg-type]
        reader.drain()
    finally:
        reader.raw.close()
    moved = reader.digest()
    back = _sha256(new.diff(step.id, step.parent))
    if back != moved:
        raise DockyardError(f"{step.label}: the layer reads back differently from {new.name} "
                            f"({back}) than it left {old.name} ({moved})")
    return moved


def migrate(daemon: Any, new: GraphDriver, progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Move everything from ``daemon.graph`` to ``new`` and switch to it (runs in a thread;
    the caller has checked that no container is running)."""
    old: GraphDriver = daemon.graph
    if new.name == old.name:
        raise InvalidParameter(f"the storage driver is already {old.name}")
    steps = plan(daemon)
    progress({"status": f"Migrating {len(steps)} layer(s) from {old.name} to {new.name}"})
    done: list[Step] = []
    exact = 0
    try:
        for i, step in enumerate(steps, 1):
            blobs = daemon.images.layer_blobs(step.diff_id) if step.diff_id else []
            warning = None
            if blobs:
                digest, warning = copy_from_blob(daemon, old, new, step, blobs[0]["digest"])
            else:
                digest = copy_layer(old, new, step)
            done.append(step)
            same = step.diff_id is not None and digest == step.diff_id
            exact += same
            progress({"status": "diff_id verified" if same else "content verified",
                      "id": step.label, "progress": f"{i}/{len(steps)}", "digest": digest})
            if warning:
                log.warning("migration: %s", warning)
                progress({"status": "warning: " + warning, "id": step.label})
    except BaseException:
        for step in reversed(done):
            try:
                new.remove(step.id)
            except Exception:  # noqa: BLE001
                log.exception("migration: cannot undo %s in %s", step.id, new.name)
        new.cleanup()
        raise
    daemon.graph = daemon.images.graph = daemon.containers.graph = new
    daemon.state.set_meta("storage-driver", new.name)
    for c in daemon.containers.all():
        c["Driver"] = new.name
        c["GraphDriver"] = {"Name": new.name, "Data": new.metadata(c["Id"])}
        daemon.containers.save(c)
    for step in reversed(done):
        try:
            old.remove(step.id)
        except Exception:  # noqa: BLE001 - the new driver holds everything already
            log.exception("migration: cannot remove %s from %s", step.id, old.name)
    old.cleanup()
    shutil.rmtree(old.home, ignore_errors=True)
    return {"layers": sum(not s.rw for s in steps), "containers": sum(s.rw for s in steps),
            "diff_ids_reproduced": exact, "from": old.name, "to": new.name}


def check_idle(daemon: Any) -> None:
    busy = [c["Id"][:12] for c in daemon.containers.all() if c["State"]["Running"]]
    busy += daemon.containers.mounted_ids()
    if busy:
        raise Conflict("stop these containers before migrating storage: " + ", ".join(sorted(set(busy))))
