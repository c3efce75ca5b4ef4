"""One daemon per data-root: a second ``dockyardd`` on the same roots exits at once, naming the
first one's pid, and leaves its socket, pidfile, bridge and firewall rules alone."""
from __future__ import annotations

import os
import subprocess

from conftest import running_daemon


def _nft_table(bridge: str) -> bool:
    return subprocess.run(["nft", "list", "table", "ip", "dockyard_" + bridge],
                          capture_output=True).returncode == 0


def _bridge(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_second_daemon_on_same_roots_exits_and_first_keeps_everything(busybox_tar: str) -> None:
    with running_daemon(busybox_tar) as first:
        pidfile = os.path.join(first.root, "first.pid")
        first.stop()
        first.extra_args += ["--pidfile", pidfile]
        first.start()
        # a container has run: the bridge and its nft table exist
        out = first.cli("run", "--rm", "busybox", "true")
        assert out.returncode == 0, out.stderr
        pid = first.proc.pid
        assert open(pidfile).read().strip() == str(pid)
        assert _bridge(first.bridge_name) and _nft_table(first.bridge_name)

        other_sock = os.path.join(first.root, "other.sock")
        same = first.argv()
        other = list(same)
        other[other.index("-H") + 1] = "unix://" + other_sock
        for argv in (same, other):
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert p.returncode == 1, p.stderr
            assert f"another dockyardd (pid {pid}) is running" in p.stderr, p.stderr
            # the first daemon's pidfile, socket, bridge and rules are untouched
            assert open(pidfile).read().strip() == str(pid)
            assert os.path.exists(first.sock)
            assert _bridge(first.bridge_name), "the second daemon removed the first one's bridge"
            assert _nft_table(first.bridge_name), "the second daemon removed the nft table"
        assert not os.path.exists(other_sock)
        # the first one still serves, containers and all
        out = first.cli("run", "--rm", "busybox", "echo", "still here")
        assert out.returncode == 0 and out.stdout == b"still here\n", out.stderr
        assert first.stop() == 0
        assert not os.path.exists(pidfile) and not os.path.exists(first.sock)


def test_exec_root_is_locked_too(busybox_tar: str) -> None:
    """Another data-root but the same exec-root (the supervisor's, the netns files'): refused."""
    with running_daemon(None) as first:
        argv = first.argv()
        argv[argv.index("--data-root") + 1] = os.path.join(first.root, "data2")
        argv[argv.index("-H") + 1] = "unix://" + os.path.join(first.root, "d2.sock")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1
        assert f"(pid {first.proc.pid}) is running on {first.exec_root}" in p.stderr, p.stderr
        assert first.api.get("/_ping")[0] == 200


def test_lock_is_released_when_the_daemon_dies(busybox_tar: str) -> None:
    """SIGKILL frees the lock (it lives with the process): the next daemon starts."""
    import signal
    with running_daemon(None) as d:
        d.stop(signal.SIGKILL)
        d.start()
        assert d.api.get("/_ping")[0] == 200
