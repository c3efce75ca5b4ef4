"""Image commands: images, rmi, import, pull."""
from __future__ import annotations

import json
import sys
from typing import Any, Iterator

import click

from . import complete
from .client import DaemonError, json_messages
from .cmdutil import _print_pruned


def split_ref(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` → (repo, tag) with tag defaulting to ``latest``; a digest is kept as tag."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def short_id(image_id: str, no_trunc: bool = False) -> str:
    if no_trunc:
        return image_id
    return image_id.split(":", 1)[-1][:12]


class ImageRow:
    """The formatting context of one ``images`` row (docker's placeholders)."""

    def __init__(self, img: dict[str, Any], repo: str, tag: str, digest: str, no_trunc: bool) -> None:
        self._img = img
        self.Repository = repo
        self.Tag = tag
        self.Digest = digest
        self.ID = short_id(img.get("Id", ""), no_trunc)
        from .fmt import ago, human_size, to_epoch
        self.CreatedSince = ago(img.get("Created"))
        created = to_epoch(img.get("Created"))
        import time
        self.CreatedAt = (time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created))
                          if created else "")
        self.Size = human_size(img.get("Size") or 0)
        self.VirtualSize = self.Size
        self.SharedSize = "N/A"
        self.UniqueSize = "N/A"
        self.Containers = "N/A" if img.get("Containers", -1) < 0 else str(img["Containers"])
        labels = img.get("Labels") or {}
        self.Labels = ",".join(f"{k}={v}" for k, v in labels.items())

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                 "Containers": "CONTAINERS", "Labels": "LABELS"}


@click.command(short_help="List images")
@click.argument("reference", required=False, shell_complete=complete.images)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images)")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--digests", is_flag=True, help="Show digests")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", help="Format output using a custom template")
@click.pass_obj
def images(opts: Any, reference: str | None, all_: bool, quiet: bool, no_trunc: bool,
           digests: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List images."""
    from .fmt import filter_args
    params: dict[str, Any] = {"all": "1" if all_ else None}
    flt = filter_args(filters)
    if reference:
        flt.setdefault("reference", {})[reference] = True
    if flt:
        params["filters"] = json.dumps(flt)
    data = opts.client.get_json("/images/json", params) or []
    data.sort(key=lambda i: i.get("Created", 0) if isinstance(i.get("Created"), (int, float)) else 0,
              reverse=True)
    if quiet:
        seen = []
        for img in data:
            i = short_id(img.get("Id", ""), no_trunc)
            if i not in seen:
                seen.append(i)
        sys.stdout.write("".join(i + "\n" for i in seen))
        return
    rows = []
    for img in data:
        tags = img.get("RepoTags") or []
        digs = img.get("RepoDigests") or []
        if not tags or tags == ["<none>:<none>"]:
            repo = digs[0].split("@")[0] if digs else "<none>"
            rows.append(ImageRow(img, repo, "<none>", digs[0].split("@")[1] if digs else "<none>", no_trunc))
            continue
        for t in tags:
            repo, tag = split_ref(t)
            dig = next((d.split("@", 1)[1] for d in digs if d.split("@")[0] == repo), "<none>")
            rows.append(ImageRow(img, repo, tag, dig, no_trunc))
    if not fmt:
        fmt = ("table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if digests else "")
               + "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}")
    from .fmt import render_list
    render_list(fmt, rows, IMAGE_HEADERS)


@click.command(short_help="Remove one or more images")
@click.argument("images_", metavar="IMAGE...", nargs=-1, required=True, shell_complete=complete.images)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.pass_obj
def rmi(opts: Any, images_: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    from urllib.parse import quote
    failed = False
    for name in images_:
        try:
            res = opts.client.request("DELETE", "/images/" + quote(name, safe=":@/"),
                                      {"force": "1" if force else None,
                                       "noprune": "1" if no_prune else None}).json() or []
        except DaemonError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        for item in res:
            for k in ("Untagged", "Deleted"):
                if item.get(k):
                    print(f"{k}: {item[k]}")
    if failed:
        sys.exit(1)


def _print_progress(lines: Iterator[bytes], quiet: bool = False) -> str | None:
    """Consume a JSON-lines progress stream; print statuses; raise on an error message."""
    last = None
    for msg in json_messages(lines):
        if msg.get("progressDetail") and msg.get("progress"):
            continue
        status = msg.get("status") or msg.get("stream") or msg.get("Id")
        if status:
            last = status
            if not quiet:
                text = f"{msg['id']}: {status}" if msg.get("id") else status
                print(text.rstrip("\n"), flush=True)
    return last


def pull_image(client: Any, ref: str, quiet: bool = False, out: Any = None) -> None:
    repo, tag = split_ref(ref)
    params = {"fromImage": repo, "tag": tag}
    if "@" in ref:
        params = {"fromImage": ref.split("@")[0], "tag": ref.split("@")[1]}
    resp = client.request("POST", "/images/create", params,
                          headers={"X-Registry-Auth": auth_header(registry_of(ref))})
    saved = sys.stdout
    if out is not None:
        sys.stdout = out
    try:
        _stream(resp, quiet)
    finally:
        sys.stdout = saved


@click.command(short_help="Download an image from a registry")
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.pass_obj
def pull(opts: Any, name: str, quiet: bool) -> None:
    """Download an image from a registry."""
    pull_image(opts.client, name, quiet)
    if quiet:
        print(name if ":" in name.rsplit("/", 1)[-1] else name + ":latest")


def _read_chunks(f: Any, size: int = 1 << 16) -> Iterator[bytes]:
    while True:
        data = f.read(size)
        if not data:
            return
        yield data


@click.command(name="import", short_help="Import the contents from a tarball to create a filesystem image")
@click.argument("source", metavar="file|URL|-")
@click.argument("reference", metavar="[REPOSITORY[:TAG]]", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", help="Set commit message for imported image")
@click.option("--platform", help="Set platform if server is multi-platform capable")
@click.pass_obj
def import_(opts: Any, source: str, reference: str | None, changes: tuple[str, ...],
            message: str | None, platform: str | None) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    params: dict[str, Any] = {"fromSrc": "-" if "://" not in source else source,
                              "repo": reference or None, "message": message,
                              "platform": platform, "changes": list(changes) or None}
    if "://" in source:
        resp = opts.client.request("POST", "/images/create", params)
    elif source == "-":
        resp = opts.client.request("POST", "/images/create", params,
                                   body=_read_chunks(sys.stdin.buffer),
                                   headers={"Content-Type": "application/x-tar"})
    else:
        try:
            f = open(source, "rb")
        except OSError as e:
            raise click.ClickException(f"open {source}: {e.strerror.lower() if e.strerror else e}") from None
        with f:
            resp = opts.client.request("POST", "/images/create", params, body=_read_chunks(f),
                                       headers={"Content-Type": "application/x-tar"})
    ctype = resp.headers.get("content-type", "")
    if "json" in ctype or not ctype:
        _print_progress(resp.iter_lines())
    else:
        sys.stdout.write(resp.read().decode(errors="replace"))


# -- credentials: Docker's config.json ---------------------------------------------------------------
HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> str:
    import os
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def _load_config() -> dict[str, Any]:
    try:
        with open(config_path(), encoding="utf-8") as f:
            data = json.load(f)
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_config(cfg: dict[str, Any]) -> None:
    import os
    import tempfile
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".config-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent="\t")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _server_key(server: str | None) -> str:
    if not server or server in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return HUB_KEY
    return server.split("://", 1)[-1].rstrip("/")


def registry_of(ref: str) -> str:
    from dockyard.core import reference as r
    return r.parse(ref, default_tag=False).domain


def auth_header(server: str) -> str:
    """``X-Registry-Auth`` for ``server`` from config.json's ``auths`` (``e30=`` = none)."""
    import base64
    entry = (_load_config().get("auths") or {}).get(_server_key(server)) or {}
    creds: dict[str, str] = {}
    if entry.get("auth"):
        try:
            user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            creds = {"username": user, "password": pw, "serveraddress": server}
        except ValueError:
            creds = {}
    if entry.get("identitytoken"):
        creds["identitytoken"] = entry["identitytoken"]
    return base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()


@click.command(short_help="Log in to a registry")
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username")
@click.option("-p", "--password", help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@click.pass_obj
def login(opts: Any, server: str | None, username: str | None, password: str | None,
          password_stdin: bool) -> None:
    """Log in to a registry (credentials are kept in Docker's config.json)."""
    import base64
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    if not username:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    key = _server_key(server)
    res = opts.client.post_json("/auth", None, {"username": username, "password": password,
                                                "serveraddress": server or "docker.io"}) or {}
    cfg = _load_config()
    cfg.setdefault("auths", {})[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _save_config(cfg)
    print(res.get("Status") or "Login Succeeded")


@click.command(short_help="Log out from a registry")
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry."""
    key = _server_key(server)
    cfg = _load_config()
    if key in (cfg.get("auths") or {}):
        del cfg["auths"][key]
        _save_config(cfg)
        print(f"Removing login credentials for {key}")
    else:
        print(f"Not logged in to {key}")


class LayerProgress:
    """Docker's per-layer progress lines: redrawn in place on a terminal, plain lines otherwise."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.ids: list[str] = []

    def show(self, msg: dict[str, Any]) -> None:
        lid = msg.get("id")
        status = msg.get("status") or ""
        text = f"{lid}: {status}" + (f" {msg['progress']}" if msg.get("progress") else "") if lid else status
        if not lid or not self.tty:
            if not self.tty and msg.get("progress"):
                return  # no progress bars in a log
            self.out.write(text + "\n")
            self.out.flush()
            return
        if lid not in self.ids:
            self.ids.append(lid)
            self.out.write(text + "\n")
        else:
            up = len(self.ids) - self.ids.index(lid)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        self.out.flush()


def _stream(resp: Any, quiet: bool = False) -> dict[str, Any]:
    """Render a JSON progress stream; return the last ``aux``; raise on an error message."""
    view = LayerProgress()
    aux: dict[str, Any] = {}
    for msg in json_messages(resp.iter_lines()):
        if msg.get("aux"):
            aux = msg["aux"]
            continue
        if msg.get("stream"):
            if not quiet:
                sys.stdout.write(msg["stream"])
            continue
        if not quiet:
            view.show(msg)
    return aux


@click.command(short_help="Upload an image to a registry")
@click.argument("name", shell_complete=complete.images)
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.pass_obj
def push(opts: Any, name: str, all_tags: bool, quiet: bool) -> None:
    """Upload an image to a registry."""
    from urllib.parse import quote
    repo, tag = split_ref(name)
    if all_tags or ("@" not in name and ":" not in name.rsplit("/", 1)[-1] and all_tags):
        tag = ""
    resp = opts.client.request("POST", f"/images/{quote(repo, safe=':@/')}/push", {"tag": tag or None},
                               headers={"X-Registry-Auth": auth_header(registry_of(name))})
    _stream(resp, quiet)
    if quiet:
        print(name)


@click.command(short_help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
@click.argument("source", shell_complete=complete.images)
@click.argument("target")
@click.pass_obj
def tag(opts: Any, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from urllib.parse import quote
    repo, t = split_ref(target)
    opts.client.request("POST", f"/images/{quote(source, safe=':@/')}/tag", {"repo": repo, "tag": t})


@click.command(short_help="Save one or more images to a tar archive (streamed to STDOUT by default)")
@click.argument("images_", metavar="IMAGE...", nargs=-1, required=True, shell_complete=complete.images)
@click.option("-o", "--output", help="Write to a file, instead of STDOUT")
@click.pass_obj
def save(opts: Any, images_: tuple[str, ...], output: str | None) -> None:
    """Save one or more images to a tar archive."""
    from .fmt import archive_output
    with archive_output(output) as out:
        for chunk in opts.client.request("GET", "/images/get", {"names": list(images_)}).iter_chunks():
            out.write(chunk)


@click.command(short_help="Load an image from a tar archive or STDIN")
@click.option("-i", "--input", "input_", help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.pass_obj
def load(opts: Any, input_: str | None, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN."""
    f = open(input_, "rb") if input_ else sys.stdin.buffer
    try:
        resp = opts.client.request("POST", "/images/load", {"quiet": "1" if quiet else None},
                                   body=_read_chunks(f), headers={"Content-Type": "application/x-tar"})
        _stream(resp, False)
    finally:
        if input_:
            f.close()


@click.command(short_help="Show the history of an image")
@click.argument("image", shell_complete=complete.images)
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("-H", "--human", default=True, help="Print sizes and dates in human readable format")
@click.option("--format", "fmt", help="Format output using a custom template")
@click.pass_obj
def history(opts: Any, image: str, no_trunc: bool, quiet: bool, human: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    from urllib.parse import quote

    from .fmt import ago, human_size
    rows = opts.client.get_json(f"/images/{quote(image, safe=':@/')}/history") or []
    if quiet:
        for r in rows:
            print(r["Id"] if no_trunc or r["Id"] == "<missing>" else short_id(r["Id"]))
        return
    lines = [("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")]
    for r in rows:
        by = r.get("CreatedBy") or ""
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        lines.append((r["Id"] if no_trunc or r["Id"] == "<missing>" else short_id(r["Id"]),
                      ago(r.get("Created")), by, human_size(r.get("Size") or 0), r.get("Comment") or ""))
    widths = [max(len(x[i]) for x in lines) for i in range(5)]
    for x in lines:
        print("   ".join(v.ljust(w) for v, w in zip(x, widths)).rstrip())


@click.command(short_help="Remove unused images")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')")
@click.pass_obj
def prune(opts: Any, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images."""
    from .fmt import filter_args
    if not force and not click.confirm(
            "WARNING! This will remove all " + ("images without at least one container associated to them."
                                                 if all_ else "dangling images.") + "\nAre you sure you want to continue?"):
        return
    flt = filter_args(filters, {"dangling": {"false" if all_ else "true": True}})
    res = opts.client.post_json("/images/prune", {"filters": json.dumps(flt)}) or {}
    lines = [f"{k.lower()}: {it[k]}" for it in res.get("ImagesDeleted") or ()
             for k in ("Untagged", "Deleted") if it.get(k)]
    _print_pruned("Images", lines, res.get("SpaceReclaimed"))


@click.group(name="image", short_help="Manage images")
def image_group() -> None:
    """Manage images."""


for _name, _cmd in (("ls", images), ("rm", rmi), ("pull", pull), ("push", push), ("tag", tag),
                    ("save", save), ("load", load), ("history", history), ("prune", prune),
                    ("import", import_)):
    image_group.add_command(_cmd, _name)


@click.group(name="registry", short_help="Run a private registry")
def registry_group() -> None:
    """Run a private registry (Distribution v2 API) over a storage backend."""


@registry_group.command(name="serve", short_help="Serve a registry")
@click.option("--addr", default="127.0.0.1:5000", show_default=True, help="HOST:PORT to listen on")
@click.option("--storage", default="filesystem", show_default=True,
              help="registry backend holding the images (entry point in dockyard.registries)")
@click.option("--root", default="/var/lib/dockyard-registry", show_default=True, help="storage location")
@click.option("--htpasswd", type=click.Path(exists=True, dir_okay=False),
              help="require basic auth against this htpasswd file (bcrypt entries)")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="serve HTTPS with this certificate")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="the certificate's key")
def registry_serve(addr: str, storage: str, root: str, htpasswd: str | None, tls_cert: str | None,
                   tls_key: str | None) -> None:
    """Serve the Distribution v2 API (pull, push, catalog, tags, delete) from STORAGE at ROOT."""
    import logging
    import os

    from dockyard.core import plugins
    from dockyard.core.registry_server import serve
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    reg = plugins.DriverRegistry("registry")
    backend = reg.create(storage, root, {})
    serve(backend, addr, os.path.join(root, "_uploads"), htpasswd, tls_cert, tls_key)
