"""What a service manager hands ``dockyardd``: listening sockets and a readiness channel.

Two small protocols of systemd's, spoken without a binding (they are a few environment variables
and one datagram each):

* **Socket activation** (``sd_listen_fds``): ``LISTEN_PID`` names the process the sockets are for,
  ``LISTEN_FDS`` how many there are (from fd 3 on), ``LISTEN_FDNAMES`` their names
  (``FileDescriptorName=``, by default the ``.socket`` unit's name). ``-H fd://`` serves all of
  them, ``-H fd://NAME`` the ones of that name, ``-H fd://3`` one by number — dockerd's forms.
* **Readiness** (``sd_notify``): newline-separated ``KEY=VALUE`` lines sent as one datagram to
  the unix socket named by ``NOTIFY_SOCKET`` (``@name`` is in the abstract namespace):
  ``READY=1`` once the API serves, ``RELOADING=1`` during a SIGHUP reload, ``STOPPING=1`` at
  shutdown, ``STATUS=...`` for ``systemctl status``.

Both are read once and removed from the environment (as ``sd_listen_fds(1)`` does), so nothing
the daemon starts — the exec driver's supervisor, a container — inherits them, and the inherited
sockets are made close-on-exec for the same reason.
"""
from __future__ import annotations

import logging
import os
import socket
import time

from dockyard.hookspecs.errors import DockyardError

log = logging.getLogger("dockyard.daemon")

SD_LISTEN_FDS_START = 3
_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET")


class Systemd:
    """The sockets and notification address this process was started with (possibly none)."""

    def __init__(self, fds: list[tuple[int, str]], notify_address: str) -> None:
        self.fds = fds                      # [(fd, name)] in the order they were passed
        self.notify_address = notify_address
        self._taken: set[int] = set()

    @classmethod
    def from_environment(cls) -> "Systemd":
        """Read (and unset) ``LISTEN_*`` and ``NOTIFY_SOCKET``. Sockets meant for another process
        (``LISTEN_PID`` is not ours: the variables leaked through a parent) are ignored."""
        env = {k: os.environ.pop(k, "") for k in _ENV}
        fds: list[tuple[int, str]] = []
        if env["LISTEN_FDS"] and env["LISTEN_PID"] == str(os.getpid()):
            try:
                count = int(env["LISTEN_FDS"])
            except ValueError:
                raise DockyardError(f"LISTEN_FDS={env['LISTEN_FDS']!r} is not a number") from None
            names = env["LISTEN_FDNAMES"].split(":") if env["LISTEN_FDNAMES"] else []
            for i in range(count):
                fd = SD_LISTEN_FDS_START + i
                os.set_inheritable(fd, False)  # FD_CLOEXEC: ours alone, not our children's
                fds.append((fd, names[i] if i < len(names) else "unknown"))
        elif env["LISTEN_FDS"]:
            log.warning("ignoring LISTEN_FDS: LISTEN_PID=%s is not this process (%d)",
                        env["LISTEN_PID"], os.getpid())
        return cls(fds, env["NOTIFY_SOCKET"])

    # -- socket activation ---------------------------------------------------------------------
    def sockets(self, spec: str) -> list[socket.socket]:
        """The listening sockets ``-H fd://SPEC`` asks for: all (``""`` or ``*``), one by number,
        or those whose ``FileDescriptorName`` is SPEC. Each is handed out once."""
        if not self.fds:
            raise DockyardError("no sockets found via socket activation: make sure the service "
                                "was started by systemd")
        if spec in ("", "*"):
            chosen = [fd for fd, _ in self.fds]
        elif spec.isdigit():
            chosen = [fd for fd, _ in self.fds if fd == int(spec)]
            if not chosen:
                raise DockyardError(f"too few socket activated files passed in by systemd: "
                                    f"fd://{spec} asked for, {len(self.fds)} passed")
        else:
            chosen = [fd for fd, name in self.fds if name == spec]
            if not chosen:
                raise DockyardError(f"no socket named {spec!r} was passed in by systemd; passed: "
                                    + ", ".join(name for _, name in self.fds))
        out = []
        for fd in chosen:
            if fd in self._taken:
                continue
            sock = socket.socket(fileno=fd)
            if sock.type != socket.SOCK_STREAM:
                raise DockyardError(f"socket activation: fd {fd} is not a stream socket")
            sock.setblocking(False)
            self._taken.add(fd)
            out.append(sock)
        return out

    # -- readiness -----------------------------------------------------------------------------
    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines to the service manager; False when there is none (or it is
        gone — never fatal: the daemon serves the same either way)."""
        if not self.notify_address:
            return False
        addr = self.notify_address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(addr)
                s.sendall("\n".join(lines).encode())
        except OSError as exc:
            log.warning("cannot notify the service manager at %s: %s", self.notify_address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd (253+, Type=notify-reload) match this to the signal
        self.notify("RELOADING=1", "STATUS=reloading the configuration",
                    f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=shutting down")
