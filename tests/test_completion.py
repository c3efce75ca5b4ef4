"""Shell completion through click's entry point (``_DOCKYARD_COMPLETE``) against a test daemon:
``dockyard rm <TAB>`` offers the daemon's containers, and so on for images, networks, volumes."""
from __future__ import annotations

import os
import subprocess
from typing import Iterator

import pytest

from conftest import DOCKYARD, VENV_BIN, Daemon


def complete(words: str, host: str | None, shell: str = "bash") -> list[str]:
    """The values ``dockyard`` offers for the last word of ``words`` (as the shell asks)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST")}
    if host:
        env["DOCKYARD_HOST"] = host
    # bash and zsh pass the index of the word being completed, fish the word itself
    cword = words.split(" ")[-1] if shell == "fish" else str(len(words.split(" ")) - 1)
    env.update(_DOCKYARD_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=cword)
    out = subprocess.run([DOCKYARD], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    if shell == "bash":  # "type,value" lines
        return [line.split(",", 1)[1] for line in out.stdout.splitlines() if line.startswith("plain,")]
    if shell == "zsh":   # type, value, help: three lines each
        lines = out.stdout.splitlines()
        return [lines[i + 1] for i in range(0, len(lines) - 2, 3) if lines[i] == "plain"]
    return [line.split(",", 1)[1].split("\t")[0] for line in out.stdout.splitlines()
            if line.startswith("plain,")]  # fish: "type,value<TAB>help"


@pytest.fixture(scope="module")
def objects(shared_daemon: Daemon) -> Iterator[dict[str, str]]:
    tag = os.urandom(3).hex()
    names = {"running": f"web-{tag}", "stopped": f"db-{tag}", "network": f"net-{tag}",
             "volume": f"vol-{tag}"}
    api = shared_daemon.api
    status, body = api.post(f"/containers/create?name={names['running']}",
                            {"Image": "busybox", "Cmd": ["sleep", "1000"]})
    assert status == 201, body
    assert api.post(f"/containers/{names['running']}/start")[0] == 204
    assert api.post(f"/containers/create?name={names['stopped']}",
                    {"Image": "busybox", "Cmd": ["true"]})[0] == 201
    assert api.post("/networks/create", {"Name": names["network"], "Driver": "bridge"})[0] == 201
    assert api.post("/volumes/create", {"Name": names["volume"]})[0] == 201
    try:
        yield names
    finally:
        for c in (names["running"], names["stopped"]):
            api.delete(f"/containers/{c}?force=1")
        api.delete(f"/networks/{names['network']}")
        api.delete(f"/volumes/{names['volume']}")


def test_rm_offers_the_daemons_containers(shared_daemon: Daemon, objects: dict[str, str]) -> None:
    offered = complete("dockyard rm ", shared_daemon.host)
    assert objects["running"] in offered and objects["stopped"] in offered
    # the prefix narrows; -H on the command line is the daemon asked
    assert complete(f"dockyard -H {shared_daemon.host} rm web-", None) == [objects["running"]]


def test_state_aware_container_lists(shared_daemon: Daemon, objects: dict[str, str]) -> None:
    stop = complete("dockyard stop ", shared_daemon.host)
    assert objects["running"] in stop and objects["stopped"] not in stop
    start = complete("dockyard start ", shared_daemon.host)
    assert objects["stopped"] in start and objects["running"] not in start
    assert objects["running"] in complete("dockyard exec ", shared_daemon.host)
    assert objects["running"] in complete("dockyard logs ", shared_daemon.host)


def test_images_networks_volumes(shared_daemon: Daemon, objects: dict[str, str]) -> None:
    host = shared_daemon.host
    assert "busybox:latest" in complete("dockyard rmi ", host)
    assert "busybox:latest" in complete("dockyard run ", host)
    assert objects["network"] in complete("dockyard network rm ", host)
    assert objects["network"] in complete("dockyard run --network ", host)
    assert objects["running"] in complete(f"dockyard network connect {objects['network']} ", host)
    assert objects["volume"] in complete("dockyard volume rm ", host)
    everything = complete("dockyard inspect ", host)
    for name in (objects["running"], "busybox:latest", objects["network"], objects["volume"]):
        assert name in everything


def test_zsh_and_fish_protocols(shared_daemon: Daemon, objects: dict[str, str]) -> None:
    for shell in ("zsh", "fish"):
        assert objects["running"] in complete("dockyard rm ", shared_daemon.host, shell)


def test_unreachable_daemon_offers_nothing_quietly(tmp_path: object) -> None:
    assert complete("dockyard rm ", f"unix://{tmp_path}/nothing.sock") == []
    # commands and options still complete without a daemon
    assert "rm" in complete("dockyard r", f"unix://{tmp_path}/nothing.sock")


def test_the_bash_script_itself(shared_daemon: Daemon, objects: dict[str, str]) -> None:
    """``dockyard completion bash`` sourced into a real bash, its function called as bash does
    at a TAB."""
    script = ('source <(dockyard completion bash); COMP_WORDS=(dockyard stop ""); COMP_CWORD=2; '
              '_dockyard_completion dockyard; printf "%s\\n" "${COMPREPLY[@]}"')
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"],
           "DOCKYARD_HOST": shared_daemon.host}
    env.pop("DOCKER_HOST", None)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert objects["running"] in out.stdout.split() and objects["stopped"] not in out.stdout.split()


def test_completion_command(tmp_path: object) -> None:
    for shell, marker in (("bash", "complete -o nosort -F _dockyard_completion dockyard"),
                          ("zsh", "#compdef dockyard"), ("fish", "complete --no-files --command dockyard")):
        out = subprocess.run([DOCKYARD, "completion", shell], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and marker in out.stdout and "_DOCKYARD_COMPLETE" in out.stdout
    out = subprocess.run([DOCKYARD, "completion", "tcsh"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 125 and "tcsh" in out.stderr
