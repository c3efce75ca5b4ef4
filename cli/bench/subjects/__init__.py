"""Which subjects a run measures, from the command's options, and their start and stop.

A dockyard subject is graph driver × exec driver × network driver, each taken from the
daemon's own registries (entry points): one dockyardd per (graph, exec) — the network driver is
chosen per container (``run --network``), so the subjects that differ only by it share a daemon.
Peers are dockerd and podman; floors are runc, crun and lxc-execute alone. Whatever is not
installed or does not run here is skipped with its reason.
"""
from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable

from .base import CAP_RUN, Engine, Skip, Subject
from .dockyard import DockyardEngine, dockyard_client, registry_names
from .floors import FLOORS, Floor
from .peers import DockerdEngine, PodmanEngine

log = logging.getLogger(__name__)

PEERS: dict[str, type[Engine]] = {"dockerd": DockerdEngine, "podman": PodmanEngine}
ALL_PEERS = (*PEERS, *FLOORS)
ALL_NETS = ("none", "host", "bridge")
#: the command the floors are prepared for, and the scenario they (and dockyard's own CLI) are in
FLOOR_CMD = ["true"]
FLOOR_SCENARIOS = frozenset({"run"})


@dataclass
class Plan:
    """Engines and floors to start, the subjects on them, and what was skipped (and why)."""

    engines: list[Engine] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    primary_net: str = "none"

    def skip(self, what: str, reason: str, scenario: str | None = None) -> None:
        entry = {"subject": what, "reason": reason}
        if scenario:
            entry["scenario"] = scenario
        self.skipped.append(entry)
        log.info("skipped %s%s: %s", what, f" in {scenario}" if scenario else "", reason)


def expand(kind: str, asked: list[str] | None, plan: Plan) -> list[str | None]:
    """The driver names to measure: ``asked`` (``all``: every installed one), else ``[None]``,
    the daemon's own choice; names not installed are skipped with the installed ones listed."""
    installed = registry_names(kind)
    if not asked:
        return [None]
    if "all" in asked:
        return installed
    for name in asked:
        if name not in installed:
            plan.skip(f"{kind} driver {name}", f"not installed (installed {kind} drivers: "
                      f"{', '.join(installed) or 'none'})")
    return [n for n in asked if n in installed]


def plan_subjects(graphs: list[str] | None, execs: list[str] | None, nets: list[str],
                  peers: list[str]) -> Plan:
    plan = Plan(primary_net=nets[0] if nets else "none")
    net_names = [n for n in expand("network", nets or list(ALL_NETS), plan) if n]
    for graph in expand("graph", graphs, plan):
        for exe in expand("exec", execs, plan):
            engine = DockyardEngine({"graph": graph, "exec": exe})
            plan.engines.append(engine)
            # the daemon's choice (None) is filled in from its /info once it runs
            add_net_subjects(plan, engine, net_names, {"graph": graph or "", "exec": exe or ""})
    for name in peers:
        if name in PEERS:
            cls = PEERS[name]
            reason = cls.unavailable()
            if reason:
                plan.skip(name, reason)
                continue
            engine = cls({"bridge": "bridge" in net_names})
            plan.engines.append(engine)
            add_net_subjects(plan, engine, net_names, {"graph": engine.config["graph"],
                                                       "exec": engine.config["exec"]})
        elif name in FLOORS:
            floor = FLOORS[name]()
            reason = floor.unavailable()
            if reason:
                plan.skip(name, reason)
                continue
            plan.floors.append(floor)
            plan.subjects.append(Subject(floor.name, {"net": "none"}, frozenset({CAP_RUN}),
                                         floor=floor, only=FLOOR_SCENARIOS))
        else:
            plan.skip(name, f"unknown peer (known: {', '.join(ALL_PEERS)})")
    return plan


def add_net_subjects(plan: Plan, engine: Engine, nets: list[str], dims: dict[str, str]) -> None:
    """A subject per network mode the engine offers; an engine left with none is not started."""
    for net in nets:
        if net not in engine.nets:
            plan.skip(f"{engine.name} --network {net}", unsupported_net(engine.name, net))
            continue
        plan.subjects.append(Subject(engine.name, {**dims, "net": net}, engine.caps, engine=engine))
    if not any(s.engine is engine for s in plan.subjects):
        plan.engines.remove(engine)


def unsupported_net(engine: str, net: str) -> str:
    if engine == "podman" and net == "bridge":
        return ("the bench gives podman no network of its own: its bridge would need a CNI or "
                "netavark set-up with firewall rules on the host")
    return f"{engine} has no {net} network"


def add_cli_subject(plan: Plan, engine: DockyardEngine) -> None:
    """dockyard's own CLI against the first dockyardd, for the ``run`` figure (as before)."""
    if engine.client is None or engine.client.name == "dockyard CLI":
        return  # the engine already is driven by dockyard's CLI
    dims = {"graph": engine.config["graph"], "exec": engine.config["exec"],
            "net": plan.primary_net, "client": "dockyard-cli"}
    plan.subjects.append(Subject("dockyard", dims, frozenset({CAP_RUN}), engine=engine,
                                 client=dockyard_client(engine.sock), only=FLOOR_SCENARIOS))


def start_all(plan: Plan, image_tar: str, progress: Callable[[str], Any]) -> None:
    """Start every engine and floor; those that cannot run are skipped with their reason, and
    their subjects dropped."""
    for engine in list(plan.engines):
        progress(f"starting {engine.name} {engine.config.get('graph') or ''}".strip())
        try:
            engine.start(image_tar)
        except (Skip, OSError, RuntimeError, subprocess.SubprocessError) as e:
            reason = getattr(e, "reason", None) or str(e)
            plan.skip(f"{engine.name} {engine.config.get('graph') or ''}".strip(), reason)
            plan.engines.remove(engine)
            plan.subjects = [s for s in plan.subjects if s.engine is not engine]
            continue
        for s in plan.subjects:
            if s.engine is engine:
                s.dims.update(graph=engine.config["graph"], exec=engine.config["exec"])
                s.client = s.client or engine.client
    first = next((e for e in plan.engines if isinstance(e, DockyardEngine)), None)
    if first is not None:
        add_cli_subject(plan, first)
    for floor in list(plan.floors):
        progress(f"preparing {floor.name}")
        try:
            floor.start(image_tar, FLOOR_CMD)
        except Skip as e:
            plan.skip(floor.name, e.reason)
            plan.floors.remove(floor)
            plan.subjects = [s for s in plan.subjects if s.floor is not floor]
            continue
        for s in plan.subjects:
            if s.floor is floor:
                s.info.update(floor.info)


def stop_all(plan: Plan) -> None:
    for thing in [*plan.engines, *plan.floors]:
        try:
            thing.stop()
        except Exception as e:  # noqa: BLE001 - keep stopping the others
            log.warning("stopping %s: %s", thing.name, e)


def versions(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for thing in [*plan.engines, *plan.floors]:
        for k, v in thing.versions().items():
            if v:
                out[k] = v
    return out
