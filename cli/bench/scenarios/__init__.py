"""The scenarios of ``dockyard bench``, one module each, registered in :data:`SCENARIOS` (name →
module and class, imported only when a run asks for them). The order is the report's order.

Importing this package costs nothing (``dockyard --help`` lists the command): the scenario
modules, and what they import, load in :func:`load_scenarios`."""
from __future__ import annotations

import importlib
from typing import Any

#: name → (module under this package, class); ``dockyard bench NAME...`` picks among these
SCENARIOS: dict[str, tuple[str, str]] = {
    "create": ("graph", "Create"),
    "layer": ("graph", "LayerDiffApply"),
    "run": ("start", "RunRm"),
    "exec": ("start", "Exec"),
    "starts": ("start", "Starts"),
    "concurrent": ("start", "ConcurrentRuns"),
    "memory": ("memory", "Memory"),
    "pull": ("pull", "Pull"),
    "build": ("build", "Build"),
    "network": ("network", "NetworkSetup"),
    "throughput": ("network", "Throughput"),
}


def load_scenarios(names: list[str]) -> list[Any]:
    """Instances of the scenarios ``names`` (all when empty), in the table's order."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; "
                         f"choose among: {', '.join(SCENARIOS)}")
    out = []
    for name, (module, cls) in SCENARIOS.items():
        if names and name not in names:
            continue
        mod = importlib.import_module(f"{__name__}.{module}")
        out.append(getattr(mod, cls)())
    return out
