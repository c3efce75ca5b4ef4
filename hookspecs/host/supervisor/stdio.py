"""The stdio plumbing of a supervised process — a container's run or an exec — in one base:
its output pipes (or TTY master) read on the event loop, its stdin written without blocking,
its window size, and the end of its output once it exited."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import termios
from typing import Any

from dockyard.hookspecs.host.streams import frame

__all__ = ["AttachClient", "DRAIN_GRACE", "FdWriter", "Stdio"]

log = logging.getLogger("dockyard.supervisor")

#: after the main process exited, wait at most this long for its output's end-of-file
DRAIN_GRACE = 2.0


class FdWriter:
    """Non-blocking, buffered writes to a container's stdin (a pipe or the console master).

    Data written before the fd exists (attach before start) is kept until it does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fd: int | None = None
        self.owns = True
        self.eof_bytes = b""
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.waiting = False

    def attach(self, fd: int, owns: bool = True, eof_bytes: bytes = b"") -> None:
        self.fd, self.owns, self.eof_bytes = fd, owns, eof_bytes
        os.set_blocking(fd, False)
        self._flush()

    def write(self, data: bytes) -> None:
        if self.closed or self.eof:
            return
        self.buf += data
        self._flush()

    def write_eof(self) -> None:
        if not self.closed and not self.eof:
            self.eof = True
            self._flush()

    def _flush(self) -> None:
        if self.fd is None or self.closed:
            return
        while self.buf:
            try:
                n = os.write(self.fd, self.buf)
            except BlockingIOError:
                if not self.waiting:
                    self.loop.add_writer(self.fd, self._flush)
                    self.waiting = True
                return
            except OSError:
                self.close()
                return
            del self.buf[:n]
        if self.waiting:
            self.loop.remove_writer(self.fd)
            self.waiting = False
        if self.eof:
            if self.owns:
                self.close()
            elif self.eof_bytes:
                try:
                    os.write(self.fd, self.eof_bytes)
                except OSError:
                    pass
                self.eof_bytes = b""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.buf.clear()
        if self.fd is not None:
            if self.waiting:
                self.loop.remove_writer(self.fd)
                self.waiting = False
            if self.owns:
                try:
                    os.close(self.fd)
                except OSError:
                    pass


class AttachClient:
    def __init__(self, writer: asyncio.StreamWriter, stdout: bool, stderr: bool) -> None:
        self.writer = writer
        self.want = {1: stdout, 2: stderr}
        self.done = asyncio.get_running_loop().create_future()

    def send(self, stream: int, data: bytes, tty: bool) -> None:
        if self.writer.is_closing():
            return
        if tty:
            if self.want[1] or self.want[2]:
                self.writer.write(data)
        elif self.want[stream]:
            self.writer.write(frame(stream, data))

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        if not self.done.done():
            self.done.set_result(None)


class Stdio:
    """What a container and an exec share: the output fds being read (fd -> stream), the TTY
    master, stdin, the window size, the exit code once the process was reaped. A subclass says
    where output goes (:meth:`deliver`) and what the end means (:meth:`finished`)."""

    tty = False

    def __init__(self, sup: Any) -> None:
        self.sup = sup
        self.pid = 0
        self.out_fds: dict[int, int] = {}
        self.master: int | None = None
        self.stdin: FdWriter | None = None
        self.proc_code: int | None = None
        self.drain_timer: asyncio.TimerHandle | None = None
        self.winsize: tuple[int, int] | None = None

    def deliver(self, stream: int, data: bytes) -> None:
        """Output of ``stream`` (1, 2; 1 for a TTY) read from the process."""
        raise NotImplementedError

    def finished(self) -> None:
        """The process exited and its output ended (stdin and the TTY master are closed)."""
        raise NotImplementedError

    # -- output ---------------------------------------------------------------------------------
    def add_output(self, fd: int, stream: int) -> None:
        os.set_blocking(fd, False)
        self.out_fds[fd] = stream
        self.sup.loop.add_reader(fd, self._on_output, fd)

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the console's last slave closed
            data = b""
        if not data:
            self.close_output(fd)
            return
        self.deliver(self.out_fds[fd], data)

    def close_output(self, fd: int) -> None:
        if self.out_fds.pop(fd, None) is None:
            return
        self.sup.loop.remove_reader(fd)
        if fd != self.master:
            os.close(fd)
        if not self.out_fds and self.proc_code is not None:
            self._finalize()

    def drain_available(self) -> None:
        """Deliver what the process has written so far, now (``sync``), not when the loop
        next polls its outputs."""
        for fd in list(self.out_fds):
            while fd in self.out_fds:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.close_output(fd)
                    break
                self.deliver(self.out_fds[fd], data)

    def close_outputs(self) -> None:
        for fd in list(self.out_fds):
            self.close_output(fd)

    def _force_drain(self) -> None:
        """The main process exited long ago but something still holds its output open (a
        daemonized child without a pid namespace): take what is buffered and stop reading."""
        self.drain_timer = None
        self.drain_available()
        self.close_outputs()

    def child_stdio(self, child_fds: list[int], discard_output: bool = False) -> list[int | None]:
        """The fds 0, 1, 2 of the process to make (None: its TTY's, made by the child): a
        pipe from :attr:`stdin` or ``/dev/null``; pipes read here, or ``/dev/null`` when
        ``discard_output``. The child's ends are appended to ``child_fds`` (closed here once
        the child has them)."""
        stdio: list[int | None] = [None, None, None]
        if self.tty:
            return stdio
        if self.stdin is not None:
            r, w = os.pipe2(os.O_CLOEXEC)
            child_fds.append(r)
            stdio[0] = r
            self.stdin.attach(w)
        else:
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            child_fds.append(null)
            stdio[0] = null
        for stream in (1, 2):
            if discard_output:
                null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
                child_fds.append(null)
                stdio[stream] = null
            else:
                r, w = os.pipe2(os.O_CLOEXEC)
                child_fds.append(w)
                stdio[stream] = w
                self.add_output(r, stream)
        return stdio

    # -- the terminal ---------------------------------------------------------------------------
    def set_master(self, fd: int) -> None:
        self.master = fd
        if self.winsize:
            self._apply_winsize()
        self.add_output(fd, 1)
        if self.stdin is not None:
            self.stdin.attach(fd, owns=False, eof_bytes=b"\x04")

    def resize(self, height: int, width: int) -> None:
        self.winsize = (height, width)
        self._apply_winsize()

    def _apply_winsize(self) -> None:
        if self.master is not None and self.winsize:
            h, w = self.winsize
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
            except OSError as e:
                log.info("%s: resize: %s", getattr(self, "id", "?"), e)

    # -- the end --------------------------------------------------------------------------------
    def on_exit(self, code: int) -> None:
        """The process was reaped with ``code``: finish once its output ended (or after
        :data:`DRAIN_GRACE`)."""
        self.sup.by_pid.pop(self.pid, None)
        self.proc_code = code
        self.exited()
        if not self.out_fds:
            self._finalize()
        else:
            self.drain_timer = self.sup.loop.call_later(DRAIN_GRACE, self._force_drain)

    def exited(self) -> None:
        """Called when the process is reaped, before its output is finished."""

    def _finalize(self) -> None:
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        if self.stdin is not None:
            self.stdin.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.finished()
