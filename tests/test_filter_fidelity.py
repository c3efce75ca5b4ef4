"""Filters as a script written for Docker sees them: the docker CLI 28 and docker-py against
dockyardd. Each list and prune endpoint, both filter encodings (the CLI sends
``{"k": {"v": true}}``, docker-py ``{"k": ["v"]}``), refusals in dockerd's words, and the space
prune and df report.

Everything a test makes carries a label or name unique to the run, and prunes are narrowed to
that label, so the tests share one daemon without touching each other's objects."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from typing import Any, Iterator

import docker as dockerpy
import pytest

from conftest import Daemon, running_daemon

DOCKER = shutil.which("docker")
pytestmark = [pytest.mark.docker_cli,
              pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]


def docker(d: Daemon, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=os.path.join(d.root, "docker-config"),
               DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0")  # the classic builder
    return subprocess.run([DOCKER, *args], capture_output=True, timeout=timeout, env=env)


def ok(d: Daemon, *args: str) -> str:
    r = docker(d, *args)
    assert r.returncode == 0, (args, r.stderr.decode())
    return r.stdout.decode()


def lines(d: Daemon, *args: str) -> list[str]:
    return ok(d, *args).split()


def refused(d: Daemon, *args: str) -> str:
    """The CLI fails with exit 1 and prints the daemon's message (however it is framed)."""
    r = docker(d, *args)
    assert r.returncode == 1, (args, r.stdout, r.stderr)
    return r.stderr.decode()


def enc(filters: dict[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(filters))


def uid() -> str:
    return os.urandom(4).hex()


@pytest.fixture(scope="module")
def d(busybox_tar: str) -> Iterator[Daemon]:
    with running_daemon(busybox_tar) as daemon:
        yield daemon


@pytest.fixture
def client(d: Daemon) -> Iterator[Any]:
    c = dockerpy.DockerClient(base_url=d.host, version="auto", timeout=120)
    yield c
    c.close()


def commit(d: Daemon, tag: str, *changes: str, content: str = "") -> str:
    """An image on top of busybox (busybox is its parent, as with dockerd), with ``content``
    written to /made (a layer of its own) and Dockerfile ``changes``; its id."""
    name = "mk" + uid()
    ok(d, "run", "--name", name, "--network", "none", "busybox", "sh", "-c",
       f"printf '%s' '{content}' > /made")
    try:
        args = [a for c in changes for a in ("-c", c)]
        return ok(d, "commit", *args, name, tag).strip()
    finally:
        docker(d, "rm", "-f", name)


# -- docker ps --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trio(d: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three containers of one group, made in this order: ``a`` running (volume, own network,
    published and exposed ports, a health check), ``b`` exited 3 (a bind mount), ``c`` created
    from an image built on busybox."""
    g = uid()
    t = {"g": g, "a": "a" + g, "b": "b" + g, "c": "c" + g, "vol": "vol" + g, "net": "net" + g,
         "img": f"child{g}:1"}
    bind = str(tmp_path_factory.mktemp("bind"))
    ok(d, "network", "create", t["net"])
    commit(d, t["img"])
    try:
        ok(d, "run", "-d", "--name", t["a"], "--label", f"grp={g}", "--label", "tier=front",
           "-v", f"{t['vol']}:/data", "--network", t["net"], "-p", "127.0.0.1::8080",
           "--expose", "7000", "--health-cmd", "true", "--health-interval", "1s",
           "busybox", "sleep", "600")
        r = docker(d, "run", "--name", t["b"], "--label", f"grp={g}", "-v", f"{bind}:/mnt",
                   "--network", "none", "busybox", "sh", "-c", "exit 3")
        assert r.returncode == 3, r.stderr
        ok(d, "create", "--name", t["c"], "--label", f"grp={g}", t["img"], "true")
        t["port"] = ok(d, "port", t["a"], "8080/tcp").strip().rsplit(":", 1)[1]
        t["net_id"] = ok(d, "network", "inspect", "-f", "{{.Id}}", t["net"]).strip()
        t["a_id"] = ok(d, "inspect", "-f", "{{.Id}}", t["a"]).strip()
        deadline = time.monotonic() + 120
        while ok(d, "inspect", "-f", "{{.State.Health.Status}}", t["a"]).strip() != "healthy":
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.5)
        yield t
    finally:
        docker(d, "rm", "-f", t["a"], t["b"], t["c"])
        docker(d, "network", "rm", t["net"])
        docker(d, "volume", "rm", t["vol"])
        docker(d, "rmi", t["img"])


def ps(d: Daemon, t: dict[str, str], *filters: str) -> list[str]:
    """Names of the group's containers ``docker ps -a`` lists with ``filters``, newest first."""
    args = [a for f in (f"label=grp={t['g']}", *filters) for a in ("--filter", f)]
    return [n[:1] for n in lines(d, "ps", "-a", "--format", "{{.Names}}", *args)]


def test_ps_volume_network_ports(d: Daemon, trio: dict[str, str]) -> None:
    t = trio
    assert ps(d, t, "volume=" + t["vol"]) == ["a"]
    assert ps(d, t, "volume=/data") == ["a"]          # by destination
    assert ps(d, t, "volume=/mnt") == ["b"]
    assert ps(d, t, "volume=nosuchvolume") == []
    assert ps(d, t, "network=" + t["net"]) == ["a"]
    assert ps(d, t, "network=" + t["net_id"][:12]) == ["a"]
    assert ps(d, t, "network=none") == ["b"]
    assert ps(d, t, "publish=" + t["port"]) == ["a"]
    assert ps(d, t, f"publish={t['port']}/udp") == []
    assert ps(d, t, "expose=8080") == ["a"]
    assert ps(d, t, "expose=7000-7001/tcp") == ["a"]
    assert ps(d, t, "publish=1") == []


def test_ps_state_health_order_and_names(d: Daemon, trio: dict[str, str]) -> None:
    t = trio
    assert ps(d, t) == ["c", "b", "a"]
    assert ps(d, t, "status=exited") == ["b"] and ps(d, t, "status=created") == ["c"]
    assert ps(d, t, "exited=3") == ["b"] and ps(d, t, "exited=0") == []
    assert ps(d, t, "health=healthy") == ["a"] and ps(d, t, "health=none") == ["c", "b"]
    assert ps(d, t, "is-task=true") == [] and ps(d, t, "is-task=false") == ["c", "b", "a"]
    assert ps(d, t, "before=" + t["c"]) == ["b", "a"]
    assert ps(d, t, "since=" + t["a"]) == ["c", "b"]
    assert ps(d, t, "name=^" + t["a"] + "$") == ["a"]      # a regular expression
    assert ps(d, t, "name=" + t["g"]) == ["c", "b", "a"]
    assert ps(d, t, "id=" + t["a_id"][:10]) == ["a"]
    # without -a: running ones, unless status asks otherwise
    assert [n[:1] for n in lines(d, "ps", "--format", "{{.Names}}", "--filter",
                                 f"label=grp={t['g']}")] == ["a"]


def test_ps_ancestor_tags_ids_and_descendants(d: Daemon, trio: dict[str, str]) -> None:
    t = trio
    busybox = ok(d, "image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    assert ps(d, t, "ancestor=busybox") == ["c", "b", "a"]   # c's image is built on busybox
    assert ps(d, t, "ancestor=busybox:latest") == ["c", "b", "a"]
    assert ps(d, t, "ancestor=" + busybox) == ["c", "b", "a"]
    assert ps(d, t, "ancestor=" + busybox[7:19]) == ["c", "b", "a"]
    assert ps(d, t, "ancestor=" + t["img"]) == ["c"]
    assert ps(d, t, "ancestor=nosuchimage") == []


def test_ps_q_with_a_filter_names_only_the_matches(d: Daemon, trio: dict[str, str]) -> None:
    """What ``docker rm -f $(docker ps -aq -f volume=x)`` relies on."""
    ids = lines(d, "ps", "-aq", "--no-trunc", "--filter", "volume=" + trio["vol"])
    assert ids == [trio["a_id"]]
    assert lines(d, "ps", "-aq", "--filter", "volume=nosuch" + uid()) == []


def test_ps_refuses_bad_filters(d: Daemon) -> None:
    assert "invalid filter 'status=bogus'" in refused(d, "ps", "-a", "--filter", "status=bogus")
    assert "invalid filter 'bogus'" in refused(d, "ps", "--filter", "bogus=1")
    assert "invalid filter 'health=sick'" in refused(d, "ps", "--filter", "health=sick")
    assert "should not contain ':'" in refused(d, "ps", "--filter", "publish=1:2")
    assert "invalid filter 'label!'" in refused(d, "ps", "--filter", "label!=a")


def test_docker_py_list_filters_old_encoding(client: Any, trio: dict[str, str]) -> None:
    """docker-py sends ``{"key": ["value"]}``."""
    t = trio

    def names(**flt: Any) -> list[str]:
        cs = client.containers.list(all=True, filters={"label": f"grp={t['g']}", **flt})
        return [c.name[:1] for c in cs]
    assert names(volume=t["vol"]) == ["a"]
    assert names(network=t["net"]) == ["a"]
    assert names(status="exited") == ["b"]
    assert names(ancestor="busybox") == ["c", "b", "a"]
    assert names(name=f"^{t['b']}$") == ["b"]
    with pytest.raises(dockerpy.errors.APIError) as exc:
        client.containers.list(filters={"status": "bogus"})
    assert exc.value.status_code == 400 and "invalid filter 'status=bogus'" in str(exc.value)


# -- prunes: label!= keeps what is labelled ---------------------------------------------------------
def test_container_prune_label_not_and_until(d: Daemon) -> None:
    g = uid()
    keep, drop = "keep" + g, "drop" + g
    for name, labels in ((keep, ["--label", "keep=yes"]), (drop, [])):
        ok(d, "create", "--name", name, "--label", f"grp={g}", *labels, "busybox", "true")
    try:
        out = ok(d, "container", "prune", "-f", "--filter", f"label=grp={g}", "--filter", "until=24h")
        assert drop not in out and len(lines(d, "ps", "-aq", "--filter", f"label=grp={g}")) == 2
        ok(d, "container", "prune", "-f", "--filter", f"label=grp={g}", "--filter", "label!=keep=yes")
        assert lines(d, "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=grp={g}") == [keep]
        assert "invalid filter 'dangling'" in refused(d, "container", "prune", "-f", "--filter",
                                                      "dangling=true")
        assert "failed to parse value as time or duration" in refused(
            d, "container", "prune", "-f", "--filter", "until=tomorrow")
    finally:
        docker(d, "rm", "-f", keep, drop)


def test_image_prune_label_not_and_honest_space(d: Daemon) -> None:
    g = uid()
    keep, drop, twin = f"keep{g}:1", f"drop{g}:1", f"twin{g}:1"
    commit(d, keep, f"LABEL grp={g}", "LABEL keep=yes", content="kept " + g)
    commit(d, drop, f"LABEL grp={g}", content="x" * 4096)
    try:
        base = int(ok(d, "image", "inspect", "-f", "{{.Size}}", "busybox"))
        unique = int(ok(d, "image", "inspect", "-f", "{{.Size}}", drop)) - base
        assert unique >= 4096
        out = ok(d, "image", "prune", "-a", "-f", "--filter", f"label=grp={g}",
                 "--filter", "label!=keep=yes", "--filter", "until=0s")
        assert drop.split(":")[0] in out and keep.split(":")[0] not in out
        tags = lines(d, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"label=grp={g}")
        assert tags == [keep]
        # the API's figure: only the layer that went, not busybox's under it
        commit(d, drop, f"LABEL grp={g}", content="y" * 8192)
        ok(d, "tag", drop, twin)
        status, body = d.api.post("/images/prune?filters=" + enc(
            {"label": [f"grp={g}"], "label!": ["keep=yes"], "dangling": ["false"]}))
        assert status == 200, body
        deleted = [x.get("Deleted") for x in body["ImagesDeleted"] if x.get("Deleted")]
        assert len(deleted) == 2  # the image and its own layer
        assert 8192 <= body["SpaceReclaimed"] < base
        assert body["SpaceReclaimed"] == unique - 4096 + 8192
    finally:
        docker(d, "rmi", keep, drop, twin)


def test_image_prune_keeps_shared_layers_uncounted(d: Daemon) -> None:
    """Two images on one layer: pruning one frees nothing and says so."""
    g = uid()
    name = "sh" + g
    ok(d, "run", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo shared > /s")
    try:
        ok(d, "commit", "-c", f"LABEL grp={g}", "-c", "LABEL keep=yes", name, f"one{g}:1")
        ok(d, "commit", "-c", f"LABEL grp={g}", name, f"two{g}:1")
        status, body = d.api.post("/images/prune?filters=" + enc(
            {"label": {f"grp={g}": True}, "label!": {"keep=yes": True}, "dangling": {"false": True}}))
        assert status == 200 and body["SpaceReclaimed"] == 0, body
        assert [x for x in body["ImagesDeleted"] if "Untagged" in x] == [{"Untagged": f"two{g}:1"}]
    finally:
        docker(d, "rm", "-f", name)
        docker(d, "rmi", f"one{g}:1", f"two{g}:1")


def test_volume_prune_label_not_and_anonymous_only(d: Daemon, client: Any) -> None:
    g = uid()
    keep, drop = "keep" + g, "drop" + g
    ok(d, "volume", "create", "--label", f"grp={g}", "--label", "keep=yes", keep)
    ok(d, "volume", "create", "--label", f"grp={g}", drop)
    ok(d, "run", "--rm", "--network", "none", "-v", f"{drop}:/v", "busybox", "sh", "-c",
       "head -c 5000 /dev/zero > /v/f; ln /v/f /v/g")
    try:
        # API 1.42+: without -a only anonymous volumes go, and these are named
        ok(d, "volume", "prune", "-f", "--filter", f"label=grp={g}")
        assert sorted(lines(d, "volume", "ls", "-q", "--filter", f"label=grp={g}")) == sorted([drop, keep])
        out = ok(d, "volume", "prune", "-a", "-f", "--filter", f"label=grp={g}",
                 "--filter", "label!=keep=yes")
        assert drop in out and keep not in out
        assert "Total reclaimed space: 5kB" in out, out  # the hard-linked file once
        assert lines(d, "volume", "ls", "-q", "--filter", f"label=grp={g}") == [keep]
        # an older client (API 1.41) prunes named volumes too, as dockerd did then
        old = dockerpy.APIClient(base_url=d.host, version="1.41", timeout=60)
        try:
            res = old.prune_volumes(filters={"label": f"grp={g}"})
        finally:
            old.close()
        assert res["VolumesDeleted"] == [keep]
        assert "invalid filter 'all'" in refused(d, "volume", "prune", "-f", "--filter", "all=maybe")
    finally:
        docker(d, "volume", "rm", keep, drop)


def test_network_prune_label_not_and_until(d: Daemon, client: Any) -> None:
    g = uid()
    keep, drop = "keep" + g, "drop" + g
    ok(d, "network", "create", "--label", f"grp={g}", "--label", "keep=yes", keep)
    ok(d, "network", "create", "--label", f"grp={g}", drop)
    try:
        res = client.networks.prune(filters={"label": f"grp={g}", "until": "24h"})
        assert not res.get("NetworksDeleted")
        out = ok(d, "network", "prune", "-f", "--filter", f"label=grp={g}", "--filter", "label!=keep=yes")
        assert drop in out and keep not in out
        assert lines(d, "network", "ls", "--format", "{{.Name}}", "--filter", f"label=grp={g}") == [keep]
        assert lines(d, "network", "ls", "--format", "{{.Name}}", "--filter", "type=custom",
                     "--filter", f"name=^{keep}$") == [keep]
        assert lines(d, "network", "ls", "-q", "--filter", "type=builtin", "--filter", f"name={keep}") == []
        assert "invalid filter 'driver'" in refused(d, "network", "prune", "-f", "--filter", "driver=x")
        assert "invalid filter: 'type'='x'" in refused(d, "network", "ls", "--filter", "type=x")
    finally:
        docker(d, "network", "rm", keep, drop)


def test_system_prune_passes_its_filters_to_every_prune(d: Daemon) -> None:
    """``docker system prune --filter`` sends the same filters to the container, network,
    image and build-cache prunes; each honours them."""
    g = uid()
    ok(d, "create", "--name", "keep" + g, "--label", f"grp={g}", "--label", "keep=yes", "busybox", "true")
    ok(d, "create", "--name", "drop" + g, "--label", f"grp={g}", "busybox", "true")
    ok(d, "network", "create", "--label", f"grp={g}", "--label", "keep=yes", "keep" + g)
    ok(d, "network", "create", "--label", f"grp={g}", "drop" + g)
    try:
        ok(d, "system", "prune", "-f", "--filter", f"label=grp={g}", "--filter", "label!=keep=yes")
        assert lines(d, "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=grp={g}") == ["keep" + g]
        assert lines(d, "network", "ls", "--format", "{{.Name}}", "--filter", f"label=grp={g}") == ["keep" + g]
        for flt, words in (({"type": ["nonsense"]}, "invalid filter 'type=nonsense'"),
                           ({"until": ["1h"], "unused-for": ["2h"]}, "conflicting filters"),
                           ({"bogus": ["1"]}, "invalid filter 'bogus'")):
            status, body = d.api.post("/build/prune?filters=" + enc(flt))
            assert status == 400 and words in body["message"], body
        status, body = d.api.post("/build/prune?filters=" + enc({"until": ["24h"]}))
        assert status == 200, body
    finally:
        docker(d, "rm", "-f", "keep" + g, "drop" + g)
        docker(d, "network", "rm", "keep" + g, "drop" + g)


def test_build_cache_prune_filters(d: Daemon, tmp_path: Any) -> None:
    """The build cache: an entry goes when its step image is older than ``until`` and carries
    the ``label`` labels; without ``all``, only cache no image uses goes (as BuildKit's
    "dangling" cache), so the steps of a tagged image stay."""
    g = uid()
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nLABEL grp={g}\nRUN echo {g} > /f\n")
    tag = f"built{g}:1"
    ok(d, "build", "-t", tag, str(tmp_path))
    try:
        assert ok(d, "build", "-t", tag, str(tmp_path)).count("Using cache") == 2
        status, body = d.api.post("/build/prune?filters=" + enc({"label": [f"grp={g}"], "until": ["24h"]}))
        assert status == 200 and not body["CachesDeleted"], body   # younger than a day
        status, body = d.api.post("/build/prune?filters=" + enc(
            {"label": {f"grp={g}": True}, "label!": {f"grp={g}": True}}))
        assert status == 200 and not body["CachesDeleted"], body
        status, body = d.api.post("/build/prune?filters=" + enc({"label": [f"grp={g}"]}))
        assert status == 200 and not body["CachesDeleted"], body   # the tagged image uses them
        status, body = d.api.post("/build/prune?all=1&filters=" + enc({"label": [f"grp={g}"]}))
        assert status == 200 and len(body["CachesDeleted"]) == 2, body
        assert "Using cache" not in ok(d, "build", "-t", tag, str(tmp_path))
    finally:
        docker(d, "rmi", tag)


# -- images REPO ------------------------------------------------------------------------------------
def test_images_reference_lists_only_that_repository(d: Daemon, client: Any) -> None:
    g = uid()
    other = f"other{g}/bb"
    ok(d, "tag", "busybox", f"{other}:1")
    try:
        assert lines(d, "images", "--format", "{{.Repository}}:{{.Tag}}", "busybox") == ["busybox:latest"]
        assert lines(d, "images", "--format", "{{.Repository}}:{{.Tag}}", f"other{g}/*") == [f"{other}:1"]
        assert lines(d, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                     f"reference={other}:1") == [f"{other}:1"]
        assert lines(d, "images", "-q", "--filter", f"reference=nothere{g}") == []
        # (docker-py's images.list() re-reads each image by id, so its .tags are all of them)
        assert [i["RepoTags"] for i in client.api.images(name="busybox")] == [["busybox:latest"]]
        # API 1.24's ?filter=, what old clients send for `docker images REPO`
        status, body = d.api.get("/v1.24/images/json?filter=" + other)
        assert status == 200 and [i["RepoTags"] for i in body] == [[f"{other}:1"]]
        assert "syntax error in pattern" in refused(d, "images", "--filter", "reference=[")
        assert "invalid filter 'status'" in refused(d, "images", "--filter", "status=x")
    finally:
        docker(d, "rmi", f"{other}:1")


def test_images_before_since_until_label_dangling(d: Daemon) -> None:
    g = uid()
    first, second = f"first{g}:1", f"second{g}:1"
    commit(d, first, f"LABEL grp={g}")
    commit(d, second, f"LABEL grp={g}")  # created later (times kept to the microsecond)
    try:
        def names(*flt: str) -> list[str]:
            args = [a for f in (f"label=grp={g}", *flt) for a in ("--filter", f)]
            return lines(d, "images", "--format", "{{.Repository}}", *args)
        assert names() == [second.split(":")[0], first.split(":")[0]]
        assert names("before=" + second) == [first.split(":")[0]]
        assert names("since=" + first) == [second.split(":")[0]]
        assert names("until=24h") == []
        assert names("dangling=false") == names()
        assert names("dangling=true") == []
        assert "invalid filter 'dangling=[maybe]'" in refused(d, "images", "--filter", "dangling=maybe")
    finally:
        docker(d, "rmi", first, second)


# -- events -----------------------------------------------------------------------------------------
def test_events_filters(d: Daemon) -> None:
    g = uid()
    name = "ev" + g
    start = time.time() - 1
    ok(d, "run", "--name", name, "--label", f"grp={g}", "--network", "none", "busybox", "true")
    ok(d, "rm", name)
    end = time.time() + 1

    def events(*flt: str) -> list[str]:
        args = [a for f in flt for a in ("--filter", f)]
        return ok(d, "events", "--since", f"{start:.3f}", "--until", f"{end:.3f}", "--format",
                  "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", *args).splitlines()

    mine = events("container=" + name)
    # as dockerd: the CLI's run attaches before it starts (an event of its own)
    assert mine == [f"container {a} {name}" for a in ("create", "attach", "start", "die", "destroy")]
    assert events("label=grp=" + g, "event=die") == [f"container die {name}"]
    assert events("image=busybox", "container=" + name, "event=create") == [f"container create {name}"]
    assert events("type=image", "container=" + name) == []
    assert events("container=" + name, "event=start", "event=destroy") == [
        f"container start {name}", f"container destroy {name}"]
    assert events("container=" + name, "scope=local", "event=die") == [f"container die {name}"]
    assert events("container=" + name, "scope=swarm") == []
    assert events("service=x") == [] and events("config=x") == [] and events("secret=x") == []
    assert "invalid filter 'bogus'" in refused(d, "events", "--since", "1", "--until", "2",
                                               "--filter", "bogus=1")


# -- system df --------------------------------------------------------------------------------------
def test_system_df_in_use_image_is_not_reclaimable(busybox_tar: str) -> None:
    """A fresh daemon: busybox in use is 0 % reclaimable; an unused image's own layer is what
    becomes reclaimable; df -v shows SharedSize and container counts as dockerd does."""
    with running_daemon(busybox_tar) as fresh:
        ok(fresh, "run", "-d", "--name", "user", "--network", "none", "busybox", "sleep", "600")
        row = next(json.loads(x) for x in ok(fresh, "system", "df", "--format", "json").splitlines()
                   if json.loads(x)["Type"] == "Images")
        assert row["Active"] == "1" and row["Reclaimable"].startswith("0B"), row
        commit(fresh, "unused:1", content="z" * 60_000)
        status, df = fresh.api.get("/system/df")
        assert status == 200
        by_tag = {i["RepoTags"][0]: i for i in df["Images"]}
        bb, unused = by_tag["busybox:latest"], by_tag["unused:1"]
        assert bb["Containers"] == 1 and unused["Containers"] == 0
        assert bb["SharedSize"] == bb["Size"]          # its one layer is under unused:1 too
        assert unused["SharedSize"] == bb["Size"] and unused["Size"] - bb["Size"] >= 60_000
        assert df["LayersSize"] == unused["Size"]      # each layer once
        out = ok(fresh, "system", "df", "-v")
        assert "unused" in out and "SHARED SIZE" in out
        assert fresh.api.get("/system/df?type=nope")[1]["message"] == "unknown object type: nope"
        docker(fresh, "rm", "-f", "user")
