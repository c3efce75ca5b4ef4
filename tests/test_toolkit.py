"""The driver toolkit (``dockyard.hookspecs.host``) against the real kernel: mounts, namespaces,
capabilities, reference counts, stream frames, times and sizes."""
from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid

import pytest

from dockyard.hookspecs import host
from dockyard.hookspecs.errors import Conflict
from dockyard.hookspecs.host import libc

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def tmpdir_() -> str:
    path = tempfile.mkdtemp(prefix="dky-toolkit-")
    yield path
    for mp, _, _ in reversed(host.mountinfo()):
        if mp.startswith(path + "/") or mp == path:
            host.umount2(mp, host.MNT_DETACH)
    shutil.rmtree(path, ignore_errors=True)


# -- mounts ---------------------------------------------------------------------------------------
@needs_root
def test_mount_shows_in_mountinfo_and_statfs(tmpdir_: str) -> None:
    target = os.path.join(tmpdir_, "m t")  # a space: mountinfo escapes it as \040
    os.mkdir(target)
    host.mount("dky-test", target, "tmpfs", host.MS_NOSUID | host.MS_NODEV, "size=1m,mode=700")
    try:
        assert (target, "tmpfs", "dky-test") in host.mountinfo()
        assert host.fs_name(target) == "tmpfs"
        assert host.mount_flags(target) & host.MS_NOSUID and host.mount_flags(target) & host.MS_NODEV
        assert os.stat(target).st_mode & 0o777 == 0o700
        assert host.supports_d_type(target)
        host.mount(target, target, None, host.MS_BIND)  # a bind on itself, then read-only
        host.remount_bind(target, host.MS_RDONLY)
        with pytest.raises(OSError) as e:
            open(os.path.join(target, "f"), "w").close()
        assert e.value.errno == errno.EROFS
        host.umount2(target)
    finally:
        host.umount2(target, host.MNT_DETACH)
    assert all(mp != target for mp, _, _ in host.mountinfo())


def test_errors_are_oserrors_naming_the_path(tmpdir_: str) -> None:
    missing = os.path.join(tmpdir_, "missing")
    with pytest.raises(OSError) as e:
        host.umount2(missing)
    assert e.value.errno in (errno.ENOENT, errno.EPERM) and e.value.filename == missing
    with pytest.raises(FileNotFoundError) as e2:
        host.statfs_magic(missing)
    assert e2.value.filename == missing


def test_mount_options_split_like_mount_8() -> None:
    flags, prop, data = host.parse_mount_options(["ro", "nosuid", "rbind", "rprivate", "size=1m",
                                                  "mode=755", "rw"])
    assert flags == host.MS_NOSUID | host.MS_BIND | host.MS_REC  # rw after ro clears it
    assert prop == host.MS_PRIVATE | host.MS_REC and data == "size=1m,mode=755"
    assert "tmpfs" in host.filesystems()


# -- namespaces and threads -------------------------------------------------------------------------
def test_call_in_dir_leaves_the_process_cwd_alone(tmpdir_: str) -> None:
    before = os.getcwd()
    assert host.call_in_dir(tmpdir_, os.getcwd) == os.path.realpath(tmpdir_)
    assert os.getcwd() == before
    with pytest.raises(ZeroDivisionError):
        host.in_thread(lambda: 1 / 0)


@needs_root
def test_network_namespace_files(tmpdir_: str) -> None:
    path = os.path.join(tmpdir_, f"ns-{uuid.uuid4().hex[:8]}")
    host.create_netns(path)
    try:
        with pytest.raises(FileExistsError):
            host.create_netns(path)
        inside = host.in_netns(path, lambda: set(n for _, n in socket.if_nameindex()))
        assert inside == {"lo"}
        # lo is up in there: a loopback connection works
        srv = host.in_netns(path, lambda: socket.create_server(("127.0.0.1", 0)))
        with srv:
            cli = host.in_netns(path, lambda: socket.create_connection(srv.getsockname(), 5))
            cli.close()
        assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
    finally:
        host.remove_netns(path)
    assert not os.path.exists(path)
    host.remove_netns(path)  # gone already: fine


def test_namespace_tables_agree() -> None:
    assert set(host.NAMESPACE_FLAGS) == set(host.NAMESPACE_FILES)
    assert host.NAMESPACE_FLAGS["network"] == host.CLONE_NEWNET
    assert all(os.path.exists(f"/proc/self/ns/{name}")
               for kind, name in host.NAMESPACE_FILES.items() if kind != "time")


def test_syscall_numbers_are_per_machine() -> None:
    assert libc.syscall_number("pivot_root", "x86_64") == 155
    assert libc.syscall_number("bpf", "aarch64") == 280
    with pytest.raises(OSError) as e:
        libc.syscall_number("pivot_root", "pdp11")
    assert e.value.errno == errno.ENOSYS


# -- capabilities -----------------------------------------------------------------------------------
def test_capability_table() -> None:
    # Docker's default set, as a container's CapEff shows it
    assert host.mask(host.DEFAULT_CAPS) == 0x00000000A80425FB
    assert host.CAPS["CAP_SYS_ADMIN"] == 21 and host.CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert host.normalize("net_admin") == "CAP_NET_ADMIN" == host.normalize("CAP_NET_ADMIN")
    assert host.normalize("all", allow_all=True) == "CAP_ALL"
    with pytest.raises(ValueError, match='unknown capability: "CAP_FOO"'):
        host.normalize("foo")
    with pytest.raises(ValueError):
        host.normalize("all")


def test_process_capabilities_in_a_child() -> None:
    """drop_bounding and capset in a forked child, read back from /proc (the kernel's answer)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            keep = ["CAP_CHOWN", "CAP_KILL"]
            host.drop_bounding(keep)
            host.capset(keep, keep, [])
            with open("/proc/self/status") as f:
                os.write(w, f.read().encode())
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(w)
    with os.fdopen(r) as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    want = host.mask(["CAP_CHOWN", "CAP_KILL"])
    if os.geteuid() == 0:
        assert int(status["CapEff"], 16) == want and int(status["CapBnd"], 16) == want


# -- reference counts -------------------------------------------------------------------------------
def test_refcounter_first_and_last() -> None:
    calls: list[str] = []
    refs = host.RefCounter(name="test")
    assert refs.acquire("a", first=lambda: calls.append("mount")) == 1
    assert refs.acquire("a", first=lambda: calls.append("mount")) == 2
    assert "a" in refs and refs.count("a") == 2 and list(refs) == ["a"]
    assert refs.release("a", last=lambda: calls.append("unmount")) == 1
    assert refs.release("a", last=lambda: calls.append("unmount")) == 0
    assert calls == ["mount", "unmount"] and "a" not in refs
    # a release without an acquire still runs `last` (a mount adopted after a restart)
    assert refs.release("b", last=lambda: calls.append("unmount b")) == 0
    assert calls[-1] == "unmount b"


def test_refcounter_failed_first_counts_nothing() -> None:
    refs = host.RefCounter()

    def boom() -> None:
        raise OSError(errno.EBUSY, "busy")
    with pytest.raises(OSError):
        refs.acquire("a", first=boom)
    assert refs.count("a") == 0 and len(refs) == 0
    refs.acquire("a")
    refs.acquire("b")
    with pytest.raises(Conflict, match=r"^vfs: layer a is in use \(1 reference\(s\)\)$"):
        refs.refuse_if_held("a", "vfs: layer a")
    refs.refuse_if_held("c", "vfs: layer c")  # none: fine
    assert sorted(refs.clear()) == ["a", "b"] and len(refs) == 0


def test_refcounter_under_contention() -> None:
    """Many threads get and put one id: the first action and the last alternate strictly."""
    events: list[str] = []
    refs = host.RefCounter()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(200):
            refs.acquire("x", first=lambda: events.append("up"))
            refs.release("x", last=lambda: events.append("down"))
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events and len(events) % 2 == 0
    assert all(e == ("up" if i % 2 == 0 else "down") for i, e in enumerate(events))
    assert refs.count("x") == 0


# -- streams, times, sizes --------------------------------------------------------------------------
def test_stream_frames() -> None:
    data = host.frame(host.STDOUT, b"hello\n") + host.frame(host.STDERR, b"oops") \
        + host.frame(host.STDOUT, b"bye")
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x06"
    assert host.demux(data) == {1: b"hello\nbye", 2: b"oops"}
    assert [s for s, _ in host.iter_frames(data)] == [1, 2, 1]
    with pytest.raises(ValueError, match="truncated"):
        host.demux(data[:-1])
    assert list(host.iter_frames(data[:-1], strict=False))[-1] == (1, b"by")
    assert host.parse_header(host.frame_header(3, 1 << 31)) == (3, 1 << 31)


def test_rfc3339() -> None:
    assert host.rfc3339nano(0) == "1970-01-01T00:00:00.000000000Z"
    assert host.rfc3339nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert host.rfc3339(1_700_000_000.5) == "2023-11-14T22:13:20.500000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", host.rfc3339())


def test_units() -> None:
    assert host.ram_in_bytes("32m") == 32 << 20 == host.ram_in_bytes("32MiB")
    assert host.ram_in_bytes(" 1.5g ") == 3 << 29 and host.ram_in_bytes("4096") == 4096
    with pytest.raises(ValueError, match="invalid size: '10x'"):
        host.ram_in_bytes("10x")
    assert host.human_size(1234567) == "1.23MB" and host.human_size(999) == "999B"
    assert host.human_size(1234567, 4) == "1.235MB"
    assert host.bytes_size(3 * 2**30) == "3GiB" and host.bytes_size(1536) == "1.5KiB"
    assert host.human_duration(90) == "About a minute"


# -- the packages load lazily -------------------------------------------------------------------
def test_one_toolkit_module_loads_alone() -> None:
    """The CLI imports streams and units on every run: neither the contract's heavy modules
    (pluggy, asyncio, tarfile) nor the rest of the toolkit come with them."""
    import subprocess
    import sys
    code = ("import sys, dockyard.hookspecs.host.streams, dockyard.hookspecs.host.units\n"
            "print(sorted(m for m in ('pluggy', 'asyncio', 'tarfile', 'ctypes', "
            "'dockyard.hookspecs.naivediff', 'dockyard.hookspecs.host.mounts') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_exported_name_resolves() -> None:
    import dockyard.hookspecs as contract
    for name in contract.__all__:
        assert getattr(contract, name) is not None, name
    assert set(contract.__all__) == set(contract._EXPORTS) | {"DRIVER_GROUPS", "PLUGIN_GROUP", "host"}
    assert {"mount", "RefCounter", "frame", "rfc3339", "ram_in_bytes", "seccomp"} <= set(host.__all__)
    for name in host.__all__:
        assert getattr(host, name) is not None, name
    with pytest.raises(AttributeError):
        host.no_such_name  # noqa: B018


def test_projquota_projects_on_xfs_and_the_refusal_without_enforced_quotas() -> None:
    """``host.projquota`` on a loop-mounted xfs without ``prjquota``: a tree's project IDs are
    set and inherited (what a size limit counts by), and the controller refuses with the reason
    (this kernel may lack XFS quota support altogether: then quotactl's ENOSYS is the reason)."""
    from dockyard.hookspecs.conformance.loopfs import LoopFilesystem, LoopUnavailable
    from dockyard.hookspecs.host import projquota

    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        lfs = LoopFilesystem("xfs", 320 << 20).open()
    except LoopUnavailable as e:
        pytest.skip(f"no loop-mounted xfs: {e}")
    try:
        top = os.path.join(lfs.path, "layer")
        os.makedirs(os.path.join(top, "diff"))
        with open(os.path.join(top, "diff", "old"), "w") as f:
            f.write("x")
        os.symlink("old", os.path.join(top, "diff", "link"))
        for path in (top, os.path.join(top, "diff"), os.path.join(top, "diff", "old")):
            projquota.set_project(path, 4242)
            assert projquota.get_project(path) == 4242
        os.mkdir(os.path.join(top, "diff", "new"))  # PROJINHERIT: made inside, same project
        assert projquota.get_project(os.path.join(top, "diff", "new")) == 4242
        with pytest.raises(projquota.QuotaUnavailable):
            projquota.ProjectQuota.open(lfs.path)
    finally:
        lfs.close()
