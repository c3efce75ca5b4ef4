"""``POST /containers/create?platform=os[/arch[/variant]]``: the image must match, as dockerd
answers (404, with its words) when the local image is of another platform; containerd's
``platforms.Parse`` normalization of the common aliases."""
from __future__ import annotations

from typing import Any

from dockyard.hookspecs.errors import InvalidParameter, NotFound

_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
         "armel": "arm", "i386": "386", "i686": "386"}
_OSES = ("linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
         "android", "ios", "js", "wasip1", "aix", "plan9", "dragonfly")


def parse(text: str) -> tuple[str, str, str]:
    """(os, architecture, variant) of a platform string; an empty part means "any"."""
    parts = [p.strip().lower() for p in text.split("/")]
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise InvalidParameter(f"failed to parse platform {text!r}: expected os[/arch[/variant]]")
    if len(parts) == 1 and parts[0] not in _OSES:  # an architecture alone: this host's OS
        parts = ["linux", parts[0]]
    if parts[0] not in _OSES:
        raise InvalidParameter(f"failed to parse platform {text!r}: unknown operating system "
                               f"or architecture")
    os_, arch, variant = (parts + ["", ""])[:3]
    arch = _ARCH.get(arch, arch)
    if arch == "arm64" and variant == "v8":
        variant = ""
    return os_, arch, variant


def check(images: Any, ref: str | None, wanted: str | None) -> None:
    """NotFound when the local image ``ref`` (its config: ``os``, ``architecture``,
    ``variant``) does not match the ``platform`` asked for; nothing to check without one (an
    unknown image is the create's own error)."""
    if not wanted or not ref:
        return
    want = parse(wanted)
    try:
        config = images.config(images.resolve(ref))
    except NotFound:
        return
    have = (config.get("os") or "linux", _ARCH.get(config.get("architecture") or "",
                                                   config.get("architecture") or ""),
            config.get("variant") or "")
    if want[0] != have[0] or (want[1] and want[1] != have[1]) or \
            (want[2] and have[2] and want[2] != have[2]):
        shown = "/".join(p for p in want if p)
        actual = "/".join(p for p in have if p)
        raise NotFound(f"image with reference {ref} was found but does not match the specified "
                       f"platform: wanted {shown}, actual: {actual}")
