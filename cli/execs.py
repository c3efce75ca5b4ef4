"""``dockyard exec``, ``pause``, ``unpause``, ``top`` and ``stats``."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from dockyard.hookspecs.host.units import bytes_size

from . import complete
from .client import Client, DaemonError
from .attach import RawTerminal, _term_size, relay
from .cmdutil import _call, _each, _p

EXEC_SETTINGS = {"ignore_unknown_options": False, "allow_interspersed_args": False}


def _exec_resize(client: Client, eid: str) -> None:
    size = _term_size()
    if size:
        try:
            client.request("POST", f"/exec/{eid}/resize", {"h": size[0], "w": size[1]}).read()
        except Exception:  # noqa: BLE001 - best effort, as docker's CLI
            pass


@click.command("exec", context_settings=EXEC_SETTINGS, short_help="Execute a command in a running container")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.option("--detach-keys", default="ctrl-p,ctrl-q", help="Override the key sequence for detaching")
@click.argument("container", shell_complete=complete.running_containers)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(opts: Any, container: str, command: tuple[str, ...], interactive: bool, tty: bool,
          detach: bool, env: tuple[str, ...], user: str, workdir: str, privileged: bool,
          detach_keys: str) -> None:
    """Execute a command in a running container; exit with the command's exit code."""
    client: Client = opts.client
    body = {"AttachStdin": interactive and not detach, "AttachStdout": not detach,
            "AttachStderr": not detach, "Tty": tty, "Cmd": list(command), "Env": list(env),
            "User": user, "WorkingDir": workdir, "Privileged": privileged,
            "DetachKeys": detach_keys}
    eid = client.post_json(f"/containers/{_p(container)}/exec", body=body)["Id"]
    if detach:
        client.request("POST", f"/exec/{eid}/start", body={"Detach": True, "Tty": tty}).read()
        return
    sock, fp = client.hijack(f"/exec/{eid}/start", body={"Detach": False, "Tty": tty})
    with RawTerminal(tty and interactive):
        if tty:
            _exec_resize(client, eid)
        detached = relay(sock, fp, tty, _keys(detach_keys) if interactive else None)
    if detached:
        sys.exit(0)
    info = client.get_json(f"/exec/{eid}/json")
    code = info.get("ExitCode")
    sys.exit(int(code) if code is not None else 126)


def _keys(spec: str) -> bytes:
    out = b""
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            ch = part[5]
            out += bytes([(ord(ch.upper()) - 64) & 0x1F if ch.isalpha() else
                          {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch, 0)])
        elif len(part) == 1:
            out += part.encode()
    return out


@click.command(short_help="Pause all processes within one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.running_containers)
@click.pass_obj
def pause(opts: Any, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    client: Client = opts.client
    _each(containers, lambda n: _call(client, "POST", f"/containers/{_p(n)}/pause"))


@click.command(short_help="Unpause all processes within one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.paused_containers)
@click.pass_obj
def unpause(opts: Any, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    client: Client = opts.client
    _each(containers, lambda n: _call(client, "POST", f"/containers/{_p(n)}/unpause"))


@click.command(context_settings={"ignore_unknown_options": True},
               short_help="Display the running processes of a container")
@click.argument("container", shell_complete=complete.running_containers)
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(opts: Any, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    client: Client = opts.client
    params = {"ps_args": " ".join(ps_args)} if ps_args else None
    res = client.get_json(f"/containers/{_p(container)}/top", params)
    rows = [res["Titles"]] + res["Processes"]
    widths = [max(len(str(r[i])) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("    ".join(str(v).ljust(widths[i]) for i, v in enumerate(r)).rstrip() + "\n")


@click.command(short_help="Display a live stream of container(s) resource usage statistics")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.running_containers)
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.pass_obj
def stats(opts: Any, containers: tuple[str, ...], no_stream: bool) -> None:
    """Resource usage of containers (one sample each with --no-stream)."""
    client: Client = opts.client
    print(f"{'CONTAINER ID':<14}{'NAME':<22}{'CPU %':<9}{'MEM USAGE / LIMIT':<24}{'MEM %':<9}PIDS")
    for n in containers:
        try:
            st = client.get_json(f"/containers/{_p(n)}/stats", {"stream": 0})
        except DaemonError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            continue
        if isinstance(st, (bytes, str)):
            st = json.loads(st)
        cpu, pre = st["cpu_stats"], st["precpu_stats"]
        dc = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        ds = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        pct = dc / ds * cpu.get("online_cpus", 1) * 100 if ds > 0 else 0.0
        mem = st["memory_stats"]
        used = mem.get("usage", 0) - mem.get("stats", {}).get("total_inactive_file",
                                                               mem.get("stats", {}).get("inactive_file", 0))
        lim = mem.get("limit") or 1
        print(f"{st['id'][:12]:<14}{st['name'].lstrip('/'):<22}{pct:<9.2f}"
              f"{bytes_size(used) + ' / ' + bytes_size(lim):<24}{used / lim * 100:<9.2f}"
              f"{st['pids_stats'].get('current', 0)}")
