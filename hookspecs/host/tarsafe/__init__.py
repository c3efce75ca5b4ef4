"""One safe way to read tar archives: every archive dockyard reads goes through here.

Image layers (import, load, pull, a graph driver's ``apply_diff``), build contexts, ``ADD`` of a
local archive, ``docker cp`` in (the daemon) and out (the CLI's side) and the busybox image all
unpack with :func:`extract`; ``docker load`` reads its archive through :class:`TarIndex`. Part of
the driver toolkit (:mod:`dockyard.hookspecs.host`): like the rest of :mod:`dockyard.hookspecs` it imports
nothing else of dockyard, and works the same on every supported Python (it never uses
:mod:`tarfile`'s ``extract``/``extractall``/``filter=``, which arrived in 3.11.4).

Unpacking
    :func:`extract` (an uncompressed stream), :func:`extract_file` (a file, maybe compressed,
    checked whole before anything is written), :func:`apply_layer_tar` (a layer),
    :func:`validate` (every check, nothing written). A :class:`Policy` says what a destination
    accepts: :data:`LAYER`, :data:`COPY_IN`, :data:`BUILD_CONTEXT`, :data:`COPY_OUT`. Layers
    record whiteouts through a :class:`WhiteoutFormat` (:data:`OCI_WHITEOUTS` by default).
Reading
    :class:`TarReader` (the strict reader: every header checked, truncation and trailing garbage
    are errors, sparse maps parsed), :class:`TarEntry`, :class:`TarIndex` (random access to an
    archive file's members), :func:`is_tar`, :func:`decompressed` (gzip, bzip2, xz, zstd).
Bounds
    :class:`Limits` and :func:`configure` (per-archive size, ratio and free-space limits),
    :func:`source` (declare the archive as received, for the ratio), :func:`uncompressed`
    (both at once), :func:`cancel_scope` and
    :func:`cancel_all` (stop work when its client goes, or the daemon stops).
Paths
    :class:`SecureRoot` (the fd-anchored walk every write goes through), :func:`clean_parts`,
    :func:`remove_at`.

Errors are :class:`~dockyard.hookspecs.errors.InvalidParameter` (HTTP 400) for anything the
archive's content causes — :class:`TarFormatError` for a malformed archive,
:class:`UnpackLimitExceeded` for a limit — and :class:`UnpackCancelled` (503) for stopped work.
"""

from .extract import apply_layer_tar, check_entry, extract, extract_file, validate
from .guard import (
    Limits,
    UnpackCancelled,
    UnpackLimitExceeded,
    cancel_all,
    cancel_scope,
    check_cancelled,
    configure,
    current_limits,
    decompressed,
    input_size,
    source,
    uncompressed,
)
from .index import TarIndex, is_tar
from .policy import (
    BUILD_CONTEXT,
    COPY_IN,
    COPY_OUT,
    LAYER,
    OCI_WHITEOUTS,
    SKIP_XATTR_PREFIXES,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    Policy,
    WhiteoutFormat,
    replace_policy,
)
from .reader import TarEntry, TarFormatError, TarReader
from .secureroot import SecureRoot, clean_parts, remove_at

__all__ = [
    "BUILD_CONTEXT",
    "COPY_IN",
    "COPY_OUT",
    "LAYER",
    "Limits",
    "OCI_WHITEOUTS",
    "Policy",
    "SKIP_XATTR_PREFIXES",
    "SecureRoot",
    "TarEntry",
    "TarFormatError",
    "TarIndex",
    "TarReader",
    "UnpackCancelled",
    "UnpackLimitExceeded",
    "WHITEOUT_META_PREFIX",
    "WHITEOUT_OPAQUE",
    "WHITEOUT_PREFIX",
    "WhiteoutFormat",
    "apply_layer_tar",
    "cancel_all",
    "cancel_scope",
    "check_cancelled",
    "check_entry",
    "clean_parts",
    "configure",
    "current_limits",
    "decompressed",
    "extract",
    "extract_file",
    "input_size",
    "is_tar",
    "remove_at",
    "replace_policy",
    "source",
    "uncompressed",
    "validate",
]
