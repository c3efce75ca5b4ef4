"""The overlay2 on-disk layout, shared by the ``overlay`` (kernel) and ``fuse-overlayfs`` drivers.

Learned from moby's ``daemon/graphdriver/overlay2`` design; written from scratch::

    <home>/.l/<short>         -> ../<id>/diff   (a short name for every layer's diff dir)
    <home>/<id>/diff/         the layer's own files (the overlay upper dir)
    <home>/<id>/link          <short>
    <home>/<id>/lower         .l/<parent short>:.l/<grandparent short>:...  (absent for a base layer)
    <home>/<id>/work/         overlay's work dir
    <home>/<id>/merged/       where the layer is mounted while referenced

Mount options name the lower layers by their short links *relative to home*
(``lowerdir=.l/ABC:.l/DEF``), so 128 layers take about 3 KB, under a page. (moby calls the
link directory ``l``; a dot name cannot collide with a layer id, and ``l`` is a valid one.) The mount call runs with
home as working directory in a thread of its own (``core.host.call_in_dir``), never changing
the daemon's working directory.

* A base layer (no ``lower``) is not mounted: ``get`` returns its ``diff`` directory.
* ``get``/``put`` are reference counted in memory; at start-up every ``merged`` still mounted
  (a daemon killed with SIGKILL) is adopted: the next ``get`` counts it instead of mounting again,
  ``put``/``cleanup``/``remove`` unmount it.
* Layers appear atomically (built under ``.tmp-<id>-*``, renamed) and disappear atomically
  (renamed to ``.rm-<id>-*`` before the delete); leftovers are removed at start-up.
* ``userns-remap`` (``id_map``, as moby's overlay2): a layer's ``diff`` and ``work`` directories
  are owned by ``id_map.root``, the layer directory (holding ``merged``) and home's are
  ``0710`` with group ``id_map.root``'s gid so root of the user namespace can reach the mount;
  applied tars are stored shifted and diffs shifted back by the shared tar helpers.
* The diff side is native: the changes of a layer against its parent are its upper directory,
  overlay whiteouts (0/0 character devices, ``trusted.overlay.opaque=y``) converted to OCI ones
  by the shared tar writer; ``apply_diff`` unpacks straight into the upper directory with the
  reverse conversion (:class:`OverlayWhiteouts`, a hook of the shared tar reader). For a
  ``parent`` other than the layer's own, the naive (mount and compare) diff is used.
"""
from __future__ import annotations

import base64
import errno
import logging
import os
import shutil
import stat
import threading
import uuid
from typing import IO, Any, Callable

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import Conflict, InvalidParameter, NotFound
from dockyard.hookspecs.graphdriver import GraphDriver
from dockyard.hookspecs.host import RefCounter
from dockyard.hookspecs.host.changes import (CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY, Change,
                                             changes_size)
from dockyard.hookspecs.host.layertar import stream_from_writer, write_layer_tar
from dockyard.hookspecs.host.tarsafe import (WHITEOUT_OPAQUE, WHITEOUT_PREFIX, SecureRoot,
                                             WhiteoutFormat, apply_layer_tar, remove_at)
from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.naivediff import NaiveDiff

log = logging.getLogger(__name__)

LINK_DIR = ".l"  # moby names it "l"; a dot name cannot collide with a layer id ("l" is one)
_TMP_PREFIX = ".tmp-"
_RM_PREFIX = ".rm-"
_LINK_LEN = 20           # base32 characters: 100 random bits; ".l/" + 20 + ":" = 24 bytes a layer
OPAQUE_XATTR = "trusted.overlay.opaque"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def check_id(id: object, what: str = "layer id") -> str:
    """Layer ids become path components and mount-option words: no ``/ , : =``, no dot names."""
    if (not isinstance(id, str) or not id or any(c in id for c in "/,:=\0\n") or ".." in id
            or id.startswith(".") or len(id) > 200):
        raise InvalidParameter(f"invalid {what} {id!r}")
    return id


def _new_link() -> str:
    return base64.b32encode(os.urandom(15)).decode()[:_LINK_LEN]


def _exists_nofollow(root: str, rel: str) -> bool:
    """Whether ``root/rel`` exists, never following a symlink in ``rel``'s directories."""
    cur = root
    parts = [p for p in rel.split("/") if p]
    for i, p in enumerate(parts):
        cur = os.path.join(cur, p)
        try:
            st = os.lstat(cur)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return False
    return True


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _copy_dir_meta(dfd: int, name: str, st: os.stat_result) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
    os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd)


class OverlayWhiteouts(WhiteoutFormat):
    """OCI whiteouts recorded the overlayfs way, in an upper directory: ``.wh.x`` becomes a 0/0
    character device ``x`` (only where ``x`` exists below), ``.wh..wh..opq`` the
    ``trusted.overlay.opaque=y`` xattr on its directory. ``lower()`` returns the root of the merged
    lower layers (or ``None`` for a base layer); it is called only when a whiteout needs it."""

    def __init__(self, lower: Callable[[], str | None]) -> None:
        self._lower_fn = lower
        self._lower: str | None = None
        self._asked = False

    def lower_root(self) -> str | None:
        if not self._asked:
            self._asked = True
            self._lower = self._lower_fn()
        return self._lower

    def _in_lower(self, parts: list[str]) -> os.stat_result | None:
        root = self.lower_root()
        if root is None or not _exists_nofollow(root, "/".join(parts)):
            return None
        return os.lstat(os.path.join(root, *parts))

    def _open_or_copy_dirs(self, sroot: SecureRoot, parent: list[str], what: str) -> int | None:
        """The upper directory ``parent``; made (with the lower one's owner, mode and times) when
        it exists only below. ``None`` when it exists nowhere."""
        try:
            return sroot.open_dir(parent, what=what)
        except FileNotFoundError:
            pass
        for i in range(1, len(parent) + 1):
            st = self._in_lower(parent[:i])
            if st is None or not stat.S_ISDIR(st.st_mode):
                return None
            dfd = sroot.open_dir(parent[:i - 1], what=what)
            try:
                try:
                    os.mkdir(parent[i - 1], 0o700, dir_fd=dfd)
                except FileExistsError:
                    continue
                _copy_dir_meta(dfd, parent[i - 1], st)
            finally:
                os.close(dfd)
        return sroot.open_dir(parent, what=what)

    def implied_dir(self, dfd: int, name: str, parts: list[str]) -> None:
        # the tar has "tmp/x" but no "tmp/": the upper's new "tmp" would replace the lower one's
        # owner and mode in the merged view (a 1777 /tmp becoming 0755): copy them from below
        st = self._in_lower(parts)
        if st is not None and stat.S_ISDIR(st.st_mode):
            _copy_dir_meta(dfd, name, st)

    def whiteout(self, sroot: SecureRoot, parent: list[str], victim: str, what: str) -> None:
        below = self._in_lower(parent + [victim]) is not None
        dfd = self._open_or_copy_dirs(sroot, parent, what) if below else None
        if dfd is None:
            try:
                dfd = sroot.open_dir(parent, what=what)
            except FileNotFoundError:
                return  # nothing of that name anywhere: nothing to hide
        try:
            remove_at(dfd, victim)
            if below:
                os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)
        finally:
            os.close(dfd)

    def dir_replaced(self, dfd: int, name: str, was: os.stat_result) -> None:
        # a directory made where this tar left a whiteout must not show the lower one's entries
        if is_whiteout(was):
            os.setxattr(f"/proc/self/fd/{dfd}/{name}", OPAQUE_XATTR, b"y", follow_symlinks=False)

    def opaque(self, sroot: SecureRoot, dir_parts: list[str], unpacked: set[tuple[str, ...]],
               what: str) -> None:
        super().opaque(sroot, dir_parts, unpacked, what)  # the upper keeps only this tar's entries
        if not dir_parts:
            # the layer's root cannot be marked opaque: hide the lower root's entries one by one
            lroot = self.lower_root()
            for name in sorted(os.listdir(lroot)) if lroot else ():
                if (name,) not in unpacked:
                    self.whiteout(sroot, [], name, what)
            return
        try:
            dfd = sroot.open_dir(dir_parts, what=what)
        except FileNotFoundError:
            return
        try:
            os.setxattr(f"/proc/self/fd/{dfd}", OPAQUE_XATTR, b"y")
        finally:
            os.close(dfd)


class OverlayLayout(NaiveDiff, GraphDriver):
    """The layout, reference counting and native diff; subclasses say how to mount.

    Subclasses implement :meth:`_mount` (``lowers`` are ``l/<short>`` names relative to home)
    and set ``_mount_types`` (the mountinfo file-system types of their mounts)."""

    _mount_types: tuple[str, ...] = ()
    # copy-up of one name of a hard-linked lower file makes a new inode (index=off, as Docker's
    # overlay2: with index=on the upper directory would no longer be the layer's diff)
    limitations = frozenset({"hardlink-copy-up"})

    def __init__(self, home: str, options: dict[str, str] | None = None,
                 id_map: IDMap | None = None) -> None:
        super().__init__(home, options, id_map)
        if self.options:
            raise InvalidParameter(f"{self.name}: unknown storage option(s): "
                                   + ", ".join(sorted(self.options)))
        os.makedirs(os.path.join(home, LINK_DIR), mode=0o700, exist_ok=True)
        if not self.id_map.is_identity:
            os.chown(home, 0, self.id_map.root[1])
            os.chmod(home, 0o710)
        self._lock = threading.RLock()
        self._refs = RefCounter(self._lock, self.name)
        self._mounted: set[str] = set()
        self._busy = RefCounter(self._lock, self.name)  # in create, or held by a diff stream
        for name in os.listdir(home):
            if name.startswith((_TMP_PREFIX, _RM_PREFIX)):
                log.info("%s: removing leftover %s", self.name, name)
                self._unmount_path(os.path.join(home, name, "merged"), quiet=True)
                shutil.rmtree(os.path.join(home, name), ignore_errors=True)
        prefix = os.path.realpath(home) + "/"
        for mp, fstype, _src in host.mountinfo():
            if (fstype in self._mount_types and mp.startswith(prefix)
                    and mp.endswith("/merged") and mp.count("/") == prefix.count("/") + 1):
                id = mp[len(prefix):-len("/merged")]
                try:
                    os.stat(mp)
                except OSError as e:  # e.g. ENOTCONN: its fuse-overlayfs process is gone
                    log.warning("%s: dropping dead mount of %s: %s", self.name, id, e)
                    host.umount2(mp, host.MNT_DETACH)
                    continue
                log.info("%s: adopting %s, still mounted from a previous run", self.name, id)
                self._mounted.add(id)

    # -- to implement ---------------------------------------------------------------------------
    def _mount(self, id: str, lowers: list[str]) -> None:
        """Mount layer ``id`` at ``<home>/<id>/merged`` with ``<id>/diff`` as upper dir."""
        raise NotImplementedError

    def _unmount_path(self, path: str, quiet: bool = False) -> None:
        try:
            host.umount2(path, 0)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                if not quiet:
                    log.debug("%s: %s was not mounted", self.name, path)
                return
            if e.errno != errno.EBUSY:
                raise
            log.warning("%s: %s busy, detaching it lazily", self.name, path)
            host.umount2(path, host.MNT_DETACH)

    # -- helpers --------------------------------------------------------------------------------
    def _dir(self, id: str) -> str:
        return os.path.join(self.home, check_id(id))

    def _lowers(self, id: str) -> list[str]:
        try:
            with open(os.path.join(self._dir(id), "lower")) as f:
                data = f.read().strip()
        except FileNotFoundError:
            return []
        return data.split(":") if data else []

    def _link(self, id: str) -> str:
        with open(os.path.join(self._dir(id), "link")) as f:
            return f.read().strip()

    def parent_of(self, id: str) -> str | None:
        """The id of ``id``'s parent (from its first lower link), ``None`` for a base layer."""
        lowers = self._lowers(id)
        if not lowers:
            return None
        target = os.readlink(os.path.join(self.home, lowers[0]))  # ../<parent>/diff
        return target.split("/")[-2]

    def _hold(self, id: str) -> None:
        with self._lock:
            if not os.path.isdir(self._dir(id)):
                raise NotFound(f"{self.name}: layer {id} not found")
            self._busy.acquire(id)

    def _release(self, id: str) -> None:
        self._busy.release(id)

    # -- the core -------------------------------------------------------------------------------
    def create(self, id: str, parent: str | None) -> None:
        path = self._dir(id)
        with self._lock:
            if id in self._busy or os.path.lexists(path):
                raise Conflict(f"{self.name}: layer {id} already exists")
            if parent is not None and not os.path.isdir(self._dir(parent)):
                raise NotFound(f"{self.name}: parent layer {parent} not found")
            self._busy.acquire(id)
            if parent is not None:
                self._busy.acquire(parent)
        tmp = os.path.join(self.home, f"{_TMP_PREFIX}{id}-{uuid.uuid4().hex[:12]}")
        link = None
        try:
            os.mkdir(tmp, 0o700)
            os.mkdir(os.path.join(tmp, "diff"), 0o755)
            os.mkdir(os.path.join(tmp, "work"), 0o700)
            os.mkdir(os.path.join(tmp, "merged"), 0o700)
            if not self.id_map.is_identity:
                # the root of the layer (the merged view's root, for a container's layer) belongs
                # to root of the user namespace; the path to the mount is searchable by it
                uid, gid = self.id_map.root
                for sub in ("diff", "work"):
                    os.chown(os.path.join(tmp, sub), uid, gid)
                os.chown(tmp, 0, gid)
                os.chmod(tmp, 0o710)
            if parent is not None:
                lowers = [os.path.join(LINK_DIR, self._link(parent))] + self._lowers(parent)
                with open(os.path.join(tmp, "lower"), "w") as f:
                    f.write(":".join(lowers))
            while link is None:
                candidate = _new_link()
                try:
                    os.symlink(os.path.join("..", id, "diff"),
                               os.path.join(self.home, LINK_DIR, candidate))
                    link = candidate
                except FileExistsError:
                    continue
            with open(os.path.join(tmp, "link"), "w") as f:
                f.write(link)
            try:
                os.rename(tmp, path)
            except OSError as e:
                raise Conflict(f"{self.name}: layer {id} already exists: {e}") from None
        except BaseException:
            if link is not None:
                os.unlink(os.path.join(self.home, LINK_DIR, link))
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self._release(id)
            if parent is not None:
                self._release(parent)

    def remove(self, id: str) -> None:
        path = self._dir(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"{self.name}: layer {id} not found")
            self._refs.refuse_if_held(id, f"{self.name}: layer {id}")
            self._busy.refuse_if_held(id, f"{self.name}: layer {id}", "busy")
            if id in self._mounted:
                self._unmount_path(os.path.join(path, "merged"))
                self._mounted.discard(id)
            try:
                link = self._link(id)
            except FileNotFoundError:
                link = None
            doomed = os.path.join(self.home, f"{_RM_PREFIX}{id}-{uuid.uuid4().hex[:12]}")
            os.rename(path, doomed)
            if link:
                try:
                    os.unlink(os.path.join(self.home, LINK_DIR, link))
                except FileNotFoundError:
                    pass
        shutil.rmtree(doomed)

    def get(self, id: str) -> str:
        path = self._dir(id)
        with self._lock:
            if not os.path.isdir(path):
                raise NotFound(f"{self.name}: layer {id} not found")
            lowers = self._lowers(id)

            def mount() -> None:
                if lowers and id not in self._mounted:
                    self._mount(id, lowers)
                    self._mounted.add(id)
            self._refs.acquire(id, first=mount)
            return os.path.join(path, "merged") if lowers else os.path.join(path, "diff")

    def put(self, id: str) -> None:
        path = self._dir(id)

        def unmount() -> None:
            if id in self._mounted:
                self._unmount_path(os.path.join(path, "merged"))
                self._mounted.discard(id)
        self._refs.release(id, last=unmount)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._dir(id))

    def ids(self) -> list[str]:
        # the layer directories: not .l (links), nor .tmp-/.rm- (being made or removed)
        return sorted(n for n in os.listdir(self.home)
                      if not n.startswith(".") and os.path.isdir(os.path.join(self.home, n)))

    def metadata(self, id: str) -> dict[str, str]:
        path = self._dir(id)
        if not os.path.isdir(path):
            raise NotFound(f"{self.name}: layer {id} not found")
        out = {"UpperDir": os.path.join(path, "diff"), "WorkDir": os.path.join(path, "work"),
               "MergedDir": os.path.join(path, "merged")}
        lowers = self._lowers(id)
        if lowers:
            out["LowerDir"] = ":".join(
                os.path.normpath(os.path.join(self.home, LINK_DIR, os.readlink(os.path.join(self.home, lower))))
                for lower in lowers)
        return out

    def cleanup(self) -> None:
        with self._lock:
            for id in sorted(self._mounted):
                try:
                    self._unmount_path(os.path.join(self.home, id, "merged"))
                except OSError:
                    log.exception("%s: cannot unmount %s", self.name, id)
            self._mounted.clear()
            self._refs.clear()

    # -- the native diff ------------------------------------------------------------------------
    def _native(self, id: str, parent: str | None) -> bool:
        return self.exists(id) and self.parent_of(id) == parent

    def _with_parent_root(self, parent: str | None) -> tuple[Callable[[], str | None], Callable[[], None]]:
        """A lazy ``get(parent)`` and its matching release."""
        taken: list[str] = []

        def root() -> str | None:
            if parent is None:
                return None
            r = self.get(parent)
            taken.append(parent)
            return r

        def release() -> None:
            for p in taken:
                self.put(p)
        return root, release

    def upper_changes(self, id: str, parent: str | None) -> list[Change]:
        """The changes of ``id`` read from its upper directory, in walk order."""
        upper = os.path.join(self._dir(id), "diff")
        lower_root, release = self._with_parent_root(parent)
        out: list[Change] = []
        try:
            lroot = lower_root()

            def walk(dirpath: str, rel: str) -> None:
                with os.scandir(dirpath) as it:
                    names = sorted(e.name for e in it)
                for name in names:
                    p, r = os.path.join(dirpath, name), rel + "/" + name
                    st = os.lstat(p)
                    if name.startswith(WHITEOUT_PREFIX):
                        # markers fuse-overlayfs leaves next to (or instead of) the kernel's:
                        # ".wh..wh..opq" files and ".wh..opq" devices in opaque directories,
                        # ".wh.<name>" files when it cannot make devices
                        if name in (WHITEOUT_OPAQUE, ".wh..opq"):
                            for c in reversed(out):
                                if c.path == rel:
                                    c.opaque = True
                                    break
                        else:
                            out.append(Change(rel + "/" + name[len(WHITEOUT_PREFIX):], CHANGE_DELETE))
                        continue
                    if is_whiteout(st):
                        out.append(Change(r, CHANGE_DELETE))
                        continue
                    below = lroot is not None and _exists_nofollow(lroot, r)
                    kind = CHANGE_MODIFY if below else CHANGE_ADD
                    if stat.S_ISDIR(st.st_mode):
                        out.append(Change(r, kind, opaque=_is_opaque(p) and below))
                        walk(p, r)
                    else:
                        out.append(Change(r, kind))

            walk(upper, "")
        finally:
            release()
        return out

    def changes(self, id: str, parent: str | None) -> list[dict[str, Any]]:
        if not self._native(id, parent):
            return super().changes(id, parent)
        return [c.as_dict() for c in self.upper_changes(id, parent)]

    def diff_size(self, id: str, parent: str | None) -> int:
        if not self._native(id, parent):
            return super().diff_size(id, parent)
        return changes_size(os.path.join(self._dir(id), "diff"), self.upper_changes(id, parent))

    def diff(self, id: str, parent: str | None) -> IO[bytes]:
        if not self._native(id, parent):
            return super().diff(id, parent)
        self._hold(id)
        try:
            changes = self.upper_changes(id, parent)
            upper = os.path.join(self._dir(id), "diff")
            return stream_from_writer(lambda out: write_layer_tar(out, upper, changes, self.id_map),
                                      on_done=lambda: self._release(id))
        except BaseException:
            self._release(id)
            raise

    def apply_diff(self, id: str, parent: str | None, stream: IO[bytes]) -> int:
        if not self._native(id, parent):
            return super().apply_diff(id, parent, stream)
        self._hold(id)
        lower_root, release = self._with_parent_root(parent)
        try:
            return apply_layer_tar(os.path.join(self._dir(id), "diff"), stream,
                                   OverlayWhiteouts(lower_root), self.id_map)
        finally:
            try:
                release()
            finally:
                self._release(id)

    # -- status ---------------------------------------------------------------------------------
    def _backing_status(self) -> list[tuple[str, str]]:
        try:
            dtype = "true" if host.supports_d_type(self.home) else "false"
        except OSError:
            dtype = "unknown"
        return [("Backing Filesystem", host.fs_name(self.home)), ("Supports d_type", dtype),
                ("Native Overlay Diff", "true")]


def check_backing(name: str, home: str) -> str:
    """Refuse a home an overlay upper dir cannot live on; return the backing fs name.

    fuse-overlayfs too: the whiteouts this layout writes (0/0 devices, ``trusted.overlay.*``
    xattrs) are interpreted by an overlayfs backing itself (measured: the whiteout and opaque
    suite tests fail for fuse-overlayfs on an overlayfs home)."""
    from dockyard.hookspecs.errors import DriverNotSupported
    os.makedirs(home, mode=0o700, exist_ok=True)
    backing = host.fs_name(home)
    if backing in ("overlayfs", "aufs", "fuse", "nfs", "cifs", "ecryptfs"):
        raise DriverNotSupported(f"{name}: {home} is on {backing}, which cannot host an overlay "
                                 "upper directory")
    if not host.supports_d_type(home):
        raise DriverNotSupported(f"{name}: {home} is on {backing} without d_type support "
                                 "(xfs needs ftype=1)")
    return backing
