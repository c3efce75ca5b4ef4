"""A remote registry over the Distribution v2 HTTP API (Docker Hub, docker-registry, Harbor...).

* Transport: HTTPS; an *insecure* registry (``insecure`` option: loopback always, or listed in
  ``insecure-registries``) is tried over HTTPS without verification, then over plain HTTP.
* Auth: the ``WWW-Authenticate`` challenge of a 401 decides — ``Bearer`` fetches a token from
  the realm (with the credentials as basic auth when given, anonymous otherwise) per scope;
  ``Basic`` sends the credentials.
* ``docker.io``: pulls are tried on each of the ``mirrors`` first, then on registry-1.docker.io
  (:meth:`DistributionBackend.pull_sources`: one backend per mirror); pushes and logins go to
  registry-1.docker.io only, as dockerd's. Tests point that address at a loopback registry with
  the environment variable ``DOCKYARD_TEST_HUB_ENDPOINT`` (a URL; never set it otherwise).
* Uploads: monolithic (one ``PUT``) by default; chunked (``PATCH`` with ``Content-Range``, then
  ``PUT``) when the ``chunk_size`` option is set; cross-repository mount when asked.
* Idempotent requests (GET/HEAD) are retried on connection errors and 5xx answers.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import os
import ssl
import threading
import time
import urllib.parse
from typing import IO, Any, Iterator

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.errors import DockyardError, InvalidParameter, NotFound, Unauthorized
from dockyard.hookspecs.registry import RegistryBackend, VerifyingReader

log = logging.getLogger(__name__)

DOCKER_HUB = "docker.io"
HUB_ENDPOINT = "https://registry-1.docker.io"
HUB_NAMES = (DOCKER_HUB, "index.docker.io", "registry-1.docker.io")
RETRIES = 3


def hub_endpoint() -> str:
    return (os.environ.get("DOCKYARD_TEST_HUB_ENDPOINT") or HUB_ENDPOINT).rstrip("/")


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, insecure_registries: list[str]) -> bool:
    """Docker's rule: loopback, or listed (a host[:port] or a CIDR) in ``insecure-registries``."""
    if is_loopback(host):
        return True
    for entry in insecure_registries:
        entry = entry.split("://", 1)[-1].rstrip("/")
        if entry == host:
            return True
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
                if ipaddress.ip_address(host.rsplit(":", 1)[0].strip("[]")) in net:
                    return True
            except ValueError:
                continue
    return False


class _Response:
    """An open response; ``read`` streams the body; ``close`` also closes the connection."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self.conn, self.resp = conn, resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self, size: int = -1) -> bytes:
        try:
            return self.resp.read(size) if size >= 0 else self.resp.read()
        except http.client.IncompleteRead as e:
            return e.partial  # the verifier reports the short blob

    def close(self) -> None:
        self.resp.close()
        self.conn.close()


class DistributionBackend(RegistryBackend):
    name = "distribution"
    transport = "docker"

    def __init__(self, location: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        host = location.split("://", 1)[-1].rstrip("/")
        self.host = host
        self.insecure = bool(self.options.get("insecure")) or is_insecure(
            host, list(self.options.get("insecure-registries") or []))
        self.auth = self.options.get("auth") or {}
        self.chunk_size = int(self.options.get("chunk_size") or 0)
        self.timeout = float(self.options.get("timeout") or 60)
        self.hub = host in HUB_NAMES
        if "://" in location:  # one endpoint (a mirror)
            self.endpoints = [location.rstrip("/")]
        elif self.hub:
            self.endpoints = [hub_endpoint()]
        else:
            self.endpoints = [f"https://{host}"] + ([f"http://{host}"] if self.insecure else [])
        self._base: str | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._basic = False

    # -- transport -------------------------------------------------------------------------------
    def _ssl(self, base: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.options.get("ca") or None)
        host = urllib.parse.urlsplit(base).netloc
        if self.insecure and host == self.host:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        u = urllib.parse.urlsplit(url)
        if u.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                u.netloc, timeout=self.timeout, context=self._ssl(url))
        else:
            conn = http.client.HTTPConnection(u.netloc, timeout=self.timeout)
        path = u.path + ("?" + u.query if u.query else "")
        return conn, path

    def _endpoint(self) -> str:
        """The first endpoint that answers ``GET /v2/`` at all (any status)."""
        with self._lock:
            if self._base:
                return self._base
            errors = []
            for base in self.endpoints:
                conn, path = self._connect(base + "/v2/")
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    self._base = base
                    if resp.status == 401:
                        self._challenge(resp.headers.get("WWW-Authenticate", ""), None)
                    return base
                except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                    errors.append(f"{base}: {exc}")
                finally:
                    conn.close()
            raise DockyardError(f"registry {self.host} unreachable: " + "; ".join(errors))

    def _challenge(self, header: str, scope: str | None) -> bool:
        """Act on a ``WWW-Authenticate`` header; True if a retry may now succeed."""
        kind, _, params = header.partition(" ")
        fields = dict(_parse_params(params))
        if kind.lower() == "basic":
            if self._basic or not self.auth.get("username"):
                return False
            self._basic = True
            return True
        if kind.lower() == "bearer":
            if scope is None:
                return True
            realm = fields.get("realm")
            if not realm:
                return False
            q = {"service": fields.get("service", "")}
            if scope:
                q["scope"] = scope
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q)
            conn, path = self._connect(url)
            headers = {}
            if self.auth.get("username"):
                headers["Authorization"] = _basic(self.auth)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            finally:
                conn.close()
            if resp.status != 200:
                raise Unauthorized(f"{self.host}: token request failed ({resp.status}): "
                                   f"{body[:200].decode(errors='replace')}")
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
            if not token:
                raise Unauthorized(f"{self.host}: token endpoint gave no token")
            self._tokens[scope] = token
            return True
        return False

    def request(self, method: str, path: str, *, scope: str = "", headers: dict[str, str] | None = None,
                body: Any = None, ok: tuple[int, ...] = (200,), stream: bool = False,
                chunked: bool = False) -> _Response:
        """One API request with auth, redirects and (for GET/HEAD) retries."""
        base = self._endpoint()
        url = path if "://" in path else base + path
        attempts = RETRIES if method in ("GET", "HEAD") else 1
        auth_tries = 0
        redirects = 0
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            same_host = urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(base).netloc
            if same_host:
                if scope in self._tokens:
                    hdrs["Authorization"] = "Bearer " + self._tokens[scope]
                elif self._basic:
                    hdrs["Authorization"] = _basic(self.auth)
            conn, p = self._connect(url)
            try:
                conn.request(method, p, body=body, headers=hdrs, encode_chunked=chunked)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if attempt < attempts:
                    time.sleep(0.2 * attempt)
                    continue
                raise DockyardError(f"{method} {url}: {exc}") from exc
            r = _Response(conn, resp)
            if resp.status == 401 and auth_tries < 2 and same_host:
                r.read()
                r.close()
                auth_tries += 1
                if self._challenge(resp.headers.get("WWW-Authenticate", ""), scope) and not _is_stream(body):
                    continue
                raise Unauthorized(f"{self.host}: unauthorized: authentication required"
                                   + (" (bad credentials?)" if self.auth else ""))
            if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and redirects < 5:
                loc = resp.headers.get("Location", "")
                r.read()
                r.close()
                url = urllib.parse.urljoin(url, loc)
                redirects += 1
                continue
            if resp.status >= 500 and attempt < attempts:
                r.read()
                r.close()
                time.sleep(0.2 * attempt)
                continue
            if resp.status not in ok:
                data = r.read()
                r.close()
                # the registry's own words, as dockerd reports them ("manifest unknown:
                # manifest unknown"); else what the answer says, and who gave it
                msg = _error_message(data) or f"{self.host}: {resp.reason}"
                if resp.status == 404:
                    raise NotFound(msg)
                if resp.status in (401, 403):
                    raise Unauthorized(msg)
                if resp.status == 400:
                    raise InvalidParameter(msg)
                raise DockyardError(f"{self.host}: {method} {p}: {resp.status} {msg}")
            if not stream:
                data = r.read()
                r.close()
                r.body = data  # type: ignore[attr-defined]
            return r

    # -- the contract -------------------------------------------------------------------------------
    def pull_sources(self) -> list[RegistryBackend]:
        """Docker Hub's mirrors (``registry-mirrors``), each on its own, then the registry."""
        if not self.hub:
            return [self]
        opts = {**self.options, "mirrors": [], "insecure": False}
        sources: list[RegistryBackend] = [DistributionBackend(m, opts)
                                          for m in self.options.get("mirrors") or ()]
        return [*sources, self]

    def resolve(self, repo: str, ref: str) -> dict[str, Any]:
        path = f"/v2/{repo}/manifests/{ref}"
        accept = {"Accept": ", ".join(mt.MANIFEST_ACCEPT)}
        try:
            r = self.request("HEAD", path, scope=_scope(repo), headers=accept)
            digest = r.headers.get("Docker-Content-Digest")
        except NotFound:  # a HEAD has no body: the GET gives the registry's words (or answers)
            digest = None
        if not digest:
            media, raw = self.get_manifest(repo, ref)
            return {"mediaType": media, "digest": mt.sha256_of(raw), "size": len(raw)}
        media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        return {"mediaType": media, "digest": digest, "size": int(r.headers.get("Content-Length") or 0)}

    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes]:
        r = self.request("GET", f"/v2/{repo}/manifests/{ref}", scope=_scope(repo),
                         headers={"Accept": ", ".join(mt.MANIFEST_ACCEPT)})
        return (r.headers.get("Content-Type") or "").split(";")[0].strip(), r.body  # type: ignore[attr-defined]

    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        r = self.request("PUT", f"/v2/{repo}/manifests/{ref}", scope=_scope(repo, push=True),
                         headers={"Content-Type": media_type}, body=data, ok=(200, 201, 202))
        return r.headers.get("Docker-Content-Digest") or mt.sha256_of(data)

    def has_blob(self, repo: str, digest: str) -> int | None:
        try:
            r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=_scope(repo))
        except NotFound:
            return None
        return int(r.headers.get("Content-Length") or 0)

    def get_blob(self, repo: str, digest: str) -> IO[bytes]:
        mt.check_digest(digest)
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=_scope(repo),  # type: ignore[return-value]
                            stream=True)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        q = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}",
                         scope=_scope(repo, push=True) + " " + _scope(from_repo), ok=(201, 202))
        if r.status == 201:
            return True
        loc = r.headers.get("Location")
        if loc:  # the registry started an upload instead: cancel it
            try:
                self.request("DELETE", self._abs(loc), scope=_scope(repo, push=True), ok=(200, 202, 204, 404))
            except DockyardError:
                pass
        return False

    def _abs(self, loc: str) -> str:
        return urllib.parse.urljoin(self._endpoint() + "/", loc)

    def put_blob(self, repo: str, digest: str, stream: IO[bytes], size: int | None = None) -> None:
        scope = _scope(repo, push=True)
        reader = VerifyingReader(stream, digest, size, "blob")
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope, ok=(202,))
        loc = self._abs(r.headers["Location"])
        if self.chunk_size:
            offset = 0
            while True:
                chunk = reader.read(self.chunk_size)
                if not chunk:
                    break
                r = self.request("PATCH", loc, scope=scope, body=chunk, ok=(202,), headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    "Content-Length": str(len(chunk))})
                offset += len(chunk)
                loc = self._abs(r.headers["Location"])
            self.request("PUT", _with_query(loc, digest=digest), scope=scope, ok=(201,),
                         headers={"Content-Length": "0"}, body=b"")
            return
        hdrs = {"Content-Type": "application/octet-stream"}
        if size is not None:
            hdrs["Content-Length"] = str(size)
            self.request("PUT", _with_query(loc, digest=digest), scope=scope, ok=(201,),
                         headers=hdrs, body=reader)
        else:
            self.request("PUT", _with_query(loc, digest=digest), scope=scope, ok=(201,),
                         headers=hdrs, body=_chunks(reader), chunked=True)
        if not reader.done:
            reader.read()  # raises if the local source did not match

    def tags(self, repo: str) -> list[str]:
        r = self.request("GET", f"/v2/{repo}/tags/list", scope=_scope(repo))
        return sorted(json.loads(r.body).get("tags") or [])  # type: ignore[attr-defined]

    def catalog(self) -> list[str]:
        r = self.request("GET", "/v2/_catalog", scope="registry:catalog:*")
        return sorted(json.loads(r.body).get("repositories") or [])  # type: ignore[attr-defined]

    def delete(self, repo: str, ref: str) -> None:
        digest = ref if ref.startswith("sha256:") else self.resolve(repo, ref)["digest"]
        self.request("DELETE", f"/v2/{repo}/manifests/{digest}", scope=_scope(repo, push=True) + ",delete",
                     ok=(200, 202))

    def ping(self) -> None:
        """Check that the registry answers and accepts the credentials (``docker login``)."""
        self.request("GET", "/v2/", scope="")


def _is_stream(body: Any) -> bool:
    return body is not None and not isinstance(body, (bytes, bytearray, str))


def _chunks(reader: IO[bytes]) -> Iterator[bytes]:
    while chunk := reader.read(1 << 20):
        yield chunk


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _scope(repo: str, push: bool = False) -> str:
    return f"repository:{repo}:{'pull,push' if push else 'pull'}"


def _basic(auth: dict[str, Any]) -> str:
    raw = f"{auth.get('username', '')}:{auth.get('password', '')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _parse_params(s: str) -> Iterator[tuple[str, str]]:
    i = 0
    while i < len(s):
        eq = s.find("=", i)
        if eq < 0:
            return
        key = s[i:eq].strip().strip(",").strip()
        i = eq + 1
        if i < len(s) and s[i] == '"':
            end = s.find('"', i + 1)
            end = len(s) if end < 0 else end
            yield key, s[i + 1:end]
            i = end + 1
        else:
            end = s.find(",", i)
            end = len(s) if end < 0 else end
            yield key, s[i:end].strip()
            i = end
        while i < len(s) and s[i] in ", ":
            i += 1


def _error_message(data: bytes) -> str:
    try:
        errs = json.loads(data).get("errors") or []
        return "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                         .strip(": ") for e in errs)
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace").strip()
