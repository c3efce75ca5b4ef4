"""Integration tests of the ``dockyard`` CLI against a real dockyardd (fixture ``daemon``)."""
from __future__ import annotations

import json
import os
import re
import time



def out(r) -> str:
    return r.stdout.decode()


def err(r) -> str:
    return r.stderr.decode()


def test_version_and_info(daemon):
    r = daemon.cli("version")
    assert r.returncode == 0, err(r)
    assert "Client:" in out(r) and "Server:" in out(r) and "API version:" in out(r)
    r = daemon.cli("version", "--format", "{{.Server.ApiVersion}}")
    assert out(r).strip() == "1.45"
    r = daemon.cli("info")
    assert r.returncode == 0, err(r)
    text = out(r)
    assert re.search(r"^ Images: 1$", text, re.M)
    assert "Storage Driver:" in text and "Plugins:" in text and "Dockyard Drivers:" in text
    assert re.search(r"^  graph: .*\(active\)", text, re.M)


def test_run_rm_echo(daemon):
    r = daemon.cli("run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0, err(r)
    assert r.stdout == b"hi\n"
    assert daemon.cli("ps", "-a", "-q").stdout == b""


def test_run_exit_code_and_stderr(daemon):
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == b"out\n"
    assert r.stderr == b"err\n"


def test_run_env_workdir_user_name(daemon, monkeypatch):
    r = daemon.cli("run", "-e", "FOO=bar", "-e", "FROMHOST", "-w", "/tmp", "-u", "1000:1000",
                   "--name", "named", "busybox", "sh", "-c", 'echo $FOO $FROMHOST; pwd; id -u; id -g',
                   env={"FROMHOST": "yes"})
    assert r.returncode == 0, err(r)
    assert out(r).split("\n")[:4] == ["bar yes", "/tmp", "1000", "1000"]
    r = daemon.cli("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.Config.WorkingDir}}", "named")
    assert out(r).strip() == "/named exited 0 /tmp"


def test_run_stdin(daemon):
    r = daemon.cli("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done", input=b"a\nb\n")
    assert r.returncode == 0, err(r)
    assert r.stdout == b"a\nb\ndone\n"


def test_run_command_not_found_and_not_executable(daemon):
    r = daemon.cli("run", "--rm", "busybox", "no-such-command")
    assert r.returncode == 127
    assert "Error response from daemon:" in err(r)
    r = daemon.cli("run", "--rm", "busybox", "/etc/passwd")
    assert r.returncode == 126


def test_run_missing_image_exits_125(daemon):
    r = daemon.cli("run", "--rm", "nosuchimage:1", "true")
    assert r.returncode == 125
    assert "Unable to find image 'nosuchimage:1' locally" in err(r)


def test_network_connect_refused_prints_the_daemons_error(daemon):
    name = "nonet" + os.urandom(3).hex()
    for verb in ("connect", "disconnect"):
        r = daemon.cli("network", verb, name, "nosuchcontainer")
        assert r.returncode == 1, r
        assert err(r).startswith("Error response from daemon: "), err(r)
        assert name in err(r) or "nosuchcontainer" in err(r), err(r)


def test_detach_logs_stop(daemon):
    r = daemon.cli("run", "-d", "--name", "bg", "busybox", "sh", "-c",
                   "echo started; while true; do sleep 0.1; done")
    assert r.returncode == 0, err(r)
    cid = out(r).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    deadline = time.monotonic() + 10
    while b"started" not in daemon.cli("logs", "bg").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert daemon.cli("logs", "bg").stdout == b"started\n"
    r = daemon.cli("logs", "-t", "--tail", "1", "bg")
    assert re.match(rb"\d{4}-\d\d-\d\dT[\d:.]+Z started\n", r.stdout)
    r = daemon.cli("ps")
    lines = out(r).splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert lines[1].startswith(cid[:12]) and " Up " in lines[1] and lines[1].endswith("bg")
    assert out(daemon.cli("ps", "-q")).strip() == cid[:12]
    assert out(daemon.cli("ps", "--no-trunc", "-q")).strip() == cid
    r = daemon.cli("stop", "-t", "1", "bg")
    assert r.returncode == 0 and out(r).strip() == "bg"
    assert out(daemon.cli("inspect", "-f", "{{.State.Running}}", cid)).strip() == "false"
    assert daemon.cli("ps", "-q").stdout == b""
    # restart brings it back with a new process; the log keeps both runs
    r = daemon.cli("restart", "-t", "1", "bg")
    assert r.returncode == 0 and out(r).strip() == "bg", err(r)
    assert out(daemon.cli("inspect", "-f", "{{.State.Running}}", cid)).strip() == "true"
    deadline = time.monotonic() + 10
    while daemon.cli("logs", "bg").stdout.count(b"started") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert daemon.cli("logs", "bg").stdout == b"started\nstarted\n"
    assert daemon.cli("stop", "-t", "1", "bg").returncode == 0


def test_ps_all_format(daemon):
    daemon.cli("create", "--name", "c1", "-l", "k=v", "busybox", "true")
    daemon.cli("run", "--name", "c2", "busybox", "true")
    r = daemon.cli("ps", "-a", "--format", "{{.Names}} {{.Label \"k\"}}")
    assert sorted(out(r).splitlines()) == ["c1 v", "c2 "]
    r = daemon.cli("ps", "-a", "--format", "table {{.Names}}\t{{.State}}")
    lines = out(r).splitlines()
    assert lines[0].split() == ["NAMES", "STATE"]
    assert {tuple(x.split()) for x in lines[1:]} == {("c1", "created"), ("c2", "exited")}
    r = daemon.cli("ps", "-l", "--format", "{{.Names}}")
    assert out(r).strip() == "c2"
    r = daemon.cli("ps", "-a", "--format", "{{json .}}")
    assert {json.loads(x)["Names"] for x in out(r).splitlines()} == {"c1", "c2"}
    # -f name=value, repeated: the API's filters object (same key: either value; keys: all)
    names = lambda *a: sorted(out(daemon.cli(*a, "--format", "{{.Names}}")).split())  # noqa: E731
    assert names("ps", "-a", "-f", "label=k=v") == ["c1"]
    assert names("ps", "-a", "-f", "name=c1", "-f", "name=c2") == ["c1", "c2"]
    assert names("ps", "-a", "-f", "name=c1", "-f", "status=exited") == []
    assert daemon.cli("volume", "create", "vol-flt").returncode == 0
    assert out(daemon.cli("volume", "ls", "-q", "-f", "name=vol-flt")).split() == ["vol-flt"]
    assert out(daemon.cli("volume", "ls", "-q", "-f", "name=vol-none")).split() == []
    r = daemon.cli("network", "ls", "-f", "driver=bridge", "-f", "name=host", "--format", "{{.Name}}")
    assert out(r).split() == []
    r = daemon.cli("network", "ls", "-f", "driver=bridge", "--format", "{{.Name}}")
    assert out(r).split() == ["bridge"]
    r = daemon.cli("images", "-f", "reference=busybox", "--format", "{{.Repository}}")
    assert out(r).split() == ["busybox"]
    r = daemon.cli("images", "-f", "reference=nosuch", "--format", "{{.Repository}}")
    assert out(r).split() == []


def test_inspect_formats_and_errors(daemon):
    daemon.cli("create", "--name", "ins", "-e", "A=1", "busybox", "echo", "x")
    r = daemon.cli("inspect", "ins")
    data = json.loads(r.stdout)
    assert isinstance(data, list) and data[0]["Name"] == "/ins"
    r = daemon.cli("inspect", "-f", "{{json .Config.Cmd}}|{{range .Config.Env}}{{.}},{{end}}|{{len .Config.Cmd}}", "ins")
    assert out(r).startswith('["echo","x"]|') and "A=1," in out(r) and out(r).strip().endswith("|2")
    r = daemon.cli("inspect", "--type", "image", "-f", "{{index .RepoTags 0}}", "busybox")
    assert out(r).strip() == "busybox:latest"
    r = daemon.cli("inspect", "nosuchthing")
    assert r.returncode == 1 and "No such object: nosuchthing" in err(r)
    r = daemon.cli("inspect", "-f", "{{nosuchfunc .Id}}", "ins")
    assert r.returncode == 1 and "template" in err(r)


def test_rm_force(daemon):
    cid = out(daemon.cli("run", "-d", "busybox", "sleep", "100")).strip()
    r = daemon.cli("rm", cid)
    assert r.returncode == 1 and err(r).startswith("Error response from daemon:")
    r = daemon.cli("rm", "-f", cid)
    assert r.returncode == 0, err(r)
    assert out(r).strip() == cid
    assert daemon.cli("ps", "-a", "-q").stdout == b""


def test_images_import_rmi(daemon, busybox_tar):
    r = daemon.cli("import", busybox_tar, "mine:v1", "-c", 'CMD ["echo", "imported"]')
    assert r.returncode == 0, err(r)
    image_id = out(r).strip()
    assert image_id.startswith("sha256:")
    with open(busybox_tar, "rb") as f:
        r = daemon.cli("import", "-", "fromstdin", input=f.read())
    assert r.returncode == 0, err(r)
    r = daemon.cli("images")
    lines = out(r).splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    repos = {tuple(x.split()[:2]) for x in lines[1:]}
    assert {("busybox", "latest"), ("mine", "v1"), ("fromstdin", "latest")} <= repos
    assert image_id[7:19] in out(daemon.cli("images", "-q"))
    r = daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "mine:v1" in out(r).splitlines()
    assert daemon.cli("run", "--rm", "mine:v1").stdout == b"imported\n"
    r = daemon.cli("rmi", "mine:v1")
    assert r.returncode == 0 and "Untagged: mine:v1" in out(r)
    r = daemon.cli("rmi", "mine:v1")
    assert r.returncode == 1 and "Error response from daemon:" in err(r)


def test_start_attach_and_wait(daemon):
    cid = out(daemon.cli("create", "busybox", "sh", "-c", "echo attached; exit 4")).strip()
    r = daemon.cli("start", "-a", cid)
    assert r.returncode == 4 and r.stdout == b"attached\n"
    assert out(daemon.cli("wait", cid)).strip() == "4"


def test_kill_signal(daemon):
    daemon.cli("run", "-d", "--name", "kk", "busybox", "sleep", "100")
    r = daemon.cli("kill", "-s", "KILL", "kk")
    assert r.returncode == 0 and out(r).strip() == "kk"
    assert out(daemon.cli("wait", "kk")).strip() == "137"


def test_errors(daemon):
    r = daemon.cli("stop", "nosuch")
    assert r.returncode == 1
    assert err(r).startswith("Error response from daemon: ")
    r = daemon.cli("logs", "nosuch")
    assert r.returncode == 1 and "Error response from daemon:" in err(r)


def test_cannot_connect(tmp_path):
    import os
    import subprocess
    import sys
    exe = os.path.join(os.path.dirname(sys.executable), "dockyard")
    r = subprocess.run([exe, "-H", f"unix://{tmp_path}/none.sock", "ps"], capture_output=True)
    assert r.returncode == 1
    assert err(r).strip() == (f"Cannot connect to the dockyard daemon at unix://{tmp_path}/none.sock: "
                              "is dockyardd running?")
    env = {**os.environ, "DOCKYARD_HOST": f"unix://{tmp_path}/env.sock"}
    r = subprocess.run([exe, "ps"], capture_output=True, env=env)
    assert f"unix://{tmp_path}/env.sock" in err(r)


def test_runopts_body():
    from dockyard.cli.runopts import build_create_body, ram_in_bytes
    assert ram_in_bytes("32m") == 32 << 20
    assert ram_in_bytes("1g") == 1 << 30
    o = {"publish": ("8080:80", "127.0.0.1:53:53/udp", "9000"), "memory": "32m", "cap_add": ("net_admin",),
         "restart": "on-failure:3", "network": "none", "entrypoint": "", "init": True, "pids_limit": 10}
    b = build_create_body(o, "busybox", ("echo", "hi"))
    assert b["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}
    assert b["HostConfig"]["PortBindings"]["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "53"}]
    assert b["HostConfig"]["PortBindings"]["9000/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert b["HostConfig"]["Memory"] == 33554432 and b["HostConfig"]["CapAdd"] == ["CAP_NET_ADMIN"]
    assert b["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert b["Entrypoint"] == [""] and b["HostConfig"]["Init"] is True
    assert b["NetworkingConfig"] == {"EndpointsConfig": {}}
    d = build_create_body({}, "busybox", ())
    assert d["HostConfig"]["NetworkMode"] == "default" and "default" in d["NetworkingConfig"]["EndpointsConfig"]
    assert d["Cmd"] is None and d["AttachStdout"] is True and "Init" not in d["HostConfig"]


def test_plugin_adds_command(tmp_path):
    """A ``dockyard.plugins`` entry point's ``dockyard_add_commands`` hook adds a CLI command."""
    import os
    import subprocess
    import sys
    (tmp_path / "dky_hello.py").write_text(
        "import click\nfrom dockyard.hookspecs import hookimpl\n"
        "@hookimpl\ndef dockyard_add_commands(cli):\n"
        "    @cli.command()\n    def hello():\n        click.echo('hello from plugin')\n")
    dist = tmp_path / "dky_hello-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dky-hello\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dockyard.plugins]\nhello = dky_hello\n")
    exe = os.path.join(os.path.dirname(sys.executable), "dockyard")
    r = subprocess.run([exe, "hello"], capture_output=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello from plugin\n"


def test_diff_and_commit(daemon):
    r = daemon.cli("run", "--name", "cm", "busybox", "sh", "-c",
                   "echo hi > /hello; rm /bin/ls; mkdir -p /etc/new && touch /etc/new/f")
    assert r.returncode == 0, err(r)
    lines = out(daemon.cli("diff", "cm")).splitlines()
    assert "A /hello" in lines and "D /bin/ls" in lines and "A /etc/new" in lines
    assert "C /bin" in lines and "C /etc" in lines
    r = daemon.cli("commit", "-m", "with hello", "-c", 'CMD ["cat", "/hello"]', "cm", "committed:v1")
    assert r.returncode == 0, err(r)
    image_id = out(r).strip()
    assert image_id.startswith("sha256:")
    r = daemon.cli("run", "--rm", "committed:v1")
    assert r.returncode == 0 and r.stdout == b"hi\n", err(r)
    r = daemon.cli("run", "--rm", "committed:v1", "sh", "-c", "test -e /bin/ls || echo gone; cat /etc/new/f && echo ok")
    assert r.stdout == b"gone\nok\n", err(r)
    r = daemon.cli("inspect", "-f", "{{len .RootFS.Layers}} {{.Comment}}", "committed:v1")
    assert out(r).strip() == "2 with hello"
    # the image is independent of the container it came from
    assert daemon.cli("rm", "cm").returncode == 0
    assert daemon.cli("run", "--rm", "committed:v1").stdout == b"hi\n"
    r = daemon.cli("diff", "nosuch")
    assert r.returncode != 0 and b"No such container" in r.stderr


def test_rename_and_container_prune(daemon):
    assert daemon.cli("create", "--name", "old", "busybox", "true").returncode == 0
    r = daemon.cli("rename", "old", "new")
    assert r.returncode == 0, err(r)
    assert out(daemon.cli("inspect", "-f", "{{.Name}}", "new")).strip() == "/new"
    assert daemon.cli("inspect", "old").returncode != 0
    assert daemon.cli("create", "--name", "other", "busybox", "true").returncode == 0
    r = daemon.cli("rename", "other", "new")
    assert r.returncode != 0 and b"already in use" in r.stderr
    r = daemon.cli("run", "-d", "--name", "up", "busybox", "sleep", "1000")
    assert r.returncode == 0, err(r)
    r = daemon.cli("container", "prune", "-f")
    assert r.returncode == 0, err(r)
    assert out(r).startswith("Deleted Containers:")
    left = out(daemon.cli("ps", "-a", "--format", "{{.Names}}")).split()
    assert left == ["up"]
    daemon.cli("rm", "-f", "up")


def test_cp_in_and_out(daemon, tmp_path):
    r = daemon.cli("run", "-d", "--name", "box", "busybox", "sh", "-c",
                   "mkdir -p /data/sub && echo inside > /data/sub/f && ln -s /etc/passwd /data/link; sleep 1000")
    assert r.returncode == 0, err(r)
    deadline = time.monotonic() + 10
    while daemon.cli("exec", "box", "test", "-e", "/data/link").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    # out: a directory into a local directory, a file to a new name
    r = daemon.cli("cp", "box:/data", str(tmp_path))
    assert r.returncode == 0, err(r)
    assert (tmp_path / "data" / "sub" / "f").read_text() == "inside\n"
    assert os.readlink(tmp_path / "data" / "link") == "/etc/passwd"  # kept as a link, not followed
    r = daemon.cli("cp", "box:/data/sub/f", str(tmp_path / "renamed"))
    assert r.returncode == 0 and (tmp_path / "renamed").read_text() == "inside\n", err(r)
    # in: a local file into a container directory, and to a new name
    (tmp_path / "up.txt").write_text("from host\n")
    assert daemon.cli("cp", str(tmp_path / "up.txt"), "box:/tmp").returncode == 0
    assert daemon.cli("cp", str(tmp_path / "up.txt"), "box:/tmp/other.txt").returncode == 0
    r = daemon.cli("exec", "box", "cat", "/tmp/up.txt", "/tmp/other.txt")
    assert r.stdout == b"from host\nfrom host\n", err(r)
    # paths cannot climb out of the container, and missing ones are a clear error
    # '..' at the container's / stays at its /: this is the container's hostname file
    r = daemon.cli("cp", "box:/../../../etc/hostname", str(tmp_path / "h"))
    assert r.returncode == 0, err(r)
    cid = out(daemon.cli("inspect", "-f", "{{.Id}}", "box")).strip()
    # what the container sees there (the daemon's file, as dockerd), not the host's
    assert (tmp_path / "h").read_text() == cid[:12] + "\n"
    r = daemon.cli("cp", "box:/nosuch", str(tmp_path / "x"))
    assert r.returncode != 0 and b"Could not find" in r.stderr
    daemon.cli("rm", "-f", "box")


def test_runopts_security_opt(tmp_path):
    """--security-opt seccomp=<file> is read client-side and sent as JSON, as the docker CLI does."""
    import click
    import pytest
    from dockyard.cli.runopts import build_create_body
    (tmp_path / "p.json").write_text('{\n "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    b = build_create_body({"security_opt": (f"seccomp={tmp_path}/p.json", "no-new-privileges")},
                          "busybox", ())
    assert b["HostConfig"]["SecurityOpt"] == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
                                              "no-new-privileges"]
    b = build_create_body({"security_opt": ("seccomp=unconfined",)}, "busybox", ())
    assert b["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined"]
    assert build_create_body({}, "busybox", ())["HostConfig"]["SecurityOpt"] is None
    with pytest.raises(click.BadParameter):
        build_create_body({"security_opt": (f"seccomp={tmp_path}/missing.json",)}, "busybox", ())


def test_log_rotation_and_none_driver(shared_daemon) -> None:
    """--log-opt max-size/max-file rotate the json-file log (logs reads the kept files in
    order, and -f follows across a rotation); --log-driver none keeps nothing; bad options
    are refused at create."""
    import json as _json
    import os as _os
    d = shared_daemon
    r = d.cli("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
              "for i in $(seq 300); do echo line$i; done; sleep 300")
    cid = r.stdout.decode().strip()
    try:
        path = _json.loads(d.cli("inspect", cid).stdout)[0]["LogPath"]
        for _ in range(100):
            if b"line300" in d.cli("logs", "--tail", "1", cid).stdout:
                break
            time.sleep(0.05)
        assert _os.path.exists(path + ".1") and _os.path.exists(path + ".2")
        assert not _os.path.exists(path + ".3")
        assert all(_os.path.getsize(p) < 2048 for p in (path, path + ".1", path + ".2"))
        lines = d.cli("logs", cid).stdout.decode().split()
        assert lines[-1] == "line300" and len(lines) < 300
        first = int(lines[0][4:])
        assert lines == [f"line{i}" for i in range(first, 301)]  # in order, no gap
    finally:
        d.cli("rm", "-f", cid)
    # follow across rotations
    r = d.cli("run", "-d", "--log-opt", "max-size=300", "--log-opt", "max-file=2", "busybox", "sh", "-c",
              "sleep 1; for i in $(seq 60); do echo l$i; sleep 0.02; done")
    cid = r.stdout.decode().strip()
    try:
        out = d.cli("logs", "-f", cid, timeout=60).stdout.decode().split()
        assert out == [f"l{i}" for i in range(1, 61)], out
    finally:
        d.cli("rm", "-f", cid)
    r = d.cli("run", "-d", "--log-driver", "none", "busybox", "echo", "hidden")
    cid = r.stdout.decode().strip()
    try:
        d.cli("wait", cid)
        r = d.cli("logs", cid)
        assert r.returncode != 0 and b"does not support reading" in r.stderr
    finally:
        d.cli("rm", "-f", cid)
    # max-file without max-size is taken, as dockerd (tests/test_fidelity_content.py)
    for opts, msg in ((["--log-opt", "max-size=0"], b"max-size must be a positive number"),
                      (["--log-opt", "bogus=1"], b"unknown log opt"),
                      (["--log-driver", "syslog"], b"no log driver named 'syslog' is registered")):
        r = d.cli("create", *opts, "busybox", "true")
        assert r.returncode != 0 and msg in r.stderr, (opts, r.stderr)
