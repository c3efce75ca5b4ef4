"""Content-addressed blob storage (OCI image-layout ``blobs/sha256/<hex>``).

A blob is written to a temporary file in the data-root's ``tmp/`` directory, fsynced, its digest
verified, then renamed into place: after a crash a blob is either whole or absent, and the
temporary file is found (and removed) by the start-up reconcile with every other one.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import IO

from dockyard.hookspecs.errors import InvalidParameter, NotFound


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_digest(digest: str) -> tuple[str, str]:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidParameter(f"invalid digest {digest!r}")
    return algo, hexpart


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: the prefix of :func:`atomic_write`'s temporary files next to their target
TMP_PREFIX = ".tmp-"


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True,
                 tmp_dir: str | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    ``durable=False`` skips both fsyncs: for files regenerated anyway after a crash. The
    temporary file is made in ``tmp_dir`` (same file system), else next to ``path`` as
    ``.tmp-*``."""
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or d, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(d)


class BlobStore:
    def __init__(self, root: str, tmp_dir: str) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        for d in (os.path.join(root, "sha256"), tmp_dir):
            os.makedirs(d, exist_ok=True)

    def _mkstemp(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self.tmp_dir, prefix="blob-")

    def path(self, digest: str) -> str:
        algo, hexpart = split_digest(digest)
        return os.path.join(self.root, algo, hexpart)

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def put(self, data: bytes, digest: str | None = None) -> str:
        actual = sha256_digest(data)
        if digest is not None and digest != actual:
            raise InvalidParameter(f"digest mismatch: expected {digest}, content is {actual}")
        path = self.path(actual)
        if not os.path.exists(path):
            atomic_write(path, data, 0o444, tmp_dir=self.tmp_dir)
        return actual

    def put_stream(self, stream: IO[bytes], digest: str | None = None) -> str:
        d = os.path.join(self.root, "sha256")
        fd, tmp = self._mkstemp()
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := stream.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            actual = "sha256:" + h.hexdigest()
            if digest is not None and digest != actual:
                raise InvalidParameter(f"digest mismatch: expected {digest}, content is {actual}")
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.path(actual))
            fsync_dir(d)
            return actual
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def writer(self) -> "BlobWriter":
        """A temporary file that becomes a blob on :meth:`BlobWriter.commit` (digest verified),
        and vanishes otherwise."""
        return BlobWriter(self)

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def size(self, digest: str) -> int:
        return os.path.getsize(self.path(digest))

    def get(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None
        if sha256_digest(data) != digest:
            raise InvalidParameter(f"blob {digest} is corrupt on disk")
        return data

    def delete(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path(digest))


class BlobWriter:
    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.dir = os.path.join(store.root, "sha256")
        fd, self.tmp = store._mkstemp()
        self.f = os.fdopen(fd, "wb")
        self.h = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.size += len(data)
        return self.f.write(data)

    def commit(self, expected: str | None = None) -> str:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        actual = "sha256:" + self.h.hexdigest()
        if expected is not None and expected != actual:
            self.abort()
            raise InvalidParameter(f"digest mismatch: expected {expected}, content is {actual}")
        os.chmod(self.tmp, 0o444)
        os.replace(self.tmp, self.store.path(actual))
        fsync_dir(self.dir)
        self.digest = actual
        return actual

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.digest is None:
            self.abort()
