"""The filter machinery, without a daemon: parsing, dockerd's match rules, times, globs, ports,
and each endpoint's rules on hand-made views."""
from __future__ import annotations

import datetime
import json

import pytest

from dockyard.core.filters import Args, duration, glob, labels_match, parse_time, port_set, until
from dockyard.core.filtersets import (ContainerView, ImageView, NetworkView, VolumeView,
                                      event_matcher, image_prune_matcher, network_matcher,
                                      prune_matcher, select_containers, select_images,
                                      volume_matcher)
from dockyard.hookspecs.errors import InvalidParameter, NotFound


def args(**kw: list[str]) -> Args:
    return Args({k.replace("_", "-").replace("-not", "!"): v for k, v in kw.items()})


# -- parsing ---------------------------------------------------------------------------------------
def test_both_encodings_and_mixed() -> None:
    a = Args.from_json(json.dumps({"label": {"a=1": True, "b": True}, "status": ["exited"]}))
    assert a.get("label") == ["a=1", "b"] and a.get("status") == ["exited"]
    assert Args.from_json(None).keys() == [] and Args.from_json("").keys() == []


def test_false_values_are_not_values_but_keep_the_key() -> None:
    a = Args.from_json(json.dumps({"dangling": {"true": False}}))
    assert a.contains("dangling") and a.get("dangling") == []


@pytest.mark.parametrize("raw", ["notjson", "[1]", '{"a": "b"}', '{"a": [1]}', '{"a": {"b": 1}}'])
def test_malformed_filters_are_400(raw: str) -> None:
    with pytest.raises(InvalidParameter):
        Args.from_json(raw)


def test_validate_names_the_key_in_dockerds_words() -> None:
    with pytest.raises(InvalidParameter, match="^invalid filter 'bogus'$"):
        args(bogus=["1"], label=["x"]).validate(["label"])


# -- match rules -----------------------------------------------------------------------------------
def test_exact_fuzzy_and_regex_match() -> None:
    a = args(name=["^web$", "db"])
    assert a.match("name", "web") and a.match("name", "mydb1") and not a.match("name", "webby")
    assert args(name=["["]).match("name", "[")                # exact match wins over a bad regex
    assert not args(name=["(["]).match("name", "x")           # a bad expression matches nothing
    assert args().match("name", "anything") and args().exact_match("x", "y")
    f = args(container=["abc"])
    assert f.fuzzy_match("container", "abcdef") and not f.fuzzy_match("container", "xabc")
    assert f.exact_match("container", "abc") and not f.exact_match("container", "abcd")


def test_label_and_negated_label() -> None:
    assert labels_match(args(label=["a"]), {"a": "1"})
    assert labels_match(args(label=["a=1"]), {"a": "1"})
    assert not labels_match(args(label=["a=2"]), {"a": "1"})
    assert not labels_match(args(label=["a"]), {})
    assert labels_match(args(label_not=["keep=yes"]), {"keep": "no"})
    assert not labels_match(args(label_not=["keep=yes"]), {"keep": "yes"})
    assert not labels_match(args(label_not=["keep"]), {"keep": "anything"})
    assert labels_match(args(label_not=["keep"]), None)
    # dockerd: label! excludes only objects carrying every one of its values
    assert labels_match(args(label_not=["a", "b"]), {"a": "1"})
    assert not labels_match(args(label_not=["a", "b"]), {"a": "1", "b": "2"})


def test_booleans() -> None:
    assert args(dangling=["true"]).get_bool("dangling", False) is True
    assert args(dangling=["0"]).get_bool("dangling", True) is False
    assert args().get_bool("dangling", True) is True
    for bad in (["maybe"], ["true", "false"]):
        with pytest.raises(InvalidParameter, match="invalid filter 'dangling="):
            args(dangling=bad).get_bool("dangling", False)


# -- time ------------------------------------------------------------------------------------------
def test_durations_are_go_durations() -> None:
    assert duration("24h") == 86400 and duration("1h30m") == 5400 and duration("1.5s") == 1.5
    assert duration("-10m") == -600 and duration("300ms") == pytest.approx(0.3)
    assert duration("10") is None and duration("h") is None and duration("1d") is None


def test_until_as_duration_timestamp_or_date() -> None:
    now = 1_700_000_000.0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("1700000000", now) == 1_700_000_000
    assert parse_time("1700000000.5", now) == 1_700_000_000.5
    assert parse_time("0", now) == 0  # "0" is a time, not a duration (dockerd's rule)
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000
    assert parse_time("2023-11-14T22:13:20.25Z") == 1_700_000_000.25
    local = datetime.datetime(2023, 11, 14, 22, 13).timestamp()
    assert parse_time("2023-11-14T22:13") == local  # no zone: the local one
    assert parse_time("2023-11-14") == datetime.datetime(2023, 11, 14).timestamp()
    for bad in ("bogus", "2023-13-01", "12:00", "-5", ""):
        with pytest.raises(InvalidParameter, match="failed to parse value as time or duration"):
            parse_time(bad, now)


def test_prune_until_takes_one_value() -> None:
    assert until(args()) is None
    assert until(args(until=["10m"]), 1000.0) == 400.0
    with pytest.raises(InvalidParameter, match="more than one until filter specified"):
        until(args(until=["1h", "2h"]))
    with pytest.raises(InvalidParameter, match="^invalid value for 'until' filter: failed to parse"):
        until(args(until=["soon"]))


# -- globs and ports ---------------------------------------------------------------------------------
def test_glob_is_gos_path_match() -> None:
    assert glob("busy*").fullmatch("busybox") and not glob("*").fullmatch("other/bb")
    assert glob("*/*").fullmatch("other/bb") and glob("b?sybox").fullmatch("busybox")
    assert glob("[a-c]b").fullmatch("bb") and not glob("[^a-c]b").fullmatch("bb")
    assert glob(r"a\*").fullmatch("a*") and not glob(r"a\*").fullmatch("ab")
    for bad in ("[", "[]", "[a-", "a\\", "[-a]"):
        with pytest.raises(InvalidParameter, match="syntax error in pattern"):
            glob(bad)


def test_port_sets() -> None:
    assert port_set("publish", "80") == {"80/tcp"}
    assert port_set("expose", "53/udp") == {"53/udp"}
    assert port_set("publish", "8000-8002/tcp") == {"8000/tcp", "8001/tcp", "8002/tcp"}
    with pytest.raises(InvalidParameter, match="filter for 'publish' should not contain ':': 1:2"):
        port_set("publish", "1:2")
    for bad in ("abc", "9-1", "70000", "-1"):
        with pytest.raises(InvalidParameter, match=f"error while looking up for expose {bad}"):
            port_set("expose", bad)


# -- containers ------------------------------------------------------------------------------------
def _containers() -> list[ContainerView]:
    """Newest first, as the daemon hands them over."""
    return [
        ContainerView(id="f" * 64, name="/web", running=True, state="running", started=True,
                      labels={"tier": "front"}, health="healthy", image_id="img-child",
                      mounts=[{"Type": "volume", "Name": "data", "Source": "/v/data/_data",
                               "Destination": "/data"}],
                      networks={"bridge": "n1" * 32}, ports=[{"PrivatePort": 80, "PublicPort": 8080,
                                                              "Type": "tcp"}]),
        ContainerView(id="e" * 64, name="/webby", running=False, state="exited", exit_code=3,
                      started=True, labels={"keep": "yes"}, image_id="img-base",
                      mounts=[{"Type": "bind", "Source": "/srv", "Destination": "/mnt"}],
                      networks={"backend": "n2" * 32}),
        ContainerView(id="e1" + "2" * 62, name="/db", running=False, state="created",
                      image_id="img-other", ports=[{"PrivatePort": 5432, "Type": "tcp"}]),
    ]


def _names(a: Args, **kw: object) -> list[str]:
    views = _containers()
    by_name = {v.name.lstrip("/"): v.id for v in views}

    def resolve(ref: str) -> str:
        if ref in by_name:
            return by_name[ref]
        raise NotFound(f"No such container: {ref}")

    def family(ref: str) -> set[str] | None:
        return {"img-base": {"img-base", "img-child"}, "img-child": {"img-child"}}.get(ref)
    kw.setdefault("all_", True)
    return [v.name.lstrip("/") for v in select_containers(a, views, resolve=resolve, family=family, **kw)]


def test_ps_defaults_running_only_unless_all_limit_or_status() -> None:
    assert _names(args(), all_=False) == ["web"]
    assert _names(args(), all_=False, limit=2) == ["web", "webby"]
    assert _names(args(status=["exited"]), all_=False) == ["webby"]


def test_ps_name_is_a_regex_and_id_a_unique_prefix() -> None:
    assert _names(args(name=["^web$"])) == ["web"]
    assert _names(args(name=["web"])) == ["web", "webby"]
    assert _names(args(name=["/db"])) == ["db"]
    assert _names(args(id=["f"])) == ["web"]
    assert _names(args(id=["e"])) == []          # two ids start with "e": dockerd matches neither
    assert _names(args(id=["e1"])) == ["db"]
    assert _names(args(id=["f"], name=["db"])) == []


def test_ps_each_filter() -> None:
    assert _names(args(label=["tier=front"])) == ["web"]
    assert _names(args(exited=["3"])) == ["webby"]
    assert _names(args(exited=["0"])) == []
    assert _names(args(health=["healthy"])) == ["web"]
    assert _names(args(health=["none"])) == ["webby", "db"]
    assert _names(args(volume=["data"])) == ["web"]
    assert _names(args(volume=["/data"])) == ["web"]
    assert _names(args(volume=["/srv"])) == ["webby"]
    assert _names(args(volume=["nothere"])) == []
    assert _names(args(network=["backend"])) == ["webby"]
    assert _names(args(network=["n1n1"])) == ["web"]
    assert _names(args(publish=["8080"])) == ["web"]
    assert _names(args(publish=["8000-8100/tcp"])) == ["web"]
    assert _names(args(publish=["8080/udp"])) == []
    assert _names(args(expose=["5432"])) == ["db"]
    assert _names(args(expose=["80"])) == ["web"]
    assert _names(args(is_task=["true"])) == []
    assert _names(args(is_task=["false"])) == ["web", "webby", "db"]
    assert _names(args(isolation=["default"])) == ["web", "webby", "db"]  # Windows only: no-op


def test_ps_ancestor_takes_descendants_and_unknown_images_match_nothing() -> None:
    assert _names(args(ancestor=["img-base"])) == ["web", "webby"]
    assert _names(args(ancestor=["img-child"])) == ["web"]
    assert _names(args(ancestor=["nosuch"])) == []


def test_ps_before_and_since_follow_creation_order() -> None:
    assert _names(args(before=["web"])) == ["webby", "db"]
    assert _names(args(before=["webby"])) == ["db"]
    assert _names(args(since=["db"])) == ["web", "webby"]
    assert _names(args(since=["webby"])) == ["web"]
    with pytest.raises(NotFound):
        _names(args(before=["nosuch"]))


@pytest.mark.parametrize("flt, message", [
    (dict(status=["bogus"]), "invalid filter 'status=bogus'"),
    (dict(health=["sick"]), "invalid filter 'health=sick'"),
    (dict(exited=["x"]), "invalid filter 'exited=x'"),
    (dict(is_task=["maybe"]), "invalid filter 'is-task=[maybe]'"),
    (dict(bogus=["1"]), "invalid filter 'bogus'"),
    (dict(label_not=["a"]), "invalid filter 'label!'"),
])
def test_ps_refuses(flt: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("[", r"\[").replace("]", r"\]")):
        _names(args(**flt))


# -- prunes ----------------------------------------------------------------------------------------
def test_prune_until_and_labels() -> None:
    ok = prune_matcher(args(until=["1h"], label_not=["keep=yes"]), now=10_000.0)
    assert ok(1000.0, {}) and ok(1000.0, {"keep": "no"})
    assert not ok(1000.0, {"keep": "yes"})
    assert not ok(9_000.0, {})  # newer than the cut-off
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling'"):
        prune_matcher(args(dangling=["true"]))


def test_image_prune_dangling_default_and_false() -> None:
    assert image_prune_matcher(args())[0] is True
    assert image_prune_matcher(args(dangling=["false"]))[0] is False
    with pytest.raises(InvalidParameter, match="invalid filter 'reference'"):
        image_prune_matcher(args(reference=["x"]))


# -- images ----------------------------------------------------------------------------------------
def _images() -> list[ImageView]:
    return [
        ImageView(id="i3", created=300.0, labels={"v": "3"},
                  tags=["docker.io/library/busybox:latest", "docker.io/other/bb:1"],
                  digests=["docker.io/library/busybox@sha256:" + "a" * 64]),
        ImageView(id="i2", created=200.0, labels={}, has_children=True),   # a build step
        ImageView(id="i1", created=100.0, labels=None),                    # dangling, no config
        ImageView(id="i0", created=50.0, labels={"v": "0"}, tags=["localhost:5000/app/x:2"]),
    ]


def _rows(a: Args, all_: bool = False) -> list[tuple[str, list[str], list[str]]]:
    created = {"busybox": 300.0, "i1": 100.0}
    return [(r.view.id, r.repo_tags, r.repo_digests)
            for r in select_images(a, _images(), all_=all_, created_of=lambda ref: created[ref],
                                   now=1000.0)]


def test_images_reference_narrows_repo_tags() -> None:
    assert _rows(args(reference=["busybox"])) == [
        ("i3", ["busybox:latest"], ["busybox@sha256:" + "a" * 64])]
    assert _rows(args(reference=["other/*"])) == [("i3", ["other/bb:1"], [])]
    assert _rows(args(reference=["docker.io/other/bb"])) == [("i3", ["other/bb:1"], [])]
    assert _rows(args(reference=["busybox:latest"])) == [("i3", ["busybox:latest"], [])]
    assert _rows(args(reference=["localhost:5000/app/*"])) == [("i0", ["localhost:5000/app/x:2"], [])]
    assert _rows(args(reference=["*"])) == [("i3", ["busybox:latest"], ["busybox@sha256:" + "a" * 64])]


def test_images_dangling_all_label_window() -> None:
    assert [r[0] for r in _rows(args())] == ["i3", "i1", "i0"]
    assert [r[0] for r in _rows(args(), all_=True)] == ["i3", "i2", "i1", "i0"]
    assert [r[0] for r in _rows(args(dangling=["true"]))] == ["i1"]
    assert [r[0] for r in _rows(args(dangling=["false"]))] == ["i3", "i0"]
    assert [r[0] for r in _rows(args(label=["v"]))] == ["i3", "i0"]
    assert [r[0] for r in _rows(args(before=["busybox"]))] == ["i1", "i0"]
    assert [r[0] for r in _rows(args(since=["i1"]))] == ["i3"]
    assert [r[0] for r in _rows(args(until=["850s"]))] == ["i1", "i0"]  # before t=150
    with pytest.raises(InvalidParameter, match="invalid filter 'status'"):
        _rows(args(status=["x"]))


# -- networks and volumes --------------------------------------------------------------------------
def _nets() -> list[NetworkView]:
    return [NetworkView(id="a1" * 32, name="bridge", driver="bridge", created=10.0, predefined=True),
            NetworkView(id="b2" * 32, name="front", driver="bridge", created=20.0,
                        labels={"keep": "yes"}, in_use=True),
            NetworkView(id="c3" * 32, name="back", driver="macvlan", created=30.0)]


def _net_names(a: Args, prune: bool = False) -> list[str]:
    ok = network_matcher(a, prune=prune, now=100.0)
    return [n.name for n in _nets() if ok(n)]


def test_network_filters() -> None:
    assert _net_names(args(driver=["bridge"])) == ["bridge", "front"]
    assert _net_names(args(name=["^b"])) == ["bridge", "back"]
    assert _net_names(args(id=["b2b2"])) == ["front"]
    assert _net_names(args(type=["custom"])) == ["front", "back"]
    assert _net_names(args(type=["builtin"])) == ["bridge"]
    assert _net_names(args(dangling=["true"])) == ["back"]
    assert _net_names(args(dangling=["false"])) == ["bridge", "front"]
    assert _net_names(args(label=["keep"])) == ["front"]
    assert _net_names(args(scope=["swarm"])) == []
    with pytest.raises(InvalidParameter, match="invalid filter: 'type'='x'"):
        _net_names(args(type=["x"]))
    with pytest.raises(InvalidParameter, match="invalid value for filter 'dangling'"):
        _net_names(args(dangling=["x"]))


def test_network_prune() -> None:
    assert _net_names(args(), prune=True) == ["back"]
    assert _net_names(args(until=["75s"]), prune=True) == []      # back (t=30) is newer than 25
    assert _net_names(args(label_not=["keep"]), prune=True) == ["back"]
    with pytest.raises(InvalidParameter, match="invalid filter 'driver'"):
        _net_names(args(driver=["bridge"]), prune=True)


def _vols() -> list[VolumeView]:
    return [VolumeView(name="anon1", labels={"com.docker.volume.anonymous": ""}),
            VolumeView(name="named", labels={"keep": "yes"}),
            VolumeView(name="plain"),
            VolumeView(name="busy", in_use=True, labels={"com.docker.volume.anonymous": ""})]


def _vol_names(a: Args, prune: bool = False) -> list[str]:
    ok = volume_matcher(a, prune=prune)
    return [v.name for v in _vols() if ok(v)]


def test_volume_filters() -> None:
    assert _vol_names(args(name=["^an"])) == ["anon1"]
    assert _vol_names(args(dangling=["false"])) == ["busy"]
    assert _vol_names(args(dangling=["true"])) == ["anon1", "named", "plain"]
    assert _vol_names(args(driver=["other"])) == []
    with pytest.raises(InvalidParameter, match="invalid filter 'all'"):
        _vol_names(args(all=["true"]))


def test_volume_prune_anonymous_unless_all() -> None:
    assert _vol_names(args(), prune=True) == ["anon1"]
    assert _vol_names(args(all=["true"]), prune=True) == ["anon1", "named", "plain"]
    assert _vol_names(args(all=["1"], label_not=["keep=yes"]), prune=True) == ["anon1", "plain"]
    with pytest.raises(InvalidParameter, match="invalid filter 'all'"):
        _vol_names(args(all=["sure"]), prune=True)
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling'"):
        _vol_names(args(dangling=["true"]), prune=True)


# -- events ----------------------------------------------------------------------------------------
def _ev(type_: str, action: str, ident: str, **attrs: str) -> dict:
    return {"Type": type_, "Action": action, "Actor": {"ID": ident, "Attributes": attrs},
            "scope": "local"}


EVENTS = [
    _ev("container", "start", "c" * 64, name="web", image="busybox:latest", tier="front"),
    _ev("container", "health_status: healthy", "c" * 64, name="web", image="busybox"),
    _ev("image", "tag", "sha256:" + "1" * 64, name="docker.io/library/busybox:latest"),
    _ev("network", "connect", "n" * 64, name="bridge", container="c" * 64),
    _ev("volume", "create", "vol1", driver="local"),
]


def _which(a: Args) -> list[int]:
    ok = event_matcher(a)
    return [i for i, ev in enumerate(EVENTS) if ok(ev)]


def test_event_filters() -> None:
    assert _which(args(type=["container"])) == [0, 1]
    assert _which(args(event=["start"])) == [0]
    assert _which(args(event=["health_status"])) == [1]     # dockerd: a prefix for these three
    assert _which(args(container=["web"])) == [0, 1]
    assert _which(args(container=["ccc"])) == [0, 1]        # an id prefix
    assert _which(args(image=["busybox"])) == [0, 1, 2]     # tags stripped, container's image too
    assert _which(args(network=["bridge"])) == [3]
    assert _which(args(volume=["vol1"])) == [4]
    assert _which(args(label=["tier=front"])) == [0]
    assert _which(args(scope=["local"])) == [0, 1, 2, 3, 4]
    assert _which(args(scope=["swarm"])) == []
    assert _which(args(service=["x"])) == [] and _which(args(daemon=["x"])) == []
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        event_matcher(args(bogus=["1"]))
