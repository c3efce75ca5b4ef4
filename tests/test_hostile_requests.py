"""The hostile request corpus (tests/hostile/make_requests.py) against one daemon: every JSON
endpoint gets its bodies; none may answer 5xx, a wrong type must be a 400 naming the field, and
the daemon must still serve (and create a container) after each endpoint's batch."""
from __future__ import annotations

import collections
import http.client
import os
import sys
from typing import Any, Iterator

import pytest

from conftest import Daemon, UnixHTTPConnection, running_daemon

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "hostile"))
import make_requests  # noqa: E402


@pytest.fixture(scope="module")
def target(busybox_tar: str) -> Iterator[dict[str, Any]]:
    """A daemon with a running container and a started exec for the bodies to aim at."""
    with running_daemon(busybox_tar) as d:
        status, c = d.api.post("/containers/create?name=hostile-target",
                               {"Image": "busybox", "Cmd": ["sleep", "1000"]})
        assert status == 201, c
        assert d.api.post(f"/containers/{c['Id']}/start")[0] == 204
        status, e = d.api.post(f"/containers/{c['Id']}/exec", {"Cmd": ["true"]})
        assert status == 201, e
        assert d.api.post(f"/exec/{e['Id']}/start", {"Detach": True})[0] == 200
        status, net = d.api.post("/networks/create", {"Name": "hostile-target-net"})
        assert status == 201, net
        yield {"daemon": d, "container": c["Id"], "exec": e["Id"], "network": net["Id"]}


def _url(endpoint: str, t: dict[str, Any]) -> str:
    return {
        "container-create": "/containers/create",
        "container-update": f"/containers/{t['container']}/update",
        "commit": f"/commit?container={t['container']}",
        "exec-create": f"/containers/{t['container']}/exec",
        "exec-start": f"/exec/{t['exec']}/start",
        "network-create": "/networks/create",
        "network-connect": f"/networks/{t['network']}/connect",
        "network-disconnect": f"/networks/{t['network']}/disconnect",
        "volume-create": "/volumes/create",
        "auth": "/auth",
    }[endpoint]


def _send(d: Daemon, url: str, case: make_requests.Case) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(d.sock, 120)
    try:
        headers = {"Content-Type": case.content_type} if case.content_type is not None else {}
        try:
            conn.request("POST", url, body=case.body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) before the body was all sent
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _still_serves(d: Daemon) -> None:
    assert d.api.get("/_ping")[0] == 200, d.logs()
    status, c = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201, (c, d.logs())
    assert d.api.delete(f"/containers/{c['Id']}")[0] == 204


def _clean(t: dict[str, Any]) -> None:
    """Remove what valid bodies created: containers, networks, volumes (not the targets)."""
    d = t["daemon"]
    for c in d.api.get("/containers/json?all=1")[1]:
        if c["Id"] != t["container"]:
            d.api.delete(f"/containers/{c['Id']}?force=1&v=1")
    for n in d.api.get("/networks")[1]:
        if n["Id"] != t["network"] and n["Name"] not in ("bridge", "host", "none"):
            d.api.delete(f"/networks/{n['Id']}")
    d.api.post("/volumes/prune", raw=b"")


def test_the_corpus_has_at_least_40_bodies_per_endpoint() -> None:
    counts = collections.Counter(c.endpoint for c in make_requests.cases())
    assert set(counts) == set(make_requests.ENDPOINTS)
    assert min(counts.values()) >= 40, counts


@pytest.mark.parametrize("endpoint", list(make_requests.ENDPOINTS))
def test_hostile_bodies(target: dict[str, Any], endpoint: str) -> None:
    d: Daemon = target["daemon"]
    url = _url(endpoint, target)
    failures = []
    statuses: collections.Counter[int] = collections.Counter()
    for case in make_requests.cases(endpoint):
        try:
            status, raw = _send(d, url, case)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{case.name()}: no answer ({exc!r})")
            continue
        statuses[status] += 1
        text = raw.decode(errors="replace")
        if status >= 500:
            failures.append(f"{case.name()}: {status} {text[:300]}")
        elif case.expect == "413" and status != 413:
            failures.append(f"{case.name()}: {status} instead of 413 {text[:200]}")
        elif case.expect == "4xx" and not 400 <= status < 500:
            failures.append(f"{case.name()}: {status} instead of a 4xx {text[:200]}")
        elif case.expect.startswith("field:"):
            path = case.expect[len("field:"):]
            if status != 400 or path not in text:
                failures.append(f"{case.name()}: {status} {text[:200]} (should name {path})")
    _clean(target)
    _still_serves(d)
    assert not failures, f"{len(failures)} of {sum(statuses.values())} ({dict(statuses)}):\n" \
        + "\n".join(failures[:40])
