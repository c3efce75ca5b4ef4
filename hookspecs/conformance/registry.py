"""The registry-backend conformance suite, for backends that store images (read and write).

As for graph drivers, the suite owns the tests and a backend supplies only a factory
``factory(home) -> RegistryBackend`` (``home`` is a fresh empty directory; a backend talking to a
server may ignore it). A factory raising :class:`~dockyard.hookspecs.errors.DriverNotSupported`
skips the test with its reason.

    from dockyard.hookspecs.conformance.registry import registry_suite
    TestMyBackend = registry_suite(lambda home: MyBackend(home, {}))

Every blob and manifest must be verified before it is kept, a manifest naming a missing blob must
be refused, and concurrent writes of one blob must be safe.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import shutil
import tempfile
from typing import Any, Callable

import pytest

from ..errors import DockyardError, DriverNotSupported, InvalidParameter, NotFound
from ..registry import DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, RegistryBackend

Factory = Callable[[str], RegistryBackend]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _read(backend: RegistryBackend, repo: str, digest: str) -> bytes:
    f = backend.get_blob(repo, digest)
    try:
        out = b""
        while chunk := f.read(1 << 16):
            out += chunk
        return out
    finally:
        f.close()


class RegistryBackendSuite:
    """The tests; :func:`registry_suite` makes a subclass with the backends' ``factory`` and the
    ``repo`` the tests write to (not collected itself: no ``Test``)."""

    factory: Factory
    repo = "conformance/app"

    @pytest.fixture
    def backend(self) -> Any:
        home = tempfile.mkdtemp(prefix="dockyard-regconf-")
        try:
            try:
                b = self.factory(home)
            except DriverNotSupported as exc:
                pytest.skip(exc.reason)
            yield b
            b.close()
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def _image(self, backend: RegistryBackend, tag: str) -> tuple[str, bytes]:
        layer = tag.encode() * 1000
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        for blob in (layer, config):
            backend.put_blob(self.repo, _digest(blob), io.BytesIO(blob), len(blob))
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                               "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                                          "digest": _digest(config)},
                               "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": len(layer),
                                           "digest": _digest(layer)}]}).encode()
        return backend.put_manifest(self.repo, tag, DOCKER_MANIFEST, manifest), manifest

    def test_pull_sources_end_with_the_backend(self, backend: RegistryBackend) -> None:
        """Mirrors (if any) first, the backend itself last: a pull falls back to it."""
        sources = backend.pull_sources()
        assert sources and sources[-1] is backend
        assert all(isinstance(s, RegistryBackend) for s in sources)

    def test_blob_round_trip(self, backend: RegistryBackend) -> None:
        data = b"conformance blob " * 5000
        d = _digest(data)
        backend.put_blob(self.repo, d, io.BytesIO(data), len(data))
        assert backend.has_blob(self.repo, d) == len(data)
        assert _read(backend, self.repo, d) == data

    def test_blob_with_wrong_digest_is_refused_and_not_kept(self, backend: RegistryBackend) -> None:
        claimed = _digest(b"what it should be")
        with pytest.raises(DockyardError):
            backend.put_blob(self.repo, claimed, io.BytesIO(b"what it is"), 10)
        assert backend.has_blob(self.repo, claimed) is None

    def test_truncated_blob_is_refused(self, backend: RegistryBackend) -> None:
        data = b"0123456789" * 100
        with pytest.raises(DockyardError):
            backend.put_blob(self.repo, _digest(data), io.BytesIO(data[:500]), len(data))
        assert backend.has_blob(self.repo, _digest(data)) is None

    def test_unknown_blob_is_not_found(self, backend: RegistryBackend) -> None:
        missing = _digest(b"never stored")
        assert backend.has_blob(self.repo, missing) is None
        with pytest.raises(NotFound):
            _read(backend, self.repo, missing)

    def test_manifest_by_tag_and_digest(self, backend: RegistryBackend) -> None:
        digest, raw = self._image(backend, "v1")
        assert digest == _digest(raw)
        desc = backend.resolve(self.repo, "v1")
        assert desc["digest"] == digest and desc["size"] == len(raw)
        assert backend.get_manifest(self.repo, "v1")[1] == raw
        assert backend.get_manifest(self.repo, digest)[1] == raw
        assert "v1" in backend.tags(self.repo)
        assert backend.catalog()

    def test_manifest_naming_a_missing_blob_is_refused(self, backend: RegistryBackend) -> None:
        ghost = _digest(b"ghost")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                               "config": {"mediaType": DOCKER_CONFIG, "size": 5, "digest": ghost},
                               "layers": []}).encode()
        with pytest.raises((NotFound, InvalidParameter)):
            backend.put_manifest(self.repo, "broken", DOCKER_MANIFEST, manifest)
        with pytest.raises(NotFound):
            backend.resolve(self.repo, "broken")

    def test_retag_and_delete(self, backend: RegistryBackend) -> None:
        d1, _ = self._image(backend, "one")
        d2, _ = self._image(backend, "two")
        assert backend.resolve(self.repo, "one")["digest"] == d1
        backend.delete(self.repo, d2)
        with pytest.raises(NotFound):
            backend.resolve(self.repo, d2)
        assert backend.resolve(self.repo, "one")["digest"] == d1

    def test_concurrent_writes_of_one_blob(self, backend: RegistryBackend) -> None:
        data = b"shared layer " * 20000
        d = _digest(data)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: backend.put_blob(self.repo, d, io.BytesIO(data), len(data)), range(4)))
        assert _read(backend, self.repo, d) == data


def registry_suite(factory: Factory, repo: str = "conformance/app") -> type:
    """A pytest test class running the whole suite against backends made by ``factory``."""
    return type("RegistryBackendSuite", (RegistryBackendSuite,),
                {"factory": staticmethod(factory), "repo": repo})
