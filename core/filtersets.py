"""Each endpoint's filters, as dockerd applies them (pure: objects arrive as small views).

Containers: ``daemon/list.go``; images and image prune: ``daemon/images/image_list.go`` and
``image_prune.go``; container/network prune: ``daemon/prune.go``; networks:
``daemon/network/filter.go``; volumes: ``volume/service/convert.go``; events:
``daemon/events/filter.go``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

from dockyard.hookspecs.errors import InvalidParameter

from . import reference
from .filters import Args, glob, invalid, labels_match, parse_time, port_set, until

CONTAINER_KEYS = ("ancestor", "before", "exited", "expose", "health", "id", "is-task", "isolation",
                  "label", "name", "network", "publish", "since", "status", "volume")
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
HEALTHS = ("none", "starting", "healthy", "unhealthy")
IMAGE_KEYS = ("before", "dangling", "label", "reference", "since", "until")
NETWORK_KEYS = ("dangling", "driver", "id", "label", "name", "scope", "type")
VOLUME_KEYS = ("dangling", "driver", "label", "name")
PRUNE_KEYS = ("label", "label!", "until")  # containers and networks
IMAGE_PRUNE_KEYS = ("dangling", "label", "label!", "until")
VOLUME_PRUNE_KEYS = ("all", "label", "label!")
BUILD_PRUNE_KEYS = ("description", "id", "inuse", "label", "label!", "parent", "private",
                    "shared", "type", "unused-for", "until")
EVENT_KEYS = ("config", "container", "daemon", "event", "image", "label", "network", "node",
              "plugin", "scope", "secret", "service", "type", "volume")
ANONYMOUS_VOLUME = "com.docker.volume.anonymous"


# -- containers ------------------------------------------------------------------------------------
@dataclasses.dataclass
class ContainerView:
    id: str
    name: str                     # with its leading "/"
    running: bool
    state: str                    # created, running, paused, restarting, removing, exited, dead
    exit_code: int = 0
    started: bool = False         # it ran at least once
    labels: Mapping[str, str] | None = None
    health: str = "none"
    image_id: str = ""
    mounts: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # inspect's Mounts
    networks: Mapping[str, str] = dataclasses.field(default_factory=dict)   # name -> network id
    ports: list[dict[str, Any]] = dataclasses.field(default_factory=list)   # the list's Ports
    managed: bool = False         # a swarm task (never, here)
    record: Any = None            # the caller's object, handed back untouched


@dataclasses.dataclass
class _ContainerQuery:
    args: Args
    all_: bool
    exited: set[int]
    is_task: bool | None
    images: set[str] | None
    publish: set[str]
    expose: set[str]


def select_containers(args: Args, views: list[ContainerView], *, all_: bool = False,
                      limit: int = -1, resolve: Callable[[str], str] | None = None,
                      family: Callable[[str], set[str] | None] | None = None) -> list[ContainerView]:
    """``GET /containers/json``: ``views`` newest first; ``resolve`` gives a container's id
    for ``before``/``since`` (raising NotFound), ``family`` an image's id and its descendants'
    for ``ancestor`` (None when there is no such image)."""
    q = _container_query(args, all_, family)
    before = _walk_last(args, "before", resolve)
    since = _walk_last(args, "since", resolve)
    out: list[ContainerView] = []
    for v in _by_name_or_id(args, views):
        if before is not None:
            if v.id == before:
                before = None
            continue
        if since is not None and v.id == since:
            break
        if not v.running and not q.all_ and limit <= 0:
            continue
        if not _named(args, v) or not args.match("id", v.id):
            continue
        if q.is_task is not None and q.is_task != v.managed:
            continue
        if not args.match_kv_list("label", v.labels):
            continue
        if 0 < limit <= len(out):
            break
        if _container_state_ok(q, v) and _container_links_ok(q, v):
            out.append(v)
    return out


def _container_query(args: Args, all_: bool, family: Callable[[str], set[str] | None] | None
                     ) -> _ContainerQuery:
    args.validate(CONTAINER_KEYS)
    exited = set()
    for value in args.get("exited"):
        try:
            exited.add(int(value))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={value}': not an integer") from None
    for value in args.get("status"):
        if value not in STATES:
            raise InvalidParameter(f"invalid filter 'status={value}': invalid value for state "
                                   f"({value}): must be one of {', '.join(STATES)}")
        all_ = True
    for value in args.get("health"):
        if value not in HEALTHS:
            raise InvalidParameter(f"invalid filter 'health={value}': invalid value for health "
                                   f"({value}): must be one of {', '.join(HEALTHS)}")
    is_task = args.get_bool("is-task", False) if args.contains("is-task") else None
    images = None
    if args.contains("ancestor"):
        images = set()
        for value in args.get("ancestor"):
            images |= (family(value) if family else None) or set()
    publish = set().union(*(port_set("publish", v) for v in args.get("publish")))
    expose = set().union(*(port_set("expose", v) for v in args.get("expose")))
    return _ContainerQuery(args, all_, exited, is_task, images, publish, expose)


def _walk_last(args: Args, key: str, resolve: Callable[[str], str] | None) -> str | None:
    found = None
    for value in args.get(key):
        if resolve is None:
            raise InvalidParameter(f"the {key} filter is not available here")
        found = resolve(value)
    return found


def _named(args: Args, v: ContainerView) -> bool:
    return args.match("name", v.name) or args.match("name", v.name.lstrip("/"))


def _by_name_or_id(args: Args, views: list[ContainerView]) -> list[ContainerView]:
    """dockerd first narrows the list to the ``id`` values that name exactly one container
    (a full id or an unambiguous prefix) and, among them, the ``name`` matches."""
    names, ids = args.get("name"), args.get("id")
    if not names and not ids:
        return views
    matches: set[str] = set()
    for prefix in ids:
        hits = [v.id for v in views if v.id.startswith(prefix)] if prefix else []
        if len(hits) == 1:
            matches.add(hits[0])
    if names:
        matches |= {v.id for v in views if (not ids or v.id in matches) and _named(args, v)}
    return [v for v in views if v.id in matches]


def _container_state_ok(q: _ContainerQuery, v: ContainerView) -> bool:
    if q.exited and not (v.exit_code in q.exited and not v.running and v.started):
        return False
    return q.args.match("status", v.state) and q.args.exact_match("health", v.health)


def _container_links_ok(q: _ContainerQuery, v: ContainerView) -> bool:
    args = q.args
    if args.contains("volume"):
        held = {m.get("Name") or m.get("Source") or "" for m in v.mounts}
        held |= {m.get("Destination") or "" for m in v.mounts}
        if not set(args.get("volume")) & (held - {""}):
            return False
    if q.images is not None and v.image_id not in q.images:
        return False
    if args.contains("network"):
        wanted = args.get("network")
        if not any(w in v.networks or any(nid.startswith(w) for nid in v.networks.values())
                   for w in wanted):
            return False
    if q.publish or q.expose:
        return any(f"{p.get('PublicPort', 0)}/{p.get('Type', 'tcp')}" in q.publish
                   or f"{p.get('PrivatePort', 0)}/{p.get('Type', 'tcp')}" in q.expose
                   for p in v.ports)
    return True


# -- prunes: containers, networks (``until``, ``label``, ``label!``) --------------------------------
def prune_matcher(args: Args, accepted: Iterable[str] = PRUNE_KEYS,
                  now: float | None = None) -> Callable[[float, Mapping[str, str] | None], bool]:
    """``(created, labels) -> bool``: created no later than ``until``, labels as asked."""
    args.validate(accepted)
    cut = until(args, now)

    def ok(created: float, labels: Mapping[str, str] | None) -> bool:
        return (cut is None or created <= cut) and labels_match(args, labels)
    return ok


# -- images ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class ImageView:
    id: str
    created: float
    labels: Mapping[str, str] | None = None   # None: the image has no config
    tags: list[str] = dataclasses.field(default_factory=list)       # docker.io/library/x:tag
    digests: list[str] = dataclasses.field(default_factory=list)    # docker.io/library/x@sha256:..
    has_children: bool = False
    record: Any = None


@dataclasses.dataclass
class ImageRow:
    view: ImageView
    repo_tags: list[str]      # familiar, narrowed to the ``reference`` filter
    repo_digests: list[str]


def select_images(args: Args, views: list[ImageView], *, all_: bool = False,
                  created_of: Callable[[str], float] | None = None,
                  now: float | None = None) -> list[ImageRow]:
    """``GET /images/json``: ``created_of`` gives an image's creation time for ``before``/
    ``since`` (raising NotFound)."""
    args.validate(IMAGE_KEYS)
    dangling_only = args.get_bool("dangling", False)
    before, since = _image_window(args, created_of, now)
    patterns = [glob(p) for p in args.get("reference")]
    out = []
    for v in views:
        if dangling_only and v.has_children:
            continue  # dockerd looks at the heads only
        if before is not None and not v.created < before:
            continue
        if since is not None and not v.created > since:
            continue
        if args.contains("label") and (v.labels is None or not args.match_kv_list("label", v.labels)):
            continue
        tags = [t for t in v.tags if not patterns or _ref_matches(patterns, t)]
        digests = [t for t in v.digests if not patterns or _ref_matches(patterns, t)]
        if not tags and not digests:
            if not (all_ or not v.has_children):
                continue  # a build step under another image: only with all
            if (args.contains("dangling") and not dangling_only) or args.contains("reference"):
                continue
        elif dangling_only and tags:
            continue
        out.append(ImageRow(v, [reference.familiar(t) for t in tags],
                            [reference.familiar(t) for t in digests]))
    return out


def _image_window(args: Args, created_of: Callable[[str], float] | None,
                  now: float | None) -> tuple[float | None, float | None]:
    before = since = None
    for value in args.get("before"):
        t = _created(created_of, value)
        before = t if before is None else min(before, t)
    for value in args.get("until"):
        try:
            t = parse_time(value, now)
        except InvalidParameter as exc:
            raise InvalidParameter(f"invalid value for 'until' filter: {exc.message}") from None
        before = t if before is None else min(before, t)
    for value in args.get("since"):
        t = _created(created_of, value)
        since = t if since is None else max(since, t)
    return before, since


def _created(created_of: Callable[[str], float] | None, value: str) -> float:
    if created_of is None:
        raise InvalidParameter("the before/since filters are not available here")
    return created_of(value)


def _ref_matches(patterns: list[Any], ref: str) -> bool:
    """A pattern matches the familiar or the full form, with or without the tag."""
    r = reference.parse(ref, default_tag=False)
    tagged = r if (r.tag or r.digest) else r.with_tag(reference.DEFAULT_TAG)
    targets = (r.familiar(), r.familiar_name, str(tagged), r.name)
    return any(p.fullmatch(t) for p in patterns for t in targets)


def image_prune_matcher(args: Args, now: float | None = None
                        ) -> tuple[bool, Callable[[float, Mapping[str, str] | None], bool]]:
    """``(dangling only, (created, labels) -> bool)`` for ``POST /images/prune``."""
    ok = prune_matcher(args, IMAGE_PRUNE_KEYS, now)
    return args.get_bool("dangling", True), ok


# -- networks --------------------------------------------------------------------------------------
@dataclasses.dataclass
class NetworkView:
    id: str
    name: str
    driver: str
    created: float
    labels: Mapping[str, str] | None = None
    scope: str = "local"
    predefined: bool = False
    in_use: bool = False
    record: Any = None


def network_matcher(args: Args, *, prune: bool = False,
                    now: float | None = None) -> Callable[[NetworkView], bool]:
    """``GET /networks`` (``prune``: ``POST /networks/prune``, which keeps what is in use and
    the predefined networks)."""
    args.validate(PRUNE_KEYS if prune else NETWORK_KEYS)
    use = _dangling(args)
    if prune:
        use = True
    for value in args.get("type"):
        if value not in ("builtin", "custom"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    cut = until(args, now) if prune else None

    def ok(n: NetworkView) -> bool:
        if not (args.exact_match("driver", n.driver) and args.match("name", n.name)
                and args.match("id", n.id) and labels_match(args, n.labels)
                and args.exact_match("scope", n.scope)):
            return False
        if use is not None and use != (not n.predefined and not n.in_use):
            return False
        types = args.get("type")
        if types and ("builtin" if n.predefined else "custom") not in types:
            return False
        return cut is None or n.created <= cut
    return ok


def _dangling(args: Args) -> bool | None:
    values = args.get("dangling")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter('got more than one value for filter key "dangling"')
    if values[0] not in ("0", "false", "1", "true"):
        raise InvalidParameter('invalid value for filter \'dangling\', must be "true" (or "1"), '
                               'or "false" (or "0")')
    return values[0] in ("1", "true")


# -- volumes ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class VolumeView:
    name: str
    driver: str = "local"
    labels: Mapping[str, str] | None = None
    in_use: bool = False
    options: Mapping[str, str] | None = None
    record: Any = None


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def volume_matcher(args: Args, *, prune: bool = False) -> Callable[[VolumeView], bool]:
    """``GET /volumes``; ``prune``: ``POST /volumes/prune`` — unused ``local`` volumes without
    options, only anonymous ones unless ``all=true`` (API 1.42; the route adds ``all`` for
    older clients)."""
    if prune:
        args = Args({k: args.get(k) for k in args.keys()})
        everything = args.get("all")
        if len(everything) > 1:
            raise invalid("all", everything)
        if everything and everything[0] not in _GO_TRUE + _GO_FALSE:
            raise InvalidParameter(f"invalid filter 'all': strconv.ParseBool: parsing "
                                   f"\"{everything[0]}\": invalid syntax")
        if not everything or everything[0] in _GO_FALSE:
            args.add("label", ANONYMOUS_VOLUME)
    args.validate(VOLUME_PRUNE_KEYS if prune else VOLUME_KEYS)
    used = None if not args.contains("dangling") else not args.get_bool("dangling", False)

    def ok(v: VolumeView) -> bool:
        if not (args.exact_match("driver", v.driver) and args.match("name", v.name)
                and labels_match(args, v.labels)):
            return False
        if used is not None and used != v.in_use:
            return False
        return not prune or (v.driver == "local" and not v.in_use and not v.options)
    return ok


# -- events ----------------------------------------------------------------------------------------
def event_matcher(args: Args) -> Callable[[Mapping[str, Any]], bool]:
    """``GET /events``: an actor filter (``container``, ``network``...) matches the actor's id
    or ``name`` attribute, exactly or as a prefix; ``image`` also the container's image."""
    args.validate(EVENT_KEYS)
    fuzzy_event = bool({"health_status", "exec_create", "exec_start"} & set(args.get("event")))

    def ok(ev: Mapping[str, Any]) -> bool:
        actor = ev.get("Actor") or {}
        ident, attrs = actor.get("ID", ""), actor.get("Attributes") or {}
        action = ev.get("Action", "")
        if not (args.fuzzy_match("event", action) if fuzzy_event else args.exact_match("event", action)):
            return False
        if not args.exact_match("type", ev.get("Type", "")) or \
                (args.contains("scope") and not args.exact_match("scope", ev.get("scope", ""))):
            return False
        for key in ("daemon", "container", "plugin", "volume", "network", "node", "service",
                    "secret", "config"):
            if not (args.fuzzy_match(key, ident) or args.fuzzy_match(key, attrs.get("name", ""))):
                return False
        name = attrs.get("name" if ev.get("Type") == "image" else "image", "")
        if not any(args.exact_match("image", x) for x in (ident, name, _strip_tag(ident), _strip_tag(name))):
            return False
        return not args.contains("label") or args.match_kv_list("label", attrs)
    return ok


def _strip_tag(name: str) -> str:
    try:
        return reference.parse(name, default_tag=False).familiar_name
    except InvalidParameter:
        return name
