"""``dockyard cp``: files between a container and the local filesystem, through the archive
endpoints (docker's words for what it refuses)."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from dockyard.hookspecs.errors import DockyardError

from .client import Client, DaemonError

from .cmdutil import _err, _p


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
        assert dc is not None  # one of SRC and DEST names a container (checked above)
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
