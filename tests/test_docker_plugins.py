"""Docker's out-of-process plugin protocol: a volume plugin (tests/volume_plugin.py, a real
server on a unix socket in a private plugin directory) serves volumes to dockyardd's containers,
driven by the real docker CLI and by dockyard's own."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Iterator

import pytest

from conftest import Daemon
from plugin_server import Served, plugin_daemon, running_plugin

DOCKER = shutil.which("docker")
SERVER = os.path.join(os.path.dirname(__file__), "volume_plugin.py")


class Plugin(Served):
    prefix = "dkyvol"

    def mounted(self) -> list[str]:
        """Mount points under the plugin's state directory (its bind mounts)."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [p for p in points if p.startswith(self.state + "/")]


def _unmount(p: Plugin) -> None:
    for point in reversed(p.mounted()):
        subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture
def plugin() -> Iterator[Plugin]:
    with running_plugin(SERVER, Plugin, _unmount) as p:
        yield p


@pytest.fixture
def pdaemon(busybox_tar: str, plugin: Plugin) -> Iterator[Daemon]:
    """A dockyardd that finds Docker plugins in the plugin's private directory only."""
    with plugin_daemon(plugin, busybox_tar) as d:
        yield d


def ok(r: subprocess.CompletedProcess[bytes]) -> bytes:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_volume_plugin_with_docker_cli(pdaemon: Daemon, plugin: Plugin) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=pdaemon.host, DOCKER_CONFIG=os.path.join(pdaemon.root, "docker-config"))

    def docker(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], capture_output=True, env=env, timeout=120)

    ok(docker("volume", "create", "-d", plugin.name, "-o", "size=1", "pv"))
    assert plugin.calls("Plugin.Activate")
    assert plugin.calls("VolumeDriver.Create")[-1]["body"] == {"Name": "pv", "Opts": {"size": "1"}}
    assert os.path.isdir(os.path.join(plugin.state, "data", "pv"))
    info = json.loads(ok(docker("volume", "inspect", "pv")))[0]
    assert info["Driver"] == plugin.name and info["Scope"] == "local"
    assert info["Status"] == {"mounts": 0}
    assert ok(docker("volume", "ls", "--filter", f"driver={plugin.name}", "--format",
                     "{{.Driver}} {{.Name}}")).split(b"\n")[0] == f"{plugin.name} pv".encode()

    # run -v: Mount at start (the container sees the plugin's path), Unmount when it stops
    ok(docker("run", "--rm", "-v", "pv:/x", "busybox", "sh", "-c", "echo from-box > /x/f"))
    with open(os.path.join(plugin.state, "data", "pv", "f")) as f:
        assert f.read() == "from-box\n"
    mounts, unmounts = plugin.calls("VolumeDriver.Mount"), plugin.calls("VolumeDriver.Unmount")
    assert len(mounts) == 1 and len(unmounts) == 1
    assert mounts[0]["body"]["ID"] == unmounts[0]["body"]["ID"] and mounts[0]["body"]["Name"] == "pv"
    assert plugin.mounted() == []

    # a running container holds its mount; rm -f releases it
    cid = ok(docker("run", "-d", "--mount", "type=volume,source=pv,target=/y", "busybox",
                    "sleep", "300")).strip().decode()
    assert plugin.mounted() == [os.path.join(plugin.state, "mnt", "pv")]
    assert ok(docker("exec", cid, "cat", "/y/f")) == b"from-box\n"
    info = json.loads(ok(docker("volume", "inspect", "pv")))[0]
    assert info["Mountpoint"] == os.path.join(plugin.state, "mnt", "pv")
    r = docker("volume", "rm", "pv")
    assert r.returncode != 0 and b"in use" in r.stderr
    ok(docker("rm", "-f", cid))
    assert plugin.mounted() == []
    assert len(plugin.calls("VolumeDriver.Unmount")) == 2

    ok(docker("volume", "rm", "pv"))
    assert plugin.calls("VolumeDriver.Remove")[-1]["body"] == {"Name": "pv"}
    assert not os.path.exists(os.path.join(plugin.state, "data", "pv"))
    assert b"pv" not in ok(docker("volume", "ls", "-q")).split()


def test_volume_plugin_errors_and_volume_driver(pdaemon: Daemon, plugin: Plugin) -> None:
    # a plugin's refusal is the daemon's error, and nothing is recorded
    status, err = pdaemon.api.post("/volumes/create", {"Name": "bad", "Driver": plugin.name,
                                                      "DriverOpts": {"fail": "1"}})
    assert status == 500 and "asked to fail" in err["message"], err
    assert pdaemon.api.get("/volumes/bad")[0] == 404
    # an unknown plugin is a 404 naming it
    status, err = pdaemon.api.post("/volumes/create", {"Name": "v", "Driver": "nosuchplugin"})
    assert status == 404 and "nosuchplugin" in err["message"], err
    status, err = pdaemon.api.post("/containers/create", {
        "Image": "busybox", "HostConfig": {"VolumeDriver": "nosuchplugin", "Binds": ["v:/v"]}})
    assert status == 400 and "HostConfig.VolumeDriver" in err["message"], err
    # no volume to make with it: the driver is not looked up (dockerd; docker-py's
    # test_create_with_volume_driver names "foo" with a bind only)
    status, made = pdaemon.api.post("/containers/create", {
        "Image": "busybox", "HostConfig": {"VolumeDriver": "nosuchplugin", "Binds": ["/tmp:/t"]}})
    assert status == 201, made
    assert pdaemon.api.delete(f"/containers/{made['Id']}")[0] == 204
    # --volume-driver makes the new named and anonymous volumes of a container in the plugin;
    # run --rm takes the anonymous one away through the plugin's Remove
    out = ok(pdaemon.cli("run", "--rm", "--volume-driver", plugin.name, "-v", "named:/n",
                         "-v", "/anon", "busybox", "sh", "-c", "echo a > /anon/f; echo n > /n/f; "
                         "grep -c ' /anon \\| /n ' /proc/mounts"))
    assert out == b"2\n"
    created = [c["body"]["Name"] for c in plugin.calls("VolumeDriver.Create")][1:]  # after "bad"
    assert "named" in created and len(created) == 2
    anon = [n for n in created if n != "named"][0]
    assert [c["body"]["Name"] for c in plugin.calls("VolumeDriver.Remove")] == [anon]
    status, vol = pdaemon.api.get("/volumes/named")
    assert status == 200 and vol["Driver"] == plugin.name
    # the same name with another driver is a conflict
    status, err = pdaemon.api.post("/volumes/create", {"Name": "named", "Driver": "local"})
    assert status == 409, err
    assert plugin.mounted() == []
    # what the daemon found: info's volume plugins, dockyard plugins ls
    assert pdaemon.api.get("/info")[1]["Plugins"]["Volume"] == ["local", plugin.name]
    r = pdaemon.cli("plugins", "info", "--kind", "docker", plugin.name)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["State"] == "active" and row["Implements"] == ["VolumeDriver"]
    assert row["EntryPoint"] == "unix://" + os.path.join(plugin.dir, plugin.name + ".sock")


def test_discovery_by_spec_and_json_files_and_activation_retries(tmp_path) -> None:
    """A ``.spec`` naming a socket that is not up yet: activation retries (as dockerd) until the
    plugin answers; a ``.json`` file; what a plugin does not implement is a 404 naming what it
    does; a ``.json`` asking for TLS is refused, not half-honoured."""
    from dockyard.core.dockerplugins import PluginDirs
    from dockyard.hookspecs.errors import InvalidParameter, NotFound

    name = "dkyspec" + os.urandom(3).hex()
    socks, specs, state = tmp_path / "socks", tmp_path / "etc", tmp_path / "state"
    for d in (socks, specs, state):
        d.mkdir()
    sock = socks / f"{name}.sock"
    (specs / f"{name}.spec").write_text(f"unix://{sock}\n")
    (specs / "viajson.json").write_text(json.dumps({"Name": "viajson", "Addr": f"unix://{sock}"}))
    (specs / "tls.json").write_text(json.dumps({"Name": "tls", "Addr": "tcp://127.0.0.1:1",
                                                "TLSConfig": {"InsecureSkipVerify": False}}))
    dirs = PluginDirs([str(tmp_path / "run"), str(specs)])
    assert dirs.names() == sorted([name, "viajson", "tls"])
    proc = None

    def start_late() -> None:
        nonlocal proc
        proc = subprocess.Popen([sys.executable, SERVER, str(socks), name, str(state)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    import threading
    timer = threading.Timer(1.5, start_late)  # after the first activation attempt failed
    timer.start()
    try:
        plugin = dirs.get(name, "VolumeDriver")
        assert plugin.implements == ["VolumeDriver"] and plugin.source.endswith(".spec")
        assert dirs.get("viajson", "VolumeDriver").addr == f"unix://{sock}"
        with pytest.raises(NotFound, match="does not implement NetworkDriver.*VolumeDriver"):
            dirs.get(name, "NetworkDriver")
        with pytest.raises(InvalidParameter, match="TLS"):
            dirs.get("tls", "VolumeDriver")
        with pytest.raises(NotFound, match="not found"):
            dirs.get("nosuch", "VolumeDriver")
        assert [d["Name"] for d in dirs.describe() if d["Implements"]] == [name, "viajson"]
    finally:
        timer.cancel()
        timer.join()
        if proc is not None:
            proc.kill()
            proc.wait()


def test_volumes_a_plugin_has_and_dockyard_did_not_create(pdaemon: Daemon, plugin: Plugin) -> None:
    """``VolumeDriver.List``/``Get``: a volume made in the plugin behind the daemon's back is
    listed and inspected with the plugin's name as its driver (as dockerd shows it), a
    container may use it, and ``volume rm`` removes it through the plugin; a plugin that does
    not answer is a warning of ``volume ls``, not a failure."""
    from dockyard.core.dockerplugins import Plugin as Client
    sock = os.path.join(plugin.dir, plugin.name + ".sock")
    Client(plugin.name, "unix://" + sock, sock).call(
        "VolumeDriver.Create", {"Name": "behind", "Opts": {}})
    with open(os.path.join(plugin.dir, "dead.spec"), "w") as f:
        f.write("unix:///nonexistent/dead.sock\n")
    status, listed = pdaemon.api.get("/volumes")
    assert status == 200, listed
    (row,) = [v for v in listed["Volumes"] if v["Name"] == "behind"]
    assert row["Driver"] == plugin.name and row["Scope"] == "local", row
    assert any("dead" in w for w in listed["Warnings"]), listed["Warnings"]
    assert plugin.calls("VolumeDriver.List")
    status, filtered = pdaemon.api.get(f"/volumes?filters={json.dumps({'driver': [plugin.name]}, separators=(',', ':'))}")
    assert [v["Name"] for v in filtered["Volumes"]] == ["behind"]
    status, vol = pdaemon.api.get("/volumes/behind")
    assert status == 200 and vol["Driver"] == plugin.name and vol["Status"] == {"mounts": 0}, vol
    assert plugin.calls("VolumeDriver.Get")[-1]["body"] == {"Name": "behind"}
    assert pdaemon.api.get("/volumes/nowhere")[0] == 404
    # prune (even all=true) removes only the volumes the daemon made
    status, pruned = pdaemon.api.post("/volumes/prune?filters=" + json.dumps(
        {"all": ["true"]}, separators=(",", ":")))
    assert status == 200 and "behind" not in (pruned["VolumesDeleted"] or []), pruned
    assert not plugin.calls("VolumeDriver.Remove")
    # a container's -v of that name uses the plugin's volume, not a new local one
    ok(pdaemon.cli("run", "--rm", "-v", "behind:/b", "busybox", "sh", "-c", "echo hi > /b/f"))
    with open(os.path.join(plugin.state, "data", "behind", "f")) as f:
        assert f.read() == "hi\n"
    assert len(plugin.calls("VolumeDriver.Create")) == 1  # the one made behind the daemon's back
    assert pdaemon.api.get("/volumes/behind")[1]["Driver"] == plugin.name
    assert pdaemon.api.delete("/volumes/behind")[0] == 204
    assert plugin.calls("VolumeDriver.Remove")[-1]["body"] == {"Name": "behind"}
    assert not os.path.exists(os.path.join(plugin.state, "data", "behind"))
    assert pdaemon.api.get("/volumes/behind")[0] == 404
