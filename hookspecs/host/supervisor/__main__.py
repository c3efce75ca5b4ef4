"""``python -m dockyard.hookspecs.host.supervisor --root ROOT --launcher MODULE:CLASS
[--launcher-options JSON] [--cgroup-root PATH] [--ready-fd N]``: the supervisor process."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import sys

from dockyard.hookspecs.host import ns
from dockyard.hookspecs.host.supervisor import launcher as _launcher
from dockyard.hookspecs.host.supervisor.protocol import LOCK_NAME, LOG_NAME
from dockyard.hookspecs.host.supervisor.server import Supervisor

log = logging.getLogger("dockyard.supervisor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockyard-supervisor")
    parser.add_argument("--root", required=True, type=os.path.abspath)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--launcher", required=True, help="MODULE:CLASS")
    parser.add_argument("--launcher-options", default="{}", help="a JSON object")
    parser.add_argument("--cgroup-root", default=None)  # the cgroup tree (<driver>.cgroup-root)
    args = parser.parse_args(argv)
    os.makedirs(args.root, mode=0o711, exist_ok=True)
    logging.basicConfig(
        filename=os.path.join(args.root, LOG_NAME),
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(message)s",
    )
    if args.ready_fd is not None:
        os.set_inheritable(args.ready_fd, False)
    # one supervisor per root: a previous one may still be shutting down
    lock = os.open(os.path.join(args.root, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    ns.set_child_subreaper()
    ns.set_name("dockyard-shim")
    try:
        launcher = _launcher.load(args.launcher, json.loads(args.launcher_options))
        asyncio.run(Supervisor(args.root, launcher, args.cgroup_root or "").serve(args.ready_fd))
    except Exception:  # noqa: BLE001
        log.exception("supervisor failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
