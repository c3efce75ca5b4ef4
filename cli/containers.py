"""Container commands: create, run, start, stop, kill, wait, logs, ps, rm, inspect."""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any
from urllib.parse import quote

import click

from dockyard.hookspecs.errors import DockyardError
from dockyard.hookspecs.host.streams import STDOUT, parse_header

from . import complete
from .client import Client, DaemonError
from .runopts import OptError, build_create_body, container_options

RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def _p(name: str) -> str:
    return quote(name, safe="")


def _err(msg: str) -> None:
    print(f"Error response from daemon: {msg}", file=sys.stderr)


# -- stream handling --------------------------------------------------------------------------
def _write(fd_file: Any, data: bytes) -> None:
    try:
        fd_file.write(data)
        fd_file.flush()
    except BrokenPipeError:
        pass


def pump_output(fp: Any, tty: bool) -> None:
    """Copy an attach/logs stream to stdout/stderr until EOF (demultiplexing unless ``tty``)."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    if tty:
        while True:
            data = fp.read1(65536)
            if not data:
                return
            _write(out, data)
    while True:
        header = _read_exact(fp, 8)
        if len(header) < 8:
            if header:
                _write(out, header)
            return
        stream, size = parse_header(header)
        data = _read_exact(fp, size)
        _write(out if stream == STDOUT else err, data)  # stderr, and the daemon's errors
        if len(data) < size:
            return


def _read_exact(fp: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = fp.read1(n - len(buf)) if hasattr(fp, "read1") else fp.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class _RespReader:
    """Adapter so pump_output can read a Response body."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp

    def read1(self, n: int) -> bytes:
        return self.resp.read1(n)


def _pump_stdin(sock: Any, tty: bool, detach_keys: bytes = b"\x10\x11",
                detached: threading.Event | None = None) -> None:
    import socket as _socket
    fd = sys.stdin.fileno()
    pending = b""
    try:
        while True:
            try:
                data = os.read(fd, 32768)
            except OSError:
                data = b""
            if not data:
                break
            if tty and detach_keys:
                data = pending + data
                pending = b""
                idx = data.find(detach_keys)
                if idx >= 0:
                    sock.sendall(data[:idx])
                    if detached is not None:
                        detached.set()
                    try:
                        sock.shutdown(_socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if data.endswith(detach_keys[:1]):
                    pending, data = data[-1:], data[:-1]
            sock.sendall(data)
        if pending:
            sock.sendall(pending)
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


class RawTerminal:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stdin.isatty()
        self.saved = None

    def __enter__(self) -> "RawTerminal":
        if self.enabled:
            import termios
            import tty
            fd = sys.stdin.fileno()
            self.saved = termios.tcgetattr(fd)
            tty.setraw(fd)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            import termios
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)


def _term_size() -> tuple[int, int] | None:
    for stream in (sys.stdout, sys.stdin, sys.stderr):
        try:
            sz = os.get_terminal_size(stream.fileno())
            return sz.lines, sz.columns
        except (OSError, ValueError):
            continue
    return None


def _resize(client: Client, cid: str) -> None:
    size = _term_size()
    if size:
        try:
            client.request("POST", f"/containers/{cid}/resize", {"h": size[0], "w": size[1]}).read()
        except Exception:
            pass


class Waiter:
    """``POST /containers/{id}/wait`` on its own connection, its body read in a thread."""

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.headers_seen = threading.Event()
        self.done = threading.Event()
        conn_client = Client(client.host, client.tls)
        conn_client.prefix = client.prefix
        self.client = conn_client
        self.cid = cid
        self.condition = condition
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.headers_seen.wait(5)

    def _run(self) -> None:
        try:
            from .client import Connection
            conn = Connection(self.client)
            conn.send_request("POST", self.client.url(f"/containers/{self.cid}/wait",
                                                      {"condition": self.condition}), {}, None)
            resp = conn.read_response("POST")
            self.headers_seen.set()
            if resp.status >= 400:
                from .client import _message
                raise DaemonError(resp.status, _message(resp.read(), resp))
            self.result = resp.json() or {}
        except BaseException as e:  # reported by wait()
            self.error = e
        finally:
            self.headers_seen.set()
            self.done.set()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        self.done.wait(timeout)
        if self.error is not None:
            raise self.error
        return self.result or {}


def run_status_code(msg: str) -> int:
    """docker's ``toStatusError``: 127 command not found, 126 cannot invoke, else 125."""
    if ("executable file not found" in msg or "no such file or directory" in msg
            or "not found" in msg and "exec" in msg):
        return 127
    if "permission denied" in msg or "is a directory" in msg or "not executable" in msg:
        return 126
    return 125


def attach_and_run(opts: Any, cid: str, tty: bool, stdin: bool, auto_remove: bool,
                   start: bool = True, sig_proxy: bool = True) -> int:
    """Attach, wait and start as ``docker run`` does; return the container's exit code."""
    client: Client = opts.client
    params = {"stream": 1, "stdout": 1, "stderr": 1}
    if stdin:
        params["stdin"] = 1
    sock, fp = client.hijack(f"/containers/{cid}/attach", params)
    waiter = Waiter(client, cid, "removed" if auto_remove else "next-exit")
    if waiter.error is not None and isinstance(waiter.error, DaemonError):
        raise waiter.error
    detached = threading.Event()
    with RawTerminal(tty and stdin):
        if start:
            try:
                client.request("POST", f"/containers/{cid}/start").read()
            except DaemonError:
                sock.close()
                raise
        if tty:
            _resize(client, cid)
            try:
                import signal
                signal.signal(signal.SIGWINCH, lambda *a: _resize(client, cid))
            except (ValueError, AttributeError):
                pass
        if sig_proxy and not tty:
            _install_sig_proxy(client, cid)
        if stdin:
            threading.Thread(target=_pump_stdin, args=(sock, tty, b"\x10\x11", detached),
                             daemon=True).start()
        try:
            pump_output(fp, tty)
        except OSError:
            pass
    if detached.is_set():
        return 0
    res = waiter.wait()
    err = res.get("Error")
    if err and (err.get("Message") if isinstance(err, dict) else err):
        msg = err.get("Message") if isinstance(err, dict) else str(err)
        _err(msg)
        return 125
    return int(res.get("StatusCode", 0))


def _install_sig_proxy(client: Client, cid: str) -> None:
    import signal

    def handler(signum: int, frame: Any) -> None:
        try:
            c = Client(client.host, client.tls)
            c.prefix = client.prefix
            c.request("POST", f"/containers/{cid}/kill", {"signal": str(signum)}).read()
            c.close()
        except Exception:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2):
        try:
            signal.signal(s, handler)
        except (ValueError, OSError):
            pass


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
def _call(client: Client, method: str, path: str, params: dict[str, Any] | None = None) -> None:
    client.request(method, path, params).read()


def _each(names: tuple[str, ...], fn: Any, echo: bool = True) -> None:
    failed = False
    for n in names:
        try:
            out = fn(n)
        except DaemonError as e:
            _err(e.message)
            failed = True
            continue
        if echo:
            print(n if out is None else out)
    if failed:
        sys.exit(1)


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
        err = res.get("Error")
        if err and (err.get("Message") if isinstance(err, dict) else err):
            raise DaemonError(500, err.get("Message") if isinstance(err, dict) else str(err))
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


# -- ps ---------------------------------------------------------------------------------------
def ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


class ContainerRow:
    """docker's ps formatting context (placeholders as attributes, ``.Label`` as a method)."""

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        from .fmt import ago, stringify_ports, to_epoch
        self._c = c
        self._trunc = trunc
        cid = c.get("Id", "")
        self.ID = cid[:12] if trunc else cid
        image = c.get("Image", "")
        if trunc and image.startswith("sha256:"):
            image = image[7:19]
        self.Image = image
        cmd = c.get("Command", "")
        self.Command = json.dumps(ellipsis(cmd, 20) if trunc else cmd, ensure_ascii=False)
        created = to_epoch(c.get("Created"))
        import time
        self.CreatedAt = time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created)) if created else ""
        self.RunningFor = ago(c.get("Created"))
        self.Ports = stringify_ports(c.get("Ports"))
        self.State = c.get("State", "")
        self.Status = c.get("Status") or self.State
        sz = c.get("SizeRw")
        if sz is not None:
            from .fmt import human_size
            self.Size = f"{human_size(sz)} (virtual {human_size(c.get('SizeRootFs') or 0)})"
        else:
            self.Size = "0B"
        names = [n.lstrip("/") for n in c.get("Names") or []]
        if trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        self.Names = ",".join(names)
        labels = c.get("Labels") or {}
        self.Labels = ",".join(f"{k}={v}" for k, v in labels.items())
        self.Mounts = ",".join((m.get("Name") or m.get("Source", "")) for m in c.get("Mounts") or [])
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
        self.Networks = ",".join(sorted(nets))
        self.LocalVolumes = str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Label(self, name: str) -> str:
        return (self._c.get("Labels") or {}).get(name, "")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
              "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}


@click.command(short_help="List containers")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--format", "fmt", help="Format output using a custom template")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.pass_obj
def ps(opts: Any, all_: bool, quiet: bool, no_trunc: bool, fmt: str | None, last: int, latest: bool,
       size: bool, filters: tuple[str, ...]) -> None:
    """List containers."""
    from .fmt import filter_args
    params: dict[str, Any] = {}
    if latest:
        last = 1
    if all_ or last > 0:
        params["all"] = 1
    if last > 0:
        params["limit"] = last
    if size or (fmt and ".Size" in fmt):
        params["size"] = 1
    if filters:
        params["filters"] = json.dumps(filter_args(filters))
    data = opts.client.get_json("/containers/json", params) or []
    rows = [ContainerRow(c, not no_trunc) for c in data]
    if quiet and not fmt:
        sys.stdout.write("".join(r.ID + "\n" for r in rows))
        return
    if not fmt:
        fmt = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t"
               + ("{{.Names}}\t{{.Size}}" if size else "{{.Names}}"))
    from .fmt import render_list
    render_list(fmt, rows, PS_HEADERS)


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

    from .fmt import filter_args, human_size

    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?"):
        return
    flt = filter_args(filters)
    try:
        res = opts.client.post_json("/containers/prune", {"filters": json.dumps(flt)} if flt else None) or {}
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)
    deleted = res.get("ContainersDeleted") or []
    if deleted:
        print("Deleted Containers:")
        print("\n".join(deleted))
        print()
    print(f"Total reclaimed space: {human_size(res.get('SpaceReclaimed') or 0)}")


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


def _split_cp_arg(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` → (container, path); a local path (``-``, or starting with ``/`` or
    ``.``, or with no colon before its first slash) → (None, path)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    head, sep, tail = arg.partition(":")
    if not sep or "/" in head:
        return None, arg
    return head, tail


def _path_stat(client: Client, container: str, path: str) -> dict[str, Any] | None:
    import base64

    resp = client.request("HEAD", f"/containers/{_p(container)}/archive", {"path": path}, check=False)
    resp.read()
    if resp.status == 404:
        return None
    if resp.status >= 400:
        raise DaemonError(resp.status, f"{container}:{path}: cannot stat ({resp.status})")
    return json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat", "") or "e30="))


@click.command(short_help="Copy files/folders between a container and the local filesystem")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.pass_obj
def cp(opts: Any, src: str, dest: str, archive: bool, follow_link: bool) -> None:
    """Copy files/folders between a container and the local filesystem.

    \b
    dockyard cp CONTAINER:SRC_PATH DEST_PATH|-
    dockyard cp SRC_PATH|- CONTAINER:DEST_PATH
    """
    import io
    import posixpath
    import tarfile

    client: Client = opts.client
    (sc, spath), (dc, dpath) = _split_cp_arg(src), _split_cp_arg(dest)
    if (sc is None) == (dc is None):
        click.echo("Error: copying between containers or between local paths is not supported; "
                   "one of SRC and DEST must be CONTAINER:PATH", err=True)
        sys.exit(1)
    try:
        if sc is not None:  # out of the container
            resp = client.request("GET", f"/containers/{_p(sc)}/archive", {"path": spath})
            if dpath == "-":
                for chunk in resp.iter_chunks():
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                return
            into_dir = os.path.isdir(dpath)
            target = dpath if into_dir else (os.path.dirname(os.path.abspath(dpath)))
            if not os.path.isdir(target):
                click.echo(f"Error: destination directory {target!r} does not exist", err=True)
                sys.exit(1)
            rename = None if into_dir else os.path.basename(os.path.abspath(dpath))
            _extract_out(resp, target, rename)
            return
        # into the container
        if spath == "-":
            body = sys.stdin.buffer.read()
            client.request("PUT", f"/containers/{_p(dc)}/archive", {"path": dpath}, body=body).read()
            return
        if not os.path.lexists(spath):
            click.echo(f"Error: no such file or directory: {spath}", err=True)
            sys.exit(1)
        st = _path_stat(client, dc, dpath)
        if st is not None and st.get("mode", 0) & (1 << 31):
            into, name = dpath, os.path.basename(os.path.abspath(spath))
        else:
            into = posixpath.dirname(posixpath.normpath("/" + dpath)) or "/"
            name = posixpath.basename(posixpath.normpath("/" + dpath))
            if _path_stat(client, dc, into) is None:
                click.echo(f"Error: destination directory {into!r} does not exist in {dc}", err=True)
                sys.exit(1)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(os.path.realpath(spath) if follow_link else spath, arcname=name)
        client.request("PUT", f"/containers/{_p(dc)}/archive", {"path": into},
                       body=buf.getvalue(), headers={"Content-Type": "application/x-tar"}).read()
    except DaemonError as e:
        _err(e.message)
        sys.exit(1)
    except DockyardError as e:
        click.echo(f"Error: copying {src} to {dest} failed: {e.message}", err=True)
        sys.exit(1)
    except (tarfile.TarError, OSError) as e:
        click.echo(f"Error: copying {src} to {dest} failed: {e}", err=True)
        sys.exit(1)


def _extract_out(resp: Any, target: str, rename: str | None) -> None:
    """Unpack the archive of ``docker cp`` out into directory ``target`` (its top entry renamed
    to ``rename``): spooled to a temporary file and checked whole first, so a corrupt or hostile
    archive leaves ``target`` untouched; then the safe extractor's host-side policy (nothing
    outside ``target``, no chown, no device nodes, setuid bits cleared)."""
    import base64
    import tempfile

    from dockyard.hookspecs.host import tarsafe

    rebase = None
    if rename:
        raw = resp.headers.get("x-docker-container-path-stat", "") or "e30="
        top = json.loads(base64.b64decode(raw)).get("name") or ""
        rebase = ("." if top in ("", "/") else top, rename)
    with tempfile.NamedTemporaryFile(prefix="dockyard-cp-") as spool:
        for chunk in resp.iter_chunks():
            spool.write(chunk)
        spool.flush()
        tarsafe.extract_file(spool.name, target, tarsafe.COPY_OUT, rebase=rebase)
