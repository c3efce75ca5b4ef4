"""The Docker Engine API served by a real dockyardd, spoken to over its unix socket."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time


from conftest import DOCKYARDD, Daemon, UnixHTTPConnection, make_root
from dockyard.hookspecs.host import streams


def run_container(d: Daemon, cmd: list[str], **extra) -> tuple[str, int, bytes]:
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": cmd, **extra})
    assert status == 201, body
    cid = body["Id"]
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    status, res = d.api.post(f"/containers/{cid}/wait", timeout=60)
    assert status == 200, res
    _, logs = d.api.get(f"/containers/{cid}/logs?stdout=1&stderr=1")
    return cid, res["StatusCode"], demux(logs)


def demux(data: bytes, want: tuple[int, ...] = (1, 2)) -> bytes:
    return b"".join(payload for stream, payload in streams.iter_frames(data, strict=False)
                    if stream in want)


def test_ping_and_version_headers(shared_daemon: Daemon) -> None:
    conn = UnixHTTPConnection(shared_daemon.sock)
    conn.request("HEAD", "/_ping")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b""
    assert resp.getheader("Api-Version") == "1.45"
    assert resp.getheader("Ostype") == "linux"
    conn.close()
    status, body = shared_daemon.api.get("/_ping")
    assert (status, body) == (200, b"OK")
    status, v = shared_daemon.api.get("/version")
    assert status == 200
    assert v["ApiVersion"] == "1.45" and v["MinAPIVersion"] == "1.24"
    assert v["Components"][0]["Name"] == "Engine"


def test_versioned_paths(shared_daemon: Daemon) -> None:
    assert shared_daemon.api.get("/v1.45/version")[0] == 200
    assert shared_daemon.api.get("/v1.24/containers/json")[0] == 200
    status, body = shared_daemon.api.get("/v1.12/version")
    assert status == 400 and "too old" in body["message"]
    status, body = shared_daemon.api.get("/v1.99/version")
    assert status == 400 and "too new" in body["message"]


def test_info_lists_drivers_found_through_entry_points(shared_daemon: Daemon) -> None:
    from importlib.metadata import entry_points

    status, info = shared_daemon.api.get("/info")
    assert status == 200
    drivers = info["DockyardDrivers"]
    for kind, group in (("graph", "dockyard.graphdrivers"), ("exec", "dockyard.execdrivers"),
                        ("network", "dockyard.netdrivers")):
        installed = sorted(ep.name for ep in entry_points(group=group))
        assert sorted(drivers[kind]["installed"]) == installed
    # no driver configured, an empty data-root: the first of the priority list this host runs
    assert drivers["graph"]["active"] == info["Driver"] == "overlay"
    assert dict(info["DriverStatus"])["Backing Filesystem"]
    assert drivers["exec"]["active"] == "native"
    assert "none" in info["Plugins"]["Network"]


def test_run_echo_and_pid_1(shared_daemon: Daemon) -> None:
    cid, code, out = run_container(shared_daemon, ["sh", "-c", "echo hello; echo $$"])
    assert code == 0
    assert out == b"hello\n1\n"
    assert shared_daemon.api.delete(f"/containers/{cid}")[0] == 204


def test_exit_code_and_state(shared_daemon: Daemon) -> None:
    cid, code, _ = run_container(shared_daemon, ["sh", "-c", "exit 3"])
    assert code == 3
    status, c = shared_daemon.api.get(f"/containers/{cid}/json")
    assert status == 200
    assert c["State"]["Status"] == "exited" and c["State"]["ExitCode"] == 3
    assert c["State"]["FinishedAt"] >= c["State"]["StartedAt"]
    shared_daemon.api.delete(f"/containers/{cid}")


def test_attach_before_start_gets_all_output(shared_daemon: Daemon) -> None:
    d = shared_daemon
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                                      "AttachStdout": True, "AttachStderr": True})
    cid = body["Id"]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(d.sock)
    s.sendall(f"POST /v1.45/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"application/vnd.docker.multiplexed-stream" in head
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert demux(data, (1,)) == b"out\n"
    assert demux(data, (2,)) == b"err\n"
    d.api.delete(f"/containers/{cid}?force=1")


def test_wait_removed_and_autoremove(shared_daemon: Daemon) -> None:
    d = shared_daemon
    status, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sh", "-c", "exit 7"],
                                                      "HostConfig": {"AutoRemove": True}})
    cid = body["Id"]
    conn = UnixHTTPConnection(d.sock)
    conn.request("POST", f"/containers/{cid}/wait?condition=removed")
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    resp = conn.getresponse()
    assert json.loads(resp.read()) == {"StatusCode": 7, "Error": None}
    conn.close()
    assert d.api.get(f"/containers/{cid}/json")[0] == 404
    _, cs = d.api.get("/containers/json?all=1")
    assert cid not in [c["Id"] for c in cs]


def test_stop_kill_and_force_remove(shared_daemon: Daemon) -> None:
    d = shared_daemon
    _, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]}, )
    cid = body["Id"]
    assert d.api.post(f"/containers/{cid}/start")[0] == 204
    _, c = d.api.get(f"/containers/{cid}/json")
    assert c["State"]["Running"] and c["State"]["Pid"] > 0
    status, err = d.api.delete(f"/containers/{cid}")
    assert status == 409 and "running" in err["message"]
    t0 = time.monotonic()
    assert d.api.post(f"/containers/{cid}/stop?t=1")[0] == 204
    assert time.monotonic() - t0 < 10
    _, c = d.api.get(f"/containers/{cid}/json")
    assert c["State"]["Status"] == "exited" and c["State"]["ExitCode"] == 137  # sleep ignores TERM as pid 1
    assert d.api.post(f"/containers/{cid}/stop")[0] == 304
    status, err = d.api.post(f"/containers/{cid}/kill")
    assert status == 409 and "not running" in err["message"]
    # a trapped SIGTERM's exit code is what wait reports
    _, body = d.api.post("/containers/create", {"Image": "busybox",
                                                "Cmd": ["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done"]})
    cid2 = body["Id"]
    d.api.post(f"/containers/{cid2}/start")
    time.sleep(0.3)
    assert d.api.post(f"/containers/{cid2}/kill?signal=TERM")[0] == 204
    assert d.api.post(f"/containers/{cid2}/wait")[1]["StatusCode"] == 42
    _, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["sleep", "1000"]})
    cid3 = body["Id"]
    d.api.post(f"/containers/{cid3}/start")
    assert d.api.delete(f"/containers/{cid3}?force=1")[0] == 204
    for x in (cid, cid2):
        assert d.api.delete(f"/containers/{x}")[0] == 204
    _, cs = d.api.get("/containers/json?all=1")
    assert not {cid, cid2, cid3} & {c["Id"] for c in cs}


def test_names_and_lookup(shared_daemon: Daemon) -> None:
    d = shared_daemon
    name = f"n{os.getpid()}"
    status, body = d.api.post(f"/containers/create?name={name}", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201
    cid = body["Id"]
    assert d.api.get(f"/containers/{name}/json")[1]["Id"] == cid
    assert d.api.get(f"/containers/{cid[:10]}/json")[1]["Name"] == "/" + name
    status, err = d.api.post(f"/containers/create?name={name}", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 409 and "already in use" in err["message"]
    status, err = d.api.post("/containers/create?name=bad%20name", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 400
    assert d.api.delete(f"/containers/{name}")[0] == 204


def test_bad_input_is_4xx_and_daemon_keeps_serving(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cases = [
        (d.api.post("/containers/create", raw=b"{not json", headers={"Content-Type": "application/json"}), 400),
        (d.api.post("/containers/create", raw=b"[1,2]", headers={"Content-Type": "application/json"}), 400),
        (d.api.post("/containers/create", {"Image": "nosuchimage", "Cmd": ["true"]}), 404),
        (d.api.post("/containers/create", {"Image": "busybox", "Cmd": "x", "HostConfig": []}), 400),
        (d.api.post("/containers/create", {"Image": "Bad//Ref"}), 400),
        (d.api.get("/containers/nosuchcontainer/json"), 404),
        (d.api.post("/containers/nosuchcontainer/start"), 404),
        (d.api.delete("/containers/nosuchcontainer"), 404),
        (d.api.get("/images/nosuchimage/json"), 404),
        (d.api.delete("/images/nosuchimage"), 404),
        (d.api.get("/no/such/route"), 404),
    ]
    for (status, body), want in cases:
        assert status == want, body
        assert isinstance(body, dict) and body.get("message"), body
    status, err = d.api.post("/containers/create", {"Image": "nosuchimage"})
    assert "No such image" in err["message"]
    # a command that cannot be found: start fails with Docker's message, exit code 127
    _, body = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["nosuchcmd"]})
    status, err = d.api.post(f"/containers/{body['Id']}/start")
    assert status == 400 and "executable file not found" in err["message"]
    _, c = d.api.get(f"/containers/{body['Id']}/json")
    assert c["State"]["ExitCode"] == 127
    d.api.delete(f"/containers/{body['Id']}")
    assert d.api.get("/_ping")[0] == 200
    assert "Traceback" not in d.logs()


def test_images_list_inspect_tag_remove(shared_daemon: Daemon) -> None:
    d = shared_daemon
    _, imgs = d.api.get("/images/json")
    bb = [i for i in imgs if "busybox:latest" in i["RepoTags"]]
    assert len(bb) == 1 and bb[0]["Id"].startswith("sha256:")
    status, img = d.api.get("/images/docker.io/library/busybox:latest/json")
    assert status == 200 and img["Id"] == bb[0]["Id"] and img["Config"]["Cmd"] == ["sh"]
    assert img["RootFS"]["Layers"][0].startswith("sha256:")
    tag = f"t{os.getpid()}"
    assert d.api.post(f"/images/busybox/tag?repo=docker.io/library/mine&tag={tag}")[0] == 201
    assert d.api.get(f"/images/mine:{tag}/json")[1]["Id"] == img["Id"]
    status, res = d.api.delete(f"/images/mine:{tag}")
    assert status == 200 and res == [{"Untagged": f"mine:{tag}"}]
    assert d.api.get(f"/images/mine:{tag}/json")[0] == 404
    assert d.api.get("/images/busybox/json")[0] == 200


def test_rmi_refused_while_a_container_uses_it(daemon: Daemon) -> None:
    _, image = daemon.api.get("/images/busybox/json")
    layer_paths = [p for p in image["GraphDriver"]["Data"].values() if p.startswith("/")]
    assert layer_paths and all(os.path.exists(p) for p in layer_paths)
    _, body = daemon.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    status, err = daemon.api.delete("/images/busybox")
    assert status == 409, err
    daemon.api.delete(f"/containers/{body['Id']}")
    status, res = daemon.api.delete("/images/busybox")
    assert status == 200 and any("Deleted" in r for r in res)
    _, imgs = daemon.api.get("/images/json")
    assert imgs == []
    # the layer went with it
    assert not any(os.path.exists(p) for p in layer_paths)


def test_writes_never_reach_the_image(shared_daemon: Daemon) -> None:
    d = shared_daemon
    cid, code, _ = run_container(d, ["sh", "-c", "echo x > /bin/newfile; rm /bin/ls"])
    assert code == 0
    cid2, code, out = run_container(d, ["sh", "-c", "ls /bin/newfile; ls -l /bin/ls >/dev/null && echo ok"])
    assert b"ok" in out and b"No such file" in out
    d.api.delete(f"/containers/{cid}")
    d.api.delete(f"/containers/{cid2}")


def test_isolation_basics(shared_daemon: Daemon) -> None:
    _, code, out = run_container(
        shared_daemon,
        ["sh", "-c", "hostname; echo --; cat /proc/net/dev | tail -n +3 | cut -d: -f1; echo --; "
                     "ls /proc | grep '^[0-9]'; echo --; cat /proc/1/comm; echo --; grep -c ' / ' /proc/mounts"],
        Hostname="boxy")
    assert code == 0, out
    hostname, links, pids, init, rootmounts = out.decode().split("--")
    assert hostname.strip() == "boxy"
    assert links.split() == ["lo", "eth0"]  # the default network is the bridge
    # only its own processes: sh as pid 1 plus the pipeline it runs now
    assert "1" in pids.split() and len(pids.split()) <= 4 and max(map(int, pids.split())) < 50
    assert init.split() == ["sh"]
    # host mounts are invisible: one root mount
    assert rootmounts.split()[-1] == "1"


def _dockyardd_fails(args: list[str], config: str | None = None) -> subprocess.CompletedProcess[str]:
    root = make_root()
    try:
        cfg = os.path.join(root, "daemon.json")
        with open(cfg, "w") as f:
            f.write(config or "{}")
        return subprocess.run([DOCKYARDD, "--config-file", cfg, "--data-root", f"{root}/data",
                               "--exec-root", f"{root}/exec", "-H", f"unix://{root}/d.sock", *args],
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["rm", "-rf", root])


def test_bad_storage_driver_is_refused_with_choices() -> None:
    r = _dockyardd_fails(["--storage-driver", "nosuch"])
    assert r.returncode != 0
    assert "nosuch" in r.stderr and "vfs" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_config_key_and_value_are_refused() -> None:
    r = _dockyardd_fails([], '{"storage-drvier": "vfs"}')
    assert r.returncode != 0 and "storage-drvier" in r.stderr and "storage-driver" in r.stderr
    r = _dockyardd_fails([], '{"iptables": "yes"}')
    assert r.returncode != 0 and "iptables" in r.stderr
    r = _dockyardd_fails([], '{"exec-driver": "nosuch"}')
    assert r.returncode != 0 and "nosuch" in r.stderr and "native" in r.stderr
    r = _dockyardd_fails([], "{oops")
    assert r.returncode != 0 and "not valid JSON" in r.stderr
    r = _dockyardd_fails(["--storage-driver", "vfs"], '{"storage-driver": "vfs"}')
    assert r.returncode != 0 and "both as a flag and in the configuration" in r.stderr


def test_restart_policies(shared_daemon: Daemon) -> None:
    d = shared_daemon
    # on-failure:2 runs the command three times in all, then stays exited
    _, body = d.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo run; exit 1"],
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}})
    cid = body["Id"]
    d.api.post(f"/containers/{cid}/start")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        c = d.api.get(f"/containers/{cid}/json")[1]
        if c["RestartCount"] == 2 and c["State"]["Status"] == "exited":
            break
        time.sleep(0.1)
    assert c["RestartCount"] == 2 and c["State"]["Status"] == "exited" and c["State"]["ExitCode"] == 1
    _, logs = d.api.get(f"/containers/{cid}/logs?stdout=1")
    assert demux(logs) == b"run\n" * 3
    # always restarts a clean exit, but not after the user stops it
    _, body = d.api.post("/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "sleep 0.2"],
        "HostConfig": {"RestartPolicy": {"Name": "always"}}})
    cid2 = body["Id"]
    d.api.post(f"/containers/{cid2}/start")
    deadline = time.monotonic() + 30
    while d.api.get(f"/containers/{cid2}/json")[1]["RestartCount"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert d.api.get(f"/containers/{cid2}/json")[1]["RestartCount"] >= 2
    assert d.api.post(f"/containers/{cid2}/stop?t=1")[0] in (204, 304)
    time.sleep(1.0)
    c = d.api.get(f"/containers/{cid2}/json")[1]
    assert c["State"]["Status"] == "exited" and not c["State"]["Restarting"]
    # bad policies are refused
    status, err = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                    "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}})
    assert status == 400 and "RestartPolicy.Name" in err["message"]
    status, err = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                    "HostConfig": {"AutoRemove": True,
                                                                   "RestartPolicy": {"Name": "always"}}})
    assert status == 400
    for x in (cid, cid2):
        assert d.api.delete(f"/containers/{x}?force=1")[0] == 204


def test_export_top_and_stats_go_through_the_service(shared_daemon: Daemon) -> None:
    """``export`` streams the whole file system (the container's changes included) and says so
    in an event carrying the container's name, as dockerd; ``top`` and ``stats`` answer for a
    running container; all three are 404 for an unknown one and 409/shaped for a stopped one."""
    import io
    import tarfile
    import urllib.parse

    d = shared_daemon
    name = f"exp-{os.getpid()}-{time.monotonic_ns()}"
    status, body = d.api.post(f"/containers/create?name={name}", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo marked > /marker; exec sleep 300"],
        "Labels": {"test": name}})
    assert status == 201, body
    cid = body["Id"]
    try:
        since = time.time()
        assert d.api.post(f"/containers/{cid}/start")[0] == 204
        deadline = time.monotonic() + 20
        while True:  # the marker is written once the shell ran
            status, data = d.api.get(f"/containers/{cid}/export")
            assert status == 200
            tar = tarfile.open(fileobj=io.BytesIO(data))
            if "marker" in tar.getnames() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        names = set(tar.getnames())
        assert {"marker", "bin/busybox", "etc/passwd"} <= names, sorted(names)[:20]
        assert tar.extractfile("marker").read() == b"marked\n"  # type: ignore[union-attr]
        filters = urllib.parse.quote(json.dumps({"event": ["export"], "container": [cid]}))
        status, events = d.api.get(f"/events?since={since:.3f}&until={time.time() + 1:.3f}"
                                   f"&filters={filters}")
        events = events if isinstance(events, list) else [events]
        assert status == 200 and events, events
        assert events[0]["Actor"]["Attributes"]["name"] == name
        assert events[0]["Actor"]["Attributes"]["test"] == name

        status, top = d.api.get(f"/containers/{cid}/top?ps_args=-o%20pid,args")
        assert status == 200, top
        assert top["Titles"] == ["PID", "COMMAND"]
        assert any(p[1] == "sleep 300" for p in top["Processes"]), top
        status, stats = d.api.get(f"/containers/{cid}/stats?stream=0&one-shot=1")
        assert status == 200 and stats["id"] == cid and stats["name"] == "/" + name, stats
        assert stats["memory_stats"].get("usage", 0) > 0, stats
        assert d.api.post(f"/containers/{cid}/kill")[0] == 204
        status, err = d.api.get(f"/containers/{cid}/top")
        assert status == 409 and err["message"] == f"Container {cid} is not running"
        status, stats = d.api.get(f"/containers/{cid}/stats?stream=0")
        assert status == 200 and stats["id"] == cid and stats["memory_stats"]["usage"] == 0, stats
        for path in ("export", "top", "stats?stream=0"):
            status, err = d.api.get(f"/containers/nosuch-{name}/{path}")
            assert status == 404 and err["message"] == f"No such container: nosuch-{name}", path
    finally:
        d.api.delete(f"/containers/{cid}?force=1")
