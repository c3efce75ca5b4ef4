"""COPY, ADD and WORKDIR: the steps that write files into a new layer.

COPY reads the build context (ignore patterns applied), another stage or an image
(``--from``), or here-documents; ADD also fetches http(s) URLs (``--checksum``), git
repositories (``--keep-git-dir``) and unpacks local archives (unless ``--unpack=false``; a
downloaded archive only with ``--unpack=true``).
``--chown`` (names from the image's /etc/passwd and /etc/group), ``--chmod`` (octal or
symbolic), ``--exclude``, ``--parents``. ``--link`` builds the layer on an empty file system,
so that its content never depends on the image below it and the layer is reused on top of any
parent (BuildKit's rebase).
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
from typing import TYPE_CHECKING, Any, AsyncIterator

from .. import remote
from ..context import is_archive, read_ignore
from ..errors import BuildError
from ..output import StepOutput
from ..parse import Heredoc, Instruction, _raw_words
from ..shell import parse_bool
from .chmod import parse_chmod
from .copyfs import CopyPlan, copy_into, make_dirs
from .sources import Src, digest, resolve

if TYPE_CHECKING:
    from ..stage import StageRun

_MARKER = re.compile(r"^\d*<<")


async def do_copy(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    await _copy(st, ins, out, "COPY")


async def do_add(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    await _copy(st, ins, out, "ADD")


def _arguments(st: "StageRun", ins: Instruction) -> tuple[list[str | Heredoc], str]:
    """The sources (words, or here-documents in their places) and the destination."""
    j = ins.json
    if j is not None:
        words: list[str | Heredoc] = [st.word(a) for a in j]
    else:
        docs = list(ins.heredocs)
        words = []
        for raw in _raw_words(ins.args):
            if docs and _MARKER.match(raw):
                words.append(docs.pop(0))
            else:
                words.extend(st.words(raw))
    if len(words) < 2:
        raise BuildError(f"{ins.cmd} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined.")
    dest = words[-1]
    if isinstance(dest, Heredoc):
        raise BuildError(f"{ins.cmd}: the destination cannot be a here-document")
    return words[:-1], dest


async def _copy(st: "StageRun", ins: Instruction, out: StepOutput, name: str) -> None:
    b = st.b
    sources, dest = _arguments(st, ins)
    workdir = st.cfg.get("WorkingDir") or "/"
    dest_abs = posixpath.normpath(posixpath.join(workdir, dest))
    into_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    if len(sources) > 1 and not into_dir:
        raise BuildError(f"When using {name} with more than one source file, the destination must "
                         "be a directory and end with a /")
    chmod_text = st.word(ins.flag("chmod"))
    plan = CopyPlan(name=name, srcs=[], dest=dest_abs, into_dir=into_dir,
                    chown=st.word(ins.flag("chown")),
                    chmod=parse_chmod(chmod_text) if chmod_text else None,
                    exclude=read_ignore("\n".join(st.word(e) for e in ins.flags.get("exclude", []))),
                    parents=parse_bool(ins.flag("parents", "false"), "--parents"))
    async with _sources(st, ins, sources, name) as (srcs, desc):
        plan.srcs = srcs
        content = await b.thread(digest, srcs, plan.exclude)
        kind = "multi" if len(srcs) > 1 else "dir" if srcs[0].is_dir else "file"
        created_by = f"/bin/sh -c #(nop) {name} {kind}:{content} in {dest_abs} "
        flags = " ".join(f"--{k}={v}" for k, vs in sorted(ins.flags.items()) for v in vs)
        text = f"#(nop) {name} {flags} {desc} in {dest_abs} into_dir={into_dir}"
        if parse_bool(ins.flag("link", "false"), "--link"):
            await _linked(st, out, plan, text, created_by, content)
            return

        async def make() -> str:
            return await b.thread(b.committer.layer_from, st.image,
                                  lambda root: copy_into(root, plan, b.id_map, b.tmp),
                                  st.cfg, created_by, st.author)
        await st.cached(out, text, created_by, make, content)


@contextlib.asynccontextmanager
async def _sources(st: "StageRun", ins: Instruction, sources: list[str | Heredoc],
                   name: str) -> AsyncIterator[tuple[list[Src], str]]:
    """The sources of one COPY/ADD, and a description of them for the cache key."""
    b = st.b
    checksum = st.word(ins.flag("checksum"))
    want = remote.parse_checksum(checksum) if checksum else None
    unpack = parse_bool(ins.flag("unpack", "true"), "--unpack")
    work = tempfile.mkdtemp(dir=b.tmp, prefix="src-")
    mounted: list[str] = []
    try:
        srcs: list[Src] = []
        desc: list[str] = []
        from_ = ins.flag("from")
        if from_:
            image = await b.from_image(ins, b.from_value(ins))
            rw, root = await b.thread(b.committer.scratch, image)
            mounted.append(rw)
            srcs = await b.thread(resolve, root, [s for s in sources if isinstance(s, str)], [], name, True)
            desc.append(f"from={image}")
        for s in sources:
            if isinstance(s, Heredoc):
                srcs.append(_heredoc(st, s, work))
                desc.append(f"heredoc:{s.name}")
            elif from_:
                desc.append(s)
            elif name == "ADD" and (remote.is_git(s) or remote.is_url(s)):
                src = await _remote(st, ins, s, want, work)
                # a download is unpacked only when asked (--unpack=true), as BuildKit
                src.archive = ins.has("unpack") and unpack and not src.is_dir and \
                    await b.thread(is_archive, src.host)
                srcs.append(src)
                desc.append(s)
            else:
                if want is not None:
                    raise BuildError("checksum can't be specified for local sources: " + s)
                found = await b.thread(resolve, b.ctx.root, [s], b.ctx.ignore, name)
                for src in found:
                    src.archive = name == "ADD" and unpack and not src.is_dir and \
                        await b.thread(is_archive, src.host)
                srcs += found
                desc.append(s)
        yield srcs, " ".join(desc)
    finally:
        for rw in mounted:
            await b.thread(b.committer.drop, rw)
        await b.thread(remote.remove_quietly, work)


def _heredoc(st: "StageRun", doc: Heredoc, work: str) -> Src:
    data = doc.text()
    if doc.expand:
        data = st.b.lexer.word(data, st.env()) if "$" in data else data
    d = tempfile.mkdtemp(dir=work, prefix="heredoc-")
    path = os.path.join(d, "content")
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return Src(root=d, rel="content", host=path, ignore=[], name=doc.name, mode=0o644)


async def _remote(st: "StageRun", ins: Instruction, src: str, want: str | None, work: str) -> Src:
    if remote.is_git(src):
        keep = parse_bool(ins.flag("keep-git-dir", "false"), "--keep-git-dir")
        root, commit = await remote.git_checkout(src, work, keep_git_dir=keep)
        if want is not None and commit != want and not commit.startswith(want):
            raise BuildError(f"{src}: commit {commit} does not match the checksum {want}")
        return Src(root=root, rel=".", host=root, ignore=[])
    got = await remote.download(src, work, want)
    return Src(root=os.path.dirname(got.path), rel=got.name, host=got.path,
               ignore=[], name=got.name, mode=0o600, mtime=got.mtime)


async def _linked(st: "StageRun", out: StepOutput, plan: CopyPlan, text: str, created_by: str,
                  content: str) -> None:
    """``--link``: the layer is made on an empty file system and kept (as a one-layer image)
    under a key that ignores the parent, so a new parent reuses it as it is."""
    from .. import cache as cachemod
    b = st.b
    link_key = cachemod.key("link", text, content, plan.chown)

    async def make() -> str:
        layer_image = b.cache.local(link_key)
        if layer_image is None:
            layer_image = await b.thread(b.committer.layer_from, None,
                                         lambda root: copy_into(root, plan, b.id_map, b.tmp),
                                         {}, created_by)
            b.cache.put(link_key, layer_image)
        else:
            await out.line(f" ---> Reusing the linked layer of {layer_image[7:19]}")
        return await b.thread(_rebase, b, st, layer_image, created_by)
    await st.cached(out, text, created_by, make, content)


def _rebase(b: Any, st: "StageRun", layer_image: str, created_by: str) -> str:
    """``layer_image``'s one layer on top of the stage's image."""
    diff_id = b.images.config(layer_image)["rootfs"]["diff_ids"][-1]
    blobs = b.images.layer_blobs(diff_id)
    if not blobs:
        raise BuildError(f"the linked layer {diff_id} has no stored blob")
    top = b.committer.top(st.image)
    with open(b.images.blobs.path(blobs[0]["digest"]), "rb") as f:
        chain = b.images.register_layer(f, top)
    from dockyard.hookspecs.host.timefmt import rfc3339
    entry = {"created": rfc3339(), "created_by": created_by}
    return b.committer.make(st.image, st.cfg, entry, chain, st.author)


async def do_workdir(st: "StageRun", ins: Instruction, out: StepOutput) -> None:
    b = st.b
    w = st.word(ins.args)
    if not w:
        raise BuildError("WORKDIR requires exactly one argument")
    path = posixpath.normpath(posixpath.join(st.cfg.get("WorkingDir") or "/", w))
    st.cfg["WorkingDir"] = path
    created_by = "/bin/sh -c #(nop) WORKDIR " + path

    def fill(root: str) -> bool:
        from .copyfs import is_dir_in
        if is_dir_in(root, path):
            return False
        make_dirs(root, path, None, b.id_map)
        return True

    async def make() -> str:
        return await b.thread(b.committer.layer_from, st.image, fill, st.cfg, created_by, st.author)
    await st.cached(out, "#(nop) WORKDIR " + path, created_by, make)
