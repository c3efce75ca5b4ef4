"""Docker Engine managed plugins through the docker CLI and docker-py: create from a directory,
ls/inspect/set/rm, enable (the plugin's root file system runs through the exec driver and
listens on /run/docker/plugins/<id>/<socket>), disable, re-adoption by a restarted daemon,
restart of a plugin that dies, and privileges read from a registry.

The test plugin is a small HTTP server on a unix socket, run by the host's Python: its root file
system holds only the merged-/usr symlinks, and its config mounts the host's /usr read-only (a
mount privilege, as real plugins declare them)."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from typing import Any, Iterator

import docker
import pytest

from conftest import Daemon, running_daemon
from test_registry import docker_registry

DOCKER = shutil.which("docker")
SOCKETS = "/run/docker/plugins"

SERVER = r"""
import http.server, json, os, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = {"Implements": ["VolumeDriver"]} if self.path == "/Plugin.Activate" else \
            {"Greeting": os.environ.get("GREETING"), "Args": sys.argv[1:]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
path = "/run/docker/plugins/test.sock"
if os.path.exists(path):
    os.unlink(path)
S(path, H).serve_forever()
"""


def plugin_dir(root: str, marker: str) -> str:
    """A plugin directory (config.json and rootfs/) whose server runs the host's Python;
    ``marker`` (its first argument) finds its process on the host."""
    rootfs = os.path.join(root, "rootfs")
    for d in ("usr", "etc", "tmp", "run"):
        os.makedirs(os.path.join(rootfs, d))
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        os.symlink(target, os.path.join(rootfs, link))
    config = {
        "description": "dockyard's test plugin", "documentation": "tests/test_managed_plugins.py",
        "entrypoint": ["/usr/bin/python3", "-c", SERVER],
        "interface": {"types": ["docker.volumedriver/1.0"], "socket": "test.sock"},
        "network": {"type": ""},
        "linux": {"capabilities": ["CAP_SYS_ADMIN"]},
        "mounts": [{"name": "usr", "description": "the host's Python", "source": "/usr",
                    "destination": "/usr", "type": "bind", "options": ["rbind", "ro"]}],
        "env": [{"name": "GREETING", "settable": ["value"], "value": "hello"}],
        "args": {"name": "args", "settable": ["value"], "value": [marker]},
    }
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(config, f)
    return root


def docker_cli(d: Daemon, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    return subprocess.run([DOCKER, "-H", d.host, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def ask(sock: str, path: str) -> dict[str, Any]:
    """POST ``path`` to a plugin's socket (Docker's plugin protocol is HTTP+JSON)."""
    conn = http.client.HTTPConnection("plugin", timeout=10)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    conn.sock = s
    try:
        conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def plugin_events(d: Daemon) -> list[str]:
    r = docker_cli(d, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                   "--filter", "type=plugin", "--format", "{{.Action}}")
    return r.stdout.split()


def host_pids(marker: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    out.append(int(entry))
    return out


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


@contextlib.contextmanager
def plugin_daemon(busybox_tar: str | None = None) -> Iterator[Daemon]:
    """A daemon whose plugins are all removed (stopped first) before it stops."""
    with running_daemon(busybox_tar) as d:
        try:
            yield d
        finally:
            with contextlib.suppress(OSError):
                for p in d.api.get("/plugins")[1]:
                    d.api.delete(f"/plugins/{p['Id']}?force=1", timeout=60)
                    shutil.rmtree(os.path.join(SOCKETS, p["Id"]), ignore_errors=True)


@pytest.mark.skipif(not DOCKER, reason="the docker CLI is not installed")
def test_plugin_lifecycle_through_the_docker_cli(tmp_path: Any) -> None:
    marker = "dkyplugin-" + os.urandom(4).hex()
    src = plugin_dir(str(tmp_path / "plugin"), marker)
    name = "dkytest/greeter:1"
    with plugin_daemon() as d:
        r = docker_cli(d, "plugin", "create", name, src)
        assert r.returncode == 0, r.stderr
        assert docker_cli(d, "plugin", "create", name, src).returncode != 0  # already exists
        r = docker_cli(d, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}} {{.Description}}")
        assert r.stdout.splitlines() == [f"{name} false dockyard's test plugin"], r
        api = docker.APIClient(base_url=d.host, version="1.41")
        info = api.inspect_plugin(name)
        pid = info["Id"]
        assert info["Config"]["Interface"] == {"Socket": "test.sock",
                                               "Types": ["docker.volumedriver/1.0"]}
        assert info["Settings"]["Env"] == ["GREETING=hello"]
        assert docker_cli(d, "plugin", "set", name, "GREETING=bonjour").returncode == 0
        r = docker_cli(d, "plugin", "set", name, "NOPE=1")
        assert "NOPE" in r.stderr and "not found in the plugin configuration" in r.stderr
        r = docker_cli(d, "plugin", "enable", name)
        assert r.returncode == 0, r.stderr + d.logs()
        sock = os.path.join(SOCKETS, pid, "test.sock")
        assert ask(sock, "/Plugin.Activate") == {"Implements": ["VolumeDriver"]}
        assert ask(sock, "/Test.Env") == {"Greeting": "bonjour", "Args": [marker]}
        assert api.inspect_plugin(pid[:12])["Enabled"] is True
        assert "cannot set on an active plugin" in docker_cli(d, "plugin", "set", name,
                                                              "GREETING=x").stderr
        assert f"plugin {name} is enabled" in docker_cli(d, "plugin", "rm", name).stderr
        assert docker_cli(d, "plugin", "enable", name).returncode != 0
        r = docker_cli(d, "plugin", "ls", "--filter", "capability=volumedriver", "--filter",
                       "enabled=true", "--format", "{{.Name}}")
        assert r.stdout.split() == [name], r

        # a plugin that dies is started again
        for p in host_pids(marker):
            os.kill(p, signal.SIGKILL)
        wait_for(lambda: ask(sock, "/Test.Env")["Greeting"] == "bonjour")
        assert plugin_events(d) == ["create", "enable"]
        # a restarted daemon re-adopts it (it kept running)
        before = host_pids(marker)
        d.stop()
        d.start()
        assert api.inspect_plugin(name)["Enabled"] is True
        assert host_pids(marker) == before
        assert ask(sock, "/Plugin.Activate") == {"Implements": ["VolumeDriver"]}

        assert docker_cli(d, "plugin", "disable", name).returncode == 0
        assert not host_pids(marker) and not os.path.exists(os.path.join(SOCKETS, pid))
        assert "is already disabled" in docker_cli(d, "plugin", "disable", name).stderr
        r = docker_cli(d, "plugin", "rm", name)
        assert r.returncode == 0, r.stderr
        assert api.plugins() == []
        assert not os.path.exists(os.path.join(d.data_root, "plugins", pid))
        assert plugin_events(d) == ["disable", "remove"]  # since the daemon's restart


def test_plugin_removed_by_force_while_enabled(tmp_path: Any) -> None:
    """docker-py's own ``create_plugin`` (a tar of the directory), then rm -f of the enabled
    plugin stops it; a plugin that never listens cannot be enabled, and nothing of it is left
    running."""
    marker = "dkyplugin-" + os.urandom(4).hex()
    with plugin_daemon() as d:
        api = docker.APIClient(base_url=d.host, version="1.41")
        assert api.create_plugin("dkytest/forced", plugin_dir(str(tmp_path / "p"), marker))
        assert api.inspect_plugin("dkytest/forced:latest")["Name"] == "dkytest/forced:latest"
        assert api.enable_plugin("dkytest/forced")
        assert host_pids(marker)
        assert api.remove_plugin("dkytest/forced", force=True)
        assert not host_pids(marker)
        # the entrypoint is not a program: enable fails and leaves it disabled
        bad = plugin_dir(str(tmp_path / "bad"), marker)
        cfg = json.load(open(os.path.join(bad, "config.json")))
        cfg["entrypoint"] = ["/nothing-here"]
        json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
        assert api.create_plugin("dkytest/bad", bad)
        with pytest.raises(docker.errors.APIError) as exc:
            api.enable_plugin("dkytest/bad")
        assert "/nothing-here" in exc.value.explanation
        assert api.inspect_plugin("dkytest/bad")["Enabled"] is False


def test_bad_plugin_archives_are_refused(tmp_path: Any) -> None:
    with plugin_daemon() as d:
        for files, words in (({"rootfs/x": b"x"}, "config not found"),
                             ({"config.json": b"{}"}, "no rootfs found"),
                             ({"config.json": b'{"Entrypoint": "x"}', "rootfs/x": b""},
                              "failed to parse config: Entrypoint: expected an array"),
                             ({"config.json": b"{", "rootfs/x": b""}, "failed to parse config")):
            status, body = d.api.post("/plugins/create?name=dkytest/broken", raw=tar_of(files),
                                      headers={"Content-Type": "application/x-tar"})
            assert status == 400 and words in body["message"], (files, body)
        assert d.api.get("/plugins")[1] == []
        assert os.listdir(os.path.join(d.data_root, "plugins")) == []
        status, body = d.api.post("/plugins/pull?remote=vieux/sshfs", [])
        assert status == 501 and "docker plugin create" in body["message"]


def test_privileges_come_from_the_plugin_config_in_a_registry(busybox_tar: str, tmp_path: Any) -> None:
    """``GET /plugins/privileges`` reads the plugin's config blob from the registry."""
    config = json.dumps({"Description": "remote", "Entrypoint": ["/x"],
                         "Interface": {"Socket": "x.sock", "Types": ["docker.volumedriver/1.0"]},
                         "Network": {"Type": "host"},
                         "Mounts": [{"Source": "/var/lib", "Destination": "/mnt", "Type": "bind"}],
                         "Linux": {"Capabilities": ["CAP_SYS_ADMIN"], "AllowAllDevices": True}}).encode()
    with docker_registry() as reg, plugin_daemon(busybox_tar) as d:
        layer = tar_of({"rootfs/x": b"x"}, "w:gz")
        for blob in (config, layer):
            put_blob(reg, "dkytest/remote", blob)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.plugin.v1+json", "size": len(config),
                       "digest": sha256(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer), "digest": sha256(layer)}]}).encode()
        req = urllib.request.Request(f"http://{reg}/v2/dkytest/remote/manifests/1", data=manifest,
                                     method="PUT", headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        urllib.request.urlopen(req, timeout=30).close()
        api = docker.APIClient(base_url=d.host, version="1.41")
        privs = api.plugin_privileges(f"{reg}/dkytest/remote:1")
        assert privs == [
            {"Name": "network", "Description": "permissions to access a network", "Value": ["host"]},
            {"Name": "mount", "Description": "host path to mount", "Value": ["/var/lib"]},
            {"Name": "allow-all-devices", "Description": "allow 'rwm' access to all devices",
             "Value": ["true"]},
            {"Name": "capabilities", "Description": "list of additional capabilities required",
             "Value": ["CAP_SYS_ADMIN"]}]
        # an image is not a plugin; a plugin that cannot be fetched (unknown name, registry
        # unreachable) has no privileges to show: dockerd answers [] (docker-py's
        # test_plugin_privileges relies on it)
        assert d.api.post(f"/images/busybox/tag?repo={reg}/dkytest/image&tag=1")[0] == 201
        d.api.post(f"/images/{reg}/dkytest/image/push?tag=1", headers={"X-Registry-Auth": "e30="})
        with pytest.raises(docker.errors.APIError) as exc:
            api.plugin_privileges(f"{reg}/dkytest/image:1")
        assert "did not find plugin config" in exc.value.explanation
        assert api.plugin_privileges(f"{reg}/dkytest/nothing:1") == []
        assert api.plugin_privileges("127.0.0.1:9/dkytest/unreachable:1") == []


def sha256(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def put_blob(reg: str, repo: str, data: bytes) -> None:
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        loc = r.headers["Location"]
    url = loc if "://" in loc else f"http://{reg}{loc}"
    url += ("&" if "?" in url else "?") + "digest=" + sha256(data)
    req = urllib.request.Request(url, data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req, timeout=30).close()


def test_settings_and_interface_types_as_dockerd_reads_them() -> None:
    """moby's ``settable`` rules and ``PluginInterfaceType`` parsing, without a daemon."""
    from dockyard.core.managedplugins import apply_setting, initial_settings
    from dockyard.core.schema import decode
    from dockyard.core.schema.plugins import PluginConfig, go_shape, interface_type

    assert interface_type("docker.volumedriver/1.0") == "docker.volumedriver/1.0"
    assert interface_type("volumedriver") == ".olumedriver/"  # dockerd's parser, quirk and all
    cfg = go_shape(decode(json.dumps({
        "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"},
                {"name": "FIXED", "value": "1"}],
        "mounts": [{"name": "data", "source": "/a", "destination": "/d", "settable": ["source"]}],
        "linux": {"devices": [{"name": "dev", "path": "/dev/null", "settable": ["path"]}]},
        "args": {"name": "args", "settable": ["value"], "value": ["-v"]}}).encode(), PluginConfig))
    p = {"Config": cfg, "Settings": initial_settings(cfg)}
    assert p["Settings"]["Env"] == ["DEBUG=0", "FIXED=1"] and p["Settings"]["Args"] == ["-v"]
    for arg in ("DEBUG=1", "data.source=/b", "dev=/dev/zero", "args=-x -y"):
        apply_setting(p, arg)
    assert p["Settings"]["Env"] == ["DEBUG=1", "FIXED=1"]
    assert p["Settings"]["Mounts"][0]["Source"] == "/b" == p["Config"]["Mounts"][0]["Source"]
    assert p["Settings"]["Devices"][0]["Path"] == "/dev/zero"
    assert p["Settings"]["Args"] == ["-x", "-y"]
    for arg, words in (("FIXED=2", '"FIXED" is not settable'), ("data.path=/x", '"data.path" is not settable'),
                       ("=x", "invalid format"), ("other=1", 'setting "other" not found')):
        with pytest.raises(Exception) as exc:
            apply_setting(p, arg)
        assert words in str(exc.value), (arg, exc.value)
