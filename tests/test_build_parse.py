"""The builder's pure parts, without a daemon: the Dockerfile parser and its checks, the word
lexer, build checks (``# check=``), ``--mount`` and ``--chmod`` values, ignore patterns, the
stage graph and its scheduler."""
from __future__ import annotations

import asyncio
import os

import pytest

from dockyard.core.builder import graph, lint
from dockyard.core.builder.context import ignored, read_ignore
from dockyard.core.builder.errors import BuildError, ParseError
from dockyard.core.builder.mounts import parse_mount
from dockyard.core.builder.parse import parse
from dockyard.core.builder.shell import Lexer, key_values
from dockyard.core.builder.steps.chmod import parse_chmod


# -- the parser --------------------------------------------------------------------------------
def test_stages_flags_and_line_numbers() -> None:
    df = parse("# syntax=docker/dockerfile:1\n"
               "ARG BASE=busybox\n"
               "FROM $BASE AS Build\n"
               "RUN --mount=type=cache,target=/c \\\n"
               "    --network=none echo \\\n"
               "    # a comment inside\n"
               "    hi\n"
               "FROM busybox\n"
               "COPY --from=build --chmod=0644 /a /b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    assert [i.args for i in df.meta_args] == ["BASE=busybox"]
    build, final = df.stages
    assert (build.name, build.base, build.label) == ("build", "$BASE", "build")
    run = build.instructions[0]
    assert run.flags == {"mount": ["type=cache,target=/c"], "network": ["none"]}
    assert run.args == "echo     hi" and (run.line, run.end_line) == (4, 7)
    copy = final.instructions[0]
    assert copy.flag("from") == "build" and copy.line == 9 and final.label == "stage-1"
    assert df.stage("BUILD") is build and df.stage("1") is final and df.stage("nope") is None


@pytest.mark.parametrize("text,line,words", [
    ("FROM busybox\nRUN true\n\n\n\n\nFOO bar\n", 7, "unknown instruction: FOO"),
    ("FROM busybox\nCOPY --nope a b\n", 2, "unknown flag: --nope"),
    ("FROM busybox\nCOPY --from=a --from=b x y\n", 2, "duplicate flag specified: --from"),
    ("FROM busybox\nCOPY --link=maybe a b\n", 2, "expecting boolean value"),
    ("FROM busybox\nRUN --network=wifi true\n", 2, "unsupported network mode"),
    ("FROM busybox\nRUN --mount=type=nfs,target=/x true\n", 2, "unsupported mount type"),
    ("FROM busybox\nRUN --mount=type=ssh true\n", 2, "cannot forward an SSH agent"),
    ("FROM busybox\nCOPY only-one\n", 2, "requires at least two arguments"),
    ("FROM busybox\nCOPY --chmod=u+z a b\n", 2, "invalid chmod value"),
    ("FROM busybox\nADD --checksum=md5:00 http://x/y /y\n", 2, "invalid checksum"),
    ("FROM busybox\nHEALTHCHECK --interval=soon CMD true\n", 2, "invalid --interval value"),
    ("FROM busybox\nSHELL /bin/bash -c\n", 2, "JSON form"),
    ("FROM busybox\nENV novalue\n", 2, "ENV must have two arguments"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM busybox AS 1st\n", 1, "invalid name for build stage"),
    ("FROM busybox AS a\nFROM busybox AS A\n", 2, "duplicate stage name"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("RUN true\n", 1, "no build stage in current context"),
    ("FROM busybox\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc"),
])
def test_errors_name_their_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse(text)
    assert exc.value.line == line
    assert exc.value.message.startswith(f"dockerfile parse error line {line}: ")
    assert words in exc.value.message


def test_empty_and_stageless() -> None:
    with pytest.raises(BuildError, match="cannot be empty"):
        parse("# only a comment\n\n")
    with pytest.raises(BuildError, match="no stages to build"):
        parse("ARG A=1\n")


def test_heredocs() -> None:
    df = parse("FROM busybox\n"
               "RUN <<EOF\necho one\necho two\nEOF\n"
               "COPY <<-'EOT' <<two /dst/\n\thello $X\n\tEOT\nsecond\ntwo\n"
               "RUN python3 <<EOF > /out\nprint(1)\nEOF\n"
               "CMD [\"true\"]\n")
    run, copy, run2, cmd = df.stages[0].instructions
    assert [(h.name, h.content, h.expand) for h in run.heredocs] == [("EOF", "echo one\necho two\n", True)]
    assert run.end_line == 5
    first, second = copy.heredocs
    assert (first.name, first.chomp, first.expand, first.text()) == ("EOT", True, False, "hello $X\n")
    assert (second.name, second.content) == ("two", "second\n")
    assert run2.heredocs[0].content == "print(1)\n" and cmd.line == 14


def test_escape_directive_and_continuations() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY a` b /dst/\n")
    run, copy = df.stages[0].instructions
    assert run.args == "echo a   b"
    assert Lexer(df.escape).words(copy.args, {}) == ["a b", "/dst/"]
    with pytest.raises(ParseError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM busybox\n")
    with pytest.raises(ParseError, match="invalid escape token"):
        parse("# escape=x\nFROM busybox\n")
    # a directive after the first instruction is a comment
    assert parse("FROM busybox\n# escape=`\n").escape == "\\"
    df = parse("FROM busybox\nRUN echo a \\\n\n  b\n")
    assert df.warnings == ["Empty continuation line found in: RUN echo a   b"]


# -- words ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("$A ${A}x '$A' \"$A\"", ["va", "vax", "$A", "va"]),
    ("${UNSET:-dflt} ${A:-dflt} ${A:+alt} ${UNSET:+alt}x", ["dflt", "va", "alt", "x"]),
    ("${EMPTY:-d} ${EMPTY-d}x", ["d", "x"]),
    ("${PATHV#*/} ${PATHV##*/} ${PATHV%/*} ${PATHV%%/*}", ["b/c.tar.gz", "c.tar.gz", "a/b", "a"]),
    ("${FILE/tar/zip} ${DOTS//./-}", ["c.zip.gz", "a-b-c"]),
    ("a\\ b \"q \\\"x\\\"\"", ["a b", 'q "x"']),
])
def test_lexer(text: str, want: list[str]) -> None:
    env = {"A": "va", "EMPTY": "", "PATHV": "a/b/c.tar.gz", "FILE": "c.tar.gz", "DOTS": "a.b.c"}
    assert Lexer().words(text, env) == want


def test_lexer_errors() -> None:
    with pytest.raises(BuildError, match="A: must be set"):
        Lexer().word("${A:?must be set}", {})
    with pytest.raises(BuildError, match="is not allowed to be empty"):
        Lexer().word("${A:?}", {"A": ""})
    with pytest.raises(BuildError, match="missing '}'"):
        Lexer().word("${A", {})
    assert Lexer().words("$A", None) == ["$A"]
    assert key_values("LABEL", 'a=1 "b c"="d e"', {}) == [("a", "1"), ("b c", "d e")]


# -- checks ---------------------------------------------------------------------------------------
def test_checks_and_the_check_directive() -> None:
    text = ("FROM busybox as Base\nMAINTAINER me\nENV K v\nCMD echo hi\nCMD echo again\n"
            "WORKDIR rel\nEXPOSE 80/TCP\nARG DB_PASSWORD\nfrom base\n")
    warnings, err = lint.run_checks(parse(text))
    names = {w.split(":")[0] for w in warnings}
    assert names == {"StageNameCasing", "FromAsCasing", "MaintainerDeprecated", "LegacyKeyValueFormat",
                     "JSONArgsRecommended", "MultipleInstructionsDisallowed", "WorkdirRelativePath",
                     "ExposeProtoCasing", "SecretsUsedInArgOrEnv", "ConsistentInstructionCasing"}
    assert err is None
    assert "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior " \
           "related to OS signals (line 4)" in warnings
    warnings, err = lint.run_checks(parse("# check=skip=JSONArgsRecommended,Nope;error=true\n"
                                          "FROM busybox\nCMD echo hi\n"))
    assert err is None and warnings == ["unknown check 'Nope' in the check directive"]
    _, err = lint.run_checks(parse("# check=error=true\nFROM busybox\nMAINTAINER x\n"))
    assert err is not None and err.message == "lint violation found for rules: MaintainerDeprecated"
    assert lint.run_checks(parse("# check=skip=all;error=true\nFROM busybox\nMAINTAINER x\n")) == ([], None)
    _, err = lint.run_checks(parse("# check=bogus\nFROM busybox\n"))
    assert err is not None and "invalid check option" in err.message


# -- values ---------------------------------------------------------------------------------------
def test_mount_values() -> None:
    m = parse_mount("type=cache,target=/root/.cache,sharing=locked,uid=1000,mode=0700")
    assert (m.type, m.target, m.sharing, m.uid, m.mode, m.readonly) == ("cache", "/root/.cache", "locked", 1000, 0o700, False)
    m = parse_mount("target=/src,source=app,rw")
    assert (m.type, m.readonly) == ("bind", False)
    assert parse_mount("type=bind,target=/x").readonly is True
    m = parse_mount("type=secret,id=tok,env=TOKEN,required")
    assert (m.id, m.env, m.required, m.target) == ("tok", "TOKEN", True, "")
    assert parse_mount("type=tmpfs,target=/t,size=64m").size == 64 << 20
    for bad, words in (("type=bind,target=/x,uid=1", "uid not allowed"),
                       ("type=secret,id=a,from=x", "should not have a from"),
                       ("type=cache,target=/c,sharing=nope", "unsupported sharing"),
                       ("type=bind,target=/x,from=$STAGE", "doesn't support variable expansion"),
                       ("type=bind,target=/x,colour=red", "unexpected key 'colour'"),
                       ("type=bind", "target is required"),
                       ("type=tmpfs,target=/t,size=huge", "invalid value for size")):
        with pytest.raises(BuildError, match=words):
            parse_mount(bad)
    # with an expander, variables are expanded
    assert parse_mount("type=cache,target=$DIR", lambda v: v.replace("$DIR", "/d")).target == "/d"


def test_chmod_values() -> None:
    assert parse_chmod("0640")(0o777, False) == 0o640
    f = parse_chmod("u+x,go-w")
    assert f(0o666, False) == 0o744
    assert parse_chmod("a=rX")(0o640, True) == 0o555
    assert parse_chmod("a=rX")(0o640, False) == 0o444
    with pytest.raises(BuildError):
        parse_chmod("999")


def test_ignore_patterns() -> None:
    pats = read_ignore("# comment\n*.log\n!keep.log\nbuild/\n**/secret*\n/docs/*.md\n")
    assert ignored("a.log", pats) and not ignored("keep.log", pats)
    assert ignored("build/x/y", pats) and ignored("deep/er/secret.txt", pats)
    assert ignored("docs/a.md", pats) and not ignored("docs/sub/a.md", pats)
    assert not ignored("src/a.py", pats)


# -- the graph -------------------------------------------------------------------------------------
def test_default_bound() -> None:
    assert [graph.default_limit(n) for n in (1, 2, 4, 16)] == [2, 3, 6, 18]


def test_needed_and_cycles() -> None:
    deps = {0: set(), 1: {0}, 2: set(), 3: {1, 2}, 4: {0}}
    assert graph.needed(deps, 3) == [0, 1, 2, 3]
    assert graph.needed(deps, 4) == [0, 4]
    with pytest.raises(BuildError, match="circular dependency"):
        graph.check_acyclic({0: {1}, 1: set()})


def test_scheduler_runs_independent_stages_together_and_in_order() -> None:
    events: list[str] = []
    both_started = asyncio.Event()
    running: set[int] = set()

    async def build(i: int) -> str:
        events.append(f"start {i}")
        running.add(i)
        if {0, 1} <= running:
            both_started.set()
        if i in (0, 1):
            # each of the two independent stages waits for the other: run one after the other,
            # they would wait forever (the guard below fails the test instead)
            await asyncio.wait_for(both_started.wait(), 30)
        running.discard(i)
        events.append(f"end {i}")
        return f"image{i}"

    got = asyncio.run(graph.run([0, 1, 2], {0: set(), 1: set(), 2: {0, 1}}, build, limit=2))
    assert got == {0: "image0", 1: "image1", 2: "image2"}
    assert events.index("start 2") > max(events.index("end 0"), events.index("end 1"))


def test_scheduler_bound_and_failure_cancels_the_rest() -> None:
    active, peak = [0], [0]
    cancelled: list[int] = []

    async def build(i: int) -> int:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        try:
            if i == 1:
                await asyncio.sleep(0)
                raise BuildError("stage 1 failed")
            await asyncio.sleep(30)
            return i
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        finally:
            active[0] -= 1

    with pytest.raises(BuildError, match="stage 1 failed"):
        asyncio.run(graph.run([0, 1, 2, 3], {0: set(), 1: set(), 2: set(), 3: {1}}, build, limit=2))
    assert peak[0] <= 2
    assert 0 in cancelled


def test_step_errors_name_their_line_without_calling_them_parse_errors() -> None:
    from dockyard.core.builder.errors import StepError, StepFailed, at_line
    err = at_line(BuildError("COPY failed: stat x: file does not exist"), 4)
    assert isinstance(err, StepError) and err.message == \
        "Dockerfile line 4: COPY failed: stat x: file does not exist"
    assert at_line(err, 9) is err
    failed = StepFailed("The command 'x' returned a non-zero code: 3", 3)
    assert at_line(failed, 2) is failed


def test_cache_mounts_made_while_the_first_sweep_runs_survive_it(tmp_path) -> None:
    """Two stages start together: the first ``use`` sweeps directories without a row while the
    second makes its cache directory. The sweep's list of rows is read slowly here (a real
    SQLite state, its first list of cache mount ids held back), so a second caller let through during the
    sweep would see its fresh directory removed under it."""
    import threading
    import time

    from dockyard.core.builder.mounts import CacheMounts
    from dockyard.core.state import State

    class SlowSweep(State):
        held = threading.Event()

        def cache_mount_ids(self) -> set[str]:
            if not self.held.is_set():
                self.held.set()
                ids = super().cache_mount_ids()
                time.sleep(0.5)  # the other stage makes its directory now
                return ids
            return super().cache_mount_ids()

    state = SlowSweep(str(tmp_path / "state.db"))
    mounts = CacheMounts(state, str(tmp_path / "mounts"))
    spec = parse_mount("type=cache,target=/rv,id=rv")

    async def stage(delay: float) -> bool:
        await asyncio.sleep(delay)
        async with mounts.use("rv", spec, "rendezvous") as path:
            await asyncio.sleep(0.7)  # the step runs
            return os.path.isdir(path)

    async def both() -> list[bool]:
        return list(await asyncio.gather(stage(0), stage(0.1)))

    try:
        assert asyncio.run(both()) == [True, True]
    finally:
        state.close()
