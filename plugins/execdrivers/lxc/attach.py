"""An exec in a running lxc container: liblxc's ``attach_wait``, in a helper process.

``python -m dockyard.plugins.execdrivers.lxc.attach <container dir> <request json>``, its stdio
being the exec's (pipes, or a terminal). liblxc joins every namespace and the cgroup of the
container and applies its capabilities, seccomp profile and no_new_privs; the helper exits
with the process's exit code (128 + signal for a killed one). With a TTY, liblxc gives the
process a terminal of the container's devpts (``tty`` names it) and relays it to the helper's
controlling terminal (the helper leads a session of its own, its stdin's terminal its own).
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import termios

from dockyard.hookspecs.host import ns

from .starter import exit_code

#: liblxc's LXC_ATTACH_TERMINAL (attach_options.h), which the binding does not export: a new
#: terminal from the container's own devpts, proxied to the helper's
ATTACH_TERMINAL = 0x00080000


def main(cdir: str, request: str) -> int:
    import lxc  # noqa: PLC0415 - the driver checked it imports

    req = json.loads(request)
    # liblxc's monitor (the starter) listens on an abstract socket of its network namespace
    fd = os.open(req["netns"], os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(fd, ns.CLONE_NEWNET)
    finally:
        os.close(fd)
    c = lxc.Container(os.path.basename(cdir), os.path.dirname(cdir))
    if req.get("tty"):  # liblxc relays the new terminal to /dev/tty: the helper's must be ours
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    flags = lxc.LXC_ATTACH_DEFAULT | (ATTACH_TERMINAL if req.get("tty") else 0)
    status = c.attach_wait(lxc.attach_run_command, req["args"], attach_flags=flags,
                           env_policy=lxc.LXC_ATTACH_CLEAR_ENV, extra_env_vars=req["env"],
                           uid=req["uid"], gid=req["gid"], initial_cwd=req["cwd"],
                           stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)
    return exit_code(status) if status >= 0 else 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
