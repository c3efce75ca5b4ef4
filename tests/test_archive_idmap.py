"""``docker cp`` / ``docker export`` with userns-remap: archives going into a container are chowned
to host IDs, archives coming out carry container IDs (core.archive and the layer-tar writer)."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from dockyard.core import archive
from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.idmap import IDMap
from dockyard.hookspecs.host.changes import compute_changes
from dockyard.hookspecs.host.layertar import write_layer_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")

REMAP = IDMap(uids=((0, 200000, 65536),), gids=((0, 300000, 65536),))


def _tar(*entries: tuple[str, str, int, int]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, uid, gid in entries:
            ti = tarfile.TarInfo(name)
            ti.uid, ti.gid = uid, gid
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = 1, 0o644
                tf.addfile(ti, io.BytesIO(b"x"))
    buf.seek(0)
    return buf


def _owners(stream) -> dict[str, tuple[int, int, str, str]]:
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        return {ti.name.rstrip("/"): (ti.uid, ti.gid, ti.uname, ti.gname) for ti in tf}


@pytest.fixture
def rootfs(tmp_path) -> str:
    root = tmp_path / "rootfs"
    (root / "dst").mkdir(parents=True)
    os.chown(root, 200000, 300000)
    os.chown(root / "dst", 200000, 300000)
    return str(root)


def test_extract_in_shifts_to_host_ids(rootfs: str) -> None:
    archive.extract_in(rootfs, "/dst", _tar(("file", "f", 1000, 1000), ("dir", "d", 5, 7),
                                            ("file", "implied/g", 0, 0)), id_map=REMAP)
    own = lambda rel: (os.lstat(os.path.join(rootfs, "dst", rel)).st_uid,  # noqa: E731
                       os.lstat(os.path.join(rootfs, "dst", rel)).st_gid)
    assert own("f") == (201000, 301000)
    assert own("d") == (200005, 300007)
    assert own("implied") == own("implied/g") == (200000, 300000)


def test_extract_in_refuses_unmapped_owner(rootfs: str) -> None:
    with pytest.raises(InvalidParameter, match="70000"):
        archive.extract_in(rootfs, "/dst", _tar(("file", "bad", 70000, 0)), id_map=REMAP)
    assert not os.path.lexists(os.path.join(rootfs, "dst", "bad"))


def test_extract_in_identity_keeps_ids(rootfs: str) -> None:
    archive.extract_in(rootfs, "/dst", _tar(("file", "f", 1000, 1001)))
    st = os.lstat(os.path.join(rootfs, "dst", "f"))
    assert (st.st_uid, st.st_gid) == (1000, 1001)


def test_tar_out_shifts_back(rootfs: str) -> None:
    for name, uid, gid in (("a", 200000, 300000), ("b", 201000, 301000), ("c", 12345, 12345)):
        with open(os.path.join(rootfs, "dst", name), "w") as f:
            f.write(name)
        os.chown(os.path.join(rootfs, "dst", name), uid, gid)
    owners = _owners(archive.tar_out(rootfs, "/dst", id_map=REMAP))
    assert owners["dst"][:2] == owners["dst/a"][:2] == (0, 0)
    assert owners["dst/b"][:2] == (1000, 1000)
    assert owners["dst/c"][:2] == (65534, 65534)
    assert all(o[2:] == ("", "") for o in owners.values())
    # without a map: the host IDs, as before
    owners = _owners(archive.tar_out(rootfs, "/dst"))
    assert owners["dst/b"][:2] == (201000, 301000)


def test_export_tar_carries_container_ids(rootfs: str) -> None:
    """``docker export`` writes the whole rootfs with write_layer_tar and the graph's map."""
    os.chown(os.path.join(rootfs, "dst"), 200005, 300007)
    out = io.BytesIO()
    write_layer_tar(out, rootfs, compute_changes(rootfs, None), REMAP)
    out.seek(0)
    assert _owners(out)["dst"][:2] == (5, 7)
