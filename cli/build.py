"""``dockyard build`` (the classic build API, as ``DOCKER_BUILDKIT=0 docker build`` sends it)
and ``dockyard builder prune``."""
from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from typing import Any

import click

from .images import _stream, auth_header, registry_of

SECRETS_HEADER = "X-Dockyard-Build-Secrets"


def _ulimit(spec: str) -> dict[str, Any]:
    """``name=soft[:hard]`` (docker's ``--ulimit``)."""
    name, eq, limits = spec.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise click.BadParameter(f"invalid ulimit {spec!r}: name=soft[:hard]") from None
    if not eq or not name:
        raise click.BadParameter(f"invalid ulimit {spec!r}: name=soft[:hard]")
    return {"Name": name, "Soft": s, "Hard": h}


def _secret(spec: str) -> tuple[str, bytes]:
    """``id=ID[,src=FILE|,env=VAR]`` (buildx's ``--secret``; the id's value in the
    environment when neither is given)."""
    fields = dict(f.partition("=")[::2] for f in spec.split(","))
    sid = fields.get("id") or ""
    if not sid:
        raise click.BadParameter(f"--secret {spec!r}: id= is required")
    src = fields.get("src") or fields.get("source")
    try:
        if src:
            with open(src, "rb") as f:
                return sid, f.read()
        var = fields.get("env") or sid
        if var not in os.environ:
            raise click.BadParameter(f"--secret {spec!r}: no src= file and no {var} in the environment")
        return sid, os.environ[var].encode()
    except OSError as e:
        raise click.BadParameter(f"--secret {spec!r}: {e}") from None


def _dockerfile(ctx: str, file_: str | None) -> tuple[str, tuple[str, bytes] | None]:
    """The ``dockerfile`` parameter, and a Dockerfile to add when it is outside the context
    (or ``-``: read from stdin, as ``docker build -f-``)."""
    if not file_:
        return "Dockerfile", None
    if file_ == "-":
        extra = (f".dockerfile.{secrets.token_hex(10)}", sys.stdin.buffer.read())
        return extra[0], extra
    df = file_ if os.path.isabs(file_) or os.path.exists(file_) else os.path.join(ctx, file_)
    df = os.path.abspath(df)
    rel = os.path.relpath(df, ctx)
    if not rel.startswith(".."):
        return rel, None
    try:
        with open(df, "rb") as f:
            extra = (f".dockerfile.{secrets.token_hex(10)}", f.read())
    except OSError as e:
        raise click.ClickException(f"unable to prepare context: {e}") from None
    return extra[0], extra


@click.command(short_help="Build an image from a Dockerfile")
@click.argument("path")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format")
@click.option("-f", "--file", "file_", help="Name of the Dockerfile (default 'PATH/Dockerfile'; '-' reads stdin)")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("--target", default="", help="Set the target build stage to build")
@click.option("--secret", "secret_specs", multiple=True,
              help="Secret to expose to the build: id=ID[,src=FILE|,env=VAR]")
@click.option("--network", default="", help="Networking mode for the RUN instructions (default, none, host, NETWORK)")
@click.option("--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip)")
@click.option("--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources")
@click.option("--platform", default="", help="Set the platform (this host's only)")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the images")
@click.option("--shm-size", default="", help="Size of /dev/shm of the RUN containers")
@click.option("-m", "--memory", default="", help="Memory limit of the RUN containers")
@click.option("--memory-swap", default="", help="Memory plus swap limit ('-1': unlimited swap)")
@click.option("--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
@click.option("--cpu-quota", type=int, default=0, help="Limit the CPU CFS quota")
@click.option("--cpu-period", type=int, default=0, help="Limit the CPU CFS period")
@click.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
@click.option("--cgroup-parent", default="", help="Parent cgroup of the RUN containers")
@click.option("--ulimit", "ulimits", multiple=True, help="Ulimit of the RUN containers (name=soft[:hard])")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers after a successful build")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success")
@click.pass_obj
def build(opts: Any, path: str, tags: tuple[str, ...], file_: str | None, build_args: tuple[str, ...],
          labels: tuple[str, ...], target: str, secret_specs: tuple[str, ...], network: str,
          add_hosts: tuple[str, ...], cache_from: tuple[str, ...], platform: str, pull: bool,
          shm_size: str, memory: str, memory_swap: str, cpu_shares: int, cpu_quota: int,
          cpu_period: int, cpuset_cpus: str, cgroup_parent: str, ulimits: tuple[str, ...],
          no_cache: bool, rm: bool, force_rm: bool, quiet: bool) -> None:
    """Build an image from a Dockerfile: PATH is a directory (sent as a tar, with the ignore
    file applied), or a git repository or http(s) URL the daemon fetches."""
    from dockyard.core.builder.context import tar_context
    from dockyard.core.builder.remote import is_git, is_url

    from .runopts import ram_in_bytes
    params: dict[str, Any] = {}
    data = b""
    if is_git(path) or is_url(path):
        params["remote"] = path
        dockerfile = file_ or "Dockerfile"
    elif not os.path.isdir(path):
        raise click.ClickException(f"unable to prepare context: path {path!r} not found")
    else:
        ctx = os.path.abspath(path)
        dockerfile, extra = _dockerfile(ctx, file_)
        data = tar_context(ctx, dockerfile, extra)
    args: dict[str, str] = {}
    for a in build_args:
        k, eq, v = a.partition("=")
        if eq:
            args[k] = v
        elif k in os.environ:
            args[k] = os.environ[k]
    label_map = dict((lb.partition("=")[0], lb.partition("=")[2]) for lb in labels)
    params.update({
        "t": list(tags) or None, "dockerfile": dockerfile,
        "buildargs": json.dumps(args) if args else None,
        "labels": json.dumps(label_map) if label_map else None,
        "nocache": "1" if no_cache else None, "rm": "1" if rm else "0",
        "forcerm": "1" if force_rm else None, "q": "1" if quiet else None,
        "target": target or None, "networkmode": network or None,
        "extrahosts": list(add_hosts) or None,
        "cachefrom": json.dumps(list(cache_from)) if cache_from else None,
        "platform": platform or None, "pull": "1" if pull else None,
        "shmsize": ram_in_bytes(shm_size) if shm_size else None,
        "memory": ram_in_bytes(memory) if memory else None,
        "memswap": (-1 if memory_swap == "-1" else ram_in_bytes(memory_swap)) if memory_swap else None,
        "cpushares": cpu_shares or None, "cpuquota": cpu_quota or None, "cpuperiod": cpu_period or None,
        "cpusetcpus": cpuset_cpus or None, "cgroupparent": cgroup_parent or None,
        "ulimits": json.dumps([_ulimit(u) for u in ulimits]) if ulimits else None,
    })
    headers = {"Content-Type": "application/x-tar"}
    if secret_specs:
        values = dict(_secret(s) for s in secret_specs)
        doc = json.dumps({k: base64.b64encode(v).decode() for k, v in values.items()}).encode()
        headers[SECRETS_HEADER] = base64.urlsafe_b64encode(doc).decode()
    if cache_from or pull:
        configs = {registry_of(r): json.loads(base64.urlsafe_b64decode(auth_header(registry_of(r))))
                   for r in cache_from}
        headers["X-Registry-Config"] = base64.urlsafe_b64encode(json.dumps(configs).encode()).decode()
    if not quiet and data:
        print(f"Sending build context to Docker daemon  {len(data) / 1000:.4g}kB", flush=True)
    resp = opts.client.request("POST", "/build", params, body=data, headers=headers)
    _stream(resp, False)  # with -q the daemon sends only the image id


@click.group(name="builder")
def builder_group() -> None:
    """Manage builds."""


@builder_group.command(name="prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused build cache, not just dangling ones")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=24h')")
@click.option("--keep-storage", default="", help="Amount of disk space to keep for cache")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def builder_prune(opts: Any, all_: bool, filters: tuple[str, ...], keep_storage: str, force: bool) -> None:
    """Remove build cache."""
    from .runopts import ram_in_bytes
    if not force:
        what = "all build cache" if all_ else "all dangling build cache"
        click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?",
                      abort=True)
    flt: dict[str, dict[str, bool]] = {}
    for f in filters:
        k, _, v = f.partition("=")
        flt.setdefault(k, {})[v] = True
    params = {"all": "1" if all_ else None, "filters": json.dumps(flt) if flt else None,
              "keep-storage": ram_in_bytes(keep_storage) if keep_storage else None}
    resp = opts.client.request("POST", "/build/prune", params)
    body = resp.json()
    for cid in body.get("CachesDeleted") or []:
        print(f"Deleted build cache objects:\n{cid}" if cid == (body["CachesDeleted"] or [""])[0] else cid)
    print(f"Total reclaimed space: {body.get('SpaceReclaimed', 0)}B")
