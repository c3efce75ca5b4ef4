"""Container commands: create, run, start, stop, kill, wait, logs, rm, inspect (ps: cli/ps.py,
cp: cli/cp.py, attaching: cli/attach.py)."""
from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

import click


from . import complete
from .attach import (_RespReader, _term_size, attach_and_run, pump_output, run_status_code,
                     wait_error)
from .client import Client, DaemonError
from .cmdutil import _call, _each, _err, _p, _print_pruned
from .ps import ps
from .runopts import OptError, build_create_body, container_options

RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}




# -- create / run -----------------------------------------------------------------------------
def _create(opts: Any, o: dict[str, Any], image: str, cmd: tuple[str, ...], detach: bool,
            run: bool) -> str:
    console = (0, 0)
    if o.get("tty"):
        console = _term_size() or (0, 0)
    body = build_create_body(o, image, cmd, detach=detach, console_size=console)
    params = {"name": o["name"]} if o.get("name") else None
    client: Client = opts.client
    pulled = False
    if o.get("pull") == "always":
        from .images import pull_image
        pull_image(client, image, quiet=bool(o.get("quiet")), out=sys.stderr)
        pulled = True
    while True:
        try:
            res = client.post_json("/containers/create", params, body)
            break
        except DaemonError as e:
            if e.status != 404 or pulled or "image" not in e.message.lower() or o.get("pull") == "never":
                raise
            ref = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else image + ":latest"
            print(f"Unable to find image '{ref}' locally", file=sys.stderr)
            from .images import pull_image
            pull_image(client, image, quiet=bool(o.get("quiet")), out=sys.stderr)
            pulled = True
    for w in res.get("Warnings") or []:
        print(f"WARNING: {w}", file=sys.stderr)
    return res["Id"]


@click.command(context_settings=RUN_SETTINGS, short_help="Create a new container")
@container_options
@click.argument("image", shell_complete=complete.images)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(opts: Any, image: str, command: tuple[str, ...], **o: Any) -> None:
    """Create a new container."""
    try:
        cid = _create(opts, o, image, command, detach=False, run=False)
    except OptError as e:
        print(f"dockyard: {e.format_message()}", file=sys.stderr)
        sys.exit(125)
    print(cid)


@click.command(context_settings=RUN_SETTINGS, short_help="Create and run a new container from an image")
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process")
@click.argument("image", shell_complete=complete.images)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(opts: Any, image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool, **o: Any) -> None:
    """Create and run a new container from an image."""
    from .client import ConnectError
    try:
        cid = _create(opts, o, image, command, detach=detach, run=True)
    except OptError as e:
        print(f"dockyard: {e.format_message()}", file=sys.stderr)
        sys.exit(125)
    except DaemonError as e:
        _err(e.message)
        sys.exit(125)
    except ConnectError as e:
        print(str(e), file=sys.stderr)
        sys.exit(125)
    client: Client = opts.client
    if detach:
        try:
            client.request("POST", f"/containers/{cid}/start").read()
        except DaemonError as e:
            _err(e.message)
            sys.exit(run_status_code(e.message))
        print(cid)
        return
    try:
        code = attach_and_run(opts, cid, bool(o.get("tty")), bool(o.get("interactive")),
                              bool(o.get("rm")), sig_proxy=sig_proxy)
    except DaemonError as e:
        _err(e.message)
        code = run_status_code(e.message)
        if o.get("rm"):
            try:
                client.request("DELETE", f"/containers/{cid}", {"force": 1}, check=False).read()
            except Exception:
                pass
    sys.stdout.flush()
    sys.exit(code)


# -- lifecycle --------------------------------------------------------------------------------
@click.command(short_help="Start one or more stopped containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.stopped_containers)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.pass_obj
def start(opts: Any, containers: tuple[str, ...], attach: bool, interactive: bool) -> None:
    """Start one or more stopped containers."""
    client: Client = opts.client
    if attach or interactive:
        if len(containers) > 1:
            raise click.UsageError("you cannot start and attach multiple containers at once")
        c = client.get_json(f"/containers/{_p(containers[0])}/json")
        cfg = c.get("Config") or {}
        code = attach_and_run(opts, c["Id"], bool(cfg.get("Tty")),
                              interactive and bool(cfg.get("OpenStdin")),
                              bool((c.get("HostConfig") or {}).get("AutoRemove")))
        sys.exit(code)
    _each(containers, lambda n: _call(client, "POST", f"/containers/{_p(n)}/start"))


@click.command(short_help="Stop one or more running containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.running_containers)
@click.option("-t", "--time", "--timeout", "timeout", type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", help="Signal to send to the container")
@click.pass_obj
def stop(opts: Any, containers: tuple[str, ...], timeout: int | None, sig: str | None) -> None:
    """Stop one or more running containers."""
    client: Client = opts.client
    params = {"t": timeout, "signal": sig}
    _each(containers, lambda n: _call(client, "POST", f"/containers/{_p(n)}/stop", params))


@click.command(short_help="Restart one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.containers)
@click.option("-t", "--time", "--timeout", "timeout", type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "sig", help="Signal to send to the container")
@click.pass_obj
def restart(opts: Any, containers: tuple[str, ...], timeout: int | None, sig: str | None) -> None:
    """Restart one or more containers."""
    client: Client = opts.client
    params = {"t": timeout, "signal": sig}
    _each(containers, lambda n: _call(client, "POST", f"/containers/{_p(n)}/restart", params))


@click.command(short_help="Inspect changes to files or directories on a container's filesystem")
@click.argument("container", shell_complete=complete.containers)
@click.pass_obj
def diff(opts: Any, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem (A added, C changed,
    D deleted)."""
    client: Client = opts.client
    try:
        changes = client.get_json(f"/containers/{_p(container)}/changes") or []
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)
    for ch in changes:
        print(f"{'CAD'[ch['Kind']]} {ch['Path']}")


@click.command(short_help="Create a new image from a container's changes")
@click.argument("container", shell_complete=complete.containers)
@click.argument("repository", required=False, metavar="[REPOSITORY[:TAG]]")
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit")
@click.pass_obj
def commit(opts: Any, container: str, repository: str | None, author: str,
           changes: tuple[str, ...], message: str, pause: bool) -> None:
    """Create a new image from a container's changes."""
    client: Client = opts.client
    repo, tag = repository or "", ""
    if repo and ":" in repo.rsplit("/", 1)[-1]:
        repo, tag = repo.rsplit(":", 1)
    params = {"container": container, "repo": repo, "tag": tag, "comment": message,
              "author": author, "changes": list(changes), "pause": "1" if pause else "0"}
    try:
        print(client.post_json("/commit", params)["Id"])
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)


@click.command(short_help="Kill one or more running containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.running_containers)
@click.option("-s", "--signal", "sig", help="Signal to send to the container")
@click.pass_obj
def kill(opts: Any, containers: tuple[str, ...], sig: str | None) -> None:
    """Kill one or more running containers."""
    client: Client = opts.client
    _each(containers, lambda n: _call(client, "POST", f"/containers/{_p(n)}/kill", {"signal": sig}))


@click.command(short_help="Block until one or more containers stop, then print their exit codes")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.containers)
@click.pass_obj
def wait(opts: Any, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    client: Client = opts.client

    def one(n: str) -> str:
        res = client.request("POST", f"/containers/{_p(n)}/wait").json() or {}
        msg = wait_error(res)
        if msg is not None:
            raise DaemonError(500, msg)
        return str(res.get("StatusCode", 0))
    _each(containers, one)


@click.command(short_help="Remove one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.containers)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.option("-l", "--link", is_flag=True, help="Remove the specified link")
@click.pass_obj
def rm(opts: Any, containers: tuple[str, ...], force: bool, volumes: bool, link: bool) -> None:
    """Remove one or more containers."""
    client: Client = opts.client
    params = {"force": 1 if force else None, "v": 1 if volumes else None, "link": 1 if link else None}
    _each(containers, lambda n: _call(client, "DELETE", f"/containers/{_p(n)}", params))


# -- logs -------------------------------------------------------------------------------------
def _since(value: str) -> str:
    """docker's ``GetTimestamp``: a Go duration (relative to now), unix seconds, or RFC 3339."""
    import re
    import time
    v = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return v
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", v)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        total = sum(float(n) * mult[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", v))
        return "%.9f" % (time.time() - total)
    from .fmt import to_epoch
    t = to_epoch(v if ("T" in v or " " not in v) else v.replace(" ", "T"))
    if t is None:
        raise click.ClickException(f"invalid value for \"since\": failed to parse value as time or duration: \"{value}\"")
    return "%.9f" % t


@click.command(short_help="Fetch the logs of a container")
@click.argument("container", shell_complete=complete.containers)
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
@click.option("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
@click.option("--until", help="Show logs before a timestamp or relative")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.pass_obj
def logs(opts: Any, container: str, follow: bool, timestamps: bool, tail: str, since: str | None,
         until: str | None, details: bool) -> None:
    """Fetch the logs of a container."""
    client: Client = opts.client
    c = client.get_json(f"/containers/{_p(container)}/json")
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "tail": tail,
                              "follow": 1 if follow else None,
                              "timestamps": 1 if timestamps else None,
                              "since": _since(since) if since else None,
                              "until": _since(until) if until else None,
                              "details": 1 if details else None}
    resp = client.request("GET", f"/containers/{c['Id']}/logs", params)
    tty = bool((c.get("Config") or {}).get("Tty"))
    ctype = resp.headers.get("content-type", "")
    if "raw-stream" in ctype:
        tty = True
    elif "multiplexed" in ctype:
        tty = False
    try:
        pump_output(_RespReader(resp), tty)
    except KeyboardInterrupt:
        pass


# -- inspect ----------------------------------------------------------------------------------
@click.command(short_help="Return low-level information on dockyard objects")
@click.argument("names", metavar="NAME|ID...", nargs=-1, required=True, shell_complete=complete.any_object)
@click.option("-f", "--format", "fmt", help="Format output using a custom template")
@click.option("--type", "type_", type=click.Choice(["container", "image"]), help="Return JSON for specified type")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@click.pass_obj
def inspect(opts: Any, names: tuple[str, ...], fmt: str | None, type_: str | None, size: bool) -> None:
    """Return low-level information on dockyard objects."""
    client: Client = opts.client
    results, failed = [], False
    for n in names:
        obj = None
        for kind in ([type_] if type_ else ["container", "image"]):
            path = f"/containers/{_p(n)}/json" if kind == "container" else f"/images/{quote(n, safe=':@/')}/json"
            try:
                obj = client.get_json(path, {"size": 1} if size and kind == "container" else None)
                break
            except DaemonError as e:
                if e.status != 404:
                    raise
        if obj is None:
            print(f"Error: No such {type_ or 'object'}: {n}", file=sys.stderr)
            failed = True
            continue
        results.append(obj)
    if fmt:
        from .gotemplate import Template, TemplateError
        try:
            tpl = Template(fmt)
            for obj in results:
                sys.stdout.write(tpl.execute(obj) + "\n")
        except TemplateError as e:
            raise click.ClickException(f"template parsing error: {e}") from None
    else:
        sys.stdout.write(json.dumps(results, indent=4, ensure_ascii=False) + "\n")
    if failed:
        sys.exit(1)


@click.command(short_help="Export a container's filesystem as a tar archive")
@click.argument("container", shell_complete=complete.containers)
@click.option("-o", "--output", help="Write to a file, instead of STDOUT")
@click.pass_obj
def export(opts: Any, container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    from .fmt import archive_output
    with archive_output(output) as out:
        for chunk in opts.client.request("GET", f"/containers/{_p(container)}/export").iter_chunks():
            out.write(chunk)


@click.command(short_help="Rename a container")
@click.argument("container", shell_complete=complete.containers)
@click.argument("new_name", metavar="NEW_NAME")
@click.pass_obj
def rename(opts: Any, container: str, new_name: str) -> None:
    """Rename a container."""
    client: Client = opts.client
    _each((container,), lambda n: _call(client, "POST", f"/containers/{_p(n)}/rename",
                                        {"name": new_name}), echo=False)


@click.command(short_help="Remove all stopped containers")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')")
@click.pass_obj
def container_prune(opts: Any, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    import json

    from .fmt import filter_args

    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?"):
        return
    flt = filter_args(filters)
    try:
        res = opts.client.post_json("/containers/prune", {"filters": json.dumps(flt)} if flt else None) or {}
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)
    _print_pruned("Containers", res.get("ContainersDeleted") or [], res.get("SpaceReclaimed"))


@click.command(short_help="Update configuration of one or more containers")
@click.argument("containers", metavar="CONTAINER...", nargs=-1, required=True, shell_complete=complete.containers)
@click.option("-m", "--memory", help="Memory limit")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
@click.option("--cpus", help="Number of CPUs")
@click.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
@click.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
@click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
@click.option("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
@click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
@click.option("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000")
@click.option("--restart", help="Restart policy to apply when a container exits")
@click.pass_obj
def update(opts: Any, containers: tuple[str, ...], **o: Any) -> None:
    """Update configuration of one or more containers."""
    from .runopts import parse_restart, ram_in_bytes
    try:
        body: dict[str, Any] = {
            "Memory": ram_in_bytes(o["memory"]) if o["memory"] else 0,
            "MemorySwap": (-1 if o["memory_swap"] == "-1" else ram_in_bytes(o["memory_swap"]))
            if o["memory_swap"] else 0,
            "CpuShares": o["cpu_shares"] or 0, "CpuPeriod": o["cpu_period"] or 0,
            "CpuQuota": o["cpu_quota"] or 0,
            "NanoCpus": int(float(o["cpus"]) * 1e9) if o["cpus"] else 0,
            "CpusetCpus": o["cpuset_cpus"] or "", "CpusetMems": o["cpuset_mems"] or "",
            "PidsLimit": o["pids_limit"] or 0, "BlkioWeight": o["blkio_weight"] or 0,
        }
        if o["restart"]:
            body["RestartPolicy"] = parse_restart(o["restart"])
    except (OptError, ValueError) as e:
        msg = e.format_message() if isinstance(e, OptError) else f"invalid value: {e}"
        print(f"dockyard: {msg}", file=sys.stderr)
        sys.exit(125)
    client: Client = opts.client

    def one(name: str) -> None:
        client.post_json(f"/containers/{_p(name)}/update", body=body)

    _each(containers, one)


@click.group(name="container", short_help="Manage containers")
def container_group() -> None:
    """Manage containers."""


for _name, _cmd in (("ls", ps), ("rm", rm), ("run", run), ("create", create), ("start", start),
                    ("stop", stop), ("restart", restart), ("kill", kill), ("wait", wait),
                    ("logs", logs), ("inspect", inspect), ("diff", diff), ("commit", commit),
                    ("rename", rename), ("prune", container_prune), ("update", update)):
    container_group.add_command(_cmd, _name)
