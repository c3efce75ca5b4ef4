"""A tiny DNS responder for tests: answers every ``A`` query with one address and records the
names asked. It listens on an address the test owns (a loopback address, or the gateway of a
bridge the test's daemon made), so no query of a test ever leaves the machine."""
from __future__ import annotations

import contextlib
import random
import socket
import threading
from typing import Iterator

from dockyard.core.dns import QTYPE_A, build_reply, parse_query


class Responder:
    def __init__(self, address: str, answer: str) -> None:
        self.address, self.answer = address, answer
        self.asked: list[str] = []
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            try:
                _qid, flags, qname, qtype, _qclass, qend = parse_query(data)
            except (ValueError, IndexError):
                continue
            self.asked.append(qname)
            self.sock.sendto(build_reply(data, qend, flags, 0, [self.answer], qtype), peer)

    def __enter__(self) -> "Responder":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextlib.contextmanager
def responder(address: str = "", answer: str = "10.9.8.7") -> Iterator[Responder]:
    """A responder on ``address`` port 53 (default: a random loopback address)."""
    for _ in range(20):
        addr = address or f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            r = Responder(addr, answer)
        except OSError:
            if address:
                raise
            continue
        with r:
            yield r
        return
    raise RuntimeError("no free loopback address for a DNS responder")


__all__ = ["QTYPE_A", "Responder", "responder"]
