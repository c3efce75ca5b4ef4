"""What an extraction accepts (:class:`Policy` and its presets) and how a layer's whiteouts are
recorded (:class:`WhiteoutFormat`)."""

from __future__ import annotations

import dataclasses
import os
import stat
from dataclasses import dataclass
from typing import Any

from .secureroot import SecureRoot, remove_at

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
#: xattrs never carried in a layer: host labels and another driver's bookkeeping
SKIP_XATTR_PREFIXES = (
    "security.selinux",
    "trusted.overlay.",
    "user.overlay.",
    "user.fuseoverlayfs.",
)


@dataclass(frozen=True)
class Policy:
    """What an extraction accepts and how it records it."""

    label: str = "layer tar"  #: starts every error message
    #: ``.wh.`` entries: "apply" (an image layer), "refuse", or "plain" (ordinary names)
    whiteouts: str = "apply"
    devices: bool = True  #: create device nodes (False: refuse them)
    fifos: bool = True  #: create fifos (False: refuse them)
    owners: bool = True  #: chown to the archive's owners (False: the extracting user's)
    setuid: bool = True  #: keep setuid/setgid bits (False: clear them)
    all_xattrs: bool = True  #: every xattr but host labels (False: ``user.*`` only)
    replace_dirs: bool = True  #: a directory may replace a non-directory and the other way
    #: refuse symlink targets with ``..`` after a name (only leading ``..`` can be checked
    #: without following links; for destinations on the host)
    strict_links: bool = False
    utf8_names: bool = False  #: refuse names that are not valid UTF-8


#: an image layer (import, load, pull, graph drivers' ``apply_diff``)
LAYER = Policy()
#: into a container's file system (``docker cp`` in, ``ADD`` of a local tar, ``COPY``):
#: whiteout names would act as whiteouts once the container is committed, so they are refused
COPY_IN = Policy(label="archive", whiteouts="refuse")
#: a build context: a private directory of the daemon's that the builder reads from
BUILD_CONTEXT = Policy(
    label="build context",
    whiteouts="plain",
    devices=False,
    fifos=False,
    owners=False,
    all_xattrs=False,
    strict_links=True,
    utf8_names=True,
)
#: the host side of ``docker cp`` out (the client): as the docker CLI (no chown, no directory
#: replaced by a file), and no device nodes, setuid bits or privileged xattrs from a container
COPY_OUT = Policy(
    label="archive",
    whiteouts="plain",
    devices=False,
    owners=False,
    setuid=False,
    all_xattrs=False,
    replace_dirs=False,
    strict_links=True,
)


class WhiteoutFormat:
    """How the extractor records the tar's OCI whiteouts in the directory it fills.

    The default suits a layer directory that holds the *whole* tree (vfs, btrfs, a mounted
    layer): a whiteout removes its victim, an opaque marker removes what the tar did not itself
    unpack in that directory. A driver that unpacks into an upper directory of a union (overlay)
    subclasses it to leave its own markers instead (a 0/0 character device, an xattr). Its
    methods receive the :class:`SecureRoot` of the layer and must write only through it."""

    def whiteout(self, sroot: SecureRoot, parent: list[str], victim: str, what: str) -> None:
        """``parent/.wh.victim``: make ``parent/victim`` disappear."""
        try:
            dfd = sroot.open_dir(parent, what=what)
        except FileNotFoundError:
            return
        try:
            remove_at(dfd, victim)
        finally:
            os.close(dfd)

    def opaque(
        self, sroot: SecureRoot, dir_parts: list[str], unpacked: set[tuple[str, ...]], what: str
    ) -> None:
        """``dir/.wh..wh..opq``: hide everything below ``dir`` this tar did not unpack itself
        (``unpacked`` holds the path tuples unpacked so far)."""
        _opaque(sroot, dir_parts, unpacked)

    def dir_replaced(self, dfd: int, name: str, was: os.stat_result) -> None:
        """Directory ``name`` (in ``dfd``) was just made where ``was`` stood (removed first)."""

    def implied_dir(self, dfd: int, name: str, parts: list[str]) -> None:
        """Directory ``name`` (in ``dfd``, at ``parts``) was just made (0755, root) because an
        entry below it had no entry of its own in the tar."""


#: the OCI behaviour (remove what a whiteout names)
OCI_WHITEOUTS = WhiteoutFormat()


def _opaque(sroot: SecureRoot, dir_parts: list[str], unpacked: set[tuple[str, ...]]) -> None:
    """Remove everything below ``dir_parts`` that this tar did not itself unpack."""
    try:
        dfd = sroot.open_dir(dir_parts, what="/".join(dir_parts))
    except FileNotFoundError:
        return
    try:
        with os.scandir(dfd) as it:
            names = [e.name for e in it]
        for name in names:
            key = tuple(dir_parts) + (name,)
            if key not in unpacked:
                remove_at(dfd, name)
            elif stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                _opaque(sroot, list(key), unpacked)
    finally:
        os.close(dfd)


# -- checks that need no file system ------------------------------------------------------------


def replace_policy(policy: Policy, **changes: Any) -> Policy:
    """A copy of ``policy`` with ``changes`` (e.g. ``replace_dirs=False`` for dockerd's
    ``noOverwriteDirNonDir``)."""
    return dataclasses.replace(policy, **changes)
