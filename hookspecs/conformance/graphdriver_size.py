"""The graph-driver suite's size-limit tests (``--storage-opt size=``), mixed into
:class:`~.graphdriver.GraphDriverSuite`.

A driver declaring :attr:`GraphDriver.size_limit_fs` is built on a loop-mounted file system of
that kind (made once per session, removed at its end; the test skips with the reason when this
host cannot make or mount it, e.g. a kernel without XFS quota support); there its
``size_limit_unsupported()`` must be empty and a limited container layer must refuse a write
past the limit (EDQUOT or ENOSPC) while a sibling without a limit writes as much. A driver that
declares none must give a reason, which the daemon's 400 carries.
"""
from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from .loopfs import LoopFilesystem, LoopUnavailable, session_loopfs

MiB = 1 << 20


def _quota_base(config: Any, kind: tuple[str, tuple[str, ...], str]) -> str:
    fstype, mkfs, opts = kind
    got = session_loopfs(config, kind, lambda: LoopFilesystem(
        fstype, 512 * MiB, mkfs_args=["-q", "-f", *mkfs] if fstype != "ext4"
        else ["-q", "-F", *mkfs], mount_opts=opts))
    if isinstance(got, LoopUnavailable):
        pytest.skip(f"no loop-mounted {kind[0]} with {kind[2] or 'defaults'} here: {got}")
    return str(got.path)


def _write(path: str, size: int) -> int:
    """Write ``size`` bytes to a new file, a MiB at a time, synced; the bytes written."""
    done = 0
    with open(path, "wb") as f:
        try:
            while done < size:
                f.write(b"\xa5" * MiB)
                f.flush()
                os.fsync(f.fileno())
                done += MiB
        except OSError as e:
            assert e.errno in (errno.EDQUOT, errno.ENOSPC), e
            return done
    return done


class SizeLimitSuite:
    """Mixed into the graph-driver suite (which supplies ``graphdriver_factory``)."""

    @pytest.fixture
    def size_env(self, graphdriver_factory: Any, request: Any) -> Any:
        from .graphdriver import _driver_env
        kind = getattr(graphdriver_factory, "size_limit_fs", None)
        if kind is None:
            pytest.skip("the driver declares no file system where it limits sizes")
        if os.geteuid() != 0:
            pytest.skip("needs root")
        yield from _driver_env(graphdriver_factory, request, graphdriver_factory,
                               _quota_base(request.config, kind))

    def test_size_limit_reason_without_support(self, env: Any, graphdriver_factory: Any) -> None:
        if getattr(graphdriver_factory, "size_limit_fs", None) is None:
            assert env.driver.size_limit_unsupported(), "a driver that limits no size says why"

    def test_size_limit_caps_a_container_layer(self, size_env: Any) -> None:
        drv = size_env.driver
        assert drv.size_limit_unsupported() == ""
        drv.create("base", None)
        drv.create_rw("limited", "base")
        drv.create_rw("free", "base")
        drv.limit_size("limited", 16 * MiB)
        for id, want_all in (("limited", False), ("free", True)):
            root = drv.get(id)
            try:
                done = _write(os.path.join(root, "big"), 48 * MiB)
            finally:
                drv.put(id)
            if want_all:
                assert done == 48 * MiB, f"{id}: only {done} bytes written without a limit"
            else:
                assert 0 < done <= 17 * MiB, f"{id}: {done} bytes written past a 16 MiB limit"
        drv.remove("limited")
        drv.remove("free")
