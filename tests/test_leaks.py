"""50 container lifecycles leave every count as it was: mounts, network namespaces, veths, nft
rules, cgroups, and the fds of the daemon and the supervisor (``contrib/bench/leaks.py`` runs the
same lifecycles 1,000 times and reports memory too)."""
from __future__ import annotations

import os
import sys
import time

from conftest import running_daemon

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "contrib", "bench"))
import leaks  # noqa: E402

RSS = ("daemon RSS kB", "supervisor RSS kB")


def counts(d, ids: set[str]) -> dict[str, int]:  # noqa: ANN001
    return {k: v for k, v in leaks.measure(d, ids).items() if k not in RSS}


def test_fifty_lifecycles_leave_counts_unchanged(busybox_tar: str) -> None:
    import docker
    with running_daemon(busybox_tar) as d:
        client = docker.DockerClient(base_url=d.host, version="1.45", timeout=120)
        ids: set[str] = set()
        for _ in range(5):  # warm-up: the supervisor and lazy imports are started
            leaks.lifecycle(client, ids)
        before = counts(d, ids)
        for _ in range(50):
            leaks.lifecycle(client, ids)
        after = counts(d, ids)
        if after != before:  # a connection may still be closing: one more look
            time.sleep(2)
            after = counts(d, ids)
        assert after == before
        assert len(ids) == 55 and after["cgroups"] == 0 and after["netns"] == 0


def test_execs_of_a_long_running_container_are_not_kept(shared_daemon) -> None:  # noqa: ANN001
    """A container exec'd into again and again (a monitoring script) keeps only its live execs
    in ``ExecIDs``, as dockerd: exited ones leave at once."""
    import docker
    client = docker.DockerClient(base_url=shared_daemon.host, version="1.45", timeout=120)
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        for i in range(30):
            assert c.exec_run(["true"]).exit_code == 0
        live = c.exec_run(["sleep", "30"], detach=True)
        del live
        c.reload()
        assert len(c.attrs["ExecIDs"] or []) == 1
    finally:
        c.remove(force=True)
