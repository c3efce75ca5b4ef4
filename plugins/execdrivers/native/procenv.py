"""A process's environment as dockerd builds it, for the native init and the OCI bundles."""
from __future__ import annotations

from typing import Any


def merge_env(*lists: Any) -> dict[str, str]:
    """``K=V`` lists merged in order (an exec's after its container's); a bare ``NAME`` unsets
    it, as dockerd's ReplaceOrAppendEnvValues."""
    env: dict[str, str] = {}
    for kv in [kv for items in lists for kv in items or ()]:
        k, sep, v = kv.partition("=")
        if sep:
            env[k] = v
        else:
            env.pop(k, None)
    return env
