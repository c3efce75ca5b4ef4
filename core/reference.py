"""Image references, normalised as Docker does: ``busybox`` ⇄ ``docker.io/library/busybox:latest``."""
from __future__ import annotations

import dataclasses
import re

from dockyard.hookspecs.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NS = "library"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^(?:{_DOMAIN})$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclasses.dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short name Docker shows, e.g. ``busybox`` or ``localhost:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_NS + "/") and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_NS) + 1:]
            return self.path
        return self.name

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_tag(self, tag: str) -> "Reference":
        return dataclasses.replace(self, tag=tag, digest=None)


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``ref``; InvalidParameter if it is not a valid reference."""
    if not ref or ref != ref.strip():
        raise InvalidParameter(f"invalid reference format: {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidParameter(f"invalid reference format: {ref!r} (bad digest)")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidParameter(f"invalid reference format: {ref!r} (bad tag)")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN_RE.match(domain):
            raise InvalidParameter(f"invalid reference format: {ref!r} (bad domain)")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NS}/{path}"
    if not _PATH_RE.match(path):
        if path.lower() != path:
            raise InvalidParameter(f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidParameter(f"invalid reference format: {ref!r}")
    if len(domain) + 1 + len(path) > 255:
        raise InvalidParameter(f"invalid reference format: {ref!r} (name too long)")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def normalize(ref: str) -> str:
    """``busybox`` → ``docker.io/library/busybox:latest``."""
    return str(parse(ref))


def familiar(ref: str) -> str:
    """``docker.io/library/busybox:latest`` → ``busybox:latest``."""
    return parse(ref).familiar()
