"""The safe tar extractor (``dockyard.hookspecs.host.tarsafe``) in-process, against archives made by
Debian's GNU tar and by hand: formats, sparse files, corruption, limits, cancellation, policies.

The daemon's entry points are exercised with the same archives in test_hostile_archives.py.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from typing import Iterator

import pytest

from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import InvalidParameter

sys.path.insert(0, os.path.dirname(__file__))
from hostile.make_tars import END, d, hard, header, member, sym  # noqa: E402

TAR = shutil.which("tar")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree(root: str) -> dict[str, tuple]:
    out = {}
    for dp, ds, fs in os.walk(root):
        for n in ds + fs:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            content: object = None
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, st.st_gid, content,
                                             None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime))
    return out


@pytest.fixture
def src(tmp_path) -> str:
    """A tree with what layers hold: nested dirs, modes, owners, links, a fifo, a sparse file,
    long and non-UTF-8 names."""
    s = tmp_path / "src"
    (s / "d" / "e").mkdir(parents=True)
    (s / "d" / "f").write_text("hi\n")
    os.chmod(s / "d" / "f", 0o4755)
    os.chown(s / "d" / "f", 1234, 5678)
    os.symlink("../f", s / "d" / "e" / "l")
    os.link(s / "d" / "f", s / "hl")
    os.mkfifo(s / "fifo")
    with open(s / "sparse", "wb") as f:
        f.truncate(64 << 20)
        f.seek(5 << 20)
        f.write(b"middle")
        f.seek((64 << 20) - 3)
        f.write(b"end")
    long_dir = s / ("n" * 200) / ("m" * 200)
    long_dir.mkdir(parents=True)
    (long_dir / "file").write_text("deep\n")
    with open(os.path.join(os.fsencode(str(s)), b"caf\xe9"), "w") as f:
        f.write("latin-1 name\n")
    return str(s)


@pytest.mark.skipif(TAR is None, reason="GNU tar not installed")
@pytest.mark.parametrize("fmt", [["--format=gnu"], ["--format=pax"], ["--format=posix"],
                                 ["--format=pax", "--sparse-version=0.0"],
                                 ["--format=pax", "--sparse-version=0.1"],
                                 ["--format=gnu", "-z"], ["--format=pax", "-j"], ["--format=gnu", "-J"]])
def test_gnu_tar_formats_round_trip(src: str, tmp_path, fmt: list[str]) -> None:
    archive = str(tmp_path / "a.tar")
    xattrs = [] if "--format=gnu" in fmt else ["--xattrs"]
    subprocess.run([TAR, "--sparse", *xattrs, *fmt, "-cf", archive, "-C", src, "."], check=True)
    dest = tmp_path / "out"
    dest.mkdir()
    size = tarsafe.extract_file(archive, str(dest), tarsafe.LAYER)
    assert tree(str(dest)) == tree(src)
    assert size >= 64 << 20
    st = os.stat(dest / "sparse")
    assert st.st_size == 64 << 20 and st.st_blocks * 512 < 1 << 20  # holes stayed holes
    assert os.stat(dest / "hl").st_ino == os.stat(dest / "d" / "f").st_ino


def test_end_of_input_at_a_member_boundary_is_accepted(tmp_path) -> None:
    """The docker CLI's ``build -f-`` ends its tar right after the last member's data (no
    padding, no end-of-archive blocks), as Go's reader accepts; tar pads to 10 KiB records.
    End of input inside the padding is still a truncated archive."""
    for i, data in enumerate((member(b"a", b"x"), member(b"a", b"x") + END + bytes(9216),
                              header(b"a", size=1) + b"x")):
        dest = tmp_path / f"o{i}"
        dest.mkdir()
        tarsafe.extract(io.BytesIO(data), str(dest))
        assert (dest / "a").read_bytes() == b"x"
        path = tmp_path / f"o{i}.tar"
        path.write_bytes(data)
        with tarsafe.TarIndex(str(path)) as idx:
            assert idx.get("a") is not None
    with pytest.raises(tarsafe.TarFormatError, match="truncated"):
        tarsafe.extract(io.BytesIO(header(b"a", size=1) + b"x" + bytes(100)), str(tmp_path))


@pytest.mark.parametrize("data,words", [
    (member(b"a", b"x") + header(b"b", size=1, bad_checksum=True) + bytes(512) + END,
     "checksum mismatch"),
    (member(b"a", b"x") + header(b"b", size=5000) + b"y" * 100, "truncated"),
    (member(b"a", b"x") + header(b"b")[:100], "truncated header"),
    (member(b"a", b"x") + END + b"junk", "after the end-of-archive"),
    (member(b"a", b"x") + bytes(512) + member(b"b", b"y") + END, "zero block"),
    (b"hello world\n" * 100, "not a tar archive"),
])
def test_corrupt_archives_refused_and_nothing_written(tmp_path, data: bytes, words: str) -> None:
    path = tmp_path / "bad.tar"
    path.write_bytes(data)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(tarsafe.TarFormatError, match=words):
        tarsafe.extract_file(str(path), str(dest), tarsafe.COPY_IN)
    assert os.listdir(dest) == []  # checked whole before anything was written
    with pytest.raises(tarsafe.TarFormatError):
        tarsafe.extract(io.BytesIO(data), str(dest))


def test_corrupt_gzip_is_a_clear_400(tmp_path) -> None:
    blob = gzip.compress(member(b"a", b"x" * 100000) + END)
    path = tmp_path / "bad.tgz"
    path.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(InvalidParameter, match="corrupt gzip data|truncated"):
        tarsafe.extract_file(str(path), str(tmp_path), tarsafe.LAYER)


@pytest.fixture
def small_limits() -> Iterator[None]:
    was = tarsafe.current_limits()
    tarsafe.configure(tarsafe.Limits(max_size=was.max_size, max_ratio=10, ratio_floor=4 << 20))
    try:
        yield
    finally:
        tarsafe.configure(was)


def test_ratio_refused_from_the_header_when_the_size_is_known(tmp_path, small_limits) -> None:
    path = tmp_path / "bomb.tgz"
    path.write_bytes(gzip.compress(header(b"z", size=1 << 30) + bytes(8 << 20), 9))
    with pytest.raises(tarsafe.UnpackLimitExceeded, match="max-unpack-ratio"):
        tarsafe.extract_file(str(path), str(tmp_path), tarsafe.LAYER, check_first=False)
    assert not (tmp_path / "z").exists()


def test_ratio_checked_while_streaming_when_the_size_is_unknown(tmp_path, small_limits) -> None:
    """A gzip stream of unknown length (a pipe): many small members, refused once what came
    out passes the floor and the ratio."""
    body = b"".join(member(b"f%d" % i, bytes(1 << 20)) for i in range(32)) + END
    r, w = os.pipe()
    blob = gzip.compress(body, 9)
    t = threading.Thread(target=lambda: (os.write(w, blob), os.close(w)))
    t.start()
    try:
        with open(r, "rb") as pipe, tarsafe.source(pipe) as raw:
            assert raw.total is None
            src = tarsafe.decompressed(raw)
            with pytest.raises(tarsafe.UnpackLimitExceeded, match="max-unpack-ratio"):
                tarsafe.extract(src, str(tmp_path))
            src.close()
    finally:
        t.join()
    assert 4 <= len(os.listdir(tmp_path)) < 32


def test_sparse_claim_refused_without_a_declared_source(tmp_path) -> None:
    """No source declared (a driver's apply_diff called directly): the tar bytes read stand in
    for the input size, so a tiny tar claiming a huge sparse file is still refused at once."""
    sys.path.insert(0, os.path.dirname(__file__))
    from hostile.make_tars import pax_sparse_1x0
    data = pax_sparse_1x0(b"sp", 200 << 30, [((200 << 30) - 512, b"e" * 512)]) + END
    with pytest.raises(tarsafe.UnpackLimitExceeded):
        tarsafe.apply_layer_tar(str(tmp_path), io.BytesIO(data))
    assert os.listdir(tmp_path) == []


def test_free_space_bounds_unpacking(tmp_path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        data = member(b"a", os.urandom(1 << 20)) + header(b"big", size=64 << 20) + \
            bytes(64 << 20) + END
        with pytest.raises(tarsafe.UnpackLimitExceeded, match="free space"):
            tarsafe.extract(io.BytesIO(data), str(mnt))
        assert os.listdir(mnt) == ["a"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_cancelled_work_stops_at_the_next_chunk(tmp_path) -> None:
    data = member(b"a", os.urandom(4 << 20)) + END
    ev = threading.Event()
    ev.set()
    with tarsafe.cancel_scope(ev), pytest.raises(tarsafe.UnpackCancelled, match="client went away"):
        tarsafe.extract(io.BytesIO(data), str(tmp_path))
    assert not (tmp_path / "a").exists() or os.path.getsize(tmp_path / "a") == 0


def test_copy_out_policy_is_safe_for_the_host(tmp_path) -> None:
    """docker cp out: renamed top entry (hard links follow), no chown, no setuid bit, no device
    node; a directory is never replaced by a file."""
    data = (d(b"box") + member(b"box/suid", b"x", mode=0o4755, uid=4321) +
            hard(b"box/again", b"box/suid") + sym(b"box/abs", b"/etc/shadow") + END)
    tarsafe.extract(io.BytesIO(data), str(tmp_path), tarsafe.COPY_OUT, rebase=("box", "renamed"))
    st = os.stat(tmp_path / "renamed" / "suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o755, os.getuid())
    assert os.stat(tmp_path / "renamed" / "again").st_ino == st.st_ino
    assert os.readlink(tmp_path / "renamed" / "abs") == "/etc/shadow"  # kept as docker cp does
    dev = header(b"renamed/sda", b"3", major=8, minor=0) + END
    with pytest.raises(InvalidParameter, match="character device"):
        tarsafe.extract(io.BytesIO(dev), str(tmp_path), tarsafe.COPY_OUT)
    with pytest.raises(InvalidParameter, match="cannot overwrite directory"):
        tarsafe.extract(io.BytesIO(member(b"renamed", b"file") + END), str(tmp_path),
                        tarsafe.COPY_OUT)
    with pytest.raises(InvalidParameter, match="after a name"):
        tarsafe.extract(io.BytesIO(sym(b"x", b"a/../../y") + END), str(tmp_path), tarsafe.COPY_OUT)


def test_extract_from_a_descriptor_never_reresolves_the_path(tmp_path) -> None:
    (tmp_path / "real").mkdir()
    fd = os.open(tmp_path / "real", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rename(tmp_path / "real", tmp_path / "moved")
        os.symlink("/", tmp_path / "real")  # the old path now leads to the host's root
        tarsafe.extract(io.BytesIO(member(b"x", b"y") + END), fd, tarsafe.COPY_IN)
    finally:
        os.close(fd)
    assert (tmp_path / "moved" / "x").read_bytes() == b"y"


def test_tar_index_follows_member_links_and_checks_the_whole_archive(tmp_path) -> None:
    path = tmp_path / "save.tar"
    path.write_bytes(d(b"a") + member(b"a/layer.tar", b"LAYER") + d(b"b") +
                     sym(b"b/layer.tar", b"../a/layer.tar") + hard(b"c.tar", b"a/layer.tar") + END)
    with tarsafe.TarIndex(str(path)) as idx:
        for name in ("a/layer.tar", "./b//layer.tar", "c.tar"):
            with idx.open(name) as f:
                assert f.read() == b"LAYER"
        assert idx.get("missing") is None
    path.write_bytes(member(b"a", b"x") + header(b"b", size=1, bad_checksum=True) + bytes(512))
    with pytest.raises(tarsafe.TarFormatError):
        tarsafe.TarIndex(str(path))


def test_no_tarfile_extraction_anywhere() -> None:
    """Every archive goes through tarsafe: tarfile's extract/extractall (and ``filter=``,
    which Python 3.11.2 lacks) are never used by dockyard itself."""
    pat = re.compile(r"\.extractall\(|\.extract\(|filter=\s*[\"']|tar_filter|data_filter")
    hits = []
    for top in ("core", "cli", "plugins", "hookspecs"):
        for dp, _ds, fs in os.walk(os.path.join(ROOT, top)):
            for n in fs:
                if n.endswith(".py"):
                    with open(os.path.join(dp, n), encoding="utf-8") as f:
                        for i, line in enumerate(f, 1):
                            if pat.search(line) and "tarsafe" not in line:
                                hits.append(f"{os.path.relpath(os.path.join(dp, n), ROOT)}:{i}: "
                                            f"{line.strip()}")
    assert hits == []
