"""Every exec driver behind the same docker CLI: ``docker run --runtime NAME`` for native, runc,
crun and lxc — the same isolation, limits and lifecycle on each, one daemon holding them all.

A runtime this host cannot run is skipped with the daemon's own reason (``docker info``).
"""
from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from conftest import Daemon, running_daemon
from test_docker_cli import DOCKER, docker

RUNTIMES = ("native", "runc", "crun", "lxc")
pytestmark = [pytest.mark.docker_cli,
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")]


@pytest.fixture(scope="module")
def rd(busybox_tar: str):
    with running_daemon(busybox_tar) as d:
        yield d


def _info(d: Daemon) -> dict:
    status, body = d.api.get("/info")
    assert status == 200, body
    return body


def _need(d: Daemon, runtime: str) -> None:
    info = _info(d)
    if runtime not in info["Runtimes"]:
        why = info["DockyardDrivers"]["exec"]["unavailable"].get(runtime, "not installed")
        pytest.skip(f"{runtime} cannot run here: {why}")


def run(d: Daemon, runtime: str, *args: str, timeout: float = 60):
    return docker(d, "run", "--rm", "--runtime", runtime, *args, timeout=timeout)


def out(r) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout.decode()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_isolation_and_defaults(rd: Daemon, runtime: str) -> None:
    _need(rd, runtime)
    assert out(run(rd, runtime, "busybox", "sh", "-c", "echo $$")) == "1\n"
    assert out(run(rd, runtime, "--hostname", "h-" + runtime, "busybox", "hostname")) \
        == f"h-{runtime}\n"
    assert out(run(rd, runtime, "--network", "none", "busybox", "ls", "/sys/class/net")).split() \
        == ["lo"]
    hidden = run(rd, runtime, "busybox", "sh", "-c",
                 "test -e /work || test -e /etc/dockyard || echo hidden; "
                 "awk '$5 == \"/\"' /proc/self/mountinfo | wc -l")
    assert out(hidden).split() == ["hidden", "1"]
    status = out(run(rd, runtime, "busybox", "grep", "-E", "^(CapEff|Seccomp):",
                     "/proc/self/status")).split()
    assert status == ["CapEff:", "00000000a80425fb", "Seccomp:", "2"] or \
        status == ["Seccomp:", "2", "CapEff:", "00000000a80425fb"], status
    # mount: refused by the seccomp profile even with the capability it needs elsewhere
    profile = os.path.join(rd.root, "no-mount.json")
    with open(profile, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}, f)
    script = "mount -t tmpfs none /tmp 2>&1 && echo mounted; true"
    refused = run(rd, runtime, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=" + profile,
                  "busybox", "sh", "-c", script)
    assert "mounted" not in out(refused) and "mount: permission denied" in out(refused)
    assert "mounted" in out(run(rd, runtime, "--cap-add", "SYS_ADMIN", "--security-opt",
                                "seccomp=unconfined", "busybox", "sh", "-c", script))
    assert "mounted" not in out(run(rd, runtime, "busybox", "sh", "-c",
                                    "mount -t tmpfs none /mnt 2>/dev/null && echo mounted; true"))
    assert out(run(rd, runtime, "-u", "nobody", "busybox", "id", "-u")) == "65534\n"
    assert out(run(rd, runtime, "-e", "A=b", "-w", "/tmp", "busybox", "sh", "-c",
                   "echo $A; pwd")) == "b\n/tmp\n"
    assert out(run(rd, runtime, "-t", "busybox", "sh", "-c",
                   "test -t 1 && echo tty")).replace("\r", "") == "tty\n"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_limits(rd: Daemon, runtime: str) -> None:
    _need(rd, runtime)
    name = f"oom-{runtime}-{uuid.uuid4().hex[:6]}"
    r = docker(rd, "run", "--name", name, "--runtime", runtime, "-m", "32m", "--memory-swap",
               "32m", "busybox", "sh", "-c",
               "x=$(head -c 209715200 /dev/zero | tr '\\0' a); echo survived", timeout=120)
    assert r.returncode == 137, (r.stdout, r.stderr)
    assert out(docker(rd, "inspect", "-f", "{{.State.OOMKilled}} {{.HostConfig.Runtime}}",
                      name)).split() == ["true", runtime]
    docker(rd, "rm", name)
    r = run(rd, runtime, "--pids-limit", "4", "busybox", "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; kill $(jobs -p) 2>/dev/null; true")
    assert b"fork" in r.stdout + r.stderr or b"Resource temporarily unavailable" in r.stdout + r.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lifecycle_exec_top_stats_pause(rd: Daemon, runtime: str) -> None:
    _need(rd, runtime)
    name = f"life-{runtime}-{uuid.uuid4().hex[:6]}"
    cid = out(docker(rd, "run", "-d", "--name", name, "--runtime", runtime, "busybox", "sh", "-c",
                     "trap 'exit 42' TERM; while true; do sleep 0.1; done")).strip()
    try:
        assert out(docker(rd, "exec", name, "sh", "-c", "echo $$; hostname")).split()[1] == cid[:12]
        assert out(docker(rd, "exec", "-u", "nobody", name, "id", "-u")) == "65534\n"
        assert docker(rd, "exec", name, "nosuch").returncode == 127
        top = out(docker(rd, "top", name))
        assert "sh -c trap" in top
        st = json.loads(out(docker(rd, "stats", "--no-stream", "--format", "{{json .}}", name)))
        assert st["PIDs"] != "0"
        assert docker(rd, "pause", name).returncode == 0
        assert out(docker(rd, "inspect", "-f", "{{.State.Status}}", name)).strip() == "paused"
        assert docker(rd, "unpause", name).returncode == 0
        assert docker(rd, "update", "--pids-limit", "50", name).returncode == 0
        assert docker(rd, "stop", "-t", "10", name).returncode == 0
        assert out(docker(rd, "inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Runtime}}",
                          name)).split() == ["42", runtime]
    finally:
        docker(rd, "rm", "-f", name)


def _inspect_until(d: Daemon, name: str, fmt: str, want: str, timeout: float = 60) -> str:
    """``inspect -f fmt`` until it prints ``want`` (or ``timeout`` passes); the last output."""
    deadline = time.monotonic() + timeout
    while True:
        got = out(docker(d, "inspect", "-f", fmt, name)).strip()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_restart_policy_and_health_check(rd: Daemon, runtime: str) -> None:
    """A restart policy restarts through the container's runtime; a health check runs in it."""
    _need(rd, runtime)
    name = f"rs-{runtime}-{uuid.uuid4().hex[:6]}"
    out(docker(rd, "run", "-d", "--name", name, "--runtime", runtime, "--restart",
               "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3"))
    try:
        assert _inspect_until(rd, name, "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
                              "2 exited 3") == "2 exited 3"
        assert out(docker(rd, "logs", name)) == "run\n" * 3
    finally:
        docker(rd, "rm", "-f", name)
    name = f"hc-{runtime}-{uuid.uuid4().hex[:6]}"
    out(docker(rd, "run", "-d", "--name", name, "--runtime", runtime, "--health-cmd",
               "test -f /tmp/ok && echo fine", "--health-interval", "200ms",
               "--health-retries", "1", "--health-start-period", "5m", "busybox", "sleep", "300"))
    try:
        assert out(docker(rd, "inspect", "-f", "{{.State.Health.Status}}", name)).strip() \
            == "starting"
        assert docker(rd, "exec", name, "touch", "/tmp/ok").returncode == 0
        assert _inspect_until(rd, name, "{{.State.Health.Status}}", "healthy") == "healthy"
        assert docker(rd, "exec", name, "rm", "/tmp/ok").returncode == 0
        assert _inspect_until(rd, name, "{{.State.Health.Status}}", "unhealthy") == "unhealthy"
    finally:
        docker(rd, "rm", "-f", name)


def test_unknown_runtime_is_refused_with_the_choices(rd: Daemon) -> None:
    r = docker(rd, "run", "--rm", "--runtime", "kata", "busybox", "true")
    assert r.returncode != 0 and b"unknown or invalid runtime name: kata" in r.stderr
    assert b"native" in r.stderr and b"valid runtimes" in r.stderr
    info = _info(rd)
    assert info["DefaultRuntime"] == "native"
    assert "native" in info["Runtimes"]
    for name, entry in info["Runtimes"].items():
        if name != "native":
            assert entry["status"]["version"], (name, entry)
    assert "Default Runtime: native" in out(docker(rd, "info"))


def test_docker_py_runtime_argument_is_applied(rd: Daemon) -> None:
    """docker-py's ``create_container(runtime=)`` sends ``Runtime`` beside the config, not in
    ``HostConfig`` (dockerd drops it; its default is runc anyway): applied, so the container runs
    on the runtime asked for and inspect says so. Without one, inspect names the default that
    runs it, as dockerd names its own (``runc``)."""
    import docker as dockerpy

    _need(rd, "runc")
    api = dockerpy.APIClient(base_url="unix://" + rd.sock, version="1.41")
    made = []
    try:
        for asked, shown in (("runc", "runc"), (None, _info(rd)["DefaultRuntime"])):
            c = api.create_container("busybox", ["cat", "/proc/1/cmdline"],
                                     **({"runtime": asked} if asked else {}))
            made.append(c["Id"])
            assert api.inspect_container(c)["HostConfig"]["Runtime"] == shown
            api.start(c)
            assert api.wait(c, timeout=60)["StatusCode"] == 0
            assert api.logs(c) == b"cat\0/proc/1/cmdline\0"
    finally:
        for cid in made:
            api.remove_container(cid, force=True)
        api.close()


def test_dockyard_cli_runtime_and_info(rd: Daemon) -> None:
    """dockyard's own CLI: ``run --runtime``, and ``info`` lists the runtimes and the default."""
    names = sorted(_info(rd)["Runtimes"])
    info = rd.cli("info").stdout.decode()
    assert f" Runtimes: {' '.join(names)}\n Default Runtime: native\n" in info
    for runtime in names:
        name = f"cli-{runtime}-{uuid.uuid4().hex[:6]}"
        r = rd.cli("run", "--name", name, "--runtime", runtime, "busybox", "echo", "hi")
        assert r.returncode == 0 and r.stdout == b"hi\n", (r.stdout, r.stderr)
        assert out(docker(rd, "inspect", "-f", "{{.HostConfig.Runtime}}", name)).strip() == runtime
        docker(rd, "rm", name)
    r = rd.cli("run", "--rm", "--runtime", "kata", "busybox", "true")
    assert r.returncode != 0 and b"unknown or invalid runtime name: kata" in r.stderr


def test_the_runtimes_on_one_network_reach_each_other_by_name(rd: Daemon) -> None:
    available = [r for r in RUNTIMES if r in _info(rd)["Runtimes"]]
    net = "rt-" + uuid.uuid4().hex[:8]
    assert docker(rd, "network", "create", net).returncode == 0
    names = {r: f"{r}-{uuid.uuid4().hex[:6]}" for r in available}
    try:
        for runtime, name in names.items():
            out(docker(rd, "run", "-d", "--name", name, "--network", net, "--runtime", runtime,
                       "busybox", "sleep", "1000"))
        for runtime, name in names.items():
            for other in names.values():
                if other != name:
                    r = docker(rd, "exec", name, "ping", "-c", "1", "-W", "5", other)
                    assert r.returncode == 0, (runtime, other, r.stdout, r.stderr)
    finally:
        for name in names.values():
            docker(rd, "rm", "-f", name)
        docker(rd, "network", "rm", net)
    if len(available) < len(RUNTIMES):
        missing = set(RUNTIMES) - set(available)
        pytest.skip(f"ran with {', '.join(available)}; not available here: {', '.join(missing)}")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_container_survives_a_daemon_sigkill(busybox_tar: str, runtime: str) -> None:
    with running_daemon(busybox_tar) as d:
        _need(d, runtime)
        name = f"keep-{runtime}"
        out(docker(d, "run", "-d", "--name", name, "--runtime", runtime, "busybox", "sh", "-c",
                   "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"))
        pid = int(out(docker(d, "inspect", "-f", "{{.State.Pid}}", name)))
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
        os.kill(pid, 0)  # still there with no daemon
        d.start()
        assert out(docker(d, "inspect", "-f", "{{.State.Running}} {{.State.Pid}}", name)).split() \
            == ["true", str(pid)]
        assert out(docker(d, "exec", name, "echo", "back")) == "back\n"
        before = out(docker(d, "logs", name)).count("tick")
        time.sleep(0.5)
        assert out(docker(d, "logs", name)).count("tick") > before  # its log is still written
        assert docker(d, "kill", name).returncode == 0
        assert out(docker(d, "wait", name)).strip() == "137"
        docker(d, "rm", name)


def test_default_runtime_and_the_runtimes_map(busybox_tar: str, tmp_path) -> None:
    """``--exec-driver`` sets the default; daemon.json's ``runtimes`` (dockerd's key) adds an OCI
    runtime by path, served by the OCI driver; a bad entry stops the daemon with its name."""
    crun = "/usr/bin/crun"
    if not os.access(crun, os.X_OK):
        pytest.skip("crun is not installed (apt-get install crun)")
    conf = tmp_path / "daemon.json"
    gone = str(tmp_path / "no-such-runtime")
    conf.write_text(json.dumps({"runtimes": {"my-crun": {"path": crun, "runtimeArgs": []},
                                             "gone": {"path": gone}}}))
    with running_daemon(busybox_tar, ["--exec-driver", "runc", "--config-file", str(conf)]) as d:
        info = _info(d)
        if "runc" not in info["Runtimes"]:
            pytest.skip("runc cannot run here")
        assert info["DefaultRuntime"] == "runc"
        assert info["Runtimes"]["my-crun"]["path"] == crun
        assert info["Runtimes"]["my-crun"]["status"]["version"]
        # an entry whose binary is missing: listed as unavailable with why, refused by name
        assert "gone" not in info["Runtimes"]
        assert gone in info["DockyardDrivers"]["exec"]["unavailable"]["gone"]
        r = docker(d, "run", "--rm", "--runtime", "gone", "busybox", "true")
        assert r.returncode != 0 and b"runtime 'gone' is not available on this host" in r.stderr
        assert b"not found or not executable" in r.stderr and b"my-crun" in r.stderr
        name = "mine-" + uuid.uuid4().hex[:6]
        assert out(docker(d, "run", "--name", name, "--runtime", "my-crun", "busybox",
                          "sh", "-c", "echo $$")) == "1\n"
        assert out(docker(d, "inspect", "-f", "{{.HostConfig.Runtime}}", name)).strip() == "my-crun"
        docker(d, "rm", name)
        name = "dflt-" + uuid.uuid4().hex[:6]
        assert out(docker(d, "run", "--name", name, "busybox", "true")) == ""
        assert out(docker(d, "inspect", "-f", "{{.HostConfig.Runtime}}", name)).strip() == "runc"
        docker(d, "rm", name)


def test_default_runtime_may_be_a_runtimes_entry(busybox_tar: str, tmp_path) -> None:
    """dockerd's ``default-runtime`` key: here an entry of ``runtimes``, used by every container
    that names none."""
    crun = "/usr/bin/crun"
    if not os.access(crun, os.X_OK):
        pytest.skip("crun is not installed (apt-get install crun)")
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"default-runtime": "my-crun",
                                "runtimes": {"my-crun": {"path": crun}}}))
    with running_daemon(busybox_tar, ["--config-file", str(conf)]) as d:
        info = _info(d)
        assert info["DefaultRuntime"] == info["ExecutionDriver"] == "my-crun"
        assert "native" in info["Runtimes"] and "my-crun" in info["Runtimes"]
        name = "dr-" + uuid.uuid4().hex[:6]
        assert out(docker(d, "run", "--name", name, "busybox", "sh", "-c", "echo $$")) == "1\n"
        assert out(docker(d, "inspect", "-f", "{{.HostConfig.Runtime}}", name)).strip() == "my-crun"
        docker(d, "rm", name)


def test_default_runtime_and_exec_driver_must_agree(tmp_path) -> None:
    from dockyard.core import config as configmod
    from dockyard.hookspecs.errors import InvalidParameter
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"default-runtime": "crun"}))
    with pytest.raises(InvalidParameter, match="exec-driver 'runc' and default-runtime 'crun'"):
        configmod.load(str(conf), {"exec-driver": "runc"}, path_explicit=True)
    assert configmod.load(str(conf), {"exec-driver": "crun"},
                          path_explicit=True)["default-runtime"] == "crun"
