"""Image commands: images, rmi, import, pull."""
from __future__ import annotations

import json
import sys
from typing import Any, Iterator

import click

from .client import DaemonError


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
@click.argument("reference", required=False)
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
    params: dict[str, Any] = {"all": "1" if all_ else None}
    flt: dict[str, dict[str, bool]] = {}
    for f in filters:
        k, _, v = f.partition("=")
        flt.setdefault(k, {})[v] = True
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
@click.argument("images_", metavar="IMAGE...", nargs=-1, required=True)
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
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("error") or msg.get("errorDetail"):
            err = msg.get("error") or (msg.get("errorDetail") or {}).get("message", "")
            raise DaemonError(500, err)
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
    resp = client.request("POST", "/images/create", params, headers={"X-Registry-Auth": "e30="})
    saved = sys.stdout
    if out is not None:
        sys.stdout = out
    try:
        _print_progress(resp.iter_lines(), quiet)
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
