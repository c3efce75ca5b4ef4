"""State and content exactly as dockerd shows them (issue 11): bind mounts of single files,
``docker cp`` through a container's mounts, ``docker diff`` without the init layer, environment
entries without ``=``, events, stats, ``inspect -s`` — driven by the docker CLI and docker-py.

Where dockerd's behaviour was not obvious it was checked against dockerd 20.10 on this host
(Debian's docker.io) with the same commands before these tests were written."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import time
import uuid
from typing import Any, Iterator

import docker
import pytest

from conftest import DOCKYARD, Daemon, running_daemon, unique_subnet
from test_docker_cli import docker as docker_cli
from test_userns import remap_user  # noqa: F401 - a fixture


def uid() -> str:
    return uuid.uuid4().hex[:10]


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout.decode()


@pytest.fixture
def client(shared_daemon: Daemon) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=shared_daemon.host, version="auto", timeout=120)
    yield c
    c.close()


@pytest.fixture
def hostdir(tmp_path: Any) -> str:
    """A host directory for bind sources (under pytest's tmp, cleaned by pytest)."""
    return str(tmp_path)


def _rm(d: Daemon, *names: str) -> None:
    """Remove containers, which must work (a rootfs left mounted would fail it) unless the
    container was never made."""
    for n in names:
        r = docker_cli(d, "rm", "-f", "-v", n)
        assert r.returncode == 0 or b"No such container" in r.stderr, r.stderr


# -- bind mounts: files, sockets, devices; -v makes a missing source, --mount refuses ------------
def test_bind_mount_of_a_single_file_a_socket_and_a_device(shared_daemon: Daemon, hostdir: str) -> None:
    d = shared_daemon
    conf = os.path.join(hostdir, "app.conf")
    with open(conf, "w") as f:
        f.write("key=value\n")
    sock_path = os.path.join(hostdir, "app.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    try:
        out = ok(docker_cli(d, "run", "--rm", "-v", f"{conf}:/etc/app.conf", "busybox", "cat", "/etc/app.conf"))
        assert out == "key=value\n"
        # a read-only file under a path the image does not have, a socket, a character device
        out = ok(docker_cli(d, "run", "--rm", "-v", f"{conf}:/new/dir/app.conf:ro",
                            "-v", f"{sock_path}:/run/app.sock", "-v", "/dev/null:/opt/null",
                            "busybox", "sh", "-c",
                            "cat /new/dir/app.conf; test -S /run/app.sock && echo socket; "
                            "test -c /opt/null && echo chardev; echo x > /new/dir/app.conf || echo ro"))
        assert out.split("\n")[:4] == ["key=value", "socket", "chardev", "ro"], out
        out = ok(docker_cli(d, "run", "--rm", "--mount", f"type=bind,source={conf},target=/etc/app.conf",
                            "busybox", "cat", "/etc/app.conf"))
        assert out == "key=value\n"
    finally:
        srv.close()
    with open(conf) as f:
        assert f.read() == "key=value\n"  # the source file is left as it was


def test_missing_bind_source_made_by_v_at_start_refused_by_mount(shared_daemon: Daemon, hostdir: str) -> None:
    d = shared_daemon
    name = "bindsrc-" + uid()
    missing = os.path.join(hostdir, "not", "there")
    try:
        ok(docker_cli(d, "create", "--name", name, "-v", f"{missing}:/data", "busybox",
                      "sh", "-c", "echo made > /data/f"))
        assert not os.path.exists(missing)  # as dockerd: made when the container starts
        ok(docker_cli(d, "start", "-a", name))
        assert os.path.isdir(missing)
        with open(os.path.join(missing, "f")) as f:
            assert f.read() == "made\n"
    finally:
        _rm(d, name)
    other = os.path.join(hostdir, "nowhere")
    r = docker_cli(d, "run", "--rm", "--mount", f"type=bind,source={other},target=/data", "busybox", "true")
    assert r.returncode != 0
    assert f"bind source path does not exist: {other}" in r.stderr.decode()
    assert not os.path.exists(other)


# -- docker cp through the container's mounts ------------------------------------------------------
def _cp_in(d: Daemon, src: str, dest: str) -> None:
    ok(docker_cli(d, "cp", src, dest))


def _cp_out(d: Daemon, src: str) -> bytes:
    """The content of the single file ``src`` (``container:path``), through ``docker cp - ``."""
    r = docker_cli(d, "cp", src, "-")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        member = tar.getmembers()[0]
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def _bind_and_payload(hostdir: str, text: str) -> tuple[str, str]:
    """``(a directory to bind-mount, a file holding text)`` under ``hostdir``."""
    bind = os.path.join(hostdir, "bind")
    os.makedirs(bind)
    payload = os.path.join(hostdir, "payload.txt")
    with open(payload, "w") as f:
        f.write(text)
    return bind, payload


def test_cp_in_and_out_through_volumes_binds_tmpfs_and_etc_files(shared_daemon: Daemon, hostdir: str) -> None:
    """A running container: copies into a named volume, a bind mount, a tmpfs and /etc are seen
    inside; files written inside them come out; /etc/hosts is the container's, not the layer's."""
    d = shared_daemon
    name, vol = "cprun-" + uid(), "cpvol-" + uid()
    bind, payload = _bind_and_payload(hostdir, "from the host\n")
    try:
        ok(docker_cli(d, "run", "-d", "--name", name, "-v", f"{vol}:/vol", "-v", f"{bind}:/bind",
                      "--tmpfs", "/scratch", "busybox", "sleep", "600"))
        for dest in ("/vol", "/bind", "/scratch", "/etc"):
            _cp_in(d, payload, f"{name}:{dest}/")
        out = ok(docker_cli(d, "exec", name, "sh", "-c",
                            "cat /vol/payload.txt /bind/payload.txt /scratch/payload.txt /etc/payload.txt; "
                            "echo vol-inside > /vol/in; echo tmpfs-inside > /scratch/in; "
                            "echo bind-inside > /bind/in; echo '10.1.2.3 extra' >> /etc/hosts"))
        assert out == "from the host\n" * 4
        with open(os.path.join(bind, "payload.txt")) as f:
            assert f.read() == "from the host\n"
        assert _cp_out(d, f"{name}:/vol/in") == b"vol-inside\n"
        assert _cp_out(d, f"{name}:/scratch/in") == b"tmpfs-inside\n"
        assert _cp_out(d, f"{name}:/bind/in") == b"bind-inside\n"
        hosts = _cp_out(d, f"{name}:/etc/hosts")
        assert b"localhost" in hosts and b"10.1.2.3 extra" in hosts
        # a directory copied out of a volume, with what the container wrote in it
        r = docker_cli(d, "cp", f"{name}:/vol", "-")
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            assert {"vol/in", "vol/payload.txt"} <= set(tar.getnames())
        # nothing went into the writable layer under the mounts
        diff = ok(docker_cli(d, "diff", name))
        assert "payload" not in diff.replace("A /etc/payload.txt", "") and "/vol/" not in diff
        assert "A /etc/payload.txt" in diff
        # the file in the tmpfs is only in the tmpfs: gone with a restart, as inside
        ok(docker_cli(d, "restart", "-t", "0", name))
        out = ok(docker_cli(d, "exec", name, "sh", "-c", "ls /scratch; cat /vol/payload.txt"))
        assert out == "from the host\n"
    finally:
        _rm(d, name)
        docker_cli(d, "volume", "rm", vol)


def test_cp_into_a_stopped_container_reaches_its_volume_and_bind(shared_daemon: Daemon, hostdir: str) -> None:
    d = shared_daemon
    name, vol = "cpstop-" + uid(), "cpvol-" + uid()
    bind, payload = _bind_and_payload(hostdir, "copied while stopped\n")
    try:
        ok(docker_cli(d, "run", "--name", name, "-v", f"{vol}:/vol", "-v", f"{bind}:/bind",
                      "busybox", "sh", "-c", "echo before > /vol/before"))
        _cp_in(d, payload, f"{name}:/vol/")
        _cp_in(d, payload, f"{name}:/bind/")
        assert _cp_out(d, f"{name}:/vol/before") == b"before\n"
        assert _cp_out(d, f"{name}:/vol/payload.txt") == b"copied while stopped\n"
        assert b"localhost" in _cp_out(d, f"{name}:/etc/hosts")
        hostname = ok(docker_cli(d, "inspect", "-f", "{{.Config.Hostname}}", name)).strip()
        assert _cp_out(d, f"{name}:/etc/hostname") == hostname.encode() + b"\n"
        with open(os.path.join(bind, "payload.txt")) as f:
            assert f.read() == "copied while stopped\n"
        # another container sees the volume's new file: it is in the volume, not in the layer
        out = ok(docker_cli(d, "run", "--rm", "-v", f"{vol}:/v", "busybox", "cat", "/v/payload.txt"))
        assert out == "copied while stopped\n"
        assert "payload" not in ok(docker_cli(d, "diff", name))
        # a created, never started container: the same
        created = name + "-new"
        ok(docker_cli(d, "create", "--name", created, "-v", f"{vol}:/data", "busybox", "true"))
        assert _cp_out(d, f"{created}:/data/payload.txt") == b"copied while stopped\n"
    finally:
        _rm(d, name, name + "-new")
        docker_cli(d, "volume", "rm", vol)


def test_cp_refuses_read_only_volumes_and_rootfs_as_dockerd(shared_daemon: Daemon, hostdir: str) -> None:
    d = shared_daemon
    name, vol = "cpro-" + uid(), "cpvol-" + uid()
    payload = os.path.join(hostdir, "p.txt")
    with open(payload, "w") as f:
        f.write("p\n")
    try:
        ok(docker_cli(d, "create", "--name", name, "--read-only", "-v", f"{vol}:/rw",
                      "-v", f"{vol}:/ro:ro", "busybox", "true"))
        r = docker_cli(d, "cp", payload, f"{name}:/ro/")
        assert r.returncode != 0 and "mounted volume is marked read-only" in r.stderr.decode()
        r = docker_cli(d, "cp", payload, f"{name}:/tmp/")
        assert r.returncode != 0 and "container rootfs is marked read-only" in r.stderr.decode()
        _cp_in(d, payload, f"{name}:/rw/")  # a writable volume of a read-only container
        assert _cp_out(d, f"{name}:/ro/p.txt") == b"p\n"
    finally:
        _rm(d, name)
        docker_cli(d, "volume", "rm", vol)


def test_docker_py_put_and_get_archive_through_a_volume(client: docker.DockerClient) -> None:
    vol = "pyvol-" + uid()
    ct = client.containers.run("busybox", "sleep 600", detach=True, volumes={vol: {"bind": "/data", "mode": "rw"}})
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"through docker-py\n"
            ti = tarfile.TarInfo("note.txt")
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        assert ct.put_archive("/data", buf.getvalue()) is True
        assert ct.exec_run(["cat", "/data/note.txt"]).output == b"through docker-py\n"
        ct.exec_run(["sh", "-c", "echo back > /data/back.txt"])
        stream, st = ct.get_archive("/data/back.txt")
        assert st["name"] == "back.txt" and st["size"] == 5
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            f = tar.extractfile("back.txt")
            assert f is not None and f.read() == b"back\n"
    finally:
        ct.remove(force=True, v=True)
        client.volumes.get(vol).remove()


# -- docker diff ----------------------------------------------------------------------------------
@pytest.fixture
def scratch_image(shared_daemon: Daemon, tmp_path: Any) -> Iterator[str]:
    """An image with nothing but /bin/busybox: no /dev, /proc, /sys or /etc of its own."""
    tar_path = str(tmp_path / "scratch.tar")
    with tarfile.open(tar_path, "w") as tar:
        tar.add(os.path.realpath("/bin/busybox"), arcname="bin/busybox")
    ref = "scratchbox-" + uid() + ":latest"
    ok(docker_cli(shared_daemon, "import", tar_path, ref))
    yield ref
    docker_cli(shared_daemon, "rmi", "-f", ref)


def test_diff_hides_the_init_layer_but_not_the_users_changes(shared_daemon: Daemon, scratch_image: str) -> None:
    d = shared_daemon
    a, b = "diffa-" + uid(), "diffb-" + uid()
    try:
        ok(docker_cli(d, "run", "--name", a, "-t", "--init", scratch_image, "/bin/busybox", "true"))
        assert ok(docker_cli(d, "diff", a)) == ""  # dockerd: nothing
        status, body = d.api.get(f"/containers/{a}/changes")
        assert status == 200 and body in (None, b"null", [])
        ok(docker_cli(d, "run", "--name", b, "-v", "/data", scratch_image, "/bin/busybox", "sh", "-c",
                      "/bin/busybox touch /etc/x; /bin/busybox mkdir -p /var/y"))
        # dockerd 20.10 with the same image and command: A /data, C /etc, A /etc/x, A /var, A /var/y
        lines = ok(docker_cli(d, "diff", b)).splitlines()
        assert sorted(lines) == ["A /data", "A /etc/x", "A /var", "A /var/y", "C /etc"], lines
    finally:
        _rm(d, a, b)


# -- environment, log options, commit, inspect ------------------------------------------------------
def test_bare_env_name_is_taken_from_the_client_or_unset(shared_daemon: Daemon, busybox_tar: str) -> None:
    d = shared_daemon
    ref = "envimg-" + uid()
    ok(docker_cli(d, "import", "--change", "ENV FOO=from-image", "--change", "ENV KEEP=kept",
                  "--change", 'CMD ["sh"]', busybox_tar, ref))
    env_no_foo = {k: v for k, v in os.environ.items() if k != "FOO"}
    try:
        # the docker CLI sends "FOO" bare when FOO is unset in its environment: unset inside
        r = subprocess.run(["docker", "run", "--rm", "-e", "FOO", "-e", "BAR=1", ref, "env"],
                           capture_output=True, env={**env_no_foo, "DOCKER_HOST": d.host})
        env = ok(r).splitlines()
        assert not any(e.startswith("FOO") for e in env), env
        assert "BAR=1" in env and "KEEP=kept" in env
        # set on the client: its value
        r = subprocess.run(["docker", "run", "--rm", "-e", "FOO", ref, "env"], capture_output=True,
                           env={**env_no_foo, "FOO": "from-client", "DOCKER_HOST": d.host})
        assert "FOO=from-client" in ok(r).splitlines()
        # the stored config keeps the bare name, as dockerd's
        name = "envc-" + uid()
        r = subprocess.run(["docker", "create", "--name", name, "-e", "FOO", ref], capture_output=True,
                           env={**env_no_foo, "DOCKER_HOST": d.host})
        ok(r)
        cfg_env = json.loads(ok(docker_cli(d, "inspect", "-f", "{{json .Config.Env}}", name)))
        assert cfg_env[0] == "FOO" and "KEEP=kept" in cfg_env and "FOO=from-image" not in cfg_env
        _rm(d, name)
        # dockyard's own CLI does the same
        r = subprocess.run([DOCKYARD, "-H", d.host, "run", "--rm", "-e", "FOO", ref, "env"],
                           capture_output=True, env=env_no_foo)
        assert not any(e.startswith("FOO") for e in ok(r).splitlines())
        r = subprocess.run([DOCKYARD, "-H", d.host, "run", "--rm", "-e", "FOO", ref, "env"],
                           capture_output=True, env={**env_no_foo, "FOO": "cli"})
        assert "FOO=cli" in ok(r).splitlines()
        # docker exec -e FOO (unset on the client) unsets it for the exec
        name = "envx-" + uid()
        ok(docker_cli(d, "run", "-d", "--name", name, ref, "sleep", "600"))
        r = subprocess.run(["docker", "exec", "-e", "FOO", name, "env"], capture_output=True,
                           env={**env_no_foo, "DOCKER_HOST": d.host})
        assert not any(e.startswith("FOO") for e in ok(r).splitlines())
        _rm(d, name)
    finally:
        docker_cli(d, "rmi", "-f", ref)


def test_max_file_without_max_size_is_accepted(shared_daemon: Daemon) -> None:
    d = shared_daemon
    name = "logopt-" + uid()
    try:
        ok(docker_cli(d, "run", "--name", name, "--log-opt", "max-file=3", "busybox", "echo", "logged"))
        cfg = json.loads(ok(docker_cli(d, "inspect", "-f", "{{json .HostConfig.LogConfig}}", name)))
        assert cfg == {"Type": "json-file", "Config": {"max-file": "3"}}
        assert ok(docker_cli(d, "logs", name)) == "logged\n"
    finally:
        _rm(d, name)
    r = docker_cli(d, "run", "--rm", "--log-opt", "max-size=0", "busybox", "true")
    assert r.returncode != 0 and "max-size must be a positive number" in r.stderr.decode()


def test_commit_sets_parent_and_inspect_shows_runtime(client: docker.DockerClient) -> None:
    ct = client.containers.run("busybox", ["sh", "-c", "echo c > /committed"], detach=True)
    repo = "committed-" + uid()
    try:
        ct.wait()
        ct.reload()
        # the exec driver that ran it (dockerd shows its default, "runc"; here: the daemon's)
        assert ct.attrs["HostConfig"]["Runtime"] == client.info()["DefaultRuntime"]
        img = ct.commit(repository=repo, tag="v1")
        assert img.attrs["Parent"] == ct.attrs["Image"]
        assert client.images.get("busybox").id == ct.attrs["Image"]  # the base keeps its tag
    finally:
        ct.remove(force=True)
        client.images.remove(f"{repo}:v1")


def test_inspect_size_and_host_network_hostname(shared_daemon: Daemon) -> None:
    d = shared_daemon
    name = "sized-" + uid()
    try:
        ok(docker_cli(d, "run", "--name", name, "busybox", "sh", "-c",
                      "dd if=/dev/zero of=/blob bs=1024 count=200 2>/dev/null"))
        doc = json.loads(ok(docker_cli(d, "inspect", "-s", name)))[0]
        assert doc["SizeRw"] >= 200 * 1024
        assert doc["SizeRootFs"] > doc["SizeRw"]
        plain = json.loads(ok(docker_cli(d, "inspect", name)))[0]
        assert "SizeRw" not in plain  # only when asked for, as dockerd
    finally:
        _rm(d, name)
    out = ok(docker_cli(d, "run", "--rm", "--network", "host", "busybox", "sh", "-c",
                        "hostname; cat /etc/hostname; echo $HOSTNAME"))
    assert out.split() == [socket.gethostname()] * 3


def test_network_inspect_keeps_ipam_options_driver_opts_and_links(client: docker.DockerClient,
                                                                  shared_daemon: Daemon) -> None:
    d = shared_daemon
    net = "optnet-" + uid()
    subnet = unique_subnet()
    ok(docker_cli(d, "network", "create", "--subnet", subnet, "--ipam-opt", "foo=bar", net))
    peer, me = "peer-" + uid(), "linker-" + uid()
    try:
        assert client.networks.get(net).attrs["IPAM"]["Options"] == {"foo": "bar"}
        ok(docker_cli(d, "run", "-d", "--name", peer, "--network", net, "busybox", "sleep", "600"))
        peer_ip = client.containers.get(peer).attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
        api = client.api
        cfg = api.create_networking_config({net: api.create_endpoint_config(
            links=[(peer, "pal")], driver_opt={"com.example.opt": "v1"})})
        cid = api.create_container("busybox", ["sleep", "600"], name=me, networking_config=cfg,
                                   host_config=api.create_host_config(network_mode=net))["Id"]
        api.start(cid)
        ep = client.containers.get(cid).attrs["NetworkSettings"]["Networks"][net]
        assert ep["DriverOpts"] == {"com.example.opt": "v1"}
        assert ep["Links"] == [f"{peer}:pal"]
        # the link's alias resolves to the peer on that network, for this container (the name
        # server is the daemon's own: nothing leaves the host)
        out = ok(docker_cli(d, "exec", me, "nslookup", "pal", "127.0.0.11"))
        assert peer_ip in out
    finally:
        _rm(d, peer, me)
        docker_cli(d, "network", "rm", net)


# -- events ---------------------------------------------------------------------------------------
def _events(client: docker.DockerClient, since: float) -> list[dict[str, Any]]:
    return list(client.events(since=since, until=time.time() + 1, decode=True))


def test_events_of_exec_volumes_attach_resize_network_kill_and_images(
        client: docker.DockerClient, shared_daemon: Daemon, tmp_path: Any) -> None:
    d = shared_daemon
    since = time.time() - 1
    vol, name, tty = "evvol-" + uid(), "ev-" + uid(), "evtty-" + uid()
    ref = "evimg-" + uid() + ":latest"
    client.volumes.create(vol)
    ok(docker_cli(d, "run", "--rm", "-v", f"{vol}:/v", "busybox", "true"))  # attach, mount, unmount
    ct = client.containers.run("busybox", "sleep 600", detach=True, name=name, volumes={vol: {"bind": "/v"}})
    assert ct.exec_run(["sh", "-c", "exit 3"]).exit_code == 3
    t = client.containers.run("busybox", "sleep 600", detach=True, tty=True, name=tty)
    client.api.resize(t.id, 30, 100)
    ct.stop(timeout=0)  # network disconnect, volume unmount
    ct.start()
    ct.remove(force=True)  # kill (signal 9)
    t.remove(force=True)
    client.volumes.get(vol).remove()
    ok(docker_cli(d, "tag", "busybox", ref))
    saved = str(tmp_path / "saved.tar")
    ok(docker_cli(d, "save", "-o", saved, ref))
    ok(docker_cli(d, "rmi", ref))
    ok(docker_cli(d, "load", "-i", saved))
    ok(docker_cli(d, "rmi", ref))
    time.sleep(0.5)
    evs = _events(client, since)
    seen = {(e["Type"], e["Action"].split(":")[0]) for e in evs}
    for want in [("container", "exec_create"), ("container", "exec_start"), ("container", "exec_die"),
                 ("container", "attach"), ("container", "resize"), ("container", "kill"),
                 ("volume", "create"), ("volume", "mount"), ("volume", "unmount"), ("volume", "destroy"),
                 ("network", "connect"), ("network", "disconnect"),
                 ("image", "untag"), ("image", "save"), ("image", "load")]:
        assert want in seen, (want, sorted(seen))
    # dockerd's events.Message: the deprecated status/id (from) for containers and images only,
    # in its field order; time is timeNano's second
    for e in evs:
        legacy = ["status", "id", *(["from"] if "from" in e else [])] \
            if e["Type"] in ("container", "image") else []
        assert list(e) == legacy + ["Type", "Action", "Actor", "scope", "time", "timeNano"], e
        assert e["time"] == e["timeNano"] // 10**9
        if legacy:
            assert (e["status"], e["id"]) == (e["Action"], e["Actor"]["ID"])
    mine = [e for e in evs if e["Actor"]["ID"] == ct.id]
    assert all(e["from"] == "busybox" for e in mine)
    die = [e for e in mine if e["Action"] == "exec_die"]
    assert die and die[0]["Actor"]["Attributes"]["exitCode"] == "3"
    create = [e for e in mine if e["Action"].startswith("exec_create")]
    assert create[0]["Action"] == "exec_create: sh -c exit 3"
    assert create[0]["Actor"]["Attributes"]["execID"] == die[0]["Actor"]["Attributes"]["execID"]
    kills = [e for e in mine if e["Action"] == "kill"]
    assert kills[-1]["Actor"]["Attributes"]["signal"] == "9"
    rs = [e for e in evs if e["Actor"]["ID"] == t.id and e["Action"] == "resize"]
    assert rs and rs[0]["Actor"]["Attributes"]["height"] == "30" and rs[0]["Actor"]["Attributes"]["width"] == "100"
    mounts = [e for e in evs if e["Type"] == "volume" and e["Action"] == "mount" and e["Actor"]["ID"] == vol]
    assert mounts[0]["Actor"]["Attributes"]["destination"] == "/v"
    nets = [e for e in evs if e["Type"] == "network" and e["Actor"]["Attributes"].get("container") == ct.id]
    assert [e["Action"] for e in nets][:3] == ["connect", "disconnect", "connect"]
    # the docker CLI reads the same window
    out = ok(docker_cli(d, "events", "--since", str(int(since)), "--until", str(int(time.time()) + 1),
                        "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}"))
    assert f"destroy {vol}" in out.splitlines()
    out = ok(docker_cli(d, "events", "--since", str(int(since)), "--until", str(int(time.time()) + 1),
                        "--filter", f"container={name}", "--filter", "event=exec_create",
                        "--format", "{{.Action}}"))
    assert out.splitlines() == ["exec_create: sh -c exit 3"]


# -- stats ----------------------------------------------------------------------------------------
def test_stats_show_network_and_block_io(shared_daemon: Daemon, client: docker.DockerClient) -> None:
    """Traffic between two containers on a network this test's daemon made shows in NET I/O;
    the blkio lists are there (empty lists, as dockerd's, when nothing was counted)."""
    d = shared_daemon
    net, a, b = "statnet-" + uid(), "stata-" + uid(), "statb-" + uid()
    ok(docker_cli(d, "network", "create", "--subnet", unique_subnet(), net))
    try:
        ok(docker_cli(d, "run", "-d", "--name", a, "--network", net, "busybox", "sleep", "600"))
        ok(docker_cli(d, "run", "-d", "--name", b, "--network", net, "busybox", "sleep", "600"))
        a_ip = client.containers.get(a).attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
        ok(docker_cli(d, "exec", b, "ping", "-c", "3", "-s", "1000", "-W", "5", a_ip))
        out = ok(docker_cli(d, "stats", "--no-stream", "--format", "{{.Name}} {{.NetIO}} | {{.BlockIO}}", a))
        netio = out.split(" ", 1)[1].split("|")[0].strip()
        assert netio != "0B / 0B" and "kB" in netio, out
        st = client.api.stats(a, stream=False)
        eth = st["networks"]["eth0"]
        assert eth["rx_bytes"] >= 3000 and eth["tx_bytes"] >= 3000 and eth["rx_packets"] >= 3
        assert isinstance(st["blkio_stats"]["io_service_bytes_recursive"], list)
        assert "lo" not in st["networks"]
        # the host network's interfaces are not a container's: none shown, as dockerd
        h = "stath-" + uid()
        ok(docker_cli(d, "run", "-d", "--name", h, "--network", "host", "busybox", "sleep", "600"))
        assert "networks" not in client.api.stats(h, stream=False)
        _rm(d, h)
    finally:
        _rm(d, a, b)
        docker_cli(d, "network", "rm", net)


def test_cp_through_tmpfs_and_volume_with_userns_remap(busybox_tar: str, remap_user: tuple[str, int],
                                                       tmp_path: Any) -> None:
    """With userns-remap the container's mount namespace belongs to its user namespace: its
    tmpfs is cloned from there all the same, and IDs are shifted both ways."""
    with running_daemon(busybox_tar, ["--userns-remap", remap_user[0]]) as d:
        name = "cpuserns-" + uid()
        src = tmp_path / "in.txt"
        src.write_text("to the tmpfs\n")
        os.chown(src, 1000, 1000)
        ok(docker_cli(d, "run", "-d", "--name", name, "-v", "usvol:/vol", "--tmpfs", "/scratch",
                      "busybox", "sleep", "600"))
        ok(docker_cli(d, "cp", "-a", str(src), f"{name}:/scratch/"))
        ok(docker_cli(d, "cp", str(src), f"{name}:/vol/"))
        out = ok(docker_cli(d, "exec", name, "sh", "-c",
                            "cat /scratch/in.txt /vol/in.txt; stat -c %u:%g /scratch/in.txt /vol/in.txt; "
                            "echo out > /scratch/out"))
        # the archive's owners, as dockerd keeps them (shifted into the container's range)
        assert out.splitlines() == ["to the tmpfs", "to the tmpfs", "1000:1000", "1000:1000"]
        r = docker_cli(d, "cp", f"{name}:/scratch/out", "-")
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            ti = tar.getmember("out")
            f = tar.extractfile(ti)
            assert f is not None and f.read() == b"out\n" and (ti.uid, ti.gid) == (0, 0)
