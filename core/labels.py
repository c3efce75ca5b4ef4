"""Docker's ``label`` filter, one way for containers, images, networks and volumes."""
from __future__ import annotations


def labels_match(labels: dict[str, str] | None, wanted: list[str]) -> bool:
    """Whether ``labels`` satisfy every ``label`` filter value: ``key``, ``key=value``, and the
    negations ``!key`` / ``key!=value`` (as ``docker ... prune --filter label!=...``)."""
    labels = labels or {}
    for w in wanted:
        negate = w.startswith("!") or "!=" in w
        k, sep, v = w.lstrip("!").replace("!=", "=", 1).partition("=")
        has = k in labels and (not sep or labels[k] == v)
        if has == negate:
            return False
    return True
