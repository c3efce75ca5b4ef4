"""RUN: a container of the stage's image runs the command through the exec driver; its
changes become the step's layer.

Shell and exec forms; here-documents (``RUN <<EOF`` runs the document with the shell, or as a
script when it starts with ``#!``; a command with documents is handed to the shell whole);
``--mount`` (:mod:`..mounts`), ``--network=default|none`` (``host`` only when the build itself
runs with ``networkmode=host``), ``--security=sandbox``. The build's options apply to every
step container: ``networkmode``, ``extrahosts``, ``shmsize``, memory and CPU limits,
``cgroupparent``, ``ulimits``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import shutil
import stat
from typing import TYPE_CHECKING, Any

from dockyard.hookspecs.errors import DockyardError
from dockyard.hookspecs.host.tarsafe import SecureRoot

from .. import mounts as mountmod
from ..errors import BuildError, StepFailed
from ..output import StepOutput
from ..parse import Instruction

if TYPE_CHECKING:
    from ..stage import StageRun

log = logging.getLogger(__name__)
BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
#: mount points every container has (made in its rootfs when the image lacks them)
STANDARD_TARGETS = ("/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts")
SCRIPT_DIR = "/dev/pipes"


def command(st: "StageRun", ins: Instruction, script_dir: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The process's arguments, and a mount for a ``#!`` here-document script."""
    j = ins.json
    if j is not None:
        return j, []
    if not ins.heredocs:
        return [*st.shell, ins.args], []
    doc = ins.heredocs[0]
    if len(ins.heredocs) == 1 and ins.args.strip().startswith("<<") and \
            ins.args.strip().lstrip("<-").strip("'\" ") == doc.name:
        data = doc.text()
        if data.startswith("#!"):
            path = os.path.join(script_dir, doc.name)
            with open(path, "w") as f:
                f.write(data)
            os.chmod(path, 0o755)
            return [posixpath.join(SCRIPT_DIR, doc.name)], [
                {"Type": "bind", "Source": path, "Target": posixpath.join(SCRIPT_DIR, doc.name),
                 "ReadOnly": True}]
        return [*st.shell, data], []
    # the shell reads the documents itself
    text = ins.args + "".join(f"\n{d.content}{d.name}" for d in ins.heredocs)
    return [*st.shell, text], []


def network_mode(st: "StageRun", ins: Instruction) -> str:
    b = st.b
    build_mode = b.opts.network_mode or "default"
    flag = ins.flag("network", "default")
    if flag == "none":
        return "none"
    if flag == "host" and build_mode != "host":
        raise BuildError("RUN --network=host needs the network.host entitlement, which the "
                         "classic build API cannot grant: build with networkmode=host instead")
    if ins.flag("security", "sandbox") == "insecure":
        raise BuildError("RUN --security=insecure needs the security.insecure entitlement, which "
                         "the classic build API cannot grant")
    return build_mode


def host_config(st: "StageRun", mode: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    o = st.b.opts
    host: dict[str, Any] = {"NetworkMode": mode, "Mounts": mounts}
    for key, value in (("ExtraHosts", o.extra_hosts), ("ShmSize", o.shm_size), ("Memory", o.memory),
                       ("MemorySwap", o.memswap), ("CpuShares", o.cpu_shares),
                       ("CpuQuota", o.cpu_quota), ("CpuPeriod", o.cpu_period),
                       ("CpusetCpus", o.cpuset_cpus), ("CpusetMems", o.cpuset_mems),
                       ("CgroupParent", o.cgroup_parent), ("Ulimits", o.ulimits)):
        if value:
            host[key] = value
    return host


async def do_run(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    b = st.b
    if st.image is None:
        raise BuildError("RUN on an image built FROM scratch has no shell to run it in")
    mode = network_mode(st, ins)
    run_args = st.run_args()
    proxies = [f"{k}={v}" for k, v in sorted(b.opts.buildargs.items())
               if k in BUILTIN_ARGS and v is not None and k not in st.args]
    for k in st.args:
        if k in b.opts.buildargs:
            b.used_args.add(k)
    async with contextlib.AsyncExitStack() as stack:
        work = b.work_dir()
        stack.callback(_remove_tree, work)
        cmd, script = command(st, ins, work)
        prep = await mountmod.prepare(st, ins, stack)
        created_by = " ".join(cmd)
        if run_args:
            created_by = f"|{len(run_args)} {' '.join(run_args)} {created_by}"
        flags = {k: v for k, v in ins.flags.items() if k != "mount"}

        async def make() -> str:
            return await _run(st, out, cmd, run_args + proxies + prep.env, mode,
                              prep.mounts + script, prep.targets, created_by)
        await st.cached(out, "RUN " + json.dumps(cmd), created_by, make, run_args, prep.key, flags,
                        mode if mode in ("none", "host") else "default")


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


async def _run(st: "StageRun", out: StepOutput, cmd: list[str], env: list[str], mode: str,
               mounts: list[dict[str, Any]], targets: list[str], created_by: str) -> str:
    b = st.b
    cs = b.d.containers
    body = {"Image": st.image, "Cmd": cmd, "Entrypoint": [""], "Env": env,
            "User": st.cfg.get("User", ""), "WorkingDir": st.cfg.get("WorkingDir", ""), "Labels": {},
            "HostConfig": host_config(st, mode, mounts)}
    try:
        cid = (await cs.create(body, None))["Id"]
    except DockyardError as exc:
        raise BuildError(f"failed to create the step's container: {exc.message}") from None
    ok = failed = False
    try:
        await out.line(f" ---> Running in {cid[:12]}")
        wanted = [t for t in (*STANDARD_TARGETS, *targets) if not t.startswith("/dev/")]
        stubs = await b.thread(_missing, b.d.graph, cid, wanted)
        exit_fut = cs.wait_future(cid, "next-exit")
        await cs.start(cid)
        async for stream, data in cs.logs(cid, stdout=True, stderr=True, follow=True, tail="all",
                                          since=0, until=0, timestamps=False):
            text = data.decode(errors="replace")
            # stderr in red, as dockerd's legacy builder writes it (its StderrWriter)
            await out.data(f"\x1b[91m{text}\x1b[0m" if stream == 2 else text)
        code = await exit_fut
        await out.flush()
        if code != 0:
            failed = True
            shown = " ".join(cmd)
            raise StepFailed(f"The command '{shown}' returned a non-zero code: {code}", code)
        await b.thread(_remove_stubs, b.d.graph, cid, stubs)
        image = await b.thread(b.committer.commit_rw, cid, st.image, st.cfg, created_by, st.author)
        ok = True
        return image
    finally:
        # as dockerd: a step's container goes with rm (the default) when the step succeeded,
        # stays for the user to look into when its command failed (unless forcerm), and goes
        # whenever the build ended otherwise (cancelled, an error of the engine)
        if b.opts.forcerm or (b.opts.rm if ok else not failed):
            try:
                await cs.remove(cid, force=True, volumes=True)
            except DockyardError as exc:
                log.warning("build step container %s was not removed: %s", cid[:12], exc.message)
            if ok:
                await out.line(f"Removing intermediate container {cid[:12]}")


def _parent_fd(root: str, parts: list[str]) -> int | None:
    """An fd of directory ``parts`` inside ``root`` (links followed inside it), or None."""
    try:
        with SecureRoot(root, label="build step") as sroot:
            return sroot.open_dir(parts)
    except (OSError, DockyardError):
        return None


def _missing(graph: Any, cid: str, paths: list[str]) -> list[str]:
    """The paths (and parents) of ``paths`` the container's file system does not have yet:
    the mount points its start will make."""
    root = graph.get(cid)
    try:
        out: list[str] = []
        for path in paths:
            parts = [p for p in path.split("/") if p]
            for k in range(1, len(parts) + 1):
                fd = _parent_fd(root, parts[:k - 1])
                if fd is None:
                    break
                try:
                    os.stat(parts[k - 1], dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    # this one is missing, and so is everything below it
                    out += ["/" + "/".join(parts[:j]) for j in range(k, len(parts) + 1)]
                    break
                except OSError:
                    break
                finally:
                    os.close(fd)
        return sorted(set(out))
    finally:
        graph.put(cid)


def _remove_stubs(graph: Any, cid: str, stubs: list[str]) -> None:
    """Remove the mount points a step's container made, when they are still empty."""
    if not stubs:
        return
    log.debug("step container %s: removing the mount points it made: %s", cid[:12], stubs)
    root = graph.get(cid)
    try:
        for sub in sorted(stubs, key=lambda p: p.count("/"), reverse=True):
            parts = [p for p in sub.split("/") if p]
            fd = _parent_fd(root, parts[:-1])
            if fd is None:
                continue
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(parts[-1], dir_fd=fd)
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(parts[-1], dir_fd=fd)
            except OSError as exc:
                log.debug("mount point %s stays: %s", sub, exc)
            finally:
                os.close(fd)
    finally:
        graph.put(cid)
