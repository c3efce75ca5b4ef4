"""liblxc's ``autodev`` hook: what liblxc has no configuration key for.

liblxc runs ``python -m dockyard.plugins.execdrivers.lxc.hook <hook.json>`` in the container's
mount namespace, after its mounts and ``/dev`` are made and before it pivots into the root file
system (mounted at ``$LXC_ROOTFS_MOUNT``). The hook:

* creates the spec's ``linux.devices`` nodes (the toolkit's
  :func:`~dockyard.hookspecs.host.devices.create_nodes`);
* masks ``maskedPaths``: ``/dev/null`` bound over a file, an empty read-only tmpfs over a
  directory, as runc does;
* makes ``readonlyPaths`` read-only bind mounts of themselves;
* sets the ``domainname`` (it runs in the container's uts namespace).

A failure exits non-zero: liblxc then refuses to start the container.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from dockyard.hookspecs.host import devices, mounts, ns


def mask(root: str, path: str) -> None:
    target = mounts.secure_join(root, path)
    if not os.path.lexists(target):
        return
    if os.path.isdir(target):
        mounts.mount("tmpfs", target, "tmpfs", mounts.MS_RDONLY, "size=0")
    else:
        mounts.mount("/dev/null", target, None, mounts.MS_BIND)


def read_only(root: str, path: str) -> None:
    target = mounts.secure_join(root, path)
    if not os.path.lexists(target):
        return
    mounts.mount(target, target, None, mounts.MS_BIND | mounts.MS_REC)
    mounts.remount_bind(target, mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV
                        | mounts.MS_NOEXEC)


def run(root: str, work: dict[str, Any]) -> None:
    if work.get("domainname"):  # the hook runs in the container's uts namespace
        ns.setdomainname(work["domainname"])
    devices.create_nodes(root, work.get("devices") or [], mounts.secure_join)
    for path in work.get("masked") or ():
        mask(root, path)
    for path in work.get("readonly") or ():
        read_only(root, path)


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        work = json.load(f)
    root = os.environ.get("LXC_ROOTFS_MOUNT") or ""
    if not root:
        print("lxc hook: LXC_ROOTFS_MOUNT is not set", file=sys.stderr)
        return 1
    try:
        run(root, work)
    except (OSError, ValueError) as e:
        print(f"lxc hook: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
